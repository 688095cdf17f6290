"""Property: the whole batch write path, on real Postgres and SQLite, never lets an exception escape.

Hypothesis throws batches of hostile entries (valid events, mutated ones with huge or non-finite
numbers, NUL, unpaired surrogates, deep nesting, duplicate ids, junk bytes) at Pipeline.process.
Every entry must come out either stored (a canonical event or a signal, possibly an identical
duplicate) or as exactly one dead letter, and the database must hold what the result says.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from edgefinder.esports.ingest import Entry, Pipeline
from edgefinder.store.engine import make_engine
from tests.esports_sources import NamedSource
from tests.esports_strategies import entries

pytestmark = [pytest.mark.postgres]

KEY = "test-pseudonym-key"


def _check(pipeline: Pipeline, batch: list[bytes]) -> None:
    src = NamedSource()
    result = pipeline.process([Entry(str(i), raw) for i, raw in enumerate(batch)], src)
    assert result.entries == len(batch)
    assert result.canonical + result.signals + result.dead_letters == len(batch)
    with pipeline.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM dead_letters WHERE source = :s"), {"s": src.name}
        ).scalar_one()
    assert stored == result.dead_letters


_batches = st.lists(entries("hyp"), min_size=1, max_size=25)
_settings = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))


def test_batch_write_path_on_postgres_never_raises(pg_engine) -> None:
    pipeline = Pipeline(pg_engine, KEY)

    @_settings
    @given(batch=_batches)
    def run(batch: list[bytes]) -> None:
        _check(pipeline, batch)

    run()


def test_batch_write_path_on_sqlite_never_raises(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    pipeline = Pipeline(engine, KEY)

    @_settings
    @given(batch=_batches)
    def run(batch: list[bytes]) -> None:
        _check(pipeline, batch)

    try:
        run()
    finally:
        engine.dispose()
