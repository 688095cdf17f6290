"""WaveRider is the exit simulator driven bar by bar: same exits, same costs."""

from __future__ import annotations

import numpy as np
import pytest

from edgefinder.markets.exits import EXIT_REASON_NAMES, simulate_exits
from edgefinder.markets.instruments import get_instrument
from edgefinder.markets.physics import ThreeBodyQuantumState
from edgefinder.markets.wave_rider import PositionError, WaveRider, ride
from tests.markets_reference import ride_python


def _bars(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000 + 15 * np.arange(n, dtype=np.int64)
    close = 17000 + 0.25 * np.cumsum(np.rint(rng.normal(0, 4, n)))
    open_ = np.r_[close[0], close[:-1]]
    wick = 0.25 * np.rint(np.abs(rng.normal(0, 3, (2, n))))
    return ts, np.maximum(open_, close) + wick[0], np.minimum(open_, close) - wick[1], close


@pytest.mark.parametrize("path", [ride_python, ride], ids=["update_bar per bar", "compiled ride"])
def test_bar_by_bar_equals_batch_simulator(path) -> None:
    """Many random trades (both sides, trail on/off, time exits, session end): identical exits,
    whether WaveRider is stepped with update_bar or with the compiled per-trade loop."""
    inst = get_instrument("MNQ")
    ts, high, low, close = _bars(3000, 1)
    rng = np.random.default_rng(2)
    m = 300
    entry = rng.integers(0, 2900, m)
    side = rng.choice([-1, 1], m)
    stop = rng.integers(10, 26, m).astype(float)
    target = rng.integers(30, 61, m).astype(float)
    trail = np.where(rng.random(m) < 0.3, 0.0, rng.integers(5, 31, m)).astype(float)
    hold = rng.choice([0.0, 300.0, 900.0, 1800.0], m)
    end = np.minimum(entry + rng.integers(1, 200, m), len(ts) - 1)
    batch = simulate_exits(
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
        inst,
        end_idx=end,
        bar_seconds=15,
    )
    rider = WaveRider(inst, bar_seconds=15)
    tsf = ts.astype(float)
    for k in range(m):
        e = int(entry[k])
        rider.open_position(
            close[e],
            "long" if side[k] > 0 else "short",
            None,
            stop[k],
            take_profit_ticks=target[k],
            trailing_stop_ticks=trail[k],
            max_hold_seconds=hold[k],
            entry_time=tsf[e] + 15,
        )
        j, res = path(rider, tsf, high, low, close, e + 1, int(end[k]))
        assert rider.position is None
        assert j == batch.exit_idx[k]
        reason = EXIT_REASON_NAMES[int(batch.exit_reason[k])]
        assert res["exit_reason"] == (
            "TIME" if reason == "END" else reason
        )  # session end = the TIME exit
        assert res["exit_price"] == pytest.approx(batch.exit_price[k], abs=1e-9)
        assert res["entry_price"] == pytest.approx(batch.entry_price[k], abs=1e-9)
        assert res["pnl"] == pytest.approx(batch.pnl_dollars[k], abs=1e-9)
        assert res["pnl_ticks"] == pytest.approx(batch.pnl_ticks[k], abs=1e-9)
        assert res["mfe_ticks"] == pytest.approx(batch.mfe_ticks[k], abs=1e-9)
        assert res["mae_ticks"] == pytest.approx(batch.mae_ticks[k], abs=1e-9)
        assert res["duration"] == pytest.approx(batch.hold_seconds[k], abs=1e-9)


def test_one_position_at_a_time_and_bar_time_only() -> None:
    rider = WaveRider(bar_seconds=15)
    with pytest.raises(PositionError, match="entry_time is required"):
        rider.open_position(100.0, "long", None, 10)  # no bar time anywhere: no wall-clock fallback
    state = ThreeBodyQuantumState(
        *([1_700_000_000] + [0.0] * 18 + ["L1_STABLE", False, False, False, True])
    )
    pos = rider.open_position(
        100.0, "short", state, 10
    )  # the original call: time from the state's bar
    assert pos.entry_time == 1_700_000_015
    assert pos.entry_price == pytest.approx(100.0 - 0.25)  # one tick of slippage against a short
    with pytest.raises(PositionError, match="already holds"):
        rider.open_position(101.0, "long", state, 10)
    res = rider.update_trail(100.5, state, 1_700_000_015)  # close-only form: 100.5 < stop 102.25
    assert not res["should_exit"] and res["pnl"] == pytest.approx(-0.75 * 2.0)
    res = rider.update_bar(1_700_000_030, high=102.5, low=100.0, close=101.0)
    assert res["should_exit"] and res["exit_reason"] == "STOP"
    assert res["exit_price"] == pytest.approx(99.75 + 10 * 0.25 + 0.25)  # stop + slippage
    assert res["exit_time"] == 1_700_000_045 and res["duration"] == 30
    inst = get_instrument("MNQ")
    assert res["pnl"] == pytest.approx(-11 * 0.5 - 2 * inst.commission_per_side)
    with pytest.raises(PositionError, match="no open position"):
        rider.update_trail(100.0, None, 1_700_000_060)


def test_update_trail_is_update_bar_with_high_low_close_equal() -> None:
    a, b = WaveRider(bar_seconds=15), WaveRider(bar_seconds=15)
    for r in (a, b):
        r.open_position(
            100.0, "long", None, 12, take_profit_ticks=40, trailing_stop_ticks=8, entry_time=15.0
        )
    prices = [100.5, 101.25, 102.0, 103.0, 101.0, 100.0]
    for i, p in enumerate(prices):
        ra = a.update_trail(p, None, 15.0 * (i + 1))
        rb = b.update_bar(15.0 * (i + 1), p, p, p)
        assert ra == rb
        if ra["should_exit"]:
            assert ra["exit_reason"] == "TRAIL"  # 103 - 8 ticks = 101.0 >= initial stop
            break
    else:  # pragma: no cover - the trail must fire on this path
        pytest.fail("trailing stop never fired")


def test_compiled_session_loop_equals_wave_rider_trade_by_trade() -> None:
    """ride_session (the forward pass's compiled loop: Gate 3, Gate 2 on the brain's counts, WaveRider's
    rule, learning) against a plain Python loop of WaveRider.update_bar and BayesianBrain on random
    candidates of one long session."""
    from edgefinder.markets.brain import BayesianBrain, TradeOutcome
    from edgefinder.markets.wave_rider import ride_session

    inst = get_instrument("MNQ")
    ts, high, low, close = _bars(4000, 5)
    tsf = ts.astype(float)
    rng = np.random.default_rng(6)
    rows = np.sort(rng.choice(np.arange(30, 4000), 900, replace=False))
    tidx = rng.integers(0, 4, rows.size)
    sides = rng.choice([-1, 1], rows.size)
    params = np.array(
        [[12, 40, 0, 300], [20, 30, 10, 900], [25, 60, 30, 0], [10, 50, 5, 1800]], dtype=float
    )
    first, last = 0, 3999
    # a brain with history: template 2 near Gate 2's bar (4/41 = 0.098), template 3 under it (3/51)
    min_prob = 0.08
    wins, totals = np.array([0, 0, 3, 2], np.int64), np.array([0, 0, 30, 40], np.int64)
    brain = BayesianBrain()
    for k in (2, 3):
        for n in range(int(totals[k])):
            brain.update(
                TradeOutcome(
                    None, 0.0, 0.0, 1.0 if n < wins[k] else -1.0, "", 0.0, "", 0.0, 0.0, 0.0, "", k
                )
            )
    out, counts = ride_session(
        WaveRider(inst, 15),
        rows,
        tidx,
        sides,
        first,
        last,
        params,
        wins,
        totals,
        min_prob,
        0.0,
        True,
        tsf,
        high,
        low,
        close,
    )

    rider = WaveRider(inst, 15)
    ref, next_free, ref_counts = [], first, [0, 0, 0]
    for i, (r, k, sd) in enumerate(zip(rows.tolist(), tidx.tolist(), sides.tolist())):
        if r < next_free:
            ref_counts[1] += 1
            continue
        if r >= last:
            ref_counts[2] += 1
            continue
        if not brain.should_fire(k, min_prob, 0.0):
            ref_counts[0] += 1
            continue
        stop, target, trail, hold = params[k]
        rider.open_position(
            close[r],
            sd,
            None,
            stop,
            take_profit_ticks=target,
            trailing_stop_ticks=trail,
            max_hold_seconds=hold,
            entry_time=tsf[r] + 15,
        )
        j, res = ride_python(rider, tsf, high, low, close, r + 1, last)
        brain.update(
            TradeOutcome(
                None,
                res["entry_price"],
                res["exit_price"],
                res["pnl"],
                "",
                0.0,
                "",
                0.0,
                0.0,
                0.0,
                "",
                k,
            )
        )
        ref.append(
            (
                i,
                j,
                res["entry_price"],
                res["exit_price"],
                res["pnl"],
                res["mfe_ticks"],
                res["mae_ticks"],
                res["exit_reason"],
            )
        )
        next_free = j
    assert len(ref) == out["cand"].size > 50 and ref_counts[0] > 0
    assert counts.tolist() == ref_counts
    for n, (i, j, ep, xp, pnl, mfe, mae, reason) in enumerate(ref):
        assert (out["cand"][n], out["exit_row"][n]) == (i, j)
        assert (out["entry_price"][n], out["exit_price"][n], out["pnl"][n]) == pytest.approx(
            (ep, xp, pnl), abs=1e-9
        )
        assert (out["mfe_ticks"][n], out["mae_ticks"][n]) == pytest.approx((mfe, mae), abs=1e-9)
        assert EXIT_REASON_NAMES[int(out["reason"][n])] == reason
    assert {k: (int(wins[k]), int(totals[k])) for k in range(4) if totals[k]} == {
        k: (v["wins"], v["total"]) for k, v in brain.table.items()
    }
