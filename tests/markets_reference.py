"""Reference implementations the tests compare the compiled paths with (never used by the product).

``simulate_exits_loop``: one trade bar by bar in Python over :func:`exits.exit_step` (how WaveRider
drives it); ``ride_python``: :func:`wave_rider.ride` with one :meth:`WaveRider.update_bar` call per
bar, the original shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from edgefinder.markets.exits import (
    EXIT_END,
    EXIT_NONE,
    CostModel,
    ExitParams,
    _infer_bar_seconds,
    close_fill,
    entry_fill,
    exit_step,
    initial_levels,
    trade_pnl,
)
from edgefinder.markets.wave_rider import WaveRider


def simulate_exits_loop(
    timestamps: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    entry_idx: int,
    side: int,
    params: ExitParams,
    instrument: CostModel,
    *,
    end_idx: int | None = None,
    bar_seconds: float | None = None,
) -> tuple[int, int, float, float, float]:
    """One trade, bar by bar in Python over :func:`exit_step` — how WaveRider drives it.

    A reference for tests and an example for callers that manage a position incrementally.
    Returns (exit_idx, exit_code, exit_price, pnl_ticks, pnl_dollars).
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    high, low, close = np.asarray(high), np.asarray(low), np.asarray(close)
    bs = _infer_bar_seconds(np.asarray(timestamps)) if bar_seconds is None else float(bar_seconds)
    last = len(ts) - 1 if end_idx is None else min(int(end_idx), len(ts) - 1)
    tick = float(instrument.tick_size)
    slip = float(instrument.slippage_ticks)
    ep = entry_fill(side, float(close[entry_idx]), slip, tick)
    init_stop, target = initial_levels(
        side, ep, float(params.stop_loss_ticks), float(params.take_profit_ticks), tick
    )
    stop, best = init_stop, ep
    entry_ts = ts[entry_idx] + bs
    j = entry_idx
    code, xp = EXIT_NONE, float("nan")
    while j < last:
        j += 1
        code, xp, best, stop = exit_step(
            side,
            ep,
            init_stop,
            stop,
            target,
            float(params.trailing_stop_ticks),
            best,
            entry_ts,
            float(params.max_hold_seconds),
            ts[j] + bs,
            float(high[j]),
            float(low[j]),
            float(close[j]),
            tick,
            slip,
        )
        if code != EXIT_NONE:
            break
    if code == EXIT_NONE:
        code = EXIT_END
        xp = close_fill(side, float(close[j]), slip, tick)
    pt, pdl = trade_pnl(
        side, ep, xp, tick, float(instrument.tick_value), float(instrument.commission_per_side)
    )
    return j, int(code), float(xp), float(pt), float(pdl)


def ride_python(
    rider: WaveRider,
    timestamps: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    start: int,
    end: int,
) -> tuple[int, dict[str, Any]]:
    """:func:`ride` with one :meth:`WaveRider.update_bar` call per bar (the original shape; reference)."""
    for j in range(start, end + 1):
        res = rider.update_bar(timestamps[j], high[j], low[j], close[j])
        if res["should_exit"]:
            return j, res
    return end, rider.force_close(timestamps[end], close[end], "TIME")
