BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001

CREATE TABLE analysis_runs (
    run_id VARCHAR(36) NOT NULL, 
    status VARCHAR(16) NOT NULL, 
    started_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    finished_at TIMESTAMP WITH TIME ZONE, 
    duration_s FLOAT, 
    n_rows INTEGER, 
    n_tests INTEGER, 
    params JSONB, 
    summary JSONB, 
    error TEXT, 
    purpose VARCHAR(32) DEFAULT 'research/ops' NOT NULL, 
    disclaimer TEXT NOT NULL, 
    CONSTRAINT pk_analysis_runs PRIMARY KEY (run_id)
);

CREATE TABLE dead_letters (
    id SERIAL NOT NULL, 
    source VARCHAR(128) NOT NULL, 
    entry_id VARCHAR(64), 
    raw TEXT NOT NULL, 
    reason TEXT NOT NULL, 
    deliveries INTEGER, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_dead_letters PRIMARY KEY (id)
);

CREATE TABLE kills (
    event_id VARCHAR(128) NOT NULL, 
    match_id VARCHAR(128) NOT NULL, 
    round_no INTEGER NOT NULL, 
    ts FLOAT NOT NULL, 
    killer_hash VARCHAR(64), 
    victim_hash VARCHAR(64), 
    killer_team VARCHAR(128), 
    victim_team VARCHAR(128), 
    weapon VARCHAR(64), 
    headshot BOOLEAN, 
    CONSTRAINT pk_kills PRIMARY KEY (event_id)
);

CREATE INDEX ix_kills_round ON kills (match_id, round_no);

CREATE TABLE macro_outcomes (
    match_id VARCHAR(128) NOT NULL, 
    round_no INTEGER NOT NULL, 
    team_id VARCHAR(128) NOT NULL, 
    round_win INTEGER NOT NULL, 
    econ_delta FLOAT, 
    site_executed INTEGER NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_macro_outcomes PRIMARY KEY (match_id, round_no, team_id)
);

CREATE TABLE match_players (
    match_id VARCHAR(128) NOT NULL, 
    player_hash VARCHAR(64) NOT NULL, 
    team_id VARCHAR(128) NOT NULL, 
    CONSTRAINT pk_match_players PRIMARY KEY (match_id, player_hash)
);

CREATE TABLE matches (
    match_id VARCHAR(128) NOT NULL, 
    map VARCHAR(64), 
    team_a VARCHAR(128), 
    team_b VARCHAR(128), 
    winner VARCHAR(128), 
    score JSONB, 
    started_at TIMESTAMP WITH TIME ZONE, 
    ended_at TIMESTAMP WITH TIME ZONE, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_matches PRIMARY KEY (match_id)
);

CREATE TABLE micro_actions (
    signal_id VARCHAR(128) NOT NULL, 
    match_id VARCHAR(128) NOT NULL, 
    round_no INTEGER, 
    team VARCHAR(128), 
    player_hash VARCHAR(64) NOT NULL, 
    ts FLOAT NOT NULL, 
    intent VARCHAR(16) NOT NULL, 
    confidence FLOAT NOT NULL, 
    speed FLOAT, 
    approach_velocity FLOAT, 
    dist_to_objective FLOAT, 
    features JSONB, 
    artifact_url TEXT, 
    model_version VARCHAR(64), 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_micro_actions PRIMARY KEY (signal_id)
);

CREATE INDEX ix_micro_actions_match_ts ON micro_actions (match_id, ts);

CREATE INDEX ix_micro_actions_round ON micro_actions (match_id, round_no);

CREATE TABLE raw_events (
    event_id VARCHAR(128) NOT NULL, 
    match_id VARCHAR(128) NOT NULL, 
    event_type VARCHAR(64) NOT NULL, 
    ts FLOAT NOT NULL, 
    payload JSONB NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_raw_events PRIMARY KEY (event_id)
);

CREATE INDEX ix_raw_events_match_id ON raw_events (match_id);

CREATE TABLE reviews (
    id SERIAL NOT NULL, 
    subject_kind VARCHAR(32) NOT NULL, 
    subject_id VARCHAR(128) NOT NULL, 
    status VARCHAR(16) NOT NULL, 
    reviewer VARCHAR(128), 
    note TEXT, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_reviews PRIMARY KEY (id)
);

CREATE TABLE round_teams (
    match_id VARCHAR(128) NOT NULL, 
    round_no INTEGER NOT NULL, 
    team_id VARCHAR(128) NOT NULL, 
    side VARCHAR(16), 
    bank_start FLOAT, 
    loadout_value FLOAT, 
    bank_end FLOAT, 
    CONSTRAINT pk_round_teams PRIMARY KEY (match_id, round_no, team_id)
);

CREATE TABLE rounds (
    match_id VARCHAR(128) NOT NULL, 
    round_no INTEGER NOT NULL, 
    map VARCHAR(64), 
    start_ts FLOAT, 
    end_ts FLOAT, 
    winner VARCHAR(128), 
    win_reason VARCHAR(64), 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_rounds PRIMARY KEY (match_id, round_no)
);

CREATE TABLE site_events (
    event_id VARCHAR(128) NOT NULL, 
    match_id VARCHAR(128) NOT NULL, 
    round_no INTEGER NOT NULL, 
    ts FLOAT NOT NULL, 
    kind VARCHAR(16) NOT NULL, 
    team VARCHAR(128) NOT NULL, 
    site VARCHAR(16), 
    CONSTRAINT pk_site_events PRIMARY KEY (event_id)
);

CREATE INDEX ix_site_events_round ON site_events (match_id, round_no);

CREATE TABLE correlation_results (
    id SERIAL NOT NULL, 
    run_id VARCHAR(36) NOT NULL, 
    feature VARCHAR(128) NOT NULL, 
    outcome VARCHAR(64) NOT NULL, 
    method VARCHAR(32) NOT NULL, 
    n INTEGER NOT NULL, 
    statistic FLOAT, 
    effect FLOAT, 
    ci_low FLOAT, 
    ci_high FLOAT, 
    p_value FLOAT, 
    q_value FLOAT, 
    significant BOOLEAN NOT NULL, 
    exploratory BOOLEAN NOT NULL, 
    direction VARCHAR(16), 
    details JSONB, 
    purpose VARCHAR(32) DEFAULT 'research/ops' NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_correlation_results PRIMARY KEY (id), 
    CONSTRAINT fk_correlation_results_run_id_analysis_runs FOREIGN KEY(run_id) REFERENCES analysis_runs (run_id) ON DELETE CASCADE
);

CREATE INDEX ix_correlation_results_feature ON correlation_results (feature);

CREATE INDEX ix_correlation_results_run_id ON correlation_results (run_id);

INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING alembic_version.version_num;

-- Running upgrade 0001 -> 0002

CREATE TABLE alerts (
    id SERIAL NOT NULL, 
    run_id VARCHAR(36) NOT NULL, 
    previous_run_id VARCHAR(36) NOT NULL, 
    feature VARCHAR(128) NOT NULL, 
    outcome VARCHAR(64) NOT NULL, 
    method VARCHAR(32) NOT NULL, 
    kind VARCHAR(32) NOT NULL, 
    before_estimate FLOAT, 
    before_ci_low FLOAT, 
    before_ci_high FLOAT, 
    before_q_value FLOAT, 
    before_significant BOOLEAN, 
    after_estimate FLOAT, 
    after_ci_low FLOAT, 
    after_ci_high FLOAT, 
    after_q_value FLOAT, 
    after_significant BOOLEAN, 
    message TEXT NOT NULL, 
    details JSONB, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    acknowledged_at TIMESTAMP WITH TIME ZONE, 
    acknowledged_by VARCHAR(128), 
    webhook_attempts INTEGER DEFAULT '0' NOT NULL, 
    webhook_failures INTEGER DEFAULT '0' NOT NULL, 
    webhook_delivered_at TIMESTAMP WITH TIME ZONE, 
    webhook_error TEXT, 
    CONSTRAINT pk_alerts PRIMARY KEY (id), 
    CONSTRAINT fk_alerts_run_id_analysis_runs FOREIGN KEY(run_id) REFERENCES analysis_runs (run_id) ON DELETE CASCADE
);

CREATE INDEX ix_alerts_created_at ON alerts (created_at);

CREATE INDEX ix_alerts_run_id ON alerts (run_id);

CREATE TABLE run_features (
    run_id VARCHAR(36) NOT NULL, 
    n_rows INTEGER NOT NULL, 
    parquet BYTEA NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_run_features PRIMARY KEY (run_id), 
    CONSTRAINT fk_run_features_run_id_analysis_runs FOREIGN KEY(run_id) REFERENCES analysis_runs (run_id) ON DELETE CASCADE
);

ALTER TABLE analysis_runs ADD COLUMN queued_at TIMESTAMP WITH TIME ZONE;

ALTER TABLE analysis_runs ADD COLUMN trigger VARCHAR(16);

ALTER TABLE analysis_runs ADD COLUMN worker VARCHAR(255);

ALTER TABLE analysis_runs ADD COLUMN db_queries INTEGER;

ALTER TABLE analysis_runs ADD COLUMN db_seconds FLOAT;

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

-- Running upgrade 0002 -> 0003

ALTER TABLE correlation_results ADD COLUMN verdict VARCHAR(16);

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

-- Running upgrade 0003 -> 0004

ALTER TABLE raw_events ADD COLUMN occurred_at TIMESTAMP WITH TIME ZONE;

ALTER TABLE raw_events ADD COLUMN actor_hash VARCHAR(64);

ALTER TABLE raw_events ADD COLUMN team VARCHAR(128);

ALTER TABLE dead_letters ADD COLUMN kind VARCHAR(16);

UPDATE dead_letters SET kind = CASE WHEN reason LIKE 'oversize%' THEN 'oversize' WHEN reason LIKE 'delivery limit%' THEN 'delivery_limit' WHEN reason LIKE 'database rejected%' THEN 'rejected' ELSE 'invalid' END;

DELETE FROM dead_letters WHERE entry_id IS NOT NULL AND id NOT IN (SELECT min(id) FROM dead_letters WHERE entry_id IS NOT NULL GROUP BY source, entry_id);

CREATE UNIQUE INDEX uq_dead_letters_source_entry_id ON dead_letters (source, entry_id);

UPDATE alembic_version SET version_num='0004' WHERE alembic_version.version_num = '0003';

-- Running upgrade 0004 -> 0005

ALTER TABLE correlation_results ADD COLUMN outcome_mechanism BOOLEAN DEFAULT false NOT NULL;

UPDATE alembic_version SET version_num='0005' WHERE alembic_version.version_num = '0004';

-- Running upgrade 0005 -> 0006

CREATE TABLE winprob_models (
    model_version VARCHAR(64) NOT NULL, 
    game VARCHAR(16) NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    n_rounds INTEGER NOT NULL, 
    n_matches INTEGER NOT NULL, 
    metrics JSONB NOT NULL, 
    baseline_metrics JSONB NOT NULL, 
    details JSONB, 
    model BYTEA NOT NULL, 
    CONSTRAINT pk_winprob_models PRIMARY KEY (model_version)
);

CREATE INDEX ix_winprob_models_game_created ON winprob_models (game, created_at);

CREATE TABLE action_values (
    id SERIAL NOT NULL, 
    run_id VARCHAR(36) NOT NULL, 
    game VARCHAR(16) NOT NULL, 
    stratum VARCHAR(128) NOT NULL, 
    intent VARCHAR(16) NOT NULL, 
    estimate FLOAT, 
    ci_low FLOAT, 
    ci_high FLOAT, 
    p_value FLOAT, 
    q_value FLOAT, 
    n INTEGER NOT NULL, 
    n_matches INTEGER NOT NULL, 
    CONSTRAINT pk_action_values PRIMARY KEY (id), 
    CONSTRAINT fk_action_values_run_id_analysis_runs FOREIGN KEY(run_id) REFERENCES analysis_runs (run_id) ON DELETE CASCADE
);

CREATE INDEX ix_action_values_run_id ON action_values (run_id);

UPDATE alembic_version SET version_num='0006' WHERE alembic_version.version_num = '0005';

-- Running upgrade 0006 -> 0007

CREATE INDEX ix_micro_actions_unresolved_team ON micro_actions (match_id, player_hash) WHERE team IS NULL;

CREATE INDEX ix_micro_actions_unresolved_round ON micro_actions (match_id, ts) WHERE round_no IS NULL;

UPDATE alembic_version SET version_num='0007' WHERE alembic_version.version_num = '0006';

COMMIT;

