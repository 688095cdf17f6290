"""Apply the Alembic migrations (``edgefinder db upgrade``) or render them as SQL (``db sql``)."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from edgefinder.store.engine import check_connection, make_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The seed's path: `psql $DATABASE_URL -f migrations/create_analytics_tables.sql`.
SQL_FILE_NAME = "create_analytics_tables.sql"
# Postgres advisory-lock key held around an upgrade ("efmigrat" in ASCII).
_MIGRATION_LOCK_KEY = 0x65666D6967726174


def alembic_config(url: str, *, stdout: io.TextIOBase | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations; no alembic.ini needed."""
    cfg = Config(stdout=stdout) if stdout is not None else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> str | None:
    """Bring the database at ``url`` to ``revision``; idempotent. Returns the new revision.

    Safe to run concurrently on Postgres (several consumers and the API starting together): the
    upgrade runs in one transaction under an advisory lock, so concurrent upgrades run one after
    the other and the later ones find the schema at ``revision`` and change nothing.
    """
    engine = make_engine(url)
    try:
        check_connection(engine)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return current_revision(url)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def render_sql(dialect_url: str = "postgresql://edgefinder@localhost/edgefinder") -> str:
    """The migrations from empty to head as plain SQL for the dialect of ``dialect_url``."""
    buf = io.StringIO()
    cfg = alembic_config(dialect_url, stdout=buf)
    cfg.output_buffer = buf
    command.upgrade(cfg, "head", sql=True)
    return buf.getvalue()
