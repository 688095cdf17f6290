"""/health reports a run that is queued on the broker but that no worker has started.

With Redis set and no worker running, POST /run-analysis queues a run on the real broker (a private
key prefix); /health stays 'ok' while the run is younger than EDGEFINDER_QUEUED_STALE_AFTER_S and turns
'degraded', naming the run, once it is older (the wait is made by moving the row's queued_at back,
not by sleeping).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from edgefinder.app import create_app
from edgefinder.settings import Settings, setting_default
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import analysis_runs

pytestmark = pytest.mark.redis

TOKEN = "health-test-token"


def test_a_run_no_worker_picks_up_makes_health_degraded(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = Settings(
        database_url=sqlite_url, redis_url=redis_url, redis_prefix=redis_prefix, api_token=TOKEN
    )
    client = TestClient(create_app(settings))
    posted = client.post(
        "/api/v1/analytics/run-analysis", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert posted.status_code == 202, posted.text
    run_id = posted.json()["run_id"]
    fresh = client.get("/api/v1/analytics/health").json()
    assert fresh["status"] == "ok" and fresh["queued_not_picked_up"] == []

    waited = setting_default("queued_stale_after_s") + 60
    engine = make_engine(sqlite_url)
    with engine.begin() as tx:
        tx.execute(
            update(analysis_runs)
            .where(analysis_runs.c.run_id == run_id)
            .values(queued_at=datetime.now(UTC) - timedelta(seconds=waited))
        )
    engine.dispose()
    late = client.get("/api/v1/analytics/health").json()
    assert late["status"] == "degraded"
    assert late["queued_not_picked_up"] == [run_id]
    assert client.get(f"/api/v1/analytics/runs/{run_id}").json()["status"] == "queued"
