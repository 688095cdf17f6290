"""The one exit simulator: stop, target, trailing stop, max hold and costs over forward bars.

Phase 3 (the playbook's parameter search) and Phase 4 (WaveRider) both use this module, so a trade
is exited and costed the same way everywhere (docs/decisions.md §D21). Two entry points share one
per-bar rule:

* :func:`exit_step` — the per-bar rule (numba ``@njit``). WaveRider calls it bar by bar.
* :func:`simulate_exits` — many (entry, parameter set) pairs at once; its numba kernel calls
  :func:`exit_step` for every forward bar of every pair.

Conventions (all prices in index points, distances in ticks, money in dollars, time in seconds):

* **Entry.** The signal is known when the entry bar *closes*, so the entry fill is that bar's
  close with ``instrument.slippage_ticks`` against the trade (long pays more, short receives
  less). Entry time = the entry bar's close time = its open timestamp + ``bar_seconds``.
* **Evaluation** starts at the *next* bar. Each bar is judged on its high and low (its close for
  the time exit). The order of events inside a bar is unknown, so the rule is pessimistic:

  1. **Stop** (initial or trailing) — long: ``low <= stop``; short: ``high >= stop``. Checked
     first, so when stop and target both fall in one bar the stop wins. The fill is the stop
     price, or the bar's high (long) / low (short) if the whole bar gapped through the stop,
     with slippage against the trade (a stop is a market order). Reason TRAIL when the stop in
     force had been raised by the trail above the initial stop, else STOP.
  2. **Target** — long: ``high >= target``; short: ``low <= target``. A resting limit order:
     filled at the target price, no slippage.
  3. **Time** — when the bar's close time minus the entry time is ``>= max_hold_seconds``
     (``max_hold_seconds <= 0`` disables it): exit at the bar's close with slippage.
  4. **Trail update** — only *after* the checks above, the best favourable extreme seen so far
     (the highest **high** for a long, the lowest **low** for a short, starting from the entry
     fill) is updated with this bar, and the stop ratchets to ``best ∓ trailing_stop_ticks``
     if that is tighter than the stop in force. The new stop therefore first applies to the
     *next* bar: no intrabar look-ahead (we never assume the high came before the low).
     ``trailing_stop_ticks <= 0`` disables the trail.

* **End.** When the forward bars run out (end of data or the caller's ``end_idx``, e.g. the
  session end) the position is closed at that bar's close with slippage, reason END.
* **Costs.** ``pnl_dollars = pnl_ticks * tick_value - 2 * commission_per_side``, where
  ``pnl_ticks`` is measured between the two fills (slippage therefore already inside it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numba import njit

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EXIT_NONE",
    "EXIT_STOP",
    "EXIT_TARGET",
    "EXIT_TRAIL",
    "EXIT_TIME",
    "EXIT_END",
    "EXIT_REASON_NAMES",
    "CostModel",
    "ExitParams",
    "ExitResults",
    "entry_fill",
    "close_fill",
    "initial_levels",
    "exit_step",
    "trade_pnl",
    "simulate_exits",
]

# Exit reason codes (int8 in ExitResults.exit_reason); EXIT_NONE means "still open".
EXIT_NONE = 0
EXIT_STOP = 1
EXIT_TARGET = 2
EXIT_TRAIL = 3
EXIT_TIME = 4
EXIT_END = 5
EXIT_REASON_NAMES: dict[int, str] = {
    EXIT_NONE: "NONE",
    EXIT_STOP: "STOP",
    EXIT_TARGET: "TARGET",
    EXIT_TRAIL: "TRAIL",
    EXIT_TIME: "TIME",
    EXIT_END: "END",
}


class CostModel(Protocol):
    """What the simulator needs of an instrument (``instruments.Instrument`` satisfies it)."""

    # read-only properties, so that frozen dataclasses such as Instrument satisfy the protocol
    @property
    def tick_size(self) -> float: ...  # points per tick
    @property
    def tick_value(self) -> float: ...  # dollars per tick per contract
    @property
    def commission_per_side(self) -> float: ...  # dollars per contract per side
    @property
    def slippage_ticks(self) -> float: ...  # ticks lost per market fill


@dataclass(frozen=True)
class ExitParams:
    """One exit parameter set. Distances in ticks; ``max_hold_seconds`` in seconds.

    ``trailing_stop_ticks <= 0`` disables the trail; ``max_hold_seconds <= 0`` disables the
    time exit.
    """

    stop_loss_ticks: float
    take_profit_ticks: float
    trailing_stop_ticks: float
    max_hold_seconds: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict with the four field names (the playbook's ``params`` layout)."""
        return {
            "stop_loss_ticks": self.stop_loss_ticks,
            "take_profit_ticks": self.take_profit_ticks,
            "trailing_stop_ticks": self.trailing_stop_ticks,
            "max_hold_seconds": self.max_hold_seconds,
        }


@dataclass(frozen=True)
class ExitResults:
    """Column arrays, one row per simulated (entry, parameter set) pair.

    exit_idx (int64 bar index), exit_price (points, the fill incl. slippage), exit_reason (int8
    code, see :data:`EXIT_REASON_NAMES`), entry_price (points, fill incl. slippage), pnl_ticks
    (between fills), pnl_dollars (net of commission both sides), mfe_ticks / mae_ticks (max
    favourable / adverse excursion from the entry fill over the held bars' highs and lows, both
    >= 0), hold_seconds (exit bar close time − entry bar close time).
    """

    exit_idx: NDArray[np.int64]
    exit_price: NDArray[np.float64]
    exit_reason: NDArray[np.int8]
    entry_price: NDArray[np.float64]
    pnl_ticks: NDArray[np.float64]
    pnl_dollars: NDArray[np.float64]
    mfe_ticks: NDArray[np.float64]
    mae_ticks: NDArray[np.float64]
    hold_seconds: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.exit_idx.shape[0])

    @property
    def reason_names(self) -> NDArray[np.object_]:
        """Exit reasons as names (STOP/TARGET/TRAIL/TIME/END)."""
        names = np.array([EXIT_REASON_NAMES[i] for i in range(6)], dtype=object)
        return names[self.exit_reason.astype(np.int64)]

    def to_frame(self) -> pd.DataFrame:
        """The columns as a DataFrame (reason as its name)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "exit_idx": self.exit_idx,
                "exit_price": self.exit_price,
                "exit_reason": self.reason_names,
                "entry_price": self.entry_price,
                "pnl_ticks": self.pnl_ticks,
                "pnl_dollars": self.pnl_dollars,
                "mfe_ticks": self.mfe_ticks,
                "mae_ticks": self.mae_ticks,
                "hold_seconds": self.hold_seconds,
            }
        )


# --------------------------------------------------------------------------------------------
# Per-bar primitives (numba). WaveRider and the batch kernel call exactly these.
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def entry_fill(side: int, close: float, slippage_ticks: float, tick_size: float) -> float:
    """Entry fill (points): the signal bar's close with slippage against the trade."""
    return close + side * slippage_ticks * tick_size


@njit(cache=True)
def close_fill(side: int, price: float, slippage_ticks: float, tick_size: float) -> float:
    """Market exit fill (points) at ``price`` with slippage against the trade."""
    return price - side * slippage_ticks * tick_size


@njit(cache=True)
def initial_levels(
    side: int, entry_price: float, stop_ticks: float, target_ticks: float, tick_size: float
) -> tuple[float, float]:
    """Initial (stop_price, target_price) in points for an entry fill."""
    stop = entry_price - side * stop_ticks * tick_size
    target = entry_price + side * target_ticks * tick_size
    return stop, target


@njit(cache=True)
def exit_step(
    side: int,
    entry_price: float,
    initial_stop: float,
    stop_price: float,
    target_price: float,
    trail_ticks: float,
    best_price: float,
    entry_ts: float,
    max_hold_s: float,
    ts: float,
    high: float,
    low: float,
    close: float,
    tick_size: float,
    slippage_ticks: float,
) -> tuple[int, float, float, float]:
    """Judge one forward bar of an open position; see the module docstring for the rules.

    Args:
        side: +1 long, -1 short.
        entry_price: entry fill (points).
        initial_stop: the stop set at entry (points); tells a trailing exit from a plain stop.
        stop_price: the stop in force before this bar (points).
        target_price: take-profit level (points).
        trail_ticks: trailing distance (ticks); <= 0 disables the trail.
        best_price: best favourable extreme seen before this bar (points; start = entry fill).
        entry_ts: entry time = entry bar's close (epoch seconds).
        max_hold_s: max hold (seconds); <= 0 disables the time exit.
        ts: this bar's close time (epoch seconds) — its open timestamp + bar seconds.
        high, low, close: this bar (points).
        tick_size: points per tick.
        slippage_ticks: ticks lost on a market fill (stop, trail, time).

    Returns:
        (exit_code, exit_price, new_best, new_stop): exit_code is EXIT_NONE while the position
        stays open (exit_price is then NaN); new_best / new_stop are the trail state to pass in
        with the next bar.
    """
    # 1. Stop (initial or trailed) first: pessimistic when stop and target share a bar.
    if side > 0:
        stop_hit = low <= stop_price
    else:
        stop_hit = high >= stop_price
    if stop_hit:
        # A bar that gapped entirely through the stop cannot fill better than its worst extreme.
        level = min(stop_price, high) if side > 0 else max(stop_price, low)
        trailed = (stop_price > initial_stop) if side > 0 else (stop_price < initial_stop)
        code = EXIT_TRAIL if trailed else EXIT_STOP
        return code, close_fill(side, level, slippage_ticks, tick_size), best_price, stop_price
    # 2. Target: resting limit order, filled at its price.
    if side > 0:
        target_hit = high >= target_price
    else:
        target_hit = low <= target_price
    if target_hit:
        return EXIT_TARGET, target_price, best_price, stop_price
    # 3. Time exit at this bar's close.
    if max_hold_s > 0.0 and ts - entry_ts >= max_hold_s:
        return EXIT_TIME, close_fill(side, close, slippage_ticks, tick_size), best_price, stop_price
    # 4. Trail update after the checks: the new stop applies from the next bar on.
    new_best = best_price
    new_stop = stop_price
    if side > 0:
        if high > new_best:
            new_best = high
        if trail_ticks > 0.0:
            cand = new_best - trail_ticks * tick_size
            if cand > new_stop:
                new_stop = cand
    else:
        if low < new_best:
            new_best = low
        if trail_ticks > 0.0:
            cand = new_best + trail_ticks * tick_size
            if cand < new_stop:
                new_stop = cand
    return EXIT_NONE, np.nan, new_best, new_stop


@njit(cache=True)
def trade_pnl(
    side: int,
    entry_price: float,
    exit_price: float,
    tick_size: float,
    tick_value: float,
    commission_per_side: float,
) -> tuple[float, float]:
    """(pnl_ticks, pnl_dollars): ticks between the fills; dollars net of 2 commissions."""
    ticks = side * (exit_price - entry_price) / tick_size
    return ticks, ticks * tick_value - 2.0 * commission_per_side


# --------------------------------------------------------------------------------------------
# Batch kernel
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def walk_position(
    side: int,
    entry_price: float,
    initial_stop: float,
    stop: float,
    target: float,
    trail: float,
    best: float,
    entry_ts: float,
    max_hold: float,
    ts: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    start: int,
    end: int,
    bar_seconds: float,
    tick: float,
    slip: float,
    mfe: float,
    mae: float,
) -> tuple[int, int, float, float, float, float, float]:  # pragma: no cover - numba
    """Walk an open position over bars start..end (inclusive) through :func:`exit_step`, compiled.

    Prices in points, times in seconds (``ts`` = bar opens); ``mfe``/``mae`` carry the excursions so
    far, in points, updated on every bar held (the exit bar included). Returns (bar index, exit code,
    exit price, best price, stop, mfe, mae); code ``EXIT_NONE`` means still open after ``end`` (bar
    index ``end``). The one bar walk shared by the exit simulator and WaveRider's loops."""
    for j in range(start, end + 1):
        h = high[j]
        lo = low[j]
        code, xp, best, stop = exit_step(
            side,
            entry_price,
            initial_stop,
            stop,
            target,
            trail,
            best,
            entry_ts,
            max_hold,
            ts[j] + bar_seconds,
            h,
            lo,
            close[j],
            tick,
            slip,
        )
        fav = (h - entry_price) if side > 0 else (entry_price - lo)
        adv = (entry_price - lo) if side > 0 else (h - entry_price)
        if fav > mfe:
            mfe = fav
        if adv > mae:
            mae = adv
        if code != EXIT_NONE:
            return j, code, xp, best, stop, mfe, mae
    return end, EXIT_NONE, np.nan, best, stop, mfe, mae


@njit(cache=True)
def _simulate_kernel(
    timestamps: NDArray[np.float64],
    high: NDArray[np.float64],
    low: NDArray[np.float64],
    close: NDArray[np.float64],
    entry_idx: NDArray[np.int64],
    side: NDArray[np.int64],
    stop_ticks: NDArray[np.float64],
    target_ticks: NDArray[np.float64],
    trail_ticks: NDArray[np.float64],
    max_hold_s: NDArray[np.float64],
    end_idx: NDArray[np.int64],
    bar_seconds: float,
    tick_size: float,
    tick_value: float,
    commission_per_side: float,
    slippage_ticks: float,
    out_exit_idx: NDArray[np.int64],
    out_exit_price: NDArray[np.float64],
    out_reason: NDArray[np.int8],
    out_entry_price: NDArray[np.float64],
    out_pnl_ticks: NDArray[np.float64],
    out_pnl_dollars: NDArray[np.float64],
    out_mfe: NDArray[np.float64],
    out_mae: NDArray[np.float64],
    out_hold: NDArray[np.float64],
) -> None:
    n_pairs = entry_idx.shape[0]
    for p in range(n_pairs):
        e = entry_idx[p]
        s = side[p]
        last = end_idx[p]
        ep = entry_fill(s, close[e], slippage_ticks, tick_size)
        entry_ts = timestamps[e] + bar_seconds
        init_stop, target = initial_levels(s, ep, stop_ticks[p], target_ticks[p], tick_size)
        j, code, xp, best, stop, mfe, mae = walk_position(
            s,
            ep,
            init_stop,
            init_stop,
            target,
            trail_ticks[p],
            ep,
            entry_ts,
            max_hold_s[p],
            timestamps,
            high,
            low,
            close,
            e + 1,
            last,
            bar_seconds,
            tick_size,
            slippage_ticks,
            0.0,
            0.0,
        )
        if code == EXIT_NONE:
            code = EXIT_END
            xp = close_fill(s, close[j], slippage_ticks, tick_size)
        pt, pd_ = trade_pnl(s, ep, xp, tick_size, tick_value, commission_per_side)
        out_exit_idx[p] = j
        out_exit_price[p] = xp
        out_reason[p] = code
        out_entry_price[p] = ep
        out_pnl_ticks[p] = pt
        out_pnl_dollars[p] = pd_
        out_mfe[p] = mfe / tick_size
        out_mae[p] = mae / tick_size
        out_hold[p] = (timestamps[j] + bar_seconds) - entry_ts


def _infer_bar_seconds(timestamps: NDArray[np.int64]) -> float:
    if timestamps.shape[0] < 2:
        return 0.0
    d = np.diff(timestamps)
    d = d[d > 0]
    return float(d.min()) if d.size else 0.0


def _param_column(value: ArrayLike, n: int, name: str) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}; expected a scalar or ({n},)")
    return np.ascontiguousarray(arr)


def simulate_exits(
    timestamps: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    entry_idx: ArrayLike,
    side: ArrayLike,
    stop_ticks: ArrayLike | ExitParams,
    target_ticks: ArrayLike | None = None,
    trail_ticks: ArrayLike | None = None,
    max_hold_s: ArrayLike | None = None,
    instrument: CostModel | None = None,
    *,
    end_idx: ArrayLike | None = None,
    bar_seconds: float | None = None,
) -> ExitResults:
    """Simulate many (entry, parameter set) pairs over one bar series in a single numba call.

    Args:
        timestamps: bar open times (int64 epoch seconds), ascending.
        high, low, close: bar prices (points).
        entry_idx: (P,) index of each pair's entry (signal) bar.
        side: (P,) or scalar, +1 long / -1 short.
        stop_ticks: (P,) or scalar stop distance (ticks) — or an :class:`ExitParams`, in which case
            target/trail/max-hold come from it and those three arguments must be None.
        target_ticks, trail_ticks: (P,) or scalar (ticks); trail <= 0 disables the trail.
        max_hold_s: (P,) or scalar (seconds); <= 0 disables the time exit.
        instrument: costs (tick_size, tick_value, commission_per_side, slippage_ticks);
            keyword ``instrument=`` works too.
        end_idx: (P,) or scalar last bar a pair may use (e.g. its session's last bar); the
            position is closed at that bar's close (END) if still open. Default: the last bar.
        bar_seconds: bar length (seconds) so that bar close = open timestamp + bar_seconds.
            Default: the smallest positive gap between timestamps.

    Returns:
        ExitResults with one row per pair, in input order.
    """
    if instrument is None:
        raise ValueError("simulate_exits needs an instrument (tick size, tick value, costs)")
    if isinstance(stop_ticks, ExitParams):
        if target_ticks is not None or trail_ticks is not None or max_hold_s is not None:
            raise ValueError("pass either an ExitParams or the four parameter arrays, not both")
        prm = stop_ticks
        stop_ticks, target_ticks = prm.stop_loss_ticks, prm.take_profit_ticks
        trail_ticks, max_hold_s = prm.trailing_stop_ticks, prm.max_hold_seconds
    if target_ticks is None or trail_ticks is None or max_hold_s is None:
        raise ValueError("target_ticks, trail_ticks and max_hold_s are required")

    ts = np.ascontiguousarray(timestamps, dtype=np.float64)
    hi = np.ascontiguousarray(high, dtype=np.float64)
    lo = np.ascontiguousarray(low, dtype=np.float64)
    cl = np.ascontiguousarray(close, dtype=np.float64)
    n_bars = ts.shape[0]
    if not (hi.shape[0] == lo.shape[0] == cl.shape[0] == n_bars):
        raise ValueError("timestamps, high, low and close must have the same length")
    e_idx = np.ascontiguousarray(np.atleast_1d(np.asarray(entry_idx, dtype=np.int64)))
    n = e_idx.shape[0]
    if n and (e_idx.min() < 0 or e_idx.max() >= n_bars):
        raise ValueError("entry_idx out of range of the bars")
    sd = np.asarray(side, dtype=np.int64)
    sd = np.full(n, int(sd)) if sd.ndim == 0 else np.ascontiguousarray(sd)
    if sd.shape != (n,) or (n and not np.all(np.abs(sd) == 1)):
        raise ValueError("side must be +1 (long) or -1 (short) per pair")
    if end_idx is None:
        last = np.full(n, n_bars - 1, dtype=np.int64)
    else:
        last = np.asarray(end_idx, dtype=np.int64)
        last = np.full(n, int(last)) if last.ndim == 0 else np.ascontiguousarray(last)
        last = np.minimum(last, n_bars - 1)
    bs = _infer_bar_seconds(np.asarray(timestamps)) if bar_seconds is None else float(bar_seconds)

    out = ExitResults(
        exit_idx=np.empty(n, dtype=np.int64),
        exit_price=np.empty(n, dtype=np.float64),
        exit_reason=np.empty(n, dtype=np.int8),
        entry_price=np.empty(n, dtype=np.float64),
        pnl_ticks=np.empty(n, dtype=np.float64),
        pnl_dollars=np.empty(n, dtype=np.float64),
        mfe_ticks=np.empty(n, dtype=np.float64),
        mae_ticks=np.empty(n, dtype=np.float64),
        hold_seconds=np.empty(n, dtype=np.float64),
    )
    if n == 0:
        return out
    _simulate_kernel(
        ts,
        hi,
        lo,
        cl,
        e_idx,
        sd,
        _param_column(stop_ticks, n, "stop_ticks"),
        _param_column(target_ticks, n, "target_ticks"),
        _param_column(trail_ticks, n, "trail_ticks"),
        _param_column(max_hold_s, n, "max_hold_s"),
        last,
        bs,
        float(instrument.tick_size),
        float(instrument.tick_value),
        float(instrument.commission_per_side),
        float(instrument.slippage_ticks),
        out.exit_idx,
        out.exit_price,
        out.exit_reason,
        out.entry_price,
        out.pnl_ticks,
        out.pnl_dollars,
        out.mfe_ticks,
        out.mae_ticks,
        out.hold_seconds,
    )
    return out
