"""Engine factory for ``sqlite:///…`` and ``postgresql://…`` URLs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from edgefinder.errors import ConfigError, ConnectionFailed, first_line


def normalize_url(url: str) -> str:
    """Return a SQLAlchemy URL with an explicit driver (psycopg 3 for Postgres).

    ``postgresql://`` and ``postgres://`` (the libpq spellings ``psql`` accepts) become
    ``postgresql+psycopg://``. Anything but SQLite and Postgres is a :class:`ConfigError`.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {url!r} is not a valid URL") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return url
    raise ConfigError(f"database URL {url!r}: only sqlite:/// and postgresql:// are supported")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL lets the API read while an ingest writes; foreign keys are off by default in SQLite.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str, *, echo: bool = False, pre_ping: bool = True) -> Engine:
    """Create an engine; a SQLite file whose directory does not exist is a :class:`ConfigError`.

    A typo in a path must not leave a new directory and an empty database behind and report
    success: the directory of an explicit URL is the user's to create (the embedded default's
    data directory is created by :attr:`Settings.effective_database_url`).

    ``pre_ping`` (Postgres): test each pooled connection with a round trip before handing it out.
    A caller that retries on a lost connection anyway (the ingest) can save that round trip.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            parent = Path(db).expanduser().parent
            if not parent.is_dir():
                raise ConfigError(
                    f"database URL {url!r}: directory {parent} does not exist (create it first)"
                )
        engine = create_engine(url, echo=echo)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, echo=echo, pool_pre_ping=pre_ping, connect_args={"connect_timeout": 5}
    )


def as_utc(dt: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite returns naive ones; every stored time is UTC)."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def check_connection(engine: Engine) -> None:
    """Open one connection or raise :class:`ConnectionFailed` naming the server."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, SQLAlchemyError) as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise ConnectionFailed(f"cannot connect to database {where}: {first_line(exc)}") from exc


@contextmanager
def temporary_database(server_url: str, name: str) -> Iterator[str]:
    """Create the Postgres database ``name`` on the server of ``server_url`` and drop it afterwards.

    Yields the new database's URL (``server_url`` with its database replaced). The drop uses
    ``WITH (FORCE)`` so that connections a test or benchmark left open do not keep it alive.
    For tests and benchmarks: each run gets a database of its own.
    """
    parsed = make_url(server_url)
    admin = create_engine(
        normalize_url(server_url), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield parsed.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
