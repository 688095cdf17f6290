"""unreachable(): which exceptions the API answers 503 (retry later) rather than 500 (a bug)."""

from __future__ import annotations

import sqlite3

import kombu.exceptions
import psycopg
import pytest
import redis.exceptions
from sqlalchemy import exc as sa_exc

from edgefinder.errors import ConfigError, ConnectionFailed
from edgefinder.esports.web import unreachable


def _wrapped(cls: type[sa_exc.DBAPIError], orig: Exception) -> sa_exc.DBAPIError:
    return cls("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("exc", "down"),
    [
        (_wrapped(sa_exc.OperationalError, psycopg.OperationalError("connection refused")), True),
        (_wrapped(sa_exc.OperationalError, sqlite3.OperationalError("database is locked")), True),
        (_wrapped(sa_exc.OperationalError, psycopg.errors.AdminShutdown("x")), True),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (ConnectionFailed("cannot connect to database"), True),
        (redis.exceptions.ConnectionError("Error 111 connecting"), True),
        (redis.exceptions.TimeoutError("Timeout reading"), True),
        (kombu.exceptions.OperationalError("Error 111 connecting"), True),
        # the database answered: the statement or the deployment is wrong
        (_wrapped(sa_exc.ProgrammingError, psycopg.errors.UndefinedTable("x")), False),
        (_wrapped(sa_exc.OperationalError, sqlite3.OperationalError("no such table: x")), False),
        (_wrapped(sa_exc.IntegrityError, sqlite3.IntegrityError("UNIQUE constraint")), False),
        (sa_exc.InvalidRequestError("bad query"), False),
        (redis.exceptions.ResponseError("WRONGTYPE"), False),
        (ConfigError("malformed URL"), False),
        (KeyError("token"), False),
    ],
)
def test_only_a_server_out_of_reach_is_unreachable(exc: BaseException, down: bool) -> None:
    assert unreachable(exc) is down
