"""End-of-session regret analysis (Phase 4): how well did each exit capture the move?

Runs after a session's trading is over, so it may look past each exit (it never feeds a decision of
that session; its per-template figures feed Phase 5). Per trade, on bars of the **next timeframe up**
from the entry timeframe (15s entries -> 1m bars), over the trade's life plus ``lookahead_bars`` bars
past the exit (default 5 bars, i.e. 5 minutes on 1m bars, the original's "5 minutes after exit"):

* ``peak_favorable``  — best price (high for longs, low for shorts), points
* ``potential_pnl``    — (peak - entry) x side, dollars gross per contract (>= 0 when price moved our way)
* ``actual_pnl``       — (exit - entry) x side, dollars gross (fills include slippage; no commission)
* ``left_on_table``    — max(0, potential - actual), dollars
* ``gave_back``        — max(0, (peak while open - exit) x side), dollars: open profit surrendered
* ``exit_efficiency``  — actual / potential when potential > 0, else 0; clipped to [-1, 1]
* ``regret_type``      — ``optimal`` when efficiency >= 0.90; otherwise ``closed_too_early`` when the
  favourable extreme came *after* the exit (the move continued), else ``closed_too_late`` (the best
  price was reached while the trade was open and given back, or price never went our way).

Peak resolution is one analysis bar: the bar straddling the entry or the exit is counted as "while
open". The original computed left_on_table and gave_back from the same peak, so they were always
equal and the classification degenerate; separating "peak while open" from "peak after exit" fixes that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from edgefinder.markets.brain import DIRECTION_NAMES, RESULT_NAMES, categorical
from edgefinder.markets.instruments import Instrument, get_instrument

REGRET_TYPES = ("optimal", "closed_too_early", "closed_too_late")

#: the fields a trade record contributes to its regret marker
TRADE_COLUMNS = (
    "template_id",
    "direction",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "pnl",
    "result",
    "exit_reason",
)
MARKER_COLUMNS = (
    "trade_index",
    *TRADE_COLUMNS,
    "peak_favorable",
    "peak_open",
    "peak_after",
    "potential_pnl",
    "actual_pnl",
    "left_on_table",
    "gave_back",
    "exit_efficiency",
    "regret_type",
)


@dataclass(frozen=True)
class RegretConfig:
    """``lookahead_bars``: analysis bars past the exit; ``optimal_efficiency``: efficiency counted optimal."""

    lookahead_bars: int = 5
    optimal_efficiency: float = 0.90


@dataclass(frozen=True)
class RegretDay:
    """One session's regret analysis: per-trade ``markers`` (columns MARKER_COLUMNS) and ``summary``."""

    markers: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _range_reduce(
    values: np.ndarray, starts: np.ndarray, ends: np.ndarray, fn: np.ufunc
) -> np.ndarray:
    """fn-reduce values[s:e] for many ranges at once (np.ufunc.reduceat); NaN for empty ranges."""
    out = np.full(starts.shape, np.nan)
    if starts.size == 0 or values.size == 0:
        return out
    # reduceat reduces between consecutive indices; interleave (start, end) and keep the even slots.
    # A sentinel makes end == len(values) a valid index.
    padded = np.append(values, values[-1])
    idx = np.empty(starts.size * 2, dtype=np.int64)
    idx[0::2] = np.minimum(starts, values.size)
    idx[1::2] = np.minimum(ends, values.size)
    red = fn.reduceat(padded, idx)[0::2]
    ok = ends > starts
    out[ok] = red[ok]
    return out


class BatchRegretAnalyzer:
    """Vectorized end-of-session regret analysis (see module doc for every definition and unit)."""

    def __init__(
        self,
        instrument: Instrument | None = None,
        config: RegretConfig | None = None,
        bar_seconds: int = 60,
    ) -> None:
        self.instrument = instrument or get_instrument()
        self.config = config or RegretConfig()
        self.bar_seconds = int(bar_seconds)

    def batch_analyze_day(
        self,
        day_trades: Sequence[Any] | pd.DataFrame,
        day_bars: pd.DataFrame,
        bar_seconds: int | None = None,
    ) -> RegretDay:
        """Analyze all trades of one session against ``day_bars`` (next timeframe up; timestamp = bar open).

        ``day_trades``: TradeOutcome objects or a frame with their columns (``direction``,
        ``entry_time``, ``exit_time``, ``entry_price``, ``exit_price``, ``pnl``, ...). ``day_bars`` must
        reach ``lookahead_bars`` past the last exit for a full look (fewer bars simply shorten it).
        """
        s = int(bar_seconds or self.bar_seconds)
        trades = _trades_to_frame(day_trades)
        if trades.empty:
            return RegretDay(pd.DataFrame(columns=list(MARKER_COLUMNS)), _summary(None))
        side = np.where(_is_short(trades["direction"]), -1.0, 1.0)
        bar_ts = (
            np.asarray(day_bars["timestamp"], dtype=np.int64)
            if len(day_bars)
            else np.empty(0, np.int64)
        )
        high = np.asarray(day_bars["high"], dtype=np.float64) if len(day_bars) else np.empty(0)
        low = np.asarray(day_bars["low"], dtype=np.float64) if len(day_bars) else np.empty(0)
        m = self.analyze_arrays(
            side,
            trades["entry_time"].to_numpy(np.float64),
            trades["exit_time"].to_numpy(np.float64),
            trades["entry_price"].to_numpy(np.float64),
            trades["exit_price"].to_numpy(np.float64),
            bar_ts,
            high,
            low,
            s,
        )
        pnl = trades["pnl"].to_numpy(np.float64)
        markers = pd.DataFrame(
            {
                "trade_index": np.arange(len(trades), dtype=np.int64),
                "template_id": trades["template_id"].to_numpy() if "template_id" in trades else -1,
                "direction": categorical(DIRECTION_NAMES, side > 0),
                "entry_time": trades["entry_time"].to_numpy(np.float64),
                "exit_time": trades["exit_time"].to_numpy(np.float64),
                "entry_price": trades["entry_price"].to_numpy(np.float64),
                "exit_price": trades["exit_price"].to_numpy(np.float64),
                "pnl": pnl,
                # .array: a categorical column stays one
                "result": trades["result"].array
                if "result" in trades
                else categorical(RESULT_NAMES, pnl > 0),
                "exit_reason": trades["exit_reason"].array if "exit_reason" in trades else "",
                **m,
            },
            columns=list(MARKER_COLUMNS),
        )
        return RegretDay(markers, _summary(markers))

    def analyze_arrays(
        self,
        side: np.ndarray,
        entry_time: np.ndarray,
        exit_time: np.ndarray,
        entry_price: np.ndarray,
        exit_price: np.ndarray,
        bar_ts: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        bar_seconds: int | None = None,
    ) -> dict[str, np.ndarray]:
        """The per-trade regret columns from plain arrays (side +1/-1; times epoch s; prices points;
        bars of the analysis timeframe, ``bar_ts`` = bar opens, sorted). No DataFrame is built."""
        s = int(bar_seconds or self.bar_seconds)
        entry_t = np.asarray(entry_time, dtype=np.float64)
        exit_t = np.asarray(exit_time, dtype=np.float64)
        side = np.asarray(side, dtype=np.float64)
        entry_p = np.asarray(entry_price, dtype=np.float64)
        exit_p = np.asarray(exit_price, dtype=np.float64)
        ts = np.asarray(bar_ts)
        # Bars overlapping the open trade: ts + s > entry_time and ts < exit_time; then the look past it.
        i0 = np.searchsorted(ts, entry_t - s, side="right")
        i1 = np.maximum(np.searchsorted(ts, exit_t, side="left"), i0)
        i2 = np.maximum(
            np.searchsorted(ts, exit_t + self.config.lookahead_bars * s, side="left"), i1
        )
        hi_open = _range_reduce(high, i0, i1, np.maximum)
        lo_open = _range_reduce(low, i0, i1, np.minimum)
        hi_after = _range_reduce(high, i1, i2, np.maximum)
        lo_after = _range_reduce(low, i1, i2, np.minimum)
        long = side > 0
        peak_open = np.where(long, hi_open, lo_open)
        peak_after = np.where(long, hi_after, lo_after)
        # The exit fill itself is a price the trade reached; it stands in when no bar overlaps the trade.
        peak_open = np.where(np.isnan(peak_open), exit_p, peak_open)
        fav_open = (peak_open - entry_p) * side
        fav_after = np.where(np.isnan(peak_after), -np.inf, (peak_after - entry_p) * side)
        after_better = fav_after > fav_open
        peak = np.where(after_better, peak_after, peak_open)
        pv = self.instrument.point_value
        potential = np.maximum((peak - entry_p) * side, 0.0) * pv
        actual = (exit_p - entry_p) * side * pv
        left = np.maximum(potential - actual, 0.0)
        gave_back = np.maximum((peak_open - exit_p) * side, 0.0) * pv
        safe = np.where(potential > 0, potential, 1.0)
        # Clipped to [-1, 1]: a loser whose price barely moved our way would otherwise score -40 and
        # swamp every average (the original's unbounded ratio).
        eff = np.clip(np.where(potential > 0, actual / safe, 0.0), -1.0, 1.0)
        rtype = categorical(
            np.array(REGRET_TYPES, dtype=object),
            np.where(
                eff >= self.config.optimal_efficiency,
                0,
                np.where(after_better & (potential > 0), 1, 2),
            ),
        )
        return {
            "peak_favorable": peak,
            "peak_open": peak_open,
            "peak_after": peak_after,
            "potential_pnl": potential,
            "actual_pnl": actual,
            "left_on_table": left,
            "gave_back": gave_back,
            "exit_efficiency": eff,
            "regret_type": rtype,
        }


def _is_short(direction: pd.Series) -> np.ndarray:
    """``direction`` is SHORT (any case): compared once per distinct value, not once per trade."""
    codes, values = pd.factorize(direction)
    return np.array([str(v).upper() == "SHORT" for v in values] + [False], bool)[codes]


def _trades_to_frame(day_trades: Sequence[Any] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(day_trades, pd.DataFrame):
        return day_trades.reset_index(drop=True)
    rows = [{c: getattr(t, c) for c in TRADE_COLUMNS} for t in day_trades]
    return pd.DataFrame(rows, columns=list(TRADE_COLUMNS))


def _summary(markers: pd.DataFrame | None) -> dict[str, Any]:
    """Session summary: counts per regret type, mean efficiency, dollars left and given back."""
    if markers is None or markers.empty:
        return {
            "trades": 0,
            "avg_exit_efficiency": 0.0,
            "optimal": 0,
            "closed_too_early": 0,
            "closed_too_late": 0,
            "left_on_table": 0.0,
            "gave_back": 0.0,
            "recommendations": [],
        }
    counts = markers["regret_type"].value_counts()
    out: dict[str, Any] = {
        "trades": int(len(markers)),
        "avg_exit_efficiency": float(markers["exit_efficiency"].mean()),
        **{k: int(counts.get(k, 0)) for k in REGRET_TYPES},
        "left_on_table": float(markers["left_on_table"].sum()),
        "gave_back": float(markers["gave_back"].sum()),
    }
    recs = []
    n = out["trades"]
    if out["closed_too_early"] / n > 0.6:
        recs.append(
            f"{out['closed_too_early'] / n:.0%} of exits too early: consider wider targets/trails"
        )
    if out["closed_too_late"] / n > 0.6:
        recs.append(
            f"{out['closed_too_late'] / n:.0%} of exits too late: consider tighter trails/stops"
        )
    out["recommendations"] = recs
    return out
