"""The original ``aggregate``: ``df = await extract_round_features(pool)``.

With an asyncpg pool the statement of :func:`edgefinder.esports.aggregate.features_statement` is
compiled for asyncpg and run on the pool; the frame is built by the same
:func:`~edgefinder.esports.aggregate.features_frame`, so the result equals the synchronous
:func:`edgefinder.esports.aggregate.extract_round_features` on the same database. A URL or an Engine
runs the synchronous function in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd

from edgefinder.analytics._db import is_asyncpg_pool
from edgefinder.esports import aggregate as _aggregate
from edgefinder.esports.aggregate import (
    ALL_COLUMNS,
    FEATURE_COLUMNS,
    features_frame,
    features_statement,
)

__all__ = ["ALL_COLUMNS", "FEATURE_COLUMNS", "extract_round_features"]


def _asyncpg_sql() -> tuple[str, list[Any], list[str]]:
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    stmt = features_statement()
    compiled = stmt.compile(dialect=PGDialect_asyncpg())
    args = [compiled.params[name] for name in (compiled.positiontup or [])]
    return str(compiled), args, list(stmt.selected_columns.keys())


async def extract_round_features(pool: Any) -> pd.DataFrame:
    """One row per (round, team) of every finished round (see :mod:`edgefinder.esports.aggregate`)."""
    if is_asyncpg_pool(pool):
        sql, args, names = _asyncpg_sql()
        async with pool.acquire() as conn:
            records = await conn.fetch(sql, *args)
        return features_frame(names, [tuple(r) for r in records])
    return await asyncio.to_thread(_aggregate.extract_round_features, pool)
