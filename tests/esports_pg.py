"""A private, migrated Postgres database for one esports test module (tests share the session server).

The session database of ``pg_url`` is shared by every test that writes events; the analysis reads
*all* rows, so esports analysis tests use a database of their own, created next to it and dropped after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url


@contextmanager
def private_pg_database(pg_url: str, tag: str) -> Iterator[str]:
    """Create ``<session db>_<tag>_<random>`` on the server of ``pg_url``, migrate it, yield its URL."""
    from edgefinder.store.engine import temporary_database
    from edgefinder.store.migrate import upgrade

    name = f"{make_url(pg_url).database}_{tag}_{uuid.uuid4().hex[:6]}"
    with temporary_database(pg_url, name) as url:
        upgrade(url)
        yield url
