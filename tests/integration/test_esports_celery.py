"""Celery on the real Redis broker and Postgres: a real worker process, a real beat process.

Each test gets a private Postgres database with 12 simulated matches (the job takes a few seconds)
and a private Redis key prefix, which is also the prefix of every Celery key and queue
(``global_keyprefix``), so parallel test runs never take each other's tasks.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from edgefinder.app import create_app
from edgefinder.esports.insights import insights_key
from edgefinder.esports.simulate import simulate
from edgefinder.esports.synthdb import load_units
from edgefinder.esports.tasks import CONSUMERS_TASK, RUN_TASK, make_celery
from edgefinder.settings import Settings
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import analysis_runs, correlation_results
from tests.esports_ops import beat, ops_env, wait_until, worker
from tests.esports_pg import private_pg_database, waiting_on_lock

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

API = "/api/v1/analytics"
TOKEN = "celery-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def db(pg_url: str) -> Iterator[str]:
    with private_pg_database(pg_url, "celery") as url:
        engine = make_engine(url)
        load_units(engine, simulate(12, seed=5).units, seed=5)
        engine.dispose()
        yield url


def _runs(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(analysis_runs).order_by(analysis_runs.c.started_at)).all()
    finally:
        engine.dispose()


def _n_results(url: str, run_id: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(correlation_results)
                    .where(correlation_results.c.run_id == run_id)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _settings(db: str, redis_url: str, prefix: str) -> Settings:
    return Settings(database_url=db, redis_url=redis_url, redis_prefix=prefix, api_token=TOKEN)


def test_beat_runs_the_job_on_schedule_and_stores_it(
    db: str, redis_url: str, redis_prefix: str, redis_client, tmp_path: Path
) -> None:
    env = ops_env(
        db, redis_url, redis_prefix, tmp_path / "data", EDGEFINDER_ANALYSIS_SCHEDULE="@every 3s"
    )
    w = worker(env, tmp_path / "worker.log", "--pool", "solo")
    b = beat(env, tmp_path / "beat.log")
    try:
        done = wait_until(
            lambda: len(x := [r for r in _runs(db) if r.status == "succeeded"]) >= 2 and x,
            180,
            "two scheduled runs",
        )
    finally:
        b.stop()
        w.stop()
    assert (
        "Sending due task run-correlation-analysis (edgefinder.analytics.jobs.run_correlation_job_task)"
        in b.text()
    )
    runs = [r for r in _runs(db) if r.status != "running"]
    assert all(r.status == "succeeded" and r.trigger == "schedule" for r in runs), [
        (r.status, r.error) for r in runs
    ]
    assert len(done) >= 2
    for r in runs:
        assert r.n_tests > 100 and _n_results(db, r.run_id) == r.n_tests
        assert r.worker == f"{socket.gethostname()}:{w.pid}"  # solo pool: the worker process itself
        assert r.db_queries >= 2 and r.db_seconds > 0
    # one job at a time: no two runs overlap
    spans = sorted((r.started_at, r.finished_at) for r in runs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    # every run published its summary on the insights stream; identical data raises no alert
    entries = [json.loads(f[b"data"]) for _, f in redis_client.xrange(insights_key(redis_prefix))]
    summaries = {e["run_id"]: e for e in entries if e["type"] == "run_summary"}
    assert {r.run_id for r in runs} <= set(summaries)
    assert all(summaries[r.run_id]["n_tests"] == r.n_tests for r in runs)
    assert all(sum(summaries[r.run_id]["alerts"].values()) == 0 for r in runs)
    # Celery's own keys are under the test's prefix too
    assert redis_client.exists(f"{redis_prefix}_kombu.binding.edgefinder")


def test_post_run_analysis_is_queued_then_run_by_the_worker_never_twice(
    db: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(db, redis_url, redis_prefix)
    client = TestClient(create_app(settings))
    r = client.post(f"{API}/run-analysis", headers=AUTH, json={"seed": 4})
    assert r.status_code == 202, r.text
    body = r.json()
    run_id = body["run_id"]
    assert body["status"] == "queued" and body["location"] == f"{API}/runs/{run_id}"
    assert client.get(f"{API}/runs/{run_id}").json()["status"] == "queued"  # no worker yet
    again = client.post(f"{API}/run-analysis", headers=AUTH)
    assert (
        again.status_code == 409
        and run_id in again.json()["message"]
        and "queued" in again.json()["message"]
    )

    env = ops_env(db, redis_url, redis_prefix, tmp_path / "data")
    w = worker(env, tmp_path / "worker.log", "--pool", "threads", "--concurrency", "2")
    seen = ["queued"]
    skipped: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 180
        while seen[-1] not in ("succeeded", "failed") and time.monotonic() < deadline:
            status = client.get(f"{API}/runs/{run_id}").json()["status"]
            if status != seen[-1]:
                seen.append(status)
            if status == "running" and not skipped:
                # a second start while the job runs (as beat would send it), on a free worker slot
                assert client.post(f"{API}/run-analysis", headers=AUTH).status_code == 409
                skipped = (
                    make_celery(settings)
                    .send_task(RUN_TASK, kwargs={"trigger": "schedule"})
                    .get(timeout=60)
                )
            time.sleep(0.05)
    finally:
        w.stop()
    assert seen == ["queued", "running", "succeeded"]
    assert skipped["status"] == "skipped" and "already running" in skipped["reason"]
    run = client.get(f"{API}/runs/{run_id}").json()
    assert run["trigger"] == "api" and run["params"]["seed"] == 4 and run["error"] is None
    assert (
        run["worker"].startswith(f"{socket.gethostname()}:")
        and run["queued_at"] <= run["started_at"]
    )
    assert _n_results(db, run_id) == run["n_tests"] > 100
    assert [r.run_id for r in _runs(db)] == [run_id]  # the refused starts left no rows


def test_worker_killed_mid_job_leaves_the_run_failed_not_running(
    db: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(db, redis_url, redis_prefix)
    client = TestClient(create_app(settings))
    env = ops_env(db, redis_url, redis_prefix, tmp_path / "data")
    w = worker(env, tmp_path / "worker.log", "--pool", "solo")
    # The job is held mid-run, not raced: an exclusive lock on ``rounds`` (which its first read
    # needs) makes it wait inside the job until the worker is killed, however fast the job is.
    blocker = make_engine(db)
    hold = blocker.connect()
    tx = hold.begin()
    hold.execute(text("LOCK TABLE rounds IN ACCESS EXCLUSIVE MODE"))
    run_id = client.post(f"{API}/run-analysis", headers=AUTH).json()["run_id"]
    try:
        run = wait_until(
            lambda: (x := client.get(f"{API}/runs/{run_id}").json())["status"] == "running" and x,
            60,
            "the job to start",
        )
        assert run["worker"] == f"{socket.gethostname()}:{w.pid}"
        wait_until(lambda: waiting_on_lock(blocker), 60, "the job to wait for the rounds table")
    finally:
        w.kill()  # SIGKILL: no cleanup runs in the worker
        tx.rollback()
        hold.close()
        blocker.dispose()
    run = wait_until(
        lambda: (x := client.get(f"{API}/runs/{run_id}").json())["status"] != "running" and x,
        30,
        "the killed run to leave 'running'",
    )
    assert run["status"] == "failed" and run["error"].startswith("abandoned"), run
    assert _n_results(db, run_id) == 0
    # the next request is not blocked by the dead job, and the killed one is not re-run
    w2 = worker(env, tmp_path / "worker2.log", "--pool", "solo")
    try:
        second = client.post(f"{API}/run-analysis", headers=AUTH)
        assert second.status_code == 202, second.text
        wait_until(
            lambda: (
                client.get(f"{API}/runs/{second.json()['run_id']}").json()["status"] == "succeeded"
            ),
            120,
            "the next run",
        )
    finally:
        w2.stop()
    assert client.get(f"{API}/runs/{run_id}").json()["status"] == "failed"
    assert {r.status for r in _runs(db)} == {"failed", "succeeded"} and len(_runs(db)) == 2


def test_start_analytics_consumers_task_ingests_the_streams_in_the_worker(
    db: str, redis_url: str, redis_prefix: str, redis_client, tmp_path: Path
) -> None:
    from edgefinder.esports.simulate import simulate_to_file
    from edgefinder.esports.sources import publish
    from edgefinder.store.tables import micro_actions, raw_events

    def stored() -> list[int]:
        engine = make_engine(db)
        with engine.connect() as conn:
            n = [
                int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (raw_events, micro_actions)
            ]
        engine.dispose()
        return n

    before = stored()  # the fixture's matches were loaded directly (no raw events)
    events = tmp_path / "events.jsonl"
    simulate_to_file(3, 81, events)
    published = publish(events, redis_client, redis_prefix)
    env = ops_env(db, redis_url, redis_prefix, tmp_path / "data")
    w = worker(env, tmp_path / "worker.log", "--pool", "solo")
    try:
        app = make_celery(_settings(db, redis_url, redis_prefix))
        counts = app.send_task(CONSUMERS_TASK, kwargs={"once": True}).get(timeout=180)
    finally:
        w.stop()
    assert (counts["canonical"], counts["signals"]) == (published["canonical"], published["motion"])
    assert counts["dead_letters"] == 0
    after = stored()
    assert [after[0] - before[0], after[1] - before[1]] == [
        published["canonical"],
        published["motion"],
    ]
