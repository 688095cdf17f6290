"""BayesianBrain and TradeOutcome: per-template win/loss memory that gates the forward pass.

Units: prices in index points, ``pnl`` in US dollars per contract net of costs, times in epoch
seconds UTC taken from **bar timestamps** (never the wall clock), ``duration`` in seconds.

The probability is the original pessimistic Beta-like estimate (wins + 1) / (total + 11): 1/11 = 0.0909
for a template never seen, everywhere. Confidence is min(total / 100, 1). The forward pass therefore
needs exploration-friendly gates (the original used min_prob 0.05, min_conf 0.0), which live in
:class:`ForwardConfig` in ``forward.py`` and are CLI flags of ``edgefinder markets run``
(docs/decisions.md §D23).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgefinder.errors import EdgefinderError
from edgefinder.markets._io import atomic_pickle, read_pickle
from edgefinder.markets.physics import ThreeBodyQuantumState
from edgefinder.settings import setting_default

#: Probability of a template with no history: (0 + 1) / (0 + 11).
UNSEEN_PROBABILITY = 1.0 / 11.0


class BrainFileError(EdgefinderError):
    """A brain checkpoint could not be read (missing, truncated or of another format)."""


@dataclass(frozen=True)
class TradeOutcome:
    """One closed trade, as the original records it (plus ancestry and sample fields used by Phase 5).

    Original fields: ``state`` (the entry bar's ThreeBodyQuantumState or None), ``entry_price`` and
    ``exit_price`` (points, fills including slippage), ``pnl`` (dollars, net of commission and
    slippage), ``result`` ('WIN' if pnl > 0 else 'LOSS'), ``timestamp`` (epoch s of the exit; equals
    ``exit_time``), ``exit_reason`` ('STOP', 'TARGET', 'TRAIL', 'TIME'), ``entry_time`` (epoch s:
    close of the entry bar, the instant the decision is taken), ``exit_time`` (epoch s: close of the
    bar in which the exit fired), ``duration`` (seconds, exit_time - entry_time), ``direction``
    ('LONG' / 'SHORT'), ``template_id``.

    Extra fields (defaults keep the original constructor call valid): ``pnl_ticks`` (net ticks),
    ``mfe_ticks`` / ``mae_ticks`` (gross favourable / adverse excursion in ticks), ``session``
    (ISO date of the CME session), ``pattern_type``, ``root_tf`` / ``root_type`` (the entry pattern's
    root ancestor from its parent chain; empty for a depth-0 entry), ``chain`` (tuple of
    (tf, type) pairs, immediate parent first), ``match_distance`` (scaled 11D distance to the
    matched centroid), ``out_of_sample`` (session after ``--train-until``), ``depth`` (the entry
    pattern's chain length) and ``family`` (pattern type × entry timeframe × direction × root context,
    ``replay.family_key``).
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
    depth: int = 0
    family: str = ""

    @property
    def is_win(self) -> bool:
        return self.pnl > 0


#: Columns of :func:`trades_frame`, in order (``state`` is kept as ``state_*`` columns, see below).
TRADE_COLUMNS = (
    "template_id",
    "session",
    "entry_time",
    "exit_time",
    "duration",
    "direction",
    "entry_price",
    "exit_price",
    "pnl",
    "pnl_ticks",
    "mfe_ticks",
    "mae_ticks",
    "result",
    "exit_reason",
    "pattern_type",
    "root_tf",
    "root_type",
    "match_distance",
    "out_of_sample",
    "depth",
    "family",
    "chain",
)
_STATE_FIELDS = [f.name for f in fields(ThreeBodyQuantumState)]
#: The entry state's fields as columns (``state_timeframe`` "" when a trade has no state).
STATE_COLUMNS = tuple(f"state_{n}" for n in _STATE_FIELDS)


def chain_label(chain: Iterable[tuple[str, str]]) -> str:
    """``"1m ROCHE_SNAP < 5m STRUCTURAL_DRIVE"``: a chain of (tf, type) pairs as one string."""
    return " < ".join(f"{tf} {ty}" for tf, ty in chain)


def chain_pairs(label: str) -> tuple[tuple[str, str], ...]:
    """The inverse of :func:`chain_label`."""
    if not label:
        return ()
    out = []
    for part in label.split(" < "):
        tf, ty = part.split(" ", 1)
        out.append((tf, ty))
    return tuple(out)


def trades_frame(trades: Iterable[TradeOutcome]) -> pd.DataFrame:
    """Column view of a trade list: one row per trade, ``chain`` as :func:`chain_label`, the entry
    state as ``state_*`` columns (NaN / "" when a trade has none)."""
    trades = list(trades)
    data: dict[str, list] = {
        c: [getattr(t, c) for t in trades] for c in TRADE_COLUMNS if c != "chain"
    }
    data["chain"] = [chain_label(t.chain) for t in trades]
    for name, col in zip(_STATE_FIELDS, STATE_COLUMNS):
        empty: Any = "" if name in ("lagrange_zone", "timeframe") else np.nan
        data[col] = [empty if t.state is None else getattr(t.state, name) for t in trades]
    return _typed(pd.DataFrame(data, columns=[*TRADE_COLUMNS, *STATE_COLUMNS]))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    if not df.empty:
        for col, dtype in (("template_id", np.int64), ("out_of_sample", bool), ("depth", np.int64)):
            if df[col].dtype != dtype:
                df[col] = df[col].astype(dtype)
    return df


def outcomes_from_frame(df: pd.DataFrame) -> list[TradeOutcome]:
    """:class:`TradeOutcome` objects of a :func:`trades_frame` (the inverse, states included)."""
    if df.empty:
        return []
    cols = {c: df[c].tolist() for c in TRADE_COLUMNS}
    has_state = (
        (df["state_timeframe"] != "").tolist()
        if "state_timeframe" in df.columns
        else [False] * len(df)
    )
    scols = (
        {n: df[c].tolist() for n, c in zip(_STATE_FIELDS, STATE_COLUMNS)} if any(has_state) else {}
    )
    out = []
    for i in range(len(df)):
        state = None
        if has_state[i]:
            kw = {n: scols[n][i] for n in _STATE_FIELDS}
            kw["timestamp"] = int(kw["timestamp"])
            for flag in ("roche_snap", "structural_drive", "structure_ok", "valid"):
                kw[flag] = bool(kw[flag])
            state = ThreeBodyQuantumState(**kw)
        kw2 = {c: cols[c][i] for c in TRADE_COLUMNS if c != "chain"}
        kw2["template_id"] = int(kw2["template_id"])
        kw2["depth"] = int(kw2["depth"])
        kw2["out_of_sample"] = bool(kw2["out_of_sample"])
        out.append(
            TradeOutcome(
                state=state, timestamp=kw2["exit_time"], chain=chain_pairs(cols["chain"][i]), **kw2
            )
        )
    return out


class _FrameChunk(dict[str, np.ndarray]):
    """A chunk that is already the whole frame (so trades() need not rebuild it)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__({c: frame[c].to_numpy() for c in frame.columns})
        self.frame = frame


def _col(chunk: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """Column ``name`` of a chunk, NaN-filled when the chunk lacks it (chunks from update() have no rows)."""
    if name in chunk:
        return np.asarray(chunk[name])
    return np.full(len(chunk["pnl"]), np.nan)


def compact(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its text columns as categoricals: the same values, written and pickled several
    times faster (a year's trades repeat a few dozen distinct strings tens of thousands of times)."""
    out = df.copy(deep=False)
    for c, t in df.dtypes.items():
        if pd.api.types.is_object_dtype(t):
            out[c] = out[c].astype("category")
    return out


DIRECTION_NAMES = np.array(["SHORT", "LONG"], dtype=object)  # a trade's direction, by side > 0
RESULT_NAMES = np.array(["LOSS", "WIN"], dtype=object)  # a trade's result, by pnl > 0


def categorical(names: np.ndarray, codes: np.ndarray) -> pd.Categorical:
    """``names[codes]`` as the categorical ``astype("category")`` of those strings gives (the values
    that occur, sorted), built from the codes: a trade's text columns take a few distinct values,
    and hashing one string per trade cost more than the rest of the frame."""
    sorted_names, to_sorted = np.unique(np.asarray(names).astype(str), return_inverse=True)
    sorted_codes = to_sorted.reshape(-1)[np.asarray(codes, np.int64)]
    used = np.flatnonzero(np.bincount(sorted_codes, minlength=sorted_names.size))
    renumber = np.zeros(sorted_names.size, np.int64)
    renumber[used] = np.arange(used.size)
    return pd.Categorical.from_codes(
        renumber[sorted_codes],  # type: ignore[arg-type]  # pandas-stubs: a sequence, not an array
        categories=pd.Index(sorted_names[used].astype(object)),
    )


def _counts(tid: np.ndarray, win: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(template ids, wins, totals) of a batch of trades."""
    ids, inv = np.unique(tid, return_inverse=True)
    return ids, np.bincount(inv, weights=win.astype(np.float64)).astype(np.int64), np.bincount(inv)


class CountTable(Mapping[int, dict[str, int]]):
    """A brain's table as a view over per-template count arrays: ``{template_id: {'wins', 'losses',
    'total'}}`` for the templates with at least one trade.

    ``template_ids`` (sorted), ``wins`` and ``totals`` are the replay engine's arrays, which its
    compiled loop gates on and updates in place: the brain reads and writes them, so the counts have
    one owner. A template outside ``template_ids`` cannot be recorded (``KeyError``).
    """

    def __init__(self, template_ids: np.ndarray, wins: np.ndarray, totals: np.ndarray) -> None:
        self.template_ids = np.asarray(template_ids, dtype=np.int64)
        self.wins = wins
        self.totals = totals

    def _pos(self, template_id: int) -> int:
        i = int(np.searchsorted(self.template_ids, int(template_id)))
        if i >= self.template_ids.size or self.template_ids[i] != int(template_id):
            return -1
        return i

    def __getitem__(self, template_id: int) -> dict[str, int]:
        i = self._pos(template_id)
        if i < 0 or self.totals[i] == 0:
            raise KeyError(template_id)
        w, n = int(self.wins[i]), int(self.totals[i])
        return {"wins": w, "losses": n - w, "total": n}

    def __iter__(self) -> Iterator[int]:
        return iter(self.template_ids[self.totals > 0].tolist())

    def __len__(self) -> int:
        return int((self.totals > 0).sum())

    def add(self, template_ids: np.ndarray, wins: np.ndarray, totals: np.ndarray) -> None:
        """Add per-template ``wins`` and ``totals`` to the arrays (``KeyError`` for an unknown id)."""
        pos = np.array([self._pos(t) for t in np.asarray(template_ids).tolist()], dtype=np.int64)
        if (pos < 0).any():
            raise KeyError(f"template(s) not in this brain's library: {template_ids[pos < 0]}")
        np.add.at(self.wins, pos, np.asarray(wins, np.int64))
        np.add.at(self.totals, pos, np.asarray(totals, np.int64))


@dataclass
class BayesianBrain:
    """Per-template outcome table ``{template_id: {'wins', 'losses', 'total'}}`` plus the trade history.

    A win is a trade with pnl > 0 dollars (net of costs); a zero-PnL trade counts as a loss, as in the
    original ``result='WIN' if pnl > 0 else 'LOSS'``.

    The history is kept as columns (:meth:`trades`, one :func:`trades_frame` row per trade): the
    forward pass records a session's trades at once with :meth:`record`, tens of thousands a year,
    and Phase 5 reads columns. ``trade_history`` (the original list of :class:`TradeOutcome`) is built
    from them on access; :meth:`update` (the original one-trade call) appends to it.

    ``table`` is a dict, or a :class:`CountTable` over the replay engine's count arrays (the brain the
    engine owns: its compiled loop and this API read and write the same counts).
    """

    table: dict[int, dict[str, int]] | CountTable = field(default_factory=dict)
    _chunks: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False)
    _pending: list[TradeOutcome] = field(default_factory=list, repr=False)
    _frame: pd.DataFrame | None = field(default=None, repr=False)
    _objects: list[TradeOutcome] | None = field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BayesianBrain):
            return NotImplemented
        return self.table == other.table and self.trades().equals(other.trades())

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

    def should_fire(
        self,
        template_id: int,
        min_prob: float = setting_default("min_prob"),
        min_conf: float = setting_default("min_conf"),
    ) -> bool:
        """True when probability >= min_prob and confidence >= min_conf.

        Defaults are the exploration-friendly Gate 2 settings (``EDGEFINDER_MIN_PROB``,
        ``EDGEFINDER_MIN_CONF``): an unseen template (0.0909) may trade, and keeps trading until
        enough losses push its probability under min_prob.
        """
        return (
            self.get_probability(template_id) >= min_prob
            and self.get_confidence(template_id) >= min_conf
        )

    def update(self, outcome: TradeOutcome) -> None:
        """Record one closed trade: its template's counts and the history."""
        self._count(
            np.array([int(outcome.template_id)]), np.array([int(outcome.pnl > 0)]), np.array([1])
        )
        self._pending.append(outcome)
        self._frame = self._objects = None

    def _count(self, tid: np.ndarray, wins: np.ndarray, totals: np.ndarray) -> None:
        if isinstance(self.table, CountTable):
            self.table.add(tid, wins, totals)
            return
        for t, w, n in zip(tid.tolist(), wins.tolist(), totals.tolist()):
            rec = self.table.setdefault(int(t), {"wins": 0, "losses": 0, "total": 0})
            rec["wins"] += int(w)
            rec["losses"] += int(n - w)
            rec["total"] += int(n)

    def record(
        self, trades: pd.DataFrame | Mapping[str, np.ndarray], *, counted: bool = False
    ) -> None:
        """Record many closed trades at once, in trade order: a :func:`trades_frame`-shaped frame, or the
        same columns as arrays (what the forward pass hands over per session). ``counted``: the
        table already holds them (the replay engine's loop counted them as it traded), so only the
        history grows."""
        cols = (
            {c: trades[c].to_numpy() for c in trades.columns}
            if isinstance(trades, pd.DataFrame)
            else dict(trades)
        )
        if not len(cols.get("pnl", ())):
            return
        self._flush()
        if not counted:
            win = np.asarray(cols["pnl"], np.float64) > 0
            self._count(*_counts(np.asarray(cols["template_id"], np.int64), win))
        self._chunks.append(cols)
        self._frame = self._objects = None

    def _flush(self) -> None:
        if self._pending:
            df = trades_frame(self._pending)
            self._chunks.append({c: df[c].to_numpy() for c in df.columns})
            self._pending = []

    def trades(self) -> pd.DataFrame:
        """Every recorded trade as one :func:`trades_frame` (trade order; forward-pass trades also carry
        ``row``, ``exit_row`` and ``side``)."""
        if self._frame is None:
            self._flush()
            chunks = [c for c in self._chunks if len(c.get("pnl", ()))]
            if not chunks:
                self._frame = trades_frame([])
            elif len(chunks) == 1 and isinstance(chunks[0], _FrameChunk):
                self._frame = chunks[0].frame
            elif len(chunks) == 1:  # as recorded: categorical columns stay categorical
                self._frame = _typed(pd.DataFrame(dict(chunks[0])))
            else:
                names = list(dict.fromkeys(n for c in chunks for n in c))
                self._frame = _typed(
                    pd.DataFrame({n: np.concatenate([_col(c, n) for c in chunks]) for n in names})
                )
                self._chunks = [_FrameChunk(self._frame)]
        return self._frame

    @property
    def trade_history(self) -> list[TradeOutcome]:
        """The original list of closed trades, in order (built from :meth:`trades`; read-only)."""
        if self._objects is None:
            self._objects = outcomes_from_frame(self.trades())
        return self._objects

    def stats(self) -> dict[str, int]:
        """Brain summary for the day report: templates seen, trades, templates with > 30 trades."""
        # the engine's arrays: read once per session, so without a dict per template
        if isinstance(self.table, CountTable):
            tot = self.table.totals
            return {
                "templates_seen": int((tot > 0).sum()),
                "trades": int(tot.sum()),
                "templates_over_30": int((tot > 30).sum()),
            }
        totals = [r["total"] for r in self.table.values()]
        return {
            "templates_seen": len(totals),
            "trades": int(sum(totals)),
            "templates_over_30": int(sum(t > 30 for t in totals)),
        }

    # -- persistence -------------------------------------------------------------------------------
    def to_payload(self, compacted: pd.DataFrame | None = None) -> dict[str, Any]:
        """Plain picklable payload (the table and the trades' columns; ``compacted``: :func:`compact` of
        :meth:`trades` when the caller has it already)."""
        return {
            "format": "edgefinder.brain/2",
            "table": {int(k): dict(v) for k, v in self.table.items()},
            "trades": compact(self.trades()) if compacted is None else compacted,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> BayesianBrain:
        if not isinstance(payload, dict) or payload.get("format") not in (
            "edgefinder.brain/1",
            "edgefinder.brain/2",
        ):
            raise BrainFileError("not an edgefinder brain payload")
        brain = cls(table={int(k): dict(v) for k, v in payload["table"].items()})
        if payload["format"] == "edgefinder.brain/1":  # a list of TradeOutcome objects
            df = trades_frame(payload["trade_history"])
            brain._chunks = [{c: df[c].to_numpy() for c in df.columns}]
        else:
            df = payload["trades"]
            brain._chunks = [
                {
                    c: (
                        df[c].astype(object)
                        if isinstance(df[c].dtype, pd.CategoricalDtype)
                        else df[c]
                    ).to_numpy()
                    for c in df.columns
                }
            ]
        return brain

    def save(self, path: str | Path, compacted: pd.DataFrame | None = None) -> Path:
        """Write the brain as a pickle atomically (temp file + rename: a kill never leaves half a file)."""
        return atomic_pickle(self.to_payload(compacted), path)

    @classmethod
    def load(cls, path: str | Path) -> BayesianBrain:
        path = Path(path)
        payload = read_pickle(path, BrainFileError, f"brain checkpoint not found: {path}")
        try:
            return cls.from_payload(payload)
        except BrainFileError as exc:
            raise BrainFileError(f"{path}: {exc}") from None
