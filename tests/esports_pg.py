"""A private, migrated Postgres database for one esports test module (tests share the session server).

The session database of ``pg_url`` is shared by every test that writes events; the analysis reads
*all* rows, so esports analysis tests use a database of their own, created next to it and dropped after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def private_pg_database(pg_url: str, tag: str) -> Iterator[str]:
    """Create ``<session db>_<tag>_<random>`` on the server of ``pg_url``, migrate it, yield its URL."""
    from edgefinder.store.migrate import upgrade

    parsed = make_url(pg_url)
    name = f"{parsed.database}_{tag}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(
        parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = parsed.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
