"""What the original ``pool`` argument may be, and running the blocking pipeline from async code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from edgefinder.errors import ConfigError
from edgefinder.settings import get_settings

T = TypeVar("T")

# asyncpg pools keep no weak references and do not expose their DSN: remember what pg_connect opened.
_pool_urls: dict[int, tuple[Any, str]] = {}


def asyncpg_dsn(url: str) -> str:
    """``url`` with the plain ``postgresql://`` scheme asyncpg wants (no ``+psycopg`` driver)."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError(
            f"an asyncpg pool needs a PostgreSQL URL, got {parsed.render_as_string(hide_password=True)}"
        )
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def remember_pool(pool: Any, url: str) -> None:
    _pool_urls[id(pool)] = (pool, url)


def is_asyncpg_pool(obj: Any) -> bool:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    return isinstance(obj, asyncpg.Pool)


def database_url(db: Any = None) -> str:
    """The database URL behind ``db``: a URL, an Engine, a pool from ``pg_connect``, or None (the settings)."""
    if db is None:
        return get_settings().effective_database_url
    if isinstance(db, str):
        return db
    if isinstance(db, Engine):
        return db.url.render_as_string(hide_password=False)
    known = _pool_urls.get(id(db))
    if known is not None and known[0] is db:
        return known[1]
    raise ConfigError(
        f"cannot tell which database a {type(db).__name__} points at: pass a database URL, an SQLAlchemy Engine "
        "or the pool that edgefinder.analytics.stream_ingest.pg_connect() returned"
    )


async def run_blocking(fn: Callable[[threading.Event], T]) -> T:
    """Run ``fn(stop)`` in a thread; when the awaiting task is cancelled, set ``stop`` and wait for ``fn``.

    The consumers finish (commit and acknowledge) their current batch when ``stop`` is set, so
    cancelling ``asyncio.gather(consume_micro(pool), consume_canonical(pool))`` (Ctrl-C under
    ``asyncio.run``) stops them cleanly.
    """
    stop = threading.Event()
    fut = asyncio.get_running_loop().run_in_executor(None, fn, stop)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait([fut])
        raise
