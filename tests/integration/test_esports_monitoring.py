"""Monitoring: /metrics exposes every metric the shipped dashboard and alert rules use, with the right values.

A private SQLite database gets two runs on changed data (so alerts exist), two kinds of dead letters
and a webhook that is down (one failed attempt per alert); a private Redis prefix gets the two input
streams with the ingest consumer group part-way through them. ``promtool`` (Debian's prometheus
package; ``.ci/run`` installs it) checks the rule file, runs its unit tests, and parses every query
of the Grafana dashboard.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select

from edgefinder.app import create_app
from edgefinder.esports import metrics as ingest_metrics
from edgefinder.esports.jobs import run_correlation_job
from edgefinder.esports.simulate import SimConfig, simulate
from edgefinder.esports.sources import DEFAULT_GROUP, stream_keys
from edgefinder.esports.synthdb import load_units
from edgefinder.settings import Settings
from edgefinder.store.engine import make_engine
from edgefinder.store.migrate import upgrade
from edgefinder.store.tables import alerts, analysis_runs, dead_letters
from tests.esports_ops import REPO, wait_until
from tests.promql import (
    DASHBOARD,
    METRIC,
    RULES,
    dashboard_exprs,
    misused,
    module_types,
    prometheus_tool,
    rule_exprs,
    sample_types,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: Samples of the stream consumers' metrics (edgefinder.esports.metrics), by type.
INGEST_SAMPLES = module_types(ingest_metrics)

RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"


@pytest.fixture(scope="module")
def scraped(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, redis_session_prefix: str
) -> Iterator[dict[str, Any]]:
    import redis

    prefix = f"{redis_session_prefix}monitoring:"
    url = f"sqlite:///{(tmp_path_factory.mktemp('monitoring') / 'm.sqlite3').as_posix()}"
    upgrade(url)
    settings = Settings(
        database_url=url,
        redis_url=redis_url,
        redis_prefix=prefix,
        alert_webhook_url="http://127.0.0.1:9/down",
        alert_webhook_attempts=1,
    )
    engine = make_engine(url)
    load_units(engine, simulate(10, seed=61, config=SimConfig(b_trade=0.0)).units, seed=61)
    run_correlation_job(engine, settings)
    load_units(
        engine, simulate(20, seed=62, config=SimConfig(b_trade=0.8, b_retreat=0.6)).units, seed=62
    )
    second = run_correlation_job(engine, settings)
    assert second.n_alerts > 0
    with engine.begin() as tx:
        tx.execute(
            insert(dead_letters),
            [
                {
                    "source": "events:canonical",
                    "raw": "{",
                    "reason": "bad JSON: Expecting value: line 1 column 2",
                },
                {
                    "source": "events:canonical",
                    "raw": "{x",
                    "reason": "bad JSON: Expecting property name",
                },
                {
                    "source": "events:agent:motion",
                    "raw": "{}",
                    "reason": "invalid motion signal: unknown intent 'fly'",
                },
            ],
        )
    client = redis.Redis.from_url(redis_url)
    keys = stream_keys(prefix)
    for _ in range(5):
        client.xadd(keys["canonical"], {b"data": b"{}"})
    for _ in range(3):
        client.xadd(keys["motion"], {b"data": b"{}"})
    for key in keys.values():
        client.xgroup_create(key, DEFAULT_GROUP, id="0")
    client.xreadgroup(
        DEFAULT_GROUP, "c1", {keys["canonical"]: ">"}, count=2
    )  # delivered, not acknowledged
    wait_until(lambda: _all_failed_once(engine), 30, "one failed webhook attempt per alert")
    api = TestClient(create_app(settings))
    text = api.get("/metrics").text
    samples: dict[str, list[Any]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, []).append(s)
    with engine.connect() as conn:
        runs = conn.execute(select(analysis_runs).order_by(analysis_runs.c.finished_at)).all()
        stored_alerts = conn.execute(select(alerts)).all()
    yield {
        "samples": samples,
        "types": sample_types(text),
        "api": api,
        "runs": runs,
        "alerts": stored_alerts,
        "client": client,
        "keys": keys,
    }
    client.close()
    engine.dispose()


def _all_failed_once(engine: Any) -> bool:
    with engine.connect() as conn:
        return all(r.webhook_failures == 1 for r in conn.execute(select(alerts.c.webhook_failures)))


def _value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    hits = [
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(hits) == 1, (name, labels, samples.get(name))
    return hits[0]


def test_every_metric_of_the_dashboard_and_the_rules_is_exposed(scraped: dict[str, Any]) -> None:
    used = {m for e in (*dashboard_exprs(), *rule_exprs()) for m in METRIC.findall(e)}
    assert len(used) >= 15
    # The ingest counters have samples in the consumer processes (the stack test scrapes them there).
    ingest = {n for n in used if n in INGEST_SAMPLES}
    assert ingest == {"edgefinder_events_ingested_total"}
    missing = sorted(used - ingest - set(scraped["samples"]))
    assert not missing, f"used by deploy/ but not on /metrics (with a sample): {missing}"


def test_rates_only_over_counters_and_deltas_only_over_gauges(scraped: dict[str, Any]) -> None:
    exprs = [*dashboard_exprs(), *rule_exprs()]
    assert misused(exprs, scraped["types"]) == []
    # the check sees the misuse this dashboard once had
    wrong = misused(["rate(edgefinder_events_stored[5m])"], scraped["types"])
    assert wrong and "over a gauge" in wrong[0]
    assert misused(["delta(edgefinder_events_ingested_total[5m])"], scraped["types"])


def test_metric_values_are_what_the_database_and_redis_hold(scraped: dict[str, Any]) -> None:
    s, runs, rows = scraped["samples"], scraped["runs"], scraped["alerts"]
    assert (
        _value(s, "edgefinder_analysis_job_duration_seconds_count", status="succeeded")
        == len(runs)
        == 2
    )
    assert _value(
        s, "edgefinder_analysis_job_duration_seconds_sum", status="succeeded"
    ) == pytest.approx(sum(r.duration_s for r in runs))
    under = sum(r.duration_s <= 120 for r in runs)
    assert (
        _value(s, "edgefinder_analysis_job_duration_seconds_bucket", status="succeeded", le="120.0")
        == under
    )
    assert _value(s, "edgefinder_last_run_db_queries") == runs[-1].db_queries >= 2
    assert _value(s, "edgefinder_analysis_db_queries_total", status="succeeded") == sum(
        r.db_queries for r in runs
    )
    assert _value(s, "edgefinder_last_run_failed") == 0
    assert 0 <= _value(s, "edgefinder_last_run_age_seconds") < 600
    by_kind = {k: sum(r.kind == k for r in rows) for k in {r.kind for r in rows}}
    for kind, n in by_kind.items():
        assert _value(s, "edgefinder_alerts_stored", kind=kind) == n
        assert _value(s, "edgefinder_alerts_unacknowledged", kind=kind) == n
    assert _value(s, "edgefinder_alert_webhook_failures_total") == len(rows)
    assert _value(s, "edgefinder_alert_webhook_deliveries", state="failed") == len(rows)
    assert _value(s, "edgefinder_dead_letters_stored_by_reason", reason="bad JSON") == 2
    assert (
        _value(s, "edgefinder_dead_letters_stored_by_reason", reason="invalid motion signal") == 1
    )
    assert _value(s, "edgefinder_stream_length", stream="canonical") == 5
    assert _value(s, "edgefinder_stream_group_lag", stream="canonical", group=DEFAULT_GROUP) == 3
    assert (
        _value(s, "edgefinder_stream_group_pending", stream="canonical", group=DEFAULT_GROUP) == 2
    )
    assert _value(s, "edgefinder_stream_group_lag", stream="motion", group=DEFAULT_GROUP) == 3
    assert _value(s, "edgefinder_stream_length", stream="insights") == 2 + len(
        rows
    )  # two summaries + alerts


def test_health_reports_freshness_and_lag(scraped: dict[str, Any]) -> None:
    h = scraped["api"].get("/api/v1/analytics/health").json()
    assert (
        h["status"] == "ok" and h["results_stale"] is False and h["last_run_status"] == "succeeded"
    )
    assert h["streams"]["canonical"]["groups"][DEFAULT_GROUP] == {
        "lag": 3,
        "pending": 2,
        "consumers": 1,
    }
    assert h["streams"]["motion"]["length"] == 3
    stale = Settings(
        **{
            **scraped["api"].app.state.analytics.settings.model_dump(),
            "results_stale_after_s": 0.001,
        }
    )
    h = TestClient(create_app(stale)).get("/api/v1/analytics/health").json()
    assert h["status"] == "degraded" and h["results_stale"] is True


def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = prometheus_tool("promtool")
    check = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and "SUCCESS: 5 rules found" in check.stdout, (
        check.stdout + check.stderr
    )
    test = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_dashboard_queries_parse_and_panels_are_well_formed(tmp_path: Path) -> None:
    promtool = prometheus_tool("promtool")
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] == "edgefinder-ops"
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${DS_PROMETHEUS}" and p["targets"], p["title"]
    # Grafana's $__rate_interval is a duration; each query becomes a recording rule that promtool parses
    exprs = [e.replace("$__rate_interval", "5m") for e in dashboard_exprs()]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    check = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and f"SUCCESS: {len(exprs)} rules found" in check.stdout, (
        check.stdout + check.stderr
    )
