"""Celery on the Redis broker: the correlation job on a schedule and on request, and the stream consumers.

``celery_app`` is configured from the settings (:func:`celery_config`): broker and result backend
``EDGEFINDER_REDIS_URL``, every Celery key and queue under ``EDGEFINDER_REDIS_PREFIX`` (kombu's
``global_keyprefix``; the default queue is ``edgefinder``), JSON messages, UTC. Beat runs
``run_correlation_job_task`` on ``EDGEFINDER_ANALYSIS_SCHEDULE`` (default ``0 2 * * *``, daily at
02:00 UTC, the original system's ``crontab(hour=2, minute=0)``). ``edgefinder esports worker`` /
``esports beat`` start Celery's own worker and beat on this app.

Task names follow the original system's module layout (docs/decisions.md §D13), so a beat entry
written like the original one (``'task': 'edgefinder.analytics.jobs.run_correlation_job_task'``)
finds them:

* :data:`RUN_TASK` ``run_correlation_job_task(run_id=None, seed=0, alpha=0.05, trigger='schedule')``:
  with ``run_id`` it starts that queued run (POST /run-analysis); while another job runs it is
  retried every few seconds until the run is older than ``QUEUED_EXPIRES_S``, then failed. Without
  ``run_id`` (beat) it starts a new run, or skips this tick when a job is running.
* :data:`CONSUMERS_TASK` ``start_analytics_consumers(once=False)``: both stream consumers in the
  worker (blocks a worker slot until stopped; ``once=True`` drains the streams and returns counts).
  A warm shutdown of the worker stops them after their current batch.

Messages are acknowledged when a worker takes them: a worker killed mid-job does not re-run the job;
the run is marked failed (:func:`~edgefinder.esports.jobs.reap_abandoned`, also called when a
worker starts) and the next scheduled tick runs again.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery, signals
from sqlalchemy import Engine, select

from edgefinder.esports.jobs import (
    QUEUED_EXPIRES_S,
    JobAlreadyRunning,
    JobParams,
    acquire_run,
    fail_queued,
    reap_abandoned,
    run_correlation_job,
)
from edgefinder.schedule import parse_schedule
from edgefinder.settings import Settings, get_settings
from edgefinder.store.engine import as_utc, make_engine
from edgefinder.store.tables import analysis_runs

__all__ = [
    "CONSUMERS_TASK",
    "QUEUE",
    "RUN_TASK",
    "celery_app",
    "celery_config",
    "make_celery",
    "run_correlation_job_task",
    "start_analytics_consumers",
]

log = logging.getLogger(__name__)
RUN_TASK = "edgefinder.analytics.jobs.run_correlation_job_task"
CONSUMERS_TASK = "edgefinder.analytics.jobs.start_analytics_consumers"
QUEUE = "edgefinder"
SCHEDULE_ENTRY = "run-correlation-analysis"
#: Seconds between two tries of a queued run while another job holds the lock.
RETRY_S = 5.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for ``settings`` (see the module docstring)."""
    prefix = {"global_keyprefix": settings.redis_prefix} if settings.redis_prefix else {}
    schedule = parse_schedule(settings.analysis_schedule)
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "broker_transport_options": dict(prefix),
        "result_backend_transport_options": dict(prefix),
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 86400,
        "timezone": "UTC",
        "enable_utc": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "beat_schedule": {
            SCHEDULE_ENTRY: {
                "task": RUN_TASK,
                "schedule": schedule,
                "kwargs": {"trigger": "schedule"},
                # a tick no worker took before the next one is dropped, not run late in a backlog
                "options": {
                    "expires": min(3600.0, schedule.total_seconds())
                    if isinstance(schedule, timedelta)
                    else 3600.0
                },
            }
        },
    }


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app configured from ``settings`` (the API uses one to enqueue with its own settings)."""
    app = Celery("edgefinder")
    app.conf.update(celery_config(settings or get_settings()))
    return app


celery_app = make_celery()

_engines: dict[tuple[int, str], Engine] = {}


def _engine(settings: Settings) -> Engine:
    # One engine per process: prefork children must not share the parent's pooled connections.
    key = (os.getpid(), settings.effective_database_url)
    if key not in _engines:
        _engines[key] = make_engine(settings.effective_database_url)
    return _engines[key]


def _status(engine: Engine, run_id: str) -> tuple[str | None, datetime | None]:
    r = analysis_runs.c
    with engine.connect() as conn:
        row = conn.execute(select(r.status, r.queued_at).where(r.run_id == run_id)).first()
    if row is None:
        return None, None
    return row.status, as_utc(row.queued_at)


@celery_app.task(name=RUN_TASK, bind=True, max_retries=None)
def run_correlation_job_task(
    self: Any,
    run_id: str | None = None,
    seed: int = 0,
    alpha: float = 0.05,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """Run the correlation job in the worker (see the module docstring); returns a short summary."""
    settings = get_settings()
    engine = _engine(settings)
    if run_id is not None:
        status, queued_at = _status(engine, run_id)
        if status != "queued":
            log.warning("run %s is %s, not queued: nothing to do", run_id, status or "unknown")
            return {"run_id": run_id, "status": status or "unknown", "skipped": True}
    try:
        lock = acquire_run(
            engine, JobParams(seed=seed, alpha=alpha), run_id=run_id, trigger=trigger
        )
    except JobAlreadyRunning as exc:
        if run_id is None:
            log.info("scheduled correlation run skipped: %s", exc)
            return {"run_id": None, "status": "skipped", "reason": str(exc)}
        age = (datetime.now(UTC) - queued_at).total_seconds() if queued_at else 0.0
        if age + RETRY_S > QUEUED_EXPIRES_S:
            fail_queued(engine, run_id, f"JobAlreadyRunning: {exc} (waited {age:.0f} s)")
            return {"run_id": run_id, "status": "failed", "reason": str(exc)}
        raise self.retry(countdown=RETRY_S, exc=exc) from exc
    res = run_correlation_job(lock=lock, settings=settings)
    return {
        "run_id": res.run_id,
        "status": res.status,
        "n_rows": res.n_rows,
        "n_tests": res.n_tests,
        "n_significant": res.n_significant,
        "n_alerts": res.n_alerts,
        "duration_s": res.duration_s,
    }


@celery_app.task(name=CONSUMERS_TASK)
def start_analytics_consumers(once: bool = False, motion_consumers: int = 2) -> dict[str, Any]:
    """Run both stream consumers in the worker until stopped (``once``: until the streams are drained)."""
    from edgefinder.esports.consumers import consume, counters_dict

    settings = get_settings()
    counters = consume(
        "both",
        settings.effective_database_url,
        settings=settings,
        once=once,
        motion_consumers=motion_consumers,
    )
    return counters_dict(counters)


@signals.worker_ready.connect
def _reap_on_start(**_: Any) -> None:
    settings = get_settings()
    engine = make_engine(settings.effective_database_url)
    try:
        n = reap_abandoned(engine)
        if n:
            log.warning("marked %d abandoned analysis run(s) failed", n)
    except Exception:
        log.exception("could not check for abandoned analysis runs")
    finally:
        engine.dispose()


@signals.worker_shutting_down.connect
def _stop_consumers(**_: Any) -> None:
    from edgefinder.esports.consumers import stop_all

    stop_all()
