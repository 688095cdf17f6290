"""WaveRider: the forward pass's one-position manager, driven bar by bar (Phase 4).

Built on :func:`edgefinder.markets.exits.exit_step`, the same per-bar rule (and the same fills and
costs) that :func:`edgefinder.markets.exits.simulate_exits` applies in Phase 3, so a trade managed
here exits exactly where the batch simulator says it would.

Units: prices in index points, distances in ticks, money in US dollars per contract (net of
commission and slippage), times in epoch seconds taken from **bar timestamps** (never the clock).
ATLAS timestamps are bar *opens*; a bar is judged at its close = timestamp + ``bar_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgefinder.errors import EdgefinderError
from edgefinder.markets import exits
from edgefinder.markets.instruments import Instrument, get_instrument
from edgefinder.markets.kernels import NO_TARGET_TICKS, session_kernel, walk_position

#: Take-profit distance used when none is given: far enough never to fill (the original call passes
#: only a stop).


class PositionError(EdgefinderError):
    """WaveRider was asked to open a second position, or to manage one it does not have."""


@dataclass
class Position:
    """The open position's state (mutable: the trailing stop ratchets bar by bar)."""

    side: int  # +1 long, -1 short
    signal_price: float  # close of the signal bar (points)
    entry_price: float  # entry fill incl. slippage (points)
    entry_time: float  # close time of the signal bar (epoch s)
    state: Any
    initial_stop: float  # points
    stop_price: float  # points (ratchets with the trail)
    target_price: float  # points
    trail_ticks: float
    max_hold_seconds: float
    best_price: float  # best favourable extreme so far (points)
    mfe_points: float = 0.0
    mae_points: float = 0.0
    template_id: int | None = None

    @property
    def direction(self) -> str:
        return "LONG" if self.side > 0 else "SHORT"


def _side_code(side: str | int) -> int:
    if isinstance(side, str):
        s = side.strip().lower()
        if s in ("long", "buy"):
            return 1
        if s in ("short", "sell"):
            return -1
    elif side in (1, -1):
        return int(side)
    raise PositionError(f"side must be 'long'/'short' or +1/-1, got {side!r}")


class WaveRider:
    """One position at a time; ``open_position`` then ``update_bar`` (or ``update_trail``) per bar."""

    def __init__(self, instrument: Instrument | None = None, bar_seconds: float = 15.0) -> None:
        self.instrument = instrument or get_instrument()
        self.bar_seconds = float(bar_seconds)
        self.position: Position | None = None

    def open_position(
        self,
        entry_price: float,
        side: str | int,
        state: Any,
        stop_distance_ticks: float,
        take_profit_ticks: float | None = None,
        trailing_stop_ticks: float | None = None,
        max_hold_seconds: float | None = None,
        entry_time: float | None = None,
        template_id: int | None = None,
    ) -> Position:
        """Open at the signal bar's close ``entry_price`` (points); the fill adds slippage against us.

        ``entry_time`` is the signal bar's close time (epoch s). When omitted (the original call) it is
        taken from ``state.timestamp + bar_seconds``; there is no wall-clock fallback. Defaults: no
        target (``take_profit_ticks=None``), no trail, no max hold. Raises PositionError when a
        position is already open.
        """
        if self.position is not None:
            raise PositionError(
                "WaveRider already holds a position; close it before opening another"
            )
        s = _side_code(side)
        if entry_time is None:
            ts = getattr(state, "timestamp", None)
            if ts is None:
                raise PositionError(
                    "entry_time is required (bar time) when the state has no timestamp"
                )
            entry_time = float(ts) + self.bar_seconds
        inst = self.instrument
        tick = float(inst.tick_size)
        fill = float(exits.entry_fill(s, float(entry_price), float(inst.slippage_ticks), tick))
        target_ticks = NO_TARGET_TICKS if take_profit_ticks is None else float(take_profit_ticks)
        stop, target = exits.initial_levels(s, fill, float(stop_distance_ticks), target_ticks, tick)
        self.position = Position(
            side=s,
            signal_price=float(entry_price),
            entry_price=fill,
            entry_time=float(entry_time),
            state=state,
            initial_stop=float(stop),
            stop_price=float(stop),
            target_price=float(target),
            trail_ticks=0.0 if trailing_stop_ticks is None else float(trailing_stop_ticks),
            max_hold_seconds=0.0 if max_hold_seconds is None else float(max_hold_seconds),
            best_price=fill,
            template_id=template_id,
        )
        return self.position

    def update_bar(
        self, timestamp: float, high: float, low: float, close: float, state: Any = None
    ) -> dict[str, Any]:
        """Judge one bar (``timestamp`` = its open, epoch s) with exits.exit_step; see module doc.

        Returns ``{'should_exit', 'exit_price', 'pnl', 'exit_reason', ...}``: pnl in dollars net of
        costs and exit_price the fill (points) when should_exit, else pnl is the open PnL marked at
        the close (dollars, before exit slippage/commission) and exit_price None. On an exit the
        position is cleared.
        """
        pos = self.position
        if pos is None:
            raise PositionError("no open position to update")
        inst = self.instrument
        bar_close_time = float(timestamp) + self.bar_seconds
        code, xp, best, stop = exits.exit_step(
            pos.side,
            pos.entry_price,
            pos.initial_stop,
            pos.stop_price,
            pos.target_price,
            pos.trail_ticks,
            pos.best_price,
            pos.entry_time,
            pos.max_hold_seconds,
            bar_close_time,
            float(high),
            float(low),
            float(close),
            float(inst.tick_size),
            float(inst.slippage_ticks),
        )
        # Excursions over the held bars, the exit bar included (as the batch kernel counts them).
        fav = (high - pos.entry_price) if pos.side > 0 else (pos.entry_price - low)
        adv = (pos.entry_price - low) if pos.side > 0 else (high - pos.entry_price)
        pos.mfe_points = max(pos.mfe_points, float(fav))
        pos.mae_points = max(pos.mae_points, float(adv))
        if code == exits.EXIT_NONE:
            pos.best_price, pos.stop_price = float(best), float(stop)
            open_pnl = pos.side * (float(close) - pos.entry_price) * inst.point_value
            return {
                "should_exit": False,
                "exit_price": None,
                "pnl": float(open_pnl),
                "exit_reason": None,
                "stop_price": pos.stop_price,
            }
        return self._close(float(xp), exits.EXIT_REASON_NAMES[int(code)], bar_close_time)

    def update_trail(self, price: float, state: Any, timestamp: float) -> dict[str, Any]:
        """The original close-only form: the bar is judged as if high = low = close = ``price``."""
        return self.update_bar(timestamp, price, price, price, state)

    def force_close(self, timestamp: float, close: float, reason: str = "TIME") -> dict[str, Any]:
        """Close at the bar's ``close`` with slippage (session end: the TIME exit)."""
        pos = self.position
        if pos is None:
            raise PositionError("no open position to close")
        inst = self.instrument
        xp = float(
            exits.close_fill(
                pos.side, float(close), float(inst.slippage_ticks), float(inst.tick_size)
            )
        )
        return self._close(xp, reason, float(timestamp) + self.bar_seconds)

    def _close(self, exit_price: float, reason: str, exit_time: float) -> dict[str, Any]:
        pos = self.position
        assert pos is not None
        inst = self.instrument
        ticks, dollars = exits.trade_pnl(
            pos.side,
            pos.entry_price,
            exit_price,
            float(inst.tick_size),
            float(inst.tick_value),
            float(inst.commission_per_side),
        )
        self.position = None
        tick = float(inst.tick_size)
        return {
            "should_exit": True,
            "exit_price": exit_price,
            "pnl": float(dollars),
            "exit_reason": reason,
            "pnl_ticks": float(ticks),
            "entry_price": pos.entry_price,
            "entry_time": pos.entry_time,
            "exit_time": exit_time,
            "duration": exit_time - pos.entry_time,
            "direction": pos.direction,
            "side": pos.side,
            "state": pos.state,
            "template_id": pos.template_id,
            "mfe_ticks": pos.mfe_points / tick,
            "mae_ticks": pos.mae_points / tick,
        }


def ride(
    rider: WaveRider,
    timestamps: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    start: int,
    end: int,
) -> tuple[int, dict[str, Any]]:
    """Manage the open position over bars start..end (inclusive, ``timestamps`` = bar opens, float64);
    force-close at ``end``'s close (TIME) if it is still open. Returns (exit bar index, exit dict).

    The forward pass's per-trade loop. Each bar is judged by :func:`exits.exit_step`, exactly as
    :meth:`WaveRider.update_bar` would judge it, but the bar loop runs compiled (one call per trade
    instead of one Python call per bar); a unit test checks both paths against ``simulate_exits``.
    """
    pos = rider.position
    if pos is None:
        raise PositionError("no open position to ride")
    inst = rider.instrument
    if end < start:
        return end, rider.force_close(timestamps[end], close[end], "TIME")
    j, code, xp, best, stop, mfe, mae = walk_position(
        pos.side,
        pos.entry_price,
        pos.initial_stop,
        pos.stop_price,
        pos.target_price,
        pos.trail_ticks,
        pos.best_price,
        pos.entry_time,
        pos.max_hold_seconds,
        timestamps,
        high,
        low,
        close,
        int(start),
        int(end),
        rider.bar_seconds,
        float(inst.tick_size),
        float(inst.slippage_ticks),
        pos.mfe_points,
        pos.mae_points,
    )
    pos.best_price, pos.stop_price = float(best), float(stop)
    pos.mfe_points, pos.mae_points = float(mfe), float(mae)
    if code == exits.EXIT_NONE:
        return end, rider.force_close(timestamps[end], close[end], "TIME")
    return int(j), rider._close(
        float(xp), exits.EXIT_REASON_NAMES[int(code)], float(timestamps[j]) + rider.bar_seconds
    )


def ride_session(
    rider: WaveRider,
    rows: np.ndarray,
    template_index: np.ndarray,
    sides: np.ndarray,
    first: int,
    last: int,
    params: np.ndarray,
    wins: np.ndarray,
    totals: np.ndarray,
    min_prob: float,
    min_conf: float,
    learn: bool,
    timestamps: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Trade one session's candidates one position at a time, compiled: the forward pass's session loop.

    ``rows`` (bar order), ``template_index`` (row of ``params``, ``wins``, ``totals``) and ``sides`` are
    the candidates that passed Gate 1; the session is bars ``first..last``. Each candidate meets Gate 3
    (skipped while a position is open; none on the last bar), then Gate 2 on ``wins`` / ``totals`` (the
    brain's counts: probability (wins + 1)/(total + 11) >= ``min_prob`` and confidence min(total/100, 1)
    >= ``min_conf``), then WaveRider's rule: entry at the bar's close with slippage, the template's stop /
    target / trail / max hold (``params`` columns: stop, target, trail ticks, hold seconds) judged by
    :func:`exits.exit_step` bar by bar, a close at the session's last bar (TIME). ``learn`` updates
    ``wins`` / ``totals`` in place after each trade (the brain learning as it goes).

    Returns (trades, counts): trades as columns — ``cand`` (index into the inputs), ``exit_row``,
    ``entry_price``, ``exit_price`` (fills, points), ``pnl_ticks``, ``pnl`` (dollars net), ``mfe_ticks``,
    ``mae_ticks``, ``reason`` (exit code) — and counts (gate2_reject, gate3_blocked, no_forward_bar).
    A unit test checks it against :meth:`WaveRider.update_bar` trade by trade.
    """
    inst = rider.instrument
    m = int(rows.size)
    out: dict[str, np.ndarray] = {
        "cand": np.empty(m, np.int64),
        "exit_row": np.empty(m, np.int64),
        "entry_price": np.empty(m),
        "exit_price": np.empty(m),
        "pnl_ticks": np.empty(m),
        "pnl": np.empty(m),
        "mfe_ticks": np.empty(m),
        "mae_ticks": np.empty(m),
        "reason": np.empty(m, np.int8),
    }
    counts = np.zeros(3, np.int64)
    p = np.ascontiguousarray(params, dtype=np.float64)
    n = session_kernel(
        np.ascontiguousarray(rows, np.int64),
        np.ascontiguousarray(template_index, np.int64),
        np.ascontiguousarray(sides, np.int64),
        int(first),
        int(last),
        p[:, 0].copy(),
        p[:, 1].copy(),
        p[:, 2].copy(),
        p[:, 3].copy(),
        wins,
        totals,
        float(min_prob),
        float(min_conf),
        bool(learn),
        timestamps,
        high,
        low,
        close,
        float(rider.bar_seconds),
        float(inst.tick_size),
        float(inst.tick_value),
        float(inst.commission_per_side),
        float(inst.slippage_ticks),
        out["cand"],
        out["exit_row"],
        out["entry_price"],
        out["exit_price"],
        out["pnl_ticks"],
        out["pnl"],
        out["mfe_ticks"],
        out["mae_ticks"],
        out["reason"],
        counts,
    )
    return {k: v[:n] for k, v in out.items()}, counts
