"""The consumer's plan for redelivered entries, the failure classes, and the file source's bounds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from edgefinder.esports.consumer import careful_batch_size, plan_batches
from edgefinder.esports.pipeline import clean_text, dead_kind, failure_kind
from edgefinder.esports.sources import Entry, JsonlSource


def _e(i: int, deliveries: int = 1, failures: int = 0, alone: int = 0) -> Entry:
    return Entry(f"{i}-0", b"{}", deliveries, None, failures, alone, "first" if failures else None)


def test_first_deliveries_are_one_batch_and_redelivered_ones_shrink_with_their_failures() -> None:
    entries = [_e(i) for i in range(10)]
    assert plan_batches(entries, 1000, 5) == [(entries, False)]
    again = (
        [_e(i, 2) for i in range(100)] + [_e(100 + i, 3, 1) for i in range(10)] + [_e(200, 4, 2, 1)]
    )
    plan = plan_batches(again, 320, 5)
    assert [len(b) for b, _ in plan] == [20] * 5 + [1] * 10 + [1]  # 320 // 16, then 320 // 256 = 1
    assert all(careful for _, careful in plan)
    assert [e.entry_id for b, _ in plan for e in b] == [
        e.entry_id for e in again
    ]  # fewest failures first
    assert (
        careful_batch_size(0, 2000) == 125
        and careful_batch_size(1, 2000) == 7
        and careful_batch_size(5, 2000) == 1
    )


def test_only_failures_alone_reach_the_limit_and_the_reason_names_the_first_failure() -> None:
    over = _e(1, deliveries=40, failures=9, alone=3)
    under = _e(2, deliveries=40, failures=9, alone=2)
    redelivered_often = _e(3, deliveries=500)
    plan = plan_batches([over, under, redelivered_often], 1000, 3)
    first, careful = plan[0]
    assert not careful and [e.entry_id for e in first] == ["1-0"]
    assert first[0].error == (
        "delivery limit exceeded: 3 consumer failures while writing it alone (limit 3), "
        "delivered 40 times; first failure: first"
    )
    assert dead_kind(first[0].error) == "delivery_limit"
    rest = [e.entry_id for b, _ in plan[1:] for e in b]
    assert rest == ["3-0", "2-0"] and all(e.error is None for b, _ in plan[1:] for e in b)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (psycopg.errors.NumericValueOutOfRange("x"), "entry"),
        (psycopg.errors.UntranslatableCharacter("x"), "entry"),
        (psycopg.errors.CheckViolation("x"), "entry"),
        (psycopg.errors.StatementTooComplex("x"), "entry"),
        (psycopg.errors.UndefinedTable("x"), "systemic"),
        (psycopg.errors.InsufficientPrivilege("x"), "systemic"),
        (psycopg.errors.SerializationFailure("x"), "transient"),
        (psycopg.errors.AdminShutdown("x"), "transient"),
        (psycopg.OperationalError("connection lost"), "transient"),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), "entry"),
        (sqlite3.OperationalError("database is locked"), "transient"),
        (sqlite3.OperationalError("no such table: kills"), "systemic"),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), "entry"),
        (OverflowError("int too large to convert to float"), "entry"),
    ],
)
def test_failure_kind_tells_an_entry_from_the_database_and_from_an_outage(
    exc: BaseException, kind: str
) -> None:
    assert failure_kind(exc) == kind


def test_clean_text_holds_no_nul_nor_unpaired_surrogate() -> None:
    assert clean_text("a\x00b\ud800c") == "a\\u0000b\\ud800c"
    clean_text("a\x00b\ud800c").encode("utf-8")


def test_a_file_line_over_the_limit_is_never_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    big = b'{"x": "' + b"z" * 5_000_000 + b'"}'
    path.write_bytes(b'{"a": 1}\n' + big + b"\n\n" + b'{"b": 2}\r\n')
    src = JsonlSource(path, max_bytes=1000)
    got = src.read(10)
    assert [e.entry_id for e in got] == ["1", "2", "4"]
    assert (
        got[1].error == f"oversize payload: {len(big)} bytes > limit 1000"
        and len(got[1].raw) == 1000
    )
    assert got[0].raw == b'{"a": 1}' and got[2].raw == b'{"b": 2}' and got[2].error is None
    assert src.drained()
