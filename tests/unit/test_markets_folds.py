"""Walk-forward folds: block order, purge and embargo gaps, anchored vs rolling, bad input."""

from __future__ import annotations

import datetime as _dt

import pytest

from edgefinder.markets.folds import FoldError, make_folds, parse_sessions
from edgefinder.markets.synth import session_dates

SESSIONS = session_dates(_dt.date(2024, 1, 1), 100)


def _idx(d: str) -> int:
    return SESSIONS.index(_dt.date.fromisoformat(d))


@pytest.mark.parametrize("scheme", ["anchored", "rolling"])
@pytest.mark.parametrize(("purge", "embargo"), [(0, 0), (1, 1), (3, 2)])
def test_blocks_are_ordered_with_their_gaps(scheme: str, purge: int, embargo: int) -> None:
    folds = make_folds(SESSIONS, 4, scheme, purge, embargo)
    block = (100 - purge) // 7
    assert len(folds) == 4
    for k, f in enumerate(folds):
        lo, hi = _idx(f.learn[0]), _idx(f.learn[1])
        t0, t1 = _idx(f.test[0]), _idx(f.test[1])
        p0, p1 = _idx(f.paper[0]), _idx(f.paper[1])
        assert t0 - hi - 1 == purge  # the purged sessions sit between learn and test
        assert t1 - t0 + 1 == block
        assert p0 - t1 - 1 == embargo  # the embargo sits between test and paper
        assert p1 - p0 + 1 == block - embargo
        assert lo == (0 if scheme == "anchored" else k * block)
        assert hi - lo + 1 == ((2 + k) * block if scheme == "anchored" else 2 * block)
        if k:  # each test block follows the previous one: their out-of-sample sessions join
            assert t0 == _idx(folds[k - 1].test[1]) + 1
            assert (
                _idx(folds[k - 1].paper[1]) == t1
            )  # a fold's paper block is the next test block's end
    assert _idx(folds[-1].paper[1]) < 100


def test_durations_are_sessions() -> None:
    assert [
        parse_sessions(x, "--purge") for x in ("0", "2", "2d", "3 sessions", "1 session", 4)
    ] == [
        0,
        2,
        2,
        3,
        1,
        4,
    ]
    for bad in ("-1", "2h", "x", ""):
        with pytest.raises(FoldError, match="--purge"):
            parse_sessions(bad, "--purge")


def test_too_few_sessions_and_bad_scheme_are_one_line_errors() -> None:
    with pytest.raises(FoldError, match="too few"):
        make_folds(SESSIONS[:12], 4, "anchored", 1, 1)
    with pytest.raises(FoldError, match="--scheme"):
        make_folds(SESSIONS, 4, "expanding")
