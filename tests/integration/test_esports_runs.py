"""The run lifecycle on a real SQLite file: queued → running, refusals, and runs whose process is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from edgefinder.app import create_app
from edgefinder.esports.jobs import JobAlreadyRunning, acquire_run, queue_run, reap_abandoned
from edgefinder.settings import Settings
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import analysis_runs

TOKEN = "runs-token"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _row(engine, run_id: str):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(analysis_runs).where(analysis_runs.c.run_id == run_id)).one()


def test_queued_run_is_started_by_acquire_and_a_second_queue_is_refused(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    run_id = queue_run(engine, trigger="api")
    assert _row(engine, run_id).status == "queued"
    with pytest.raises(JobAlreadyRunning, match=f"run {run_id} is queued"):
        queue_run(engine)
    lock = acquire_run(engine, run_id=run_id, trigger="schedule")  # a worker starts the queued run
    row = _row(engine, run_id)
    assert (
        row.status == "running"
        and row.trigger == "api"
        and row.worker == f"{socket.gethostname()}:{os.getpid()}"
    )
    with pytest.raises(JobAlreadyRunning):
        acquire_run(engine)  # a new run while this one runs
    with pytest.raises(JobAlreadyRunning, match="is running"):
        queue_run(engine)
    lock.release()
    engine.dispose()


def test_running_row_of_a_dead_process_is_failed_and_a_live_one_is_kept(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    live = acquire_run(engine)  # this process: alive
    with (
        engine.begin() as tx
    ):  # a second running row, as a process that died mid-job would leave it
        tx.execute(
            analysis_runs.insert().values(
                run_id="dead-run",
                status="running",
                disclaimer="d",
                started_at=datetime.now(UTC),
                worker=f"{socket.gethostname()}:{_dead_pid()}",
            )
        )
    assert reap_abandoned(engine) == 1
    assert _row(engine, "dead-run").status == "failed" and _row(
        engine, "dead-run"
    ).error.startswith("abandoned")
    assert _row(engine, live.run_id).status == "running"
    assert reap_abandoned(engine) == 0  # nothing else to do
    live.release()
    engine.dispose()


def test_queued_run_nobody_started_expires(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    run_id = queue_run(engine)
    with engine.begin() as tx:
        tx.execute(
            update(analysis_runs)
            .where(analysis_runs.c.run_id == run_id)
            .values(queued_at=datetime.now(UTC) - timedelta(hours=2))
        )
    assert reap_abandoned(engine) == 1
    row = _row(engine, run_id)
    assert row.status == "failed" and "not started within 3600 s" in row.error
    queue_run(engine)  # no longer blocks the next request
    engine.dispose()


@pytest.mark.redis
def test_broker_down_answers_503_and_fails_the_queued_run(sqlite_url: str) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    client = TestClient(
        create_app(
            Settings(
                database_url=sqlite_url, api_token=TOKEN, redis_url=f"redis://127.0.0.1:{port}/0"
            )
        )
    )
    r = client.post("/api/v1/analytics/run-analysis", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 503 and r.json()["message"].startswith("broker unavailable, run ")
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        rows = conn.execute(select(analysis_runs)).all()
    engine.dispose()
    assert (
        len(rows) == 1
        and rows[0].status == "failed"
        and rows[0].error.startswith("broker unavailable")
    )
