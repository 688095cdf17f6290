"""Apply the Alembic migrations (``edgefinder db upgrade``) or render them as SQL (``db sql``)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from edgefinder.store.engine import check_connection, make_engine, normalize_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The original system's path: `psql $DATABASE_URL -f migrations/create_analytics_tables.sql`.
SQL_FILE_NAME = "create_analytics_tables.sql"
# Postgres advisory-lock key held around an upgrade ("efmigrat" in ASCII).
_MIGRATION_LOCK_KEY = 0x65666D6967726174


def alembic_config(url: str, *, stdout: TextIO | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations; no alembic.ini needed."""
    from alembic.config import Config

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
        if revision == "head":
            head = _packaged_head()
            if head is not None and _stored_revision(engine) == head:
                return head  # the usual case at every start: nothing to do, no Alembic import
        from alembic import command

        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return current_revision(url)
    finally:
        engine.dispose()


_REVISION = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.+)$", re.M)


def _packaged_head() -> str | None:
    """The one head revision of the packaged migrations, read from their files (else None).

    Alembic's ScriptDirectory knows it too, but importing Alembic costs about 0.15 s at every
    start of ``ingest``, ``analyze`` and ``serve``; when this finds anything but exactly one
    head, :func:`upgrade` asks Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found = _REVISION.search(source)
        if found is None:
            return None
        revisions.add(found.group(1))
        down = _DOWN_REVISION.search(source)
        if down is not None:
            parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version`` (None if the table is missing or holds several)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return None
    return rows[0][0] if len(rows) == 1 else None


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
    from alembic import command

    buf = io.StringIO()
    cfg = alembic_config(dialect_url, stdout=buf)
    cfg.output_buffer = buf
    command.upgrade(cfg, "head", sql=True)
    return buf.getvalue()
