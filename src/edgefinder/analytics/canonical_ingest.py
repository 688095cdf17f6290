"""The original ``canonical_ingest``: ``await consume_canonical(pool)``.

Runs :func:`edgefinder.esports.ingest.consume_canonical` in a thread: the canonical stream
``{EDGEFINDER_REDIS_PREFIX}events:canonical`` into rounds, round_teams, kills, site events and
macro_outcomes, until the awaiting task is cancelled (``once=True``: until the stream is drained).
"""

from __future__ import annotations

from typing import Any

from edgefinder.analytics._db import database_url, run_blocking
from edgefinder.esports.consumers import consume

__all__ = ["consume_canonical"]


async def consume_canonical(
    pool: Any = None, *, once: bool = False, consumer: str | None = None
) -> Any:
    """Consume the canonical stream into the round tables; returns the ingest counters when it stops."""
    url = database_url(pool)
    return await run_blocking(
        lambda stop: consume("canonical", url, once=once, stop=stop, consumer=consumer)
    )
