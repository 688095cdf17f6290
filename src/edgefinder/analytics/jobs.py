"""The original ``jobs``: ``asyncio.run(run_correlation_job())`` and the Celery tasks it schedules.

``run_correlation_job`` awaits :func:`edgefinder.esports.jobs.run_correlation_job` in a thread and
returns its :class:`~edgefinder.esports.jobs.JobResult`. The Celery tasks live in
:mod:`edgefinder.esports.tasks` and are registered under this module's names:
``edgefinder.analytics.jobs.run_correlation_job_task`` and
``edgefinder.analytics.jobs.start_analytics_consumers``.
"""

from __future__ import annotations

from typing import Any

from edgefinder.esports.jobs import JobParams, JobResult, arun_correlation_job
from edgefinder.esports.tasks import celery_app, run_correlation_job_task, start_analytics_consumers

__all__ = [
    "JobParams",
    "JobResult",
    "celery_app",
    "run_correlation_job",
    "run_correlation_job_task",
    "start_analytics_consumers",
]


async def run_correlation_job(db: Any = None, *, params: JobParams | None = None) -> JobResult:
    """Run the correlation job once on ``db`` (URL, Engine, pool of ``pg_connect``; default the settings)."""
    from edgefinder.analytics._db import database_url

    return await arun_correlation_job(database_url(db), params=params)
