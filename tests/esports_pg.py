"""A private, migrated Postgres database for one esports test module (tests share the session server),
and the stored rows of an ingest table in a comparable order.

The session database of ``pg_url`` is shared by every test that writes events; the analysis reads
*all* rows, so esports analysis tests use a database of their own, created next to it and dropped after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

#: the natural key of every table ingest writes: rows sorted by it compare across runs
TABLE_KEYS = {
    "raw_events": ["event_id"],
    "matches": ["match_id"],
    "match_players": ["match_id", "player_hash"],
    "rounds": ["match_id", "round_no"],
    "round_teams": ["match_id", "round_no", "team_id"],
    "kills": ["event_id"],
    "site_events": ["event_id"],
    "macro_outcomes": ["match_id", "round_no", "team_id"],
    "micro_actions": ["signal_id"],
}


def stored_table(engine: Engine, name: str, match_prefix: str | None = None) -> pd.DataFrame:
    """Rows of ingest table ``name`` (of matches whose id starts with ``match_prefix``, when given),
    without the storage time, sorted by :data:`TABLE_KEYS`."""
    sql = f"SELECT * FROM {name}" + ("" if match_prefix is None else " WHERE match_id LIKE :p")
    params = {} if match_prefix is None else {"p": match_prefix + "%"}
    with engine.connect() as conn:
        df = pd.read_sql(text(sql), conn, params=params)
    return (
        df.drop(columns=[c for c in ("created_at",) if c in df.columns])
        .sort_values(TABLE_KEYS[name])
        .reset_index(drop=True)
    )


@contextmanager
def private_pg_database(pg_url: str, tag: str) -> Iterator[str]:
    """Create ``<session db>_<tag>_<random>`` on the server of ``pg_url``, migrate it, yield its URL."""
    from edgefinder.store.engine import temporary_database
    from edgefinder.store.migrate import upgrade

    name = f"{make_url(pg_url).database}_{tag}_{uuid.uuid4().hex[:6]}"
    with temporary_database(pg_url, name) as url:
        upgrade(url)
        yield url


def waiting_on_lock(engine: Engine) -> bool:
    """Whether another session of this database waits for a relation lock (one a test holds)."""
    with engine.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return int(n) > 0
