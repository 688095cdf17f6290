"""One replay engine for the forward pass and the paper trade: what is proved is what is traded.

:class:`ReplayEngine` runs the same steps for both:

1. **prepare** — every level's states over the whole series (physics is causal), the cascade, the
   match to the playbook with each candidate's context at entry, Gate 1 (and, for the paper trade,
   the production filter), and the CME session table of the entry timeframe;
2. **per session** — the candidates of the session through Gate 2 (the brain) and Gate 3 (one
   position at a time), WaveRider on the one exit simulator, and the brain's counts updated after
   each trade (``learn=True``, the forward pass) or frozen (``learn=False``, the paper trade);
3. **finish** — the trades of every session as the brain's history.

The engine owns the brain (:attr:`ReplayEngine.brain`, a :class:`BayesianBrain` whose table is a
:class:`~edgefinder.markets.brain.CountTable` over the compiled loop's count arrays: the loop gates
on and updates the same counts the brain's API reads, so there is one copy) and the journal resume:
a forward pass that was killed replays its complete journal records into those counts
(:meth:`ReplayEngine.resume`) and continues. Nothing here prints.

Units: prices in points, PnL in dollars per contract net of costs, times in epoch seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefinder.markets.brain import BayesianBrain, CountTable
from edgefinder.markets.cascade import FractalCascadeScanner
from edgefinder.markets.instruments import Instrument
from edgefinder.markets.physics import StateArrays
from edgefinder.markets.replay import Gates, Matched, SessionResult, SessionTrader, session_table

__all__ = ["GATE_COUNTS", "ReplayEngine"]

#: Per-session gate counters the engine adds up (Gate 1's are counted once in :meth:`prepare`).
GATE_COUNTS = ("gate2_reject", "gate3_blocked", "no_forward_bar")


@dataclass
class ReplayEngine:
    """Replays sessions of an ATLAS with a playbook (see the module doc).

    ``playbook``: has ``match(cascade, states)``, ``template_ids`` and ``params`` (the forward pass's
    :class:`~edgefinder.markets.forward.Playbook`); ``scanner``: the cascade of the hierarchy, mode
    and thresholds the playbook was learned with; ``gates``: the gates; ``instrument``: costs.
    """

    playbook: Any
    scanner: FractalCascadeScanner
    instrument: Instrument
    gates: Gates
    states: dict[str, StateArrays] = field(default_factory=dict, init=False)
    matched: Matched = field(init=False)
    eligible: np.ndarray = field(init=False)
    trader: SessionTrader = field(init=False)
    brain: BayesianBrain = field(init=False)
    s_start: np.ndarray = field(init=False)
    s_end: np.ndarray = field(init=False)
    s_label: np.ndarray = field(init=False)
    gate_counts: dict[str, int] = field(default_factory=dict, init=False)
    _bounds: tuple[np.ndarray, np.ndarray] = field(init=False)
    _eligible_context: dict[str, np.ndarray] | None = field(default=None, init=False)

    @property
    def entry_timeframe(self) -> str:
        return self.scanner.entry_timeframe

    @property
    def n_sessions(self) -> int:
        return int(self.s_start.size)

    @property
    def timestamps(self) -> np.ndarray:
        """Bar opens of the entry timeframe (epoch s)."""
        return np.asarray(self.states[self.entry_timeframe]["timestamp"], dtype=np.int64)

    def prepare(
        self,
        data_dir: str | Path,
        end: int | None = None,
        allowed: Callable[[Matched], np.ndarray] | None = None,
        *,
        states: dict[str, StateArrays] | None = None,
    ) -> ReplayEngine:
        """Step 1: states (bars opening before ``end``; or ``states`` already computed), cascade,
        match with context, Gate 1 and ``allowed`` (a filter over the matched candidates), sessions
        and the trader."""
        self.states = states if states is not None else self.scanner.compute_states(data_dir, end)
        cascade = self.scanner.scan(self.states)
        self.matched = self.playbook.match(cascade, self.states)
        self.eligible = self.matched.eligible(
            self.gates, None if allowed is None else allowed(self.matched)
        )
        self._eligible_context = None
        est = self.states[self.entry_timeframe]
        self.s_start, self.s_end, self.s_label = session_table(self.timestamps)
        e_rows = self.matched.rows[self.eligible]
        self._bounds = (
            np.searchsorted(e_rows, self.s_start, "left"),
            np.searchsorted(e_rows, self.s_end, "right"),
        )
        self.trader = SessionTrader(
            est,
            self.entry_timeframe,
            self.instrument,
            self.playbook.template_ids,
            self.playbook.params,
        )
        self.brain = BayesianBrain(
            table=CountTable(self.trader.template_ids, self.trader.wins, self.trader.totals)
        )
        m, g = self.matched, self.gates
        self.gate_counts = {
            "candidates": len(m),
            "gate1_pass": int(self.eligible.size),
            "gate1_depth_reject": int(
                ((m.distance < g.match_distance) & (m.depth < g.min_depth)).sum()
            ),
            **dict.fromkeys(GATE_COUNTS, 0),
        }
        return self

    def sync(self, brain: BayesianBrain) -> None:
        """Start from a brain's counts (the paper trade: the brain as the forward pass left it)."""
        self.trader.sync(brain)

    def resume(self, records: Iterable[Mapping[str, Any]]) -> list[SessionResult]:
        """Replay complete journal records (``trades`` and ``gates`` of each session, in order) into
        the brain's counts and the gate counters; returns their results."""
        out = []
        tidx = self.matched.template_index
        for r in records:
            res = SessionResult(trades=r["trades"], gates=r["gates"])
            cand = res.trades["cand"]
            np.add.at(self.trader.totals, tidx[cand], 1)  # the brain's counts (its CountTable)
            np.add.at(self.trader.wins, tidx[cand[res.trades["pnl"] > 0]], 1)
            self._count(res)
            out.append(res)
        return out

    def session(self, k: int, *, learn: bool) -> SessionResult:
        """Step 2 for session ``k``: Gates 2–3, trades, and the brain updated when ``learn``."""
        lo, hi = self._bounds[0][k], self._bounds[1][k]
        res = self.trader.trade(
            int(self.s_start[k]),
            int(self.s_end[k]),
            self.eligible[lo:hi],
            self.matched,
            self.gates,
            learn=learn,
        )
        self._count(res)
        return res

    def trade_context(self, cand: np.ndarray) -> dict[str, np.ndarray]:
        """The context at entry (``ctx_*`` columns) of candidates ``cand`` (positions in ``matched``
        that passed Gate 1, e.g. a session's trades): the context of every eligible candidate is
        computed once, vectorized, and each call only picks rows (a per-session call of
        ``entry_context`` would repeat its ~200 array operations 250 times a year)."""
        if self._eligible_context is None:
            self._eligible_context = self.matched.context(self.eligible)
        pos = np.searchsorted(self.eligible, np.asarray(cand, dtype=np.int64))
        return {k: v[pos] for k, v in self._eligible_context.items()}

    def finish(self, done: list[tuple[SessionResult, bool, str]]) -> BayesianBrain:
        """Step 3: the trades of ``(result, out_of_sample, session label)`` become the brain's history
        (the loop counted them as it traded — or, frozen, did not); returns the brain."""
        self.brain.record(self.trader.frame(done, self.matched), counted=True)
        return self.brain

    def brain_stats(self) -> dict[str, int]:
        """``BayesianBrain.stats()`` of the engine's brain."""
        return self.brain.stats()

    def _count(self, res: SessionResult) -> None:
        for key in GATE_COUNTS:
            self.gate_counts[key] += int(res.gates.get(key, 0))
