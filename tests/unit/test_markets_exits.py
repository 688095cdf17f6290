"""The one exit simulator: hand-computed trades (MNQ costs) and batch kernel == bar-by-bar loop."""

from __future__ import annotations

import numpy as np
import pytest

from edgefinder.markets.exits import (
    EXIT_END,
    EXIT_STOP,
    EXIT_TARGET,
    EXIT_TIME,
    EXIT_TRAIL,
    ExitParams,
    simulate_exits,
)
from edgefinder.markets.instruments import get_instrument
from tests.markets_reference import simulate_exits_loop

MNQ = get_instrument("MNQ")  # tick 0.25 pt, $0.50/tick, $0.62/side, 1 tick slippage
ROUND_TRIP_COMMISSION = 2 * 0.62


def _bars(rows: list[tuple[float, float, float]], step: int = 15):
    """rows of (high, low, close); timestamps 0, 15, 30, … (bar open, seconds)."""
    a = np.asarray(rows, dtype=float)
    ts = np.arange(len(rows), dtype=np.int64) * step
    return ts, a[:, 0], a[:, 1], a[:, 2]


def _one(rows, side, params, **kw):
    ts, h, lo, c = _bars(rows)
    res = simulate_exits(ts, h, lo, c, [0], [side], params, instrument=MNQ, **kw)
    loop = simulate_exits_loop(ts, h, lo, c, 0, side, params, MNQ, **kw)
    # The bar-by-bar path over exit_step must agree with the kernel on every single case.
    assert loop[0] == res.exit_idx[0] and loop[1] == res.exit_reason[0]
    assert loop[2] == pytest.approx(res.exit_price[0]) and loop[4] == pytest.approx(
        res.pnl_dollars[0]
    )
    return res


P = ExitParams(stop_loss_ticks=10, take_profit_ticks=40, trailing_stop_ticks=0, max_hold_seconds=0)


def test_long_stop_hit_costs_in_dollars():
    # entry fill 100 + 1 tick = 100.25; stop 10 ticks below = 97.75; fill 97.75 - 1 tick = 97.50
    r = _one([(100, 100, 100), (100.5, 97.5, 98.0), (120, 90, 100)], +1, P)
    assert r.exit_reason[0] == EXIT_STOP and r.exit_idx[0] == 1
    assert r.entry_price[0] == 100.25 and r.exit_price[0] == 97.5
    assert r.pnl_ticks[0] == pytest.approx(-11.0)
    assert r.pnl_dollars[0] == pytest.approx(-11 * 0.5 - ROUND_TRIP_COMMISSION)  # -6.74 $
    assert r.hold_seconds[0] == 15.0
    assert r.mae_ticks[0] == pytest.approx(11.0) and r.mfe_ticks[0] == pytest.approx(1.0)


def test_long_target_hit_is_a_limit_fill_without_slippage():
    # target 40 ticks above the 100.25 fill = 110.25, filled exactly there
    r = _one([(100, 100, 100), (105, 99, 104), (110.5, 103, 110)], +1, P)
    assert r.exit_reason[0] == EXIT_TARGET and r.exit_idx[0] == 2
    assert r.exit_price[0] == 110.25
    assert r.pnl_ticks[0] == pytest.approx(40.0)
    assert r.pnl_dollars[0] == pytest.approx(20.0 - ROUND_TRIP_COMMISSION)  # 18.76 $


def test_stop_and_target_in_one_bar_assumes_the_stop():
    r = _one([(100, 100, 100), (111, 97, 105)], +1, P)
    assert r.exit_reason[0] == EXIT_STOP
    assert r.pnl_ticks[0] == pytest.approx(-11.0)


def test_short_side_mirrors_long():
    # short fill 100 - 0.25 = 99.75; stop 10 ticks above = 102.25; fill 102.25 + 0.25 = 102.5
    r = _one([(100, 100, 100), (102.5, 99, 101)], -1, P)
    assert r.exit_reason[0] == EXIT_STOP and r.exit_price[0] == 102.5
    assert r.pnl_ticks[0] == pytest.approx(-11.0)
    # short target 40 ticks below 99.75 = 89.75
    r = _one([(100, 100, 100), (100.5, 89.5, 90)], -1, P)
    assert r.exit_reason[0] == EXIT_TARGET and r.exit_price[0] == 89.75
    assert r.pnl_dollars[0] == pytest.approx(20.0 - ROUND_TRIP_COMMISSION)


def test_trailing_stop_ratchets_from_best_high_and_applies_from_next_bar():
    prm = ExitParams(
        stop_loss_ticks=20, take_profit_ticks=60, trailing_stop_ticks=8, max_hold_seconds=0
    )
    # bar 1: high 104 -> trail stop 104 - 2 = 102, but its own low 101.9 must NOT stop it
    # (the high may have come after the low); bar 2: low 101.5 <= 102 -> TRAIL, fill 101.75
    r = _one([(100, 100, 100), (104, 101.9, 103), (103, 101.5, 102)], +1, prm)
    assert r.exit_reason[0] == EXIT_TRAIL and r.exit_idx[0] == 2
    assert r.exit_price[0] == 101.75
    assert r.pnl_ticks[0] == pytest.approx(6.0)
    assert r.pnl_dollars[0] == pytest.approx(3.0 - ROUND_TRIP_COMMISSION)


def test_trail_never_loosens_and_reports_stop_when_not_raised():
    # trail 30 ticks is looser than the 10-tick stop: the initial stop stays in force -> STOP
    prm = ExitParams(
        stop_loss_ticks=10, take_profit_ticks=60, trailing_stop_ticks=30, max_hold_seconds=0
    )
    r = _one([(100, 100, 100), (101, 99.5, 100), (100, 97.0, 98)], +1, prm)
    assert r.exit_reason[0] == EXIT_STOP and r.exit_price[0] == 97.5


def test_time_exit_at_close_with_slippage():
    prm = ExitParams(
        stop_loss_ticks=10, take_profit_ticks=40, trailing_stop_ticks=0, max_hold_seconds=30
    )
    # entry at bar 0's close time 15 s; bar 1 closes at 30 (held 15 s), bar 2 at 45 (held 30 s)
    r = _one([(100, 100, 100), (101, 99.5, 100.5), (102, 100, 101), (110, 90, 100)], +1, prm)
    assert r.exit_reason[0] == EXIT_TIME and r.exit_idx[0] == 2
    assert r.exit_price[0] == 100.75 and r.hold_seconds[0] == 30.0
    assert r.pnl_ticks[0] == pytest.approx(2.0)


def test_end_of_data_and_end_idx_close_at_close():
    rows = [(100, 100, 100), (101, 99.5, 100.5), (102, 100, 101), (110, 90, 100)]
    r = _one(rows, +1, P, end_idx=2)
    assert r.exit_reason[0] == EXIT_END and r.exit_idx[0] == 2 and r.exit_price[0] == 100.75
    r = _one(rows[:2], +1, P)
    assert r.exit_reason[0] == EXIT_END and r.exit_idx[0] == 1
    # an entry on the last bar exits at once at its own close: a loss of exactly the costs
    r = _one(rows[:1], +1, P)
    assert r.exit_idx[0] == 0 and r.pnl_ticks[0] == pytest.approx(-2.0)
    assert r.pnl_dollars[0] == pytest.approx(-MNQ.round_trip_cost_dollars)


def test_gap_through_stop_fills_no_better_than_the_bar():
    r = _one([(100, 100, 100), (95, 94, 94.5)], +1, P)
    assert r.exit_reason[0] == EXIT_STOP and r.exit_price[0] == 94.75  # high 95 - 1 tick


def test_batch_kernel_equals_bar_by_bar_exit_step_loop():
    rng = np.random.default_rng(7)
    n = 3000
    close = 15000 + np.cumsum(rng.choice([-0.25, 0.0, 0.25], size=n) * rng.integers(1, 12, size=n))
    high = close + rng.integers(0, 10, size=n) * 0.25
    low = close - rng.integers(0, 10, size=n) * 0.25
    ts = np.arange(n, dtype=np.int64) * 15
    ts[n // 2 :] += 3600  # a gap in time (a session break)
    p = 400
    entry = rng.integers(0, n - 1, size=p)
    side = rng.choice([-1, 1], size=p)
    stop = rng.integers(10, 26, size=p).astype(float)
    target = rng.integers(30, 61, size=p).astype(float)
    trail = rng.choice([0.0, 5.0, 12.0, 30.0], size=p)
    hold = rng.choice([0.0, 300.0, 1800.0], size=p)
    end = np.minimum(entry + rng.integers(1, 400, size=p), n - 1)
    res = simulate_exits(
        ts,
        high,
        low,
        close,
        entry,
        side,
        stop,
        target,
        trail,
        hold,
        MNQ,
        end_idx=end,
        bar_seconds=15,
    )
    reasons = set()
    for k in range(p):
        prm = ExitParams(stop[k], target[k], trail[k], hold[k])
        j, code, xp, pt, pdl = simulate_exits_loop(
            ts,
            high,
            low,
            close,
            int(entry[k]),
            int(side[k]),
            prm,
            MNQ,
            end_idx=int(end[k]),
            bar_seconds=15,
        )
        assert (j, code) == (res.exit_idx[k], res.exit_reason[k])
        assert xp == res.exit_price[k] and pt == res.pnl_ticks[k] and pdl == res.pnl_dollars[k]
        reasons.add(code)
    # the random cases exercise every exit path
    assert reasons == {EXIT_STOP, EXIT_TARGET, EXIT_TRAIL, EXIT_TIME, EXIT_END}
    # invariants: exits after entries and within end; excursions bound the realised ticks
    assert np.all(res.exit_idx >= entry) and np.all(res.exit_idx <= end)
    gross = res.pnl_ticks
    assert np.all(gross <= res.mfe_ticks + 1e-9) and np.all(-gross <= res.mae_ticks + 2 + 1e-9)


def test_bad_inputs_raise():
    ts, h, lo, c = _bars([(100, 100, 100), (101, 99, 100)])
    with pytest.raises(ValueError):
        simulate_exits(ts, h, lo, c, [5], [1], P, instrument=MNQ)
    with pytest.raises(ValueError):
        simulate_exits(ts, h, lo, c, [0], [0], P, instrument=MNQ)
    with pytest.raises(ValueError):
        simulate_exits(ts, h, lo, c, [0], [1], P)
