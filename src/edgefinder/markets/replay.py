"""Trading one session's candidates: the match, the gates, and WaveRider on the one exit simulator.

The forward pass (Phase 4) and paper trading replay sessions with exactly these steps:

1. **Match** (:func:`match_candidates`): each entry-timeframe pattern of the cascade gets its 11D
   vector, is scaled with the Phase 2.5 scaler and matched to the nearest library centroid.
2. **Gates** (:class:`Gates`): (1) scaled distance < ``match_distance`` and depth >= ``min_depth``
   (how many coarser timeframes back the entry; 0 = none needed); (2) the brain's
   ``should_fire(template, min_prob, min_conf)``; (3) one position at a time.
3. **Trade** (:meth:`SessionTrader.trade`): WaveRider opens at the candidate bar's close with the
   template's stop / target / trail / max hold, in the playbook's direction (ROCHE_SNAP fades z,
   STRUCTURAL_DRIVE follows momentum), and judges every later bar with ``exits.exit_step``
   (:func:`wave_rider.ride_session`, compiled). A position still open at the session's last bar is
   closed at its close (TIME). A candidate on the exit bar may enter at that bar's close.

Units: prices in points, PnL in dollars per contract net of commission and slippage, times in epoch
seconds from bar timestamps (entry = signal bar close, exit = close of the exit bar).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from edgefinder.markets import atlas, exits
from edgefinder.markets.brain import (
    DIRECTION_NAMES,
    RESULT_NAMES,
    STATE_COLUMNS,
    BayesianBrain,
    categorical,
)
from edgefinder.markets.cascade import ROCHE_SNAP, STRUCTURAL_DRIVE, Cascade
from edgefinder.markets.clustering import nearest_template
from edgefinder.markets.context import entry_context
from edgefinder.markets.instruments import Instrument
from edgefinder.markets.physics import BAR_COLUMNS, ZONE_NAMES, StateArrays
from edgefinder.markets.physics import STATE_COLUMNS as PHYSICS_COLUMNS
from edgefinder.markets.wave_rider import WaveRider, ride_session
from edgefinder.settings import setting_default

__all__ = [
    "Gates",
    "Matched",
    "SessionResult",
    "SessionTrader",
    "family_key",
    "match_candidates",
    "session_table",
]

ROOT_NONE = "none"


@dataclass(frozen=True)
class Gates:
    """The forward pass's gates (``markets run`` flags; defaults in :class:`edgefinder.settings.Settings`).

    ``match_distance``: Gate 1, scaled 11D distance to the nearest centroid must be below it.
    ``min_depth``: Gate 1's ancestry condition, chain length at least this (0: none required; the
    number of timeframes above the entry = only when the full cascade aligns).
    ``min_prob`` / ``min_conf``: Gate 2 (``BayesianBrain.should_fire``; 0.05 / 0.0 let an unseen
    template, probability 1/11, trade).
    """

    match_distance: float = setting_default("match_distance")
    min_prob: float = setting_default("min_prob")
    min_conf: float = setting_default("min_conf")
    min_depth: int = setting_default("min_depth")


def family_key(pattern_type: str, timeframe: str, side: int, root_type: str) -> str:
    """The family a trade belongs to: pattern type × entry timeframe × direction × root context,
    e.g. ``"ROCHE_SNAP 15s short ← ROCHE_SNAP"`` (the root ancestor's type; ``← none`` for an entry
    backed by nothing). The root's timeframe is left out: it is not a clustering feature, and splitting
    by it spreads one edge over many families too small to test."""
    direction = "long" if side > 0 else "short"
    return f"{pattern_type} {timeframe} {direction} ← {root_type or ROOT_NONE}"


@dataclass(frozen=True)
class Matched:
    """The entry level's patterns (bar order) matched to the library, as column arrays.

    ``rows``: row in the entry timeframe's series; ``template_index``: position of the nearest template
    in the library's sorted ids (``template_id`` its id; -1 without a library); ``distance``: its scaled
    distance; ``side``: +1 long / -1 short; ``depth``: chain length; ``root_tf`` / ``root_type``: the
    root ancestor ("" at depth 0); ``family``: :func:`family_key`; ``states``: every level's state
    arrays, from which :meth:`context` computes the context at entry of any candidates (None: no
    context). It is computed on demand — for the trades only in the forward pass, for every
    candidate when a meta-label gate needs it — because a year holds three candidates per trade.
    """

    cascade: Cascade = field(repr=False)
    rows: np.ndarray
    template_index: np.ndarray
    template_id: np.ndarray
    distance: np.ndarray
    side: np.ndarray
    depth: np.ndarray
    is_roche: np.ndarray
    root_tf: np.ndarray
    root_type: np.ndarray
    family: np.ndarray
    states: Mapping[str, StateArrays] | None = field(default=None, repr=False)
    #: whole-series passes of the context (pattern rows, regime ratios) kept between calls
    _context_cache: dict[tuple[str, str], np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def timeframe(self) -> str:
        return self.cascade.levels[-1].tf

    def columns(self) -> dict[str, np.ndarray]:
        """Per-candidate ``side``, ``depth``, ``is_roche`` and context columns (the meta model's inputs)."""
        out = {"side": self.side, "depth": self.depth, "is_roche": self.is_roche}
        out.update(self.context())
        return out

    def context(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The ``ctx_*`` columns of candidates ``idx`` (positions; all when None); {} without states."""
        if self.states is None:
            return {}
        sel = slice(None) if idx is None else np.asarray(idx, dtype=np.int64)
        return entry_context(
            self.states,
            self.timeframe,
            self.rows[sel],
            self.side[sel],
            self.cascade.timeframes,
            self._context_cache,
        ).columns

    def eligible(self, gates: Gates, allowed: np.ndarray | None = None) -> np.ndarray:
        """Positions of the candidates that pass Gate 1 (distance and depth) and ``allowed``, in bar order."""
        ok = (self.distance < gates.match_distance) & (self.depth >= gates.min_depth)
        if allowed is not None:
            ok &= allowed
        return np.flatnonzero(ok)


def _families(is_roche: np.ndarray, tf: str, side: np.ndarray, root_type: np.ndarray) -> np.ndarray:
    """:func:`family_key` of every candidate from a table of the 12 possible keys (vectorized)."""
    roots = ("", ROCHE_SNAP, STRUCTURAL_DRIVE)
    table = np.array(
        [
            family_key(pt, tf, sd, rt)
            for pt in (STRUCTURAL_DRIVE, ROCHE_SNAP)
            for sd in (-1, 1)
            for rt in roots
        ],
        dtype=object,
    )
    root_code = np.zeros(is_roche.size, np.int64)
    root_code[root_type == ROCHE_SNAP] = 1
    root_code[root_type == STRUCTURAL_DRIVE] = 2
    return table[is_roche.astype(np.int64) * 6 + (side > 0).astype(np.int64) * 3 + root_code]


def match_candidates(
    cascade: Cascade,
    template_ids: np.ndarray,
    centroids_scaled: np.ndarray,
    scaler: Any,
    states: Mapping[str, StateArrays] | None = None,
) -> Matched:
    """Match the cascade's entry-level patterns to the library (all vectorized); with ``states``
    (every level's state arrays) each candidate also gets its context at entry."""
    k = len(cascade.levels) - 1
    lv = cascade.levels[k]
    n = len(lv)
    ids = np.asarray(template_ids, dtype=np.int64)
    if n and centroids_scaled.shape[0] and scaler is not None:
        nidx, dist = nearest_template(scaler.transform(cascade.features(k)), centroids_scaled)
        tidx = np.asarray(nidx, np.int64)
        tid = ids[tidx]
    else:
        dist = np.full(n, np.inf)
        tidx = np.full(n, -1, np.int64)
        tid = np.full(n, -1, np.int64)
    side = cascade.sides(k)
    root_tf, root_type = cascade.root_context(k)
    return Matched(
        cascade=cascade,
        rows=lv.rows,
        template_index=tidx,
        template_id=tid,
        distance=np.asarray(dist, np.float64),
        side=side,
        depth=lv.depth,
        is_roche=lv.is_roche,
        root_tf=root_tf,
        root_type=root_type,
        family=_families(lv.is_roche, lv.tf, side, root_type),
        states=states,
    )


def session_table(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first row, last row, CME session date) of each session in sorted bar opens ``ts`` (epoch s).

    Session ids are evaluated once per distinct UTC hour: sessions change only on whole Chicago
    hours, and Chicago's UTC offset is whole hours.
    """
    ts = np.asarray(ts, dtype=np.int64)
    if ts.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, "datetime64[D]")
    h = ts // 3600
    first = np.concatenate(([0], np.flatnonzero(np.diff(h)) + 1))
    sid = np.repeat(atlas.session_ids(h[first] * 3600), np.diff(np.append(first, ts.size)))
    brk = np.flatnonzero(sid[1:] != sid[:-1]) + 1
    start = np.concatenate(([0], brk)).astype(np.int64)
    end = np.concatenate((brk - 1, [ts.size - 1])).astype(np.int64)
    return start, end, sid[start]


@dataclass
class SessionResult:
    """One session's trades as numeric columns (:func:`wave_rider.ride_session`'s, ``cand`` mapped to
    positions in :class:`Matched`) and its gate counts; :meth:`SessionTrader.frame` turns the trades of
    many sessions into one ``brain.trades_frame``-shaped frame at once."""

    trades: dict[str, np.ndarray]
    gates: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.trades["pnl"].size)


_REASONS = np.array(
    [exits.EXIT_REASON_NAMES[i] for i in range(len(exits.EXIT_REASON_NAMES))], dtype=object
)
_PATTERN_TYPES = np.array([STRUCTURAL_DRIVE, ROCHE_SNAP], dtype=object)  # by is_roche


class SessionTrader:
    """Trades candidates session by session on the entry timeframe's bars (see the module doc).

    ``states``: the entry timeframe's state arrays; ``template_ids`` / ``params``: the library's sorted
    ids and their exit parameters. The brain's counts live in ``wins`` / ``totals`` arrays (one entry
    per template, in ``template_ids`` order) so the compiled loop can gate and learn; the replay
    engine's :class:`BayesianBrain` is a view over them (``brain.CountTable``); :meth:`sync` loads
    them from another brain.
    """

    def __init__(
        self,
        states: StateArrays,
        timeframe: str,
        instrument: Instrument,
        template_ids: np.ndarray,
        params: Mapping[int, Mapping[str, Any]],
    ) -> None:
        self.states = states
        self.timeframe = timeframe
        self.ts = np.ascontiguousarray(states["timestamp"], dtype=np.float64)
        self.high = np.ascontiguousarray(states["high"], dtype=np.float64)
        self.low = np.ascontiguousarray(states["low"], dtype=np.float64)
        self.close = np.ascontiguousarray(states["close"], dtype=np.float64)
        self.rider = WaveRider(instrument, bar_seconds=float(atlas.TIMEFRAMES[timeframe]))
        self.template_ids = np.asarray(template_ids, dtype=np.int64)
        self.params = np.array(
            [
                [
                    float(params[int(t)].get("stop_loss_ticks", 15) or 15),
                    float(params[int(t)].get("take_profit_ticks") or 0),
                    float(params[int(t)].get("trailing_stop_ticks") or 0),
                    float(params[int(t)].get("max_hold_seconds") or 0),
                ]
                for t in self.template_ids
            ],
            dtype=np.float64,
        ).reshape(-1, 4)
        self.wins = np.zeros(self.template_ids.size, np.int64)
        self.totals = np.zeros(self.template_ids.size, np.int64)

    def sync(self, brain: BayesianBrain) -> None:
        """Load the brain's per-template counts into the compiled loop's arrays."""
        for i, t in enumerate(self.template_ids.tolist()):
            rec = brain.table.get(int(t))
            self.wins[i], self.totals[i] = (rec["wins"], rec["total"]) if rec else (0, 0)

    def trade(
        self,
        first: int,
        last: int,
        candidates: np.ndarray,
        matched: Matched,
        gates: Gates,
        *,
        learn: bool,
    ) -> SessionResult:
        """Trade the session of bars ``first..last`` (rows) on ``candidates`` (positions in ``matched``
        that passed Gate 1, in bar order). ``learn``: the brain's counts grow after each trade
        (Phase 4); False keeps them frozen (paper trading)."""
        c = np.asarray(candidates, dtype=np.int64)
        res, counts = ride_session(
            self.rider,
            matched.rows[c],
            matched.template_index[c],
            matched.side[c],
            first,
            last,
            self.params,
            self.wins,
            self.totals,
            gates.min_prob,
            gates.min_conf,
            learn,
            self.ts,
            self.high,
            self.low,
            self.close,
        )
        res["cand"] = c[res["cand"]]
        return SessionResult(
            trades=res,
            gates={
                "gate2_reject": int(counts[0]),
                "gate3_blocked": int(counts[1]),
                "no_forward_bar": int(counts[2]),
            },
        )

    def frame(
        self, results: list[tuple[SessionResult, bool, str]], matched: Matched
    ) -> dict[str, Any]:
        """The trades of ``(result, out_of_sample, session)`` triples as one set of ``brain.trades_frame``
        columns (plus ``row``, ``exit_row``, ``side``), in trade order: one vectorized pass. Text
        columns are categoricals (what ``brain.compact`` would make of them)."""
        names = (
            "cand",
            "exit_row",
            "entry_price",
            "exit_price",
            "pnl_ticks",
            "pnl",
            "mfe_ticks",
            "mae_ticks",
            "reason",
        )
        res = {
            n: np.concatenate([r.trades[n] for r, _, _ in results])
            if results
            else np.zeros(0, np.int64 if n in ("cand", "exit_row") else np.float64)
            for n in names
        }
        res["reason"] = res["reason"].astype(np.int64)
        oos = (
            np.concatenate([np.full(r.n, o) for r, o, _ in results])
            if results
            else np.zeros(0, bool)
        )
        session = categorical(
            np.array([lab for _, _, lab in results], dtype=object),
            np.repeat(np.arange(len(results)), [r.n for r, _, _ in results]),
        )
        cand = res["cand"]
        rows = matched.rows[cand]
        side = matched.side[cand]
        bar_s = self.rider.bar_seconds
        entry_time = self.ts[rows] + bar_s
        exit_time = self.ts[res["exit_row"]] + bar_s
        pnl = res["pnl"]
        k = len(matched.cascade.levels) - 1
        data: dict[str, Any] = {
            "template_id": matched.template_id[cand],
            "session": session,
            "entry_time": entry_time,
            "exit_time": exit_time,
            "duration": exit_time - entry_time,
            "direction": categorical(DIRECTION_NAMES, side > 0),
            "entry_price": res["entry_price"],
            "exit_price": res["exit_price"],
            "pnl": pnl,
            "pnl_ticks": res["pnl_ticks"],
            "mfe_ticks": res["mfe_ticks"],
            "mae_ticks": res["mae_ticks"],
            "result": categorical(RESULT_NAMES, pnl > 0),
            "exit_reason": categorical(_REASONS, res["reason"]),
            "pattern_type": categorical(_PATTERN_TYPES, matched.is_roche[cand]),
            "root_tf": pd.Categorical(matched.root_tf[cand]),
            "root_type": pd.Categorical(matched.root_type[cand]),
            "match_distance": matched.distance[cand],
            "out_of_sample": oos.astype(bool),
            "depth": matched.depth[cand],
            "family": pd.Categorical(matched.family[cand]),
            "chain": pd.Categorical(matched.cascade.chain_labels(k, cand)),
        }
        st = self.states
        for col in STATE_COLUMNS:
            name = col[len("state_") :]
            if name in BAR_COLUMNS or name in PHYSICS_COLUMNS:
                data[col] = np.asarray(st[name])[rows]
            elif name == "lagrange_zone":
                data[col] = categorical(ZONE_NAMES, np.asarray(st["zone_code"])[rows])
            elif name == "timeframe":
                data[col] = categorical(np.array([self.timeframe]), np.zeros(cand.size, np.int64))
            else:
                data[col] = np.asarray(st[name], dtype=bool)[rows]
        data.update(matched.context(cand))
        data["row"] = rows
        data["exit_row"] = res["exit_row"]
        data["side"] = side
        return data
