"""Two seasons fed in turn: the second run's alerts against the planted change, on every channel.

Planted change (simulator knobs, log-odds per signal): season 1 (30 matches) has **no** trade effect
(``b_trade = 0``) and the usual negative retreat effect (``b_retreat = -0.34``); season 2 (90 more
matches) plants a strong trade effect (``b_trade = +0.6``) and reverses retreat (``b_retreat =
+0.6``). The second run sees both seasons (three quarters season 2), so

* trade_count → round_win becomes significant where it was not (``newly_significant``) in the
  point-biserial, the adjusted logistic and the AIPW tests;
* the retreat_count → round_win effects (point-biserial, adjusted logistic, AIPW) flip sign
  (``sign_flip``).

Every alert is also checked against a plain re-implementation of the rules over the two runs'
stored results, and must reach the API, the insights stream and a local webhook server that is
down while the run finishes and comes up a few seconds later.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from edgefinder.app import create_app
from edgefinder.esports.insights import insights_key
from edgefinder.esports.jobs import JobParams, run_correlation_job
from edgefinder.esports.simulate import SimConfig, simulate
from edgefinder.esports.synthdb import load_units
from edgefinder.settings import Settings
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import alerts, correlation_results
from tests.cli_runs import clean_env
from tests.esports_ops import WebhookReceiver, wait_until
from tests.esports_pg import private_pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

API = "/api/v1/analytics"
TOKEN = "alerts-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEASON_1 = SimConfig(b_trade=0.0)
SEASON_2 = SimConfig(b_trade=0.6, b_retreat=0.6)


def _reference_kind(b: Any, a: Any) -> str | None:
    """The alert rules written out pair by pair (independent of the vectorized implementation)."""

    def sig(r: Any) -> bool:
        return bool(r.significant)

    def finite(v: Any) -> bool:
        return v is not None and math.isfinite(v)

    if sig(b) and sig(a) and finite(b.effect) and finite(a.effect) and b.effect * a.effect < 0:
        return "sign_flip"
    if sig(a) and not sig(b):
        return "newly_significant"
    if sig(b) and not sig(a):
        return "significance_lost"
    if (
        (sig(a) or sig(b))
        and finite(a.effect)
        and finite(b.ci_low)
        and finite(b.ci_high)
        and not b.ci_low <= a.effect <= b.ci_high
    ):
        return "outside_previous_ci"
    return None


@pytest.fixture(scope="module")
def seasons(pg_url: str, redis_url: str, redis_session_prefix: str) -> Iterator[dict[str, Any]]:
    prefix = f"{redis_session_prefix}alerts:"
    rx = WebhookReceiver()  # bound, not accepting: the webhook is down
    with private_pg_database(pg_url, "alerts") as url:
        settings = Settings(
            database_url=url,
            redis_url=redis_url,
            redis_prefix=prefix,
            api_token=TOKEN,
            alert_webhook_url=rx.url,
            alert_webhook_attempts=10,
            alert_webhook_backoff_s=0.2,
        )
        engine = make_engine(url)
        load_units(engine, simulate(30, seed=21, config=SEASON_1).units, seed=21)
        first = run_correlation_job(engine, settings, params=JobParams(seed=0))
        load_units(engine, simulate(90, seed=22, config=SEASON_2).units, seed=22)
        t0 = time.monotonic()
        second = run_correlation_job(engine, settings, params=JobParams(seed=0))
        returned_after = time.monotonic() - t0
        received_at_return = len(rx.bodies)
        time.sleep(2.0)  # the receiver stays down a little longer, then recovers
        received_while_down = len(rx.bodies)
        rx.start()
        try:
            yield {
                "url": url,
                "engine": engine,
                "settings": settings,
                "first": first,
                "second": second,
                "rx": rx,
                "prefix": prefix,
                "returned_after": returned_after,
                "received_at_return": received_at_return,
                "received_while_down": received_while_down,
            }
        finally:
            rx.close()
            engine.dispose()


def _stored_alerts(engine: Any) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(alerts).order_by(alerts.c.id)).all()


def test_second_run_alerts_match_the_planted_change_and_the_rules(seasons: dict[str, Any]) -> None:
    first, second, engine = seasons["first"], seasons["second"], seasons["engine"]
    assert first.status == second.status == "succeeded" and first.n_alerts == 0
    rows = _stored_alerts(engine)
    assert len(rows) == second.n_alerts > 0
    assert {r.run_id for r in rows} == {second.run_id} and {r.previous_run_id for r in rows} == {
        first.run_id
    }
    got = {(r.feature, r.outcome, r.method): r.kind for r in rows}
    for method in ("point_biserial", "logistic", "aipw_within"):
        assert got.get(("trade_count", "round_win", method)) == "newly_significant", method
    for method in ("point_biserial", "logistic", "aipw_within"):
        assert got.get(("retreat_count", "round_win", method)) == "sign_flip", method
    # every alert, and only those, by the rules written out pair by pair
    with engine.connect() as conn:

        def results(run_id: str) -> dict[tuple[str, str, str], Any]:
            res = conn.execute(
                select(correlation_results).where(correlation_results.c.run_id == run_id)
            ).all()
            return {(r.feature, r.outcome, r.method): r for r in res}

        before, after = results(first.run_id), results(second.run_id)
    expected = {
        k: kind
        for k in before.keys() & after.keys()
        if (kind := _reference_kind(before[k], after[k]))
    }
    assert got == expected
    for r in rows:  # the stored figures are the two runs' figures
        b, a = before[(r.feature, r.outcome, r.method)], after[(r.feature, r.outcome, r.method)]
        assert (r.before_estimate, r.before_ci_low, r.before_ci_high, r.before_significant) == (
            b.effect,
            b.ci_low,
            b.ci_high,
            b.significant,
        )
        assert (r.after_estimate, r.after_q_value, r.after_significant) == (
            a.effect,
            a.q_value,
            a.significant,
        )


def test_alerts_on_the_api_filters_and_ack(seasons: dict[str, Any]) -> None:
    client = TestClient(create_app(seasons["settings"]))
    rows = _stored_alerts(seasons["engine"])
    body = client.get(f"{API}/alerts", params={"limit": 1000}).json()
    assert body["count"] == len(rows) and {a["id"] for a in body["alerts"]} == {r.id for r in rows}
    assert body["purpose"] == "research/ops" and "betting" in body["disclaimer"]
    flips = client.get(f"{API}/alerts", params={"kind": "sign_flip", "limit": 1000}).json()[
        "alerts"
    ]
    assert {a["id"] for a in flips} == {r.id for r in rows if r.kind == "sign_flip"}
    retreat = next(a for a in flips if (a["feature"], a["method"]) == ("retreat_count", "logistic"))
    assert retreat["before"]["estimate"] < 0 < retreat["after"]["estimate"]
    assert retreat["before"]["significant"] and retreat["after"]["significant"]
    assert "flipped sign" in retreat["message"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get(f"{API}/alerts", params={"since": future}).json()["count"] == 0
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert client.get(f"{API}/alerts", params={"since": past, "limit": 1000}).json()[
        "count"
    ] == len(rows)
    # acknowledging needs the token, is idempotent, and the unacknowledged filter follows it
    target = retreat["id"]
    assert client.post(f"{API}/alerts/{target}/ack").status_code == 401
    first = client.post(f"{API}/alerts/{target}/ack", headers=AUTH, params={"by": "analyst"})
    assert first.status_code == 200 and first.json()["acknowledged_at"] is not None
    again = client.post(f"{API}/alerts/{target}/ack", headers=AUTH)
    assert again.json()["acknowledged_at"] == first.json()["acknowledged_at"]
    open_ = client.get(f"{API}/alerts", params={"unacknowledged": True, "limit": 1000}).json()
    assert open_["count"] == len(rows) - 1 and target not in {a["id"] for a in open_["alerts"]}
    assert client.post(f"{API}/alerts/999999/ack", headers=AUTH).status_code == 404
    assert client.get(f"{API}/alerts", params={"kind": "everything"}).status_code == 422


def test_alerts_and_summaries_on_the_insights_stream(seasons: dict[str, Any], redis_client) -> None:
    entries = [
        json.loads(f[b"data"]) for _, f in redis_client.xrange(insights_key(seasons["prefix"]))
    ]
    summaries = [e for e in entries if e["type"] == "run_summary"]
    assert [s["run_id"] for s in summaries] == [seasons["first"].run_id, seasons["second"].run_id]
    rows = _stored_alerts(seasons["engine"])
    kinds = {
        k: sum(r.kind == k for r in rows)
        for k in ("sign_flip", "newly_significant", "significance_lost", "outside_previous_ci")
    }
    assert summaries[1]["alerts"] == kinds and summaries[1]["n_tests"] == seasons["second"].n_tests
    assert all(s["purpose"] == "research/ops" and s["disclaimer"] for s in summaries)
    streamed = {e["id"]: e for e in entries if e["type"] == "alert"}
    assert set(streamed) == {r.id for r in rows}
    one = streamed[rows[0].id]
    assert (one["kind"], one["feature"]) == (rows[0].kind, rows[0].feature)
    assert one["after"]["estimate"] == rows[0].after_estimate


def test_webhook_down_then_up_gets_every_alert_without_blocking_the_job(
    seasons: dict[str, Any],
) -> None:
    rx: WebhookReceiver = seasons["rx"]
    engine = seasons["engine"]
    ids = {r.id for r in _stored_alerts(engine)}
    # the job returned while the receiver was down: nothing was delivered, nothing waited for it
    assert seasons["received_at_return"] == seasons["received_while_down"] == 0
    wait_until(lambda: {b["id"] for b in rx.bodies} == ids, 60, "every alert at the webhook")
    assert len(rx.bodies) == len(ids)  # each exactly once
    assert all(b["type"] == "alert" and b["purpose"] == "research/ops" for b in rx.bodies)
    rows = wait_until(
        lambda: (x := _stored_alerts(engine)) and all(r.webhook_delivered_at for r in x) and x,
        10,
        "every delivery recorded",
    )
    failures = sum(r.webhook_failures for r in rows)
    assert (
        failures >= 1
        and rows[0].webhook_failures >= 1
        and rows[0].webhook_attempts == rows[0].webhook_failures + 1
    )
    assert all(r.webhook_error is None for r in rows)
    # the failed attempts are counted on /metrics
    text = TestClient(create_app(seasons["settings"])).get("/metrics").text
    values = {
        s.name: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if not s.labels
    }
    assert values["edgefinder_alert_webhook_failures_total"] == failures


def _insights_cli(settings: Settings, *args: str, **popen: Any) -> Any:
    import subprocess
    import sys

    env = clean_env(
        EDGEFINDER_REDIS_URL=settings.redis_url or "",
        EDGEFINDER_REDIS_PREFIX=settings.redis_prefix,
    )
    cmd = [sys.executable, "-m", "edgefinder", "esports", "insights", *args]
    if popen:
        return subprocess.Popen(cmd, env=env, **popen)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def test_insights_command_prints_the_stream_as_json_lines_and_text(
    seasons: dict[str, Any], redis_client
) -> None:
    entries = redis_client.xrange(insights_key(seasons["prefix"]))
    r = _insights_cli(seasons["settings"], "--last", "1000")  # a pipe: JSON lines
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["entry_id"] for x in lines] == [i.decode() for i, _ in entries]
    payloads = [json.loads(f[b"data"]) for _, f in entries]
    assert [{k: v for k, v in x.items() if k != "entry_id"} for x in lines] == payloads
    r = _insights_cli(seasons["settings"], "--last", "3", "--format", "text")
    shown = r.stdout.splitlines()
    assert len(shown) == 3 and all(
        line.split()[2] == "alert" for line in shown
    )  # the newest entries are alerts


def test_insights_follow_prints_new_entries_until_stopped(
    seasons: dict[str, Any], redis_client
) -> None:
    import signal
    import subprocess

    from edgefinder.esports.insights import publish

    proc = _insights_cli(
        seasons["settings"], "--follow", "--last", "0", stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(2.0)  # let it reach XREAD BLOCK
        publish(
            redis_client, seasons["prefix"], [{"type": "probe", "n": 1}, {"type": "probe", "n": 2}]
        )
        got = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
    assert [(g["type"], g["n"]) for g in got] == [("probe", 1), ("probe", 2)]
    assert rc == 0
