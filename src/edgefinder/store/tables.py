"""The relational schema (SQLAlchemy Core), shared by Postgres and SQLite.

Natural keys (``event_id``, ``signal_id``, ``(match_id, round_no)``, ``(match_id, round_no,
team_id)``) make every ingest write an idempotent upsert. Changing anything here needs a new
Alembic revision (``store/migrations/versions``) and a regenerated
``migrations/create_analytics_tables.sql`` (``edgefinder db sql``); a test checks both.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")


def _created() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _run_id() -> Column:
    """The analysis run a row belongs to; the row goes when its run is deleted."""
    return Column(
        "run_id",
        String(36),
        ForeignKey("analysis_runs.run_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


# --- esports: canonical side -------------------------------------------------------------

matches = Table(
    "matches",
    metadata,
    Column("match_id", String(128), primary_key=True),
    Column("map", String(64)),
    Column("team_a", String(128)),
    Column("team_b", String(128)),
    Column("winner", String(128)),
    Column("score", Json),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    _created(),
)

# Roster from MATCH_START: resolves the team of a motion signal that carries none.
match_players = Table(
    "match_players",
    metadata,
    Column("match_id", String(128), primary_key=True),
    Column("player_hash", String(64), primary_key=True),
    Column("team_id", String(128), nullable=False),
)

# Every canonical event as stored (envelope and normalized payload, player ids pseudonymized),
# keyed by event_id; unknown types are kept here and ignored. The first stored copy of an id wins.
raw_events = Table(
    "raw_events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("match_id", String(128), nullable=False, index=True),
    Column("event_type", String(64), nullable=False),
    Column("ts", Float, nullable=False),
    Column("payload", Json, nullable=False),
    _created(),
    Column("occurred_at", DateTime(timezone=True), doc="the event's wall-clock timestamp, UTC"),
    Column("actor_hash", String(64), doc="pseudonym of the envelope's actor"),
    Column("team", String(128), doc="the envelope's team"),
)

rounds = Table(
    "rounds",
    metadata,
    Column("match_id", String(128), primary_key=True),
    Column("round_no", Integer, primary_key=True),
    Column("map", String(64)),
    Column("start_ts", Float, doc="game seconds since match start"),
    Column("end_ts", Float, doc="game seconds since match start; NULL while the round runs"),
    Column("winner", String(128)),
    Column("win_reason", String(64)),
    _created(),
)

# Per-team state of a round: pre-round covariates at ROUND_START, bank at ROUND_END.
round_teams = Table(
    "round_teams",
    metadata,
    Column("match_id", String(128), primary_key=True),
    Column("round_no", Integer, primary_key=True),
    Column("team_id", String(128), primary_key=True),
    Column("side", String(16)),
    Column("bank_start", Float, doc="dollars (game currency) at ROUND_START"),
    Column("loadout_value", Float, doc="dollars (game currency) at ROUND_START"),
    Column("bank_end", Float, doc="dollars (game currency) at ROUND_END"),
)

kills = Table(
    "kills",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("match_id", String(128), nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("killer_hash", String(64)),
    Column("victim_hash", String(64)),
    Column("killer_team", String(128)),
    Column("victim_team", String(128)),
    Column("weapon", String(64)),
    Column("headshot", Boolean),
    Index("ix_kills_round", "match_id", "round_no"),
)

# BOMB_PLANT, SITE_EXECUTE and BOMB_DEFUSE.
site_events = Table(
    "site_events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("match_id", String(128), nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("team", String(128), nullable=False),
    Column("site", String(16)),
    Index("ix_site_events_round", "match_id", "round_no"),
)

macro_outcomes = Table(
    "macro_outcomes",
    metadata,
    Column("match_id", String(128), primary_key=True),
    Column("round_no", Integer, primary_key=True),
    Column("team_id", String(128), primary_key=True),
    Column("round_win", Integer, nullable=False),
    Column("econ_delta", Float, doc="bank at ROUND_END minus bank at ROUND_START, dollars"),
    Column("site_executed", Integer, nullable=False),
    _created(),
)

# --- esports: micro side -----------------------------------------------------------------

micro_actions = Table(
    "micro_actions",
    metadata,
    Column("signal_id", String(128), primary_key=True),
    Column("match_id", String(128), nullable=False),
    Column("round_no", Integer, doc="NULL until resolved from the round's game-time window"),
    Column("team", String(128), doc="NULL until resolved from the MATCH_START roster"),
    Column("player_hash", String(64), nullable=False),
    Column("ts", Float, nullable=False),
    Column("intent", String(16), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("speed", Float),
    Column("approach_velocity", Float),
    Column("dist_to_objective", Float),
    Column("features", Json),
    Column("artifact_url", Text),
    Column("model_version", String(64)),
    _created(),
    Index("ix_micro_actions_match_ts", "match_id", "ts"),
    Index("ix_micro_actions_round", "match_id", "round_no"),
    # only the signals still waiting for their team / round: what the after-batch fill-in reads
    Index(
        "ix_micro_actions_unresolved_team",
        "match_id",
        "player_hash",
        postgresql_where=text("team IS NULL"),
        sqlite_where=text("team IS NULL"),
    ),
    Index(
        "ix_micro_actions_unresolved_round",
        "match_id",
        "ts",
        postgresql_where=text("round_no IS NULL"),
        sqlite_where=text("round_no IS NULL"),
    ),
)

# --- analysis ----------------------------------------------------------------------------

analysis_runs = Table(
    "analysis_runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("status", String(16), nullable=False, doc="queued | running | succeeded | failed"),
    Column(
        "started_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        doc="when the job started (for a queued run: when it was queued)",
    ),
    Column("finished_at", DateTime(timezone=True)),
    Column("duration_s", Float),
    Column("n_rows", Integer),
    Column("n_tests", Integer),
    Column("params", Json),
    Column("summary", Json),
    Column("error", Text),
    Column("purpose", String(32), nullable=False, server_default="research/ops"),
    Column("disclaimer", Text, nullable=False),
    Column(
        "queued_at", DateTime(timezone=True), doc="when POST /run-analysis put it on the broker"
    ),
    Column("trigger", String(16), doc="api | schedule | cli | python"),
    Column("worker", String(255), doc="host:pid of the process that ran (runs) the job"),
    Column("db_queries", Integer, doc="SQL statements the job issued before storing its results"),
    Column("db_seconds", Float, doc="seconds spent in those statements"),
)

correlation_results = Table(
    "correlation_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _run_id(),
    Column("feature", String(128), nullable=False, index=True),
    Column("outcome", String(64), nullable=False),
    Column("method", String(32), nullable=False),
    Column("n", Integer, nullable=False),
    Column("statistic", Float),
    Column("effect", Float),
    Column("ci_low", Float),
    Column("ci_high", Float),
    Column("p_value", Float),
    Column("q_value", Float),
    Column("significant", Boolean, nullable=False),
    Column(
        "verdict",
        String(16),
        doc="causal effects only: robust | fragile | not significant (checks' figures in details.refutations)",
    ),
    Column("exploratory", Boolean, nullable=False),
    Column("direction", String(16)),
    Column("details", Json),
    Column("purpose", String(32), nullable=False, server_default="research/ops"),
    Column(
        "outcome_mechanism",
        Boolean,
        nullable=False,
        server_default=false(),
        doc="the feature is the outcome by the rules of the game (reason in details.outcome_mechanism)",
    ),
    _created(),
)

# One row per surprising change between a run and the previous succeeded run on the same outcome set.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _run_id(),
    Column("previous_run_id", String(36), nullable=False),
    Column("feature", String(128), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("method", String(32), nullable=False),
    Column(
        "kind",
        String(32),
        nullable=False,
        doc="sign_flip | newly_significant | significance_lost | outside_previous_ci",
    ),
    Column("before_estimate", Float),
    Column("before_ci_low", Float),
    Column("before_ci_high", Float),
    Column("before_q_value", Float),
    Column("before_significant", Boolean),
    Column("after_estimate", Float),
    Column("after_ci_low", Float),
    Column("after_ci_high", Float),
    Column("after_q_value", Float),
    Column("after_significant", Boolean),
    Column("message", Text, nullable=False),
    Column("details", Json),
    _created(),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", String(128)),
    Column("webhook_attempts", Integer, nullable=False, server_default="0"),
    Column("webhook_failures", Integer, nullable=False, server_default="0"),
    Column("webhook_delivered_at", DateTime(timezone=True)),
    Column("webhook_error", Text),
    Index("ix_alerts_created_at", "created_at"),
)

# The feature frame a run analysed, as Parquet bytes (GET /export/features.parquet); the latest few are kept.
run_features = Table(
    "run_features",
    metadata,
    Column(
        "run_id",
        String(36),
        ForeignKey("analysis_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("n_rows", Integer, nullable=False),
    Column("parquet", LargeBinary, nullable=False),
    _created(),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(128), nullable=False, doc="stream name or file path"),
    Column("entry_id", String(64), doc="Redis entry id or file line number"),
    Column("raw", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("deliveries", Integer),
    _created(),
    Column("kind", String(16), doc="invalid | oversize | conflict | rejected | delivery_limit"),
    # one dead letter per entry: a redelivered entry is not dead-lettered twice
    Index("uq_dead_letters_source_entry_id", "source", "entry_id", unique=True),
)

# Human-in-the-loop: any recommendation that leads to a production action is reviewed here.
reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject_kind", String(32), nullable=False, doc="analysis_run | production_playbook"),
    Column("subject_id", String(128), nullable=False),
    Column("status", String(16), nullable=False, doc="pending_review | approved | rejected"),
    Column("reviewer", String(128)),
    Column("note", Text),
    _created(),
)

# Round win-probability models, one version per fit; the latest of a game is the one in use.
winprob_models = Table(
    "winprob_models",
    metadata,
    Column("model_version", String(64), primary_key=True),
    Column("game", String(16), nullable=False, doc="valorant | cs | other: one model per game"),
    _created(),
    Column("n_rounds", Integer, nullable=False),
    Column("n_matches", Integer, nullable=False),
    Column("metrics", Json, nullable=False, doc="held-out log_loss, brier, auc, ece with CIs"),
    Column("baseline_metrics", Json, nullable=False, doc="the logistic baseline's, same rows"),
    Column("details", Json, doc="features, split sizes, reliability diagram, parameters"),
    Column("model", LargeBinary, nullable=False, doc="the fitted model, pickled (joblib)"),
    Index("ix_winprob_models_game_created", "game", "created_at"),
)

# Win probability added per action, per intent and stratum, of one run (the verdict's second design).
action_values = Table(
    "action_values",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _run_id(),
    Column("game", String(16), nullable=False, doc="the model's game, or all (pooled)"),
    Column(
        "stratum",
        String(128),
        nullable=False,
        doc="all | side=… | map=… | game=… | phase=opening|later",
    ),
    Column("intent", String(16), nullable=False),
    Column("estimate", Float, doc="mean win probability added, probability points"),
    Column("ci_low", Float),
    Column("ci_high", Float),
    Column("p_value", Float),
    Column("q_value", Float),
    Column("n", Integer, nullable=False, doc="actions"),
    Column("n_matches", Integer, nullable=False),
)
