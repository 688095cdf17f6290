"""Migrations on real Postgres and on SQLite; the committed SQL file must match them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, select

from edgefinder.errors import ConfigError
from edgefinder.store.engine import make_engine, temporary_database
from edgefinder.store.migrate import SQL_FILE_NAME, current_revision, render_sql, upgrade
from edgefinder.store.tables import dead_letters, metadata, rounds

REPO = Path(__file__).resolve().parents[2]


def _head() -> str:
    from alembic.script import ScriptDirectory

    from edgefinder.store.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _roundtrip(engine: Engine) -> None:
    # Unique keys: the Postgres database is shared with the rest of the test session.
    tag = f"m-roundtrip-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(insert(rounds).values(match_id=tag, round_no=3, start_ts=10.5, end_ts=99.0))
        conn.execute(insert(dead_letters).values(source=tag, raw="{bad", reason="bad JSON"))
    with engine.connect() as conn:
        row = conn.execute(select(rounds).where(rounds.c.match_id == tag)).one()
        dl = conn.execute(
            select(dead_letters.c.reason, dead_letters.c.created_at).where(
                dead_letters.c.source == tag
            )
        ).one()
    assert (row.round_no, row.start_ts, row.end_ts) == (3, 10.5, 99.0)
    assert row.created_at is not None and dl.reason == "bad JSON" and dl.created_at is not None


def _no_drift(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"tables.py differs from the migrations: {diff}"


@pytest.mark.postgres
def test_postgres_upgrade_twice_then_write_and_read(pg_url: str) -> None:
    assert upgrade(pg_url) == _head()
    assert upgrade(pg_url) == _head()  # idempotent
    assert current_revision(pg_url) == _head()
    engine = make_engine(pg_url)
    try:
        _roundtrip(engine)
        _no_drift(engine)
    finally:
        engine.dispose()


def test_sqlite_upgrade_twice_then_write_and_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'db.sqlite3'}"
    with pytest.raises(ConfigError, match="nested does not exist"):
        upgrade(url)
    assert list(tmp_path.iterdir()) == []  # no directory, no database left behind
    (tmp_path / "nested").mkdir()
    assert upgrade(url) == _head()
    assert upgrade(url) == _head()
    engine = make_engine(url)
    try:
        _roundtrip(engine)
        _no_drift(engine)
    finally:
        engine.dispose()


def test_committed_sql_file_matches_the_migrations() -> None:
    committed = (REPO / "migrations" / SQL_FILE_NAME).read_text()
    assert committed == render_sql(), (
        "migrations/create_analytics_tables.sql is stale: regenerate it with "
        "`edgefinder db sql > migrations/create_analytics_tables.sql`"
    )


@pytest.mark.postgres
def test_committed_sql_file_runs_in_postgres(pg_url: str) -> None:
    """The original system's `psql $DATABASE_URL -f migrations/create_analytics_tables.sql` path."""
    import psycopg

    sql = (REPO / "migrations" / SQL_FILE_NAME).read_text()
    with temporary_database(pg_url, pg_url.rsplit("/", 1)[1] + "_sqlfile") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)
            tables = {
                r[0]
                for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            }
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert set(metadata.tables) <= tables
    assert version == _head()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3])
def test_concurrent_upgrades_of_a_fresh_postgres_database_all_succeed(pg_url: str, n: int) -> None:
    """Several consumers and the API starting together each run `db upgrade` (real processes)."""
    import os
    import subprocess
    import sys

    from sqlalchemy.engine import make_url

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for trial in range(3):
        name = f"{make_url(pg_url).database}_up{n}_{trial}_{uuid.uuid4().hex[:6]}"
        with temporary_database(pg_url, name) as url:
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "edgefinder", "--database-url", url, "db", "upgrade"],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(n)
            ]
            results = [(p.wait(120), *p.communicate()) for p in procs]
            assert [rc for rc, _, _ in results] == [0] * n, [err for _, _, err in results]
            assert all(f"database at revision {_head()}" in out for _, out, _ in results)
            assert current_revision(url) == _head()
            engine = make_engine(url)
            try:
                _no_drift(engine)
            finally:
                engine.dispose()


def test_the_fast_head_check_reads_the_same_head_as_alembic(tmp_path: Path) -> None:
    from edgefinder.store.migrate import _packaged_head, _stored_revision

    assert _packaged_head() == _head()
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    engine = make_engine(url)
    try:
        assert _stored_revision(engine) is None  # no alembic_version yet: Alembic runs
        assert upgrade(url) == _head()
        assert _stored_revision(engine) == _head()  # at head: the next upgrade skips Alembic
        assert upgrade(url) == _head()
    finally:
        engine.dispose()
