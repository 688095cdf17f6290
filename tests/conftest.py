"""Shared fixtures: a private Postgres database and Redis key prefix per test session.

Tests that need a server fail (not skip) when ``CI`` is set and the server is down.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get(
    "EDGEFINDER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("EDGEFINDER_TEST_REDIS", "redis://127.0.0.1:6379/0")
SESSION_TAG = f"ef_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
# Read-only real data beside the checkout; a worktree elsewhere points at it with the variable.
SHARED_CANDIDATES = (
    *(
        (Path(os.environ["EDGEFINDER_SHARED_DIR"]),)
        if os.environ.get("EDGEFINDER_SHARED_DIR")
        else ()
    ),
    Path(__file__).resolve().parents[2] / "shared",
    Path("/work/shared"),
)


def _unavailable(what: str, exc: BaseException) -> None:
    msg = f"{what} is not reachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set: tests that need servers must not skip)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh Postgres database, created for this session and dropped after it."""
    from edgefinder.store.engine import temporary_database

    with ExitStack() as stack:
        try:
            url = stack.enter_context(temporary_database(PG_ADMIN_URL, SESSION_TAG))
        except Exception as exc:
            _unavailable("PostgreSQL at 127.0.0.1:5432", exc)
        yield url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str):
    """Engine on the session database with the migrations applied (``db upgrade``)."""
    from edgefinder.store.engine import make_engine
    from edgefinder.store.migrate import upgrade

    upgrade(pg_url)
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    """URL of a migrated SQLite file private to the test."""
    from edgefinder.store.migrate import upgrade

    url = f"sqlite:///{(tmp_path / 'edgefinder.sqlite3').as_posix()}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        _unavailable("Redis at 127.0.0.1:6379", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_session_prefix(redis_url: str) -> Iterator[str]:
    """Key prefix private to this test session; its keys are deleted at the end."""
    import redis

    prefix = f"{SESSION_TAG}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture()
def redis_prefix(redis_session_prefix: str) -> str:
    """A prefix private to one test, inside the session prefix."""
    return f"{redis_session_prefix}{uuid.uuid4().hex[:8]}:"


@pytest.fixture()
def redis_client(redis_url: str):
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=False)
    yield client
    client.close()


def find_shared_dir() -> Path | None:
    """The first existing folder of ``EDGEFINDER_SHARED_DIR``, ``<repo>/../shared``, ``/work/shared``.

    When the variable is set it must point at an existing folder (a typo must not fall through).
    """
    env = os.environ.get("EDGEFINDER_SHARED_DIR")
    if env:
        return Path(env) if Path(env).is_dir() else None
    return next((p for p in SHARED_CANDIDATES if p.is_dir()), None)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared data folder (see :func:`find_shared_dir`).

    Missing: the test fails under ``CI`` and is skipped otherwise, with the places searched.
    """
    found = find_shared_dir()
    if found is None:
        msg = "no shared data folder: set EDGEFINDER_SHARED_DIR or place it at " + " or ".join(
            str(p) for p in SHARED_CANDIDATES
        )
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: tests on real data must not skip)")
        pytest.skip(msg)
    return found
