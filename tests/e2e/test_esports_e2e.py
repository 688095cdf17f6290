"""Planted truth end to end: simulated matches -> both Redis streams -> consumers -> Postgres -> API.

300 simulated matches (about 6,500 rounds, 13,000 team-rounds, 330,000 events) are published to the
two streams under a private Redis prefix, consumed by the ingest pipeline into a private Postgres
database, analysed through ``POST /run-analysis`` (run by a real Celery worker on the Redis broker)
and read back through ``GET /top-correlations``.

What counts as "planted" (from the simulator's truth file, ``<events>.truth.json``):

* planted effects: ``truth["planted_effects"]`` (trade +, retreat -, hold + on round_win; plant +
  on site_executed). Every one must be significant (q < 0.05) with the right sign in a
  covariate-adjusted test (logistic or AIPW), and no significant test of that pair may have the
  wrong sign.
* features related to a planted effect: the planted intents' counts and shares (the truth's
  ``planted_features``) and, **mechanically**, every other share, ``total_actions`` and
  ``action_diversity``: each is a function of the planted counts (a share's denominator is the
  total, which contains the planted counts; diversity counts non-zero intents). On attacking rows
  the planted plant -> site_executed effect therefore moves them all, and tests find that
  association, correctly. The simulator's truth lists them as "null" because it balanced their
  round_win effect; it cannot balance the compositional link to site_executed.
* in-round features (kills, deaths, opening_kill) are generated from the outcome (the truth's
  ``post_treatment_features``): associated by construction, neither planted nor null; they are
  left out of the false-discovery count.
* pure nulls: the five other intents' counts and the signal-level features (confidence, speed,
  approach). At most 10% of the significant micro-feature results may be pure nulls.

For the confounded intent (hold: more frequent on full buys, which win more), the within-match AIPW
95% CI (clustered by match) must cover the true ATE of the binarized treatment while the naive
difference's CI does not. This season has no strength confounder (strength 0): the strength seasons
are tests/unit/test_esports_strength.py.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from edgefinder.esports.aggregate import (
    COUNT_FEATURES,
    COVARIATES,
    MICRO_FEATURES,
    OPEN_COUNT_FEATURES,
    RATE_FEATURES,
    SHARE_FEATURES,
)
from edgefinder.esports.ingest import IngestConfig, make_pipeline, run_ingest
from edgefinder.esports.simulate import simulate, write_simulation
from edgefinder.esports.sources import publish, stream_keys
from edgefinder.settings import Settings
from tests.esports_ops import ops_env
from tests.esports_ops import worker as start_worker
from tests.esports_pg import private_pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

MATCHES = 300
SEED = 2026
TOKEN = "e2e-token"
API = "/api/v1/analytics"
SIGNAL_LEVEL = ("mean_confidence", "low_conf_share", "speed_mean", "speed_max", "approach_mean")
ADJUSTED = ("logistic", "aipw_within")


@pytest.fixture(scope="module")
def e2e(
    pg_url: str, redis_url: str, redis_session_prefix: str, tmp_path_factory: pytest.TempPathFactory
):
    import redis

    prefix = f"{redis_session_prefix}e2e:"
    sim = simulate(MATCHES, seed=SEED)
    out, _ = write_simulation(sim, tmp_path_factory.mktemp("e2e") / "events.jsonl")
    client = redis.Redis.from_url(redis_url)
    counts = publish(out, client, prefix)
    assert counts == {"canonical": sim.n_canonical, "motion": sim.n_signals}
    with private_pg_database(pg_url, "e2e") as url:
        pipeline = make_pipeline(url, "e2e-pseudonym-key")
        try:
            ingested = run_ingest(
                pipeline,
                redis_client=client,
                prefix=prefix,
                config=IngestConfig(batch_size=5000, block_ms=100),
                once=True,
            )
        finally:
            pipeline.engine.dispose()
        settings = Settings(
            database_url=url, api_token=TOKEN, redis_url=redis_url, redis_prefix=prefix
        )
        from edgefinder.app import create_app

        # with a broker configured, POST /run-analysis queues the run for a Celery worker
        tmp = tmp_path_factory.mktemp("e2e-worker")
        worker = start_worker(
            ops_env(url, redis_url, prefix, tmp / "data"), tmp / "worker.log", "--pool", "solo"
        )
        with TestClient(create_app(settings)) as api:
            r = api.post(
                f"{API}/run-analysis",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={"seed": 0},
            )
            assert r.status_code == 202, r.text
            run_id = r.json()["run_id"]
            deadline = time.monotonic() + 300
            try:
                while True:
                    run = api.get(f"{API}/runs/{run_id}").json()
                    if run["status"] not in ("queued", "running") or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
            finally:
                worker.stop()
            top = api.get(
                f"{API}/top-correlations", params={"limit": 1000, "significant_only": True}
            )
            everything = api.get(f"{API}/top-correlations", params={"limit": 1000})
            causal = api.get(f"{API}/causal-effects").json()
            metrics = api.get("/metrics").text
            health = api.get(f"{API}/health").json()
            yield {
                "sim": sim,
                "ingested": ingested,
                "run": run,
                "top": top,
                "all": everything.json(),
                "causal": causal,
                "metrics": metrics,
                "health": health,
                "client": client,
                "prefix": prefix,
            }
    client.close()


def test_every_event_ingested_and_run_succeeded(e2e) -> None:
    sim, ingested, run = e2e["sim"], e2e["ingested"], e2e["run"]
    assert sim.truth["matches"] == MATCHES and sim.truth["rounds"] > 6000
    assert ingested.events == sim.n_canonical + sim.n_signals and ingested.dead_letters == 0
    assert run["status"] == "succeeded", run
    # every finished round, both teams
    assert run["n_rows"] == sim.truth["team_rounds"]
    assert run["purpose"] == "research/ops" and "betting" in run["disclaimer"]
    assert e2e["health"]["status"] == "ok" and e2e["health"]["redis"] == "ok"
    assert e2e["health"]["last_run_age_s"] is not None and e2e["health"]["last_run_age_s"] < 600


def test_planted_effects_are_significant_with_the_right_sign(e2e) -> None:
    top = e2e["top"]
    assert top.status_code == 200
    body = top.json()
    assert body["purpose"] == "research/ops" and body["run_id"] == e2e["run"]["run_id"]
    # plant -> site executed is an outcome mechanism: reported apart, never ranked
    rows = body["results"] + body["outcome_mechanisms"]
    assert rows and all(r["significant"] and r["q_value"] < 0.05 for r in rows)
    for p in e2e["sim"].truth["planted_effects"]:
        pair = [r for r in rows if r["feature"] == p["feature"] and r["outcome"] == p["outcome"]]
        want = "positive" if p["sign"] > 0 else "negative"
        adjusted = [r for r in pair if r["method"] in ADJUSTED and r["direction"] == want]
        assert adjusted, (
            f"planted {p['feature']} -> {p['outcome']} ({want}) not significant in an adjusted test"
        )
        wrong = [r for r in pair if r["direction"] not in (want,)]
        assert not wrong, (
            f"planted {p['feature']} -> {p['outcome']}: significant with the wrong sign: {wrong}"
        )


def test_at_most_ten_percent_of_significant_results_are_null_features(e2e) -> None:
    truth = e2e["sim"].truth
    planted = set(truth["planted_features"])
    # rates per alive player-second carry the outcome here (this simulator draws the deaths from
    # the round's winner) and opening counts are thinned per-round counts: neither is a pure null
    mechanical = (
        set(SHARE_FEATURES)
        | set(OPEN_COUNT_FEATURES)
        | set(RATE_FEATURES)
        | {"total_actions", "action_diversity"}
    )
    pure_null = (set(COUNT_FEATURES) - planted) | set(SIGNAL_LEVEL)
    # the definitions cover every micro feature exactly once
    assert planted | mechanical | pure_null == set(MICRO_FEATURES)
    assert not pure_null & (planted | mechanical)
    assert pure_null <= set(truth["null_features"])
    rows = [r for r in e2e["top"].json()["results"] if r["details"]["kind"] == "micro"]
    assert len(rows) >= 20
    false = [r for r in rows if r["feature"] in pure_null]
    share = len(false) / len(rows)
    print(
        f"\nsignificant micro-feature results: {len(rows)}; pure nulls among them: {len(false)} ({share:.1%})"
    )
    assert share <= 0.10, (
        f"{len(false)} of {len(rows)} significant results are null features: {false}"
    )


def test_confounded_intent_aipw_covers_truth_naive_does_not(e2e) -> None:
    conf = e2e["sim"].truth["confounded"]
    rows = [
        r
        for r in e2e["all"]["results"]
        if r["feature"] == conf["feature"]
        and r["outcome"] == conf["outcome"]
        and r["method"] == "aipw_within"
    ]
    assert len(rows) == 1
    r = rows[0]
    d = r["details"]
    true_ate = conf["true_ate"]
    assert d["threshold"] == conf["threshold"]  # the job binarized the count as the truth did
    assert r["ci_low"] <= true_ate <= r["ci_high"], (true_ate, r["ci_low"], r["ci_high"])
    lo, hi = d["naive_ci"]
    print(
        f"\n{conf['feature']}: true ATE {true_ate:+.4f}; AIPW {r['estimate']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]; "
        f"IPW {d['ipw']:+.4f}; naive {d['naive']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
    )
    assert not lo <= true_ate <= hi, (true_ate, lo, hi)
    assert d["naive"] > r["estimate"] > 0  # confounding inflates the naive difference
    # adjusted only for pre-round covariates, with balance reported
    assert set(d["adjusted_for"]) == set(COVARIATES)
    assert d["max_abs_smd_after"] < d["max_abs_smd_before"]
    assert r["verdict"] == "robust" and d["n_clusters"] > 250


def test_causal_effects_endpoint_serves_verdicts_for_every_intent(e2e) -> None:
    body = e2e["causal"]
    assert body["run_id"] == e2e["run"]["run_id"] and body["count"] == len(COUNT_FEATURES)
    by_feature = {e["feature"]: e for e in body["results"]}
    for p in e2e["sim"].truth["planted_effects"]:
        if p["outcome"] != "round_win":
            continue
        e = by_feature[p["feature"]]
        assert e["significant"] and e["verdict"] in ("robust", "fragile")
        assert (e["estimate"] > 0) == (p["sign"] > 0) and e["refutations"]["placebo"][
            "passed"
        ] is not None
    for feat in ("advance_count", "rotate_count", "engage_count"):  # pure nulls
        assert by_feature[feat]["verdict"] == "not significant", by_feature[feat]


def test_metrics_expose_ingest_lag_and_job_duration(e2e) -> None:
    text = e2e["metrics"]
    assert 'edgefinder_events_ingested_total{stream="motion"}' in text
    assert 'edgefinder_analysis_job_duration_seconds_count{status="succeeded"}' in text
    for name in ("canonical", "motion"):
        assert f'edgefinder_consumer_lag{{stream="{name}"}} 0.0' in text
    # the streams were really consumed by the group (nothing pending)
    client, prefix = e2e["client"], e2e["prefix"]
    for key in stream_keys(prefix).values():
        assert client.xpending(key, "edgefinder-ingest")["pending"] == 0


def test_no_player_identifier_in_api_output(e2e) -> None:
    import json

    players = set()
    for line in e2e["sim"].lines:
        ev = json.loads(line)
        if ev.get("event_type") == "MATCH_START":
            for team in ev["payload"]["teams"]:
                players.update(team["players"])
    assert len(players) > 100
    body = json.dumps(e2e["all"]) + json.dumps(e2e["run"])
    assert not [p for p in players if p in body]
