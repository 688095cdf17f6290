"""What happens after every correlation run, whoever started it: alerts, feature snapshot, insights, webhook.

:func:`after_run` is called by :func:`edgefinder.esports.jobs.run_correlation_job` once the run is
stored (succeeded or failed). For a succeeded run it keeps the analysed feature frame as Parquet
(``run_features``; the newest :data:`KEEP_FEATURE_SNAPSHOTS` runs, for ``GET
/export/features.parquet``) and computes the alerts (:mod:`edgefinder.esports.alerts`). For every run
it publishes a ``run_summary`` (and each alert) on the insights stream when Redis is configured, and
hands the alerts to the webhook sender when a webhook is configured. Each step is guarded: a failure
is logged and never changes the stored run or reaches the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import Engine, delete, desc, insert, select

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.esports.alerts import alert_payload, compute_alerts, kinds_count
from edgefinder.esports.export import parquet_bytes
from edgefinder.jsonsafe import jsonable
from edgefinder.settings import Settings
from edgefinder.store.engine import as_utc
from edgefinder.store.tables import analysis_runs, run_features

__all__ = ["KEEP_FEATURE_SNAPSHOTS", "after_run", "run_summary"]

log = logging.getLogger(__name__)
KEEP_FEATURE_SNAPSHOTS = 5
T = TypeVar("T")


def _guard(what: str, run_id: str, fn: Callable[..., T], *args: Any) -> T | None:
    try:
        return fn(*args)
    except Exception:
        log.exception("after run %s: %s failed", run_id, what)
        return None


def store_features(engine: Engine, run_id: str, features: pd.DataFrame) -> None:
    """Keep the run's feature frame as Parquet and drop snapshots beyond the newest few."""
    blob = parquet_bytes(features, "features", run_id=run_id)
    with engine.begin() as tx:
        tx.execute(insert(run_features).values(run_id=run_id, n_rows=len(features), parquet=blob))
        keep = (
            select(run_features.c.run_id)
            .order_by(desc(run_features.c.created_at))
            .limit(KEEP_FEATURE_SNAPSHOTS)
        )
        tx.execute(delete(run_features).where(run_features.c.run_id.not_in(keep.scalar_subquery())))


def run_summary(run: Any, alert_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``run_summary`` insight of a stored ``analysis_runs`` row."""
    m = run._mapping
    summary = m["summary"] or {}
    finished = m["finished_at"]
    return jsonable(
        {
            "type": "run_summary",
            "run_id": m["run_id"],
            "status": m["status"],
            "trigger": m["trigger"],
            "n_rows": m["n_rows"],
            "n_tests": m["n_tests"],
            "n_significant": summary.get("n_significant"),
            "duration_s": m["duration_s"],
            "error": m["error"],
            "message": summary.get("message"),
            "finished_at": None if finished is None else as_utc(finished).isoformat(),  # type: ignore[union-attr]
            "alerts": kinds_count(alert_rows),
            "top": summary.get("top", []),
            "purpose": PURPOSE,
            "disclaimer": DISCLAIMER,
        }
    )


def _publish(settings: Settings, payloads: list[dict[str, Any]]) -> None:
    import redis

    from edgefinder.esports.insights import publish

    client = redis.Redis.from_url(
        settings.redis_url or "", socket_connect_timeout=2, socket_timeout=5
    )
    try:
        publish(client, settings.redis_prefix, payloads)
    finally:
        client.close()


def _webhook(settings: Settings, engine: Engine, payloads: list[dict[str, Any]]) -> None:
    from edgefinder.esports.webhook import sender_for

    url = engine.url.render_as_string(hide_password=False)
    sender_for(
        url,
        settings.alert_webhook_url or "",
        attempts=settings.alert_webhook_attempts,
        backoff_s=settings.alert_webhook_backoff_s,
    ).submit(payloads)


def after_run(
    engine: Engine, run_id: str, settings: Settings, *, features: pd.DataFrame | None = None
) -> int:
    """Run the post-run steps for a stored run; returns the number of alerts it raised."""
    with engine.connect() as conn:
        run = conn.execute(select(analysis_runs).where(analysis_runs.c.run_id == run_id)).first()
    if run is None:
        return 0
    rows: list[dict[str, Any]] = []
    if run.status == "succeeded":
        if features is not None and not features.empty:
            _guard("keeping the feature snapshot", run_id, store_features, engine, run_id, features)
        rows = _guard("computing alerts", run_id, compute_alerts, engine, run_id) or []
    payloads = [alert_payload(r) for r in rows]
    if settings.redis_url:
        _guard(
            "publishing insights", run_id, _publish, settings, [run_summary(run, rows), *payloads]
        )
    if settings.alert_webhook_url and payloads:
        _guard("queueing webhook deliveries", run_id, _webhook, settings, engine, payloads)
    return len(rows)
