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

from edgefinder.markets.kernels import (
    EXIT_END,
    EXIT_NONE,
    EXIT_STOP,
    EXIT_TARGET,
    EXIT_TIME,
    EXIT_TRAIL,
    close_fill,
    entry_fill,
    exit_step,
    initial_levels,
    simulate_kernel,
    trade_pnl,
)

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
    simulate_kernel(
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
