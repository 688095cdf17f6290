"""Alembic environment: runs edgefinder's migrations on Postgres and SQLite, online or as SQL."""

from __future__ import annotations

from alembic import context

from edgefinder.store.engine import make_engine, normalize_url
from edgefinder.store.tables import metadata

config = context.config


def _url() -> str:
    # `alembic upgrade head` with the repository's alembic.ini sets no URL: use the configured database.
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from edgefinder.settings import get_settings

    return get_settings().effective_database_url


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(_url()),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode recreates the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
