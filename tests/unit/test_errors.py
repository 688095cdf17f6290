"""first_line: the one-line report of an exception every caller shares."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import OperationalError

from edgefinder.errors import FIRST_LINE_LIMIT, first_line


def test_first_line_of_the_message_or_the_class_name() -> None:
    assert first_line(ValueError("  bad value\nsecond line")) == "bad value"
    assert first_line(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_a_sqlalchemy_wrapper_reports_the_driver_error() -> None:
    wrapped = OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))
    assert first_line(wrapped) == "database is locked"


def test_long_lines_are_cut_to_the_limit_unless_told_otherwise() -> None:
    exc = RuntimeError("x" * 1000)
    assert first_line(exc) == "x" * FIRST_LINE_LIMIT
    assert first_line(exc, limit=10) == "x" * 10
    assert first_line(exc, limit=None) == "x" * 1000
