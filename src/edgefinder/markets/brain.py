"""BayesianBrain and TradeOutcome: per-template win/loss memory that gates the forward pass (seed 003).

Units: prices in index points, ``pnl`` in US dollars per contract net of costs, times in epoch
seconds UTC taken from **bar timestamps** (never the wall clock), ``duration`` in seconds.

The probability is the seed's pessimistic Beta-like estimate (wins + 1) / (total + 11): 1/11 = 0.0909
for a template never seen, everywhere. Confidence is min(total / 100, 1). The forward pass therefore
needs exploration-friendly gates (the original used min_prob 0.05, min_conf 0.0), which live in
:class:`ForwardConfig` in ``forward.py`` and are CLI flags of ``edgefinder markets run``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgefinder.errors import EdgefinderError
from edgefinder.markets._io import atomic_pickle, atomic_write_text, read_pickle  # noqa: F401 - re-exported

#: Probability of a template with no history: (0 + 1) / (0 + 11).
UNSEEN_PROBABILITY = 1.0 / 11.0


class BrainFileError(EdgefinderError):
    """A brain checkpoint could not be read (missing, truncated or of another format)."""


@dataclass(frozen=True)
class TradeOutcome:
    """One closed trade, as the seed records it (plus ancestry and sample fields used by Phase 5).

    Seed fields: ``state`` (the entry bar's ThreeBodyQuantumState or None), ``entry_price`` and
    ``exit_price`` (points, fills including slippage), ``pnl`` (dollars, net of commission and
    slippage), ``result`` ('WIN' if pnl > 0 else 'LOSS'), ``timestamp`` (epoch s of the exit; equals
    ``exit_time``), ``exit_reason`` ('STOP', 'TARGET', 'TRAIL', 'TIME'), ``entry_time`` (epoch s:
    close of the entry bar, the instant the decision is taken), ``exit_time`` (epoch s: close of the
    bar in which the exit fired), ``duration`` (seconds, exit_time - entry_time), ``direction``
    ('LONG' / 'SHORT'), ``template_id``.

    Extra fields (defaults keep the seed's constructor call valid): ``pnl_ticks`` (net ticks),
    ``mfe_ticks`` / ``mae_ticks`` (gross favourable / adverse excursion in ticks), ``session``
    (ISO date of the CME session), ``pattern_type``, ``root_tf`` / ``root_type`` (the entry pattern's
    root ancestor from its parent chain; empty for a depth-0 entry), ``chain`` (tuple of
    (tf, type) pairs, immediate parent first), ``match_distance`` (scaled 11D distance to the
    matched centroid), ``out_of_sample`` (session after ``--train-until``).
    """

    state: Any
    entry_price: float
    exit_price: float
    pnl: float
    result: str
    timestamp: float
    exit_reason: str
    entry_time: float
    exit_time: float
    duration: float
    direction: str
    template_id: int
    pnl_ticks: float = 0.0
    mfe_ticks: float = 0.0
    mae_ticks: float = 0.0
    session: str = ""
    pattern_type: str = ""
    root_tf: str = ""
    root_type: str = ""
    chain: tuple[tuple[str, str], ...] = ()
    match_distance: float = field(default=float("nan"), compare=False)  # NaN != NaN: keep == usable
    out_of_sample: bool = False

    @property
    def is_win(self) -> bool:
        return self.pnl > 0


#: Columns of :func:`trades_frame`, in order (everything but ``state``).
TRADE_COLUMNS = (
    "template_id", "session", "entry_time", "exit_time", "duration", "direction", "entry_price",
    "exit_price", "pnl", "pnl_ticks", "mfe_ticks", "mae_ticks", "result", "exit_reason", "pattern_type",
    "root_tf", "root_type", "match_distance", "out_of_sample",
)


def trades_frame(trades: Iterable[TradeOutcome]) -> pd.DataFrame:
    """Column view of a trade list (one row per trade; ``state`` and ``chain`` left out)."""
    rows = [{c: getattr(t, c) for c in TRADE_COLUMNS} for t in trades]
    df = pd.DataFrame(rows, columns=list(TRADE_COLUMNS))
    if not df.empty:
        df["template_id"] = df["template_id"].astype(np.int64)
        df["out_of_sample"] = df["out_of_sample"].astype(bool)
    return df


@dataclass
class BayesianBrain:
    """Per-template outcome table ``{template_id: {'wins', 'losses', 'total'}}`` plus the trade history.

    A win is a trade with pnl > 0 dollars (net of costs); a zero-PnL trade counts as a loss, as in the
    seed's ``result='WIN' if pnl > 0 else 'LOSS'``.
    """

    table: dict[int, dict[str, int]] = field(default_factory=dict)
    trade_history: list[TradeOutcome] = field(default_factory=list)

    def get_probability(self, template_id: int) -> float:
        """(wins + 1) / (total + 11); 1/11 = 0.0909 for a template with no history."""
        rec = self.table.get(int(template_id))
        if rec is None:
            return UNSEEN_PROBABILITY
        return (rec["wins"] + 1.0) / (rec["total"] + 11.0)

    def get_confidence(self, template_id: int) -> float:
        """min(total / 100, 1): how much history backs the probability."""
        rec = self.table.get(int(template_id))
        return 0.0 if rec is None else min(rec["total"] / 100.0, 1.0)

    def should_fire(self, template_id: int, min_prob: float = 0.05, min_conf: float = 0.0) -> bool:
        """True when probability >= min_prob and confidence >= min_conf.

        Defaults are the original's exploration gates (0.05 / 0.0): an unseen template (0.0909)
        may trade, and keeps trading until enough losses push its probability under min_prob.
        """
        return (self.get_probability(template_id) >= min_prob
                and self.get_confidence(template_id) >= min_conf)

    def update(self, outcome: TradeOutcome) -> None:
        """Record one closed trade: its template's counts and the history."""
        tid = int(outcome.template_id)
        rec = self.table.setdefault(tid, {"wins": 0, "losses": 0, "total": 0})
        if outcome.pnl > 0:
            rec["wins"] += 1
        else:
            rec["losses"] += 1
        rec["total"] += 1
        self.trade_history.append(outcome)

    def stats(self) -> dict[str, float]:
        """Brain summary for the day report: templates seen, trades, templates with > 30 trades."""
        totals = [r["total"] for r in self.table.values()]
        return {
            "templates_seen": len(totals),
            "trades": int(sum(totals)),
            "templates_over_30": int(sum(t > 30 for t in totals)),
        }

    # -- persistence -------------------------------------------------------------------------------
    def to_payload(self) -> dict[str, Any]:
        """Plain picklable payload (the table and trades; trade states kept as they are)."""
        return {
            "format": "edgefinder.brain/1",
            "table": {int(k): dict(v) for k, v in self.table.items()},
            "trade_history": list(self.trade_history),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> BayesianBrain:
        if not isinstance(payload, dict) or payload.get("format") != "edgefinder.brain/1":
            raise BrainFileError("not an edgefinder brain payload")
        return cls(
            table={int(k): dict(v) for k, v in payload["table"].items()},
            trade_history=list(payload["trade_history"]),
        )

    def save(self, path: str | Path) -> Path:
        """Write the brain as a pickle atomically (temp file + rename: a kill never leaves half a file)."""
        return atomic_pickle(self.to_payload(), path)

    @classmethod
    def load(cls, path: str | Path) -> BayesianBrain:
        path = Path(path)
        payload = read_pickle(path, BrainFileError, f"brain checkpoint not found: {path}")
        try:
            return cls.from_payload(payload)
        except BrainFileError as exc:
            raise BrainFileError(f"{path}: {exc}") from None
