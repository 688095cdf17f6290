"""The original ``stream_ingest``: ``pool = await pg_connect()`` and ``await consume_micro(pool)``.

``consume_micro`` runs :func:`edgefinder.esports.ingest.consume_micro` (through
:func:`edgefinder.esports.consumers.consume`) in a thread: the motion stream
``{EDGEFINDER_REDIS_PREFIX}events:agent:motion`` into ``micro_actions``, until the awaiting task is
cancelled or :func:`stop_consumers` is called (``once=True``: until the stream is drained).
"""

from __future__ import annotations

from typing import Any

from edgefinder.analytics._db import asyncpg_dsn, database_url, remember_pool, run_blocking
from edgefinder.esports.consumers import consume
from edgefinder.esports.consumers import stop_all as stop_consumers
from edgefinder.settings import get_settings

__all__ = ["consume_micro", "pg_connect", "stop_consumers"]


async def pg_connect(url: str | None = None, **pool_kwargs: Any) -> Any:
    """An asyncpg pool on ``url`` (default ``EDGEFINDER_DATABASE_URL``, which must be PostgreSQL).

    The pool is usable with asyncpg directly and with every function of ``edgefinder.analytics``
    that takes a pool. ``pool_kwargs`` go to :func:`asyncpg.create_pool` (default 1 to 4 connections).
    """
    import asyncpg

    url = url or get_settings().effective_database_url
    pool_kwargs.setdefault("min_size", 1)
    pool_kwargs.setdefault("max_size", 4)
    pool = await asyncpg.create_pool(asyncpg_dsn(url), **pool_kwargs)
    remember_pool(pool, url)
    return pool


async def consume_micro(
    pool: Any = None, *, once: bool = False, consumer: str | None = None
) -> Any:
    """Consume the motion stream into ``micro_actions``; returns the ingest counters when it stops."""
    url = database_url(pool)
    return await run_blocking(
        lambda stop: consume("motion", url, once=once, stop=stop, consumer=consumer)
    )
