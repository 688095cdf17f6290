"""Phase 4: the forward pass — replay every trading session with the playbook (seed 003, Task B).

For each CME session in time order: the fractal cascade from the top timeframe of the discovery
hierarchy down to the entry timeframe (15s) yields candidate patterns with their parent chains;
each gets the 11D vector of Phase 2.5, is scaled with the saved scaler and matched to the nearest
library centroid (scaled once). Three gates decide:

* Gate 1 — ``match_distance`` (scaled Euclidean distance to the nearest centroid) < 3.0;
* Gate 2 — ``brain.should_fire(template_id, min_prob, min_conf)``;
* Gate 3 — no open position (one position at a time).

A passing candidate opens a position through :class:`WaveRider` at its bar's close with the
template's exit parameters, in the direction the playbook used (ROCHE_SNAP fades z,
STRUCTURAL_DRIVE follows momentum); the position is managed bar by bar with the one exit simulator;
on exit a :class:`TradeOutcome` updates the brain. At the session end an open position is
force-closed (TIME) at the last bar's close, the regret analysis runs, a day summary is printed and
the session is checkpointed. The final block is the seed's; ``checkpoints/phase4_report.json`` holds
it (and, with ``train_until``, in-sample and out-of-sample figures apart).

**No look-ahead.** Physics states are causal, so they are computed once per timeframe over the whole
series. A parent pattern opens its child window at its bar's *close* and window merging never
back-dates a chain (``discovery.merge_windows``), so a candidate bar only sees parents whose bar
closed at or before the candidate bar opened. The entry fill is the candidate bar's close; exits are
judged from the next bar on. A session with no candidate never needs a later bar.

**Same hierarchy as discovery.** The timeframes come from the orchestrator's ``state.json`` (or the
caller); templates were learned with depths and roots of that hierarchy. The cascade is computed in
one vectorized pass over the whole series and sliced per session: a window opened by a parent in
one session may reach into the next, exactly as in discovery.

**Same physics thresholds as discovery.** ``snap_z``, ``snap_velocity``, ``drive_momentum`` and
``drive_coherence`` decide what a pattern is; Phase 2 records them in ``state.json`` and the cascade
uses the recorded ones (:func:`resolve_physics`). Thresholds asked for explicitly (flags,
``EDGEFINDER_*``) that differ from them are refused: the templates were learned from other patterns.

**Checkpoints and resume.** After each session an append-only journal
(``checkpoints/phase4_journal.bin``: length-prefixed, CRC-checked pickle records) receives that
session's trades and summary. A killed run replays the complete records (a torn last record is cut
off), rebuilds the brain and continues with the next session; the brain is a pure function of the
trades, so the final report equals an uninterrupted run's. Appending keeps checkpointing O(trades)
overall instead of rewriting a growing brain every day; ``brain.pkl`` is written at the end.

Units: prices in points, PnL in US dollars per contract net of commission and slippage, times in
epoch seconds UTC from bar timestamps, durations in seconds. Sharpe is per trade unless labelled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import struct
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import EdgefinderError
from edgefinder.markets import atlas
from edgefinder.jsonsafe import jsonable
from edgefinder.markets._io import read_pickle
from edgefinder.markets.brain import BayesianBrain, TradeOutcome, atomic_write_text, trades_frame
from edgefinder.markets.discovery import (
    CHILD_WINDOW_BARS,
    ROCHE_SNAP,
    STRUCTURAL_DRIVE,
    FractalDiscoveryAgent,
    PatternEvent,
    window_index,
)
from edgefinder.markets.instruments import Instrument, get_instrument
from edgefinder.markets.physics import (
    STATE_COLUMNS,
    THRESHOLDS,
    ZONE_NAMES,
    PhysicsConfig,
    ThreeBodyQuantumState,
    compute_state_arrays,
)
from edgefinder.markets.regret import BatchRegretAnalyzer, RegretConfig
from edgefinder.markets.wave_rider import WaveRider, ride
from edgefinder.stats.performance import max_drawdown, mean_pnl_test, sharpe

__all__ = [
    "ForwardConfig",
    "ForwardError",
    "ForwardResult",
    "FractalCascadeScanner",
    "Candidates",
    "candidate_features",
    "resolve_hierarchy",
    "resolve_physics",
    "run_forward_pass",
]

JOURNAL = "phase4_journal.bin"
REPORT = "phase4_report.json"
TRADES = "phase4_trades.parquet"
REGRET = "phase4_regret.parquet"
BRAIN = "brain.pkl"
#: files Phase 4 writes (``--fresh`` removes them)
PHASE4_FILES = (JOURNAL, REPORT, TRADES, REGRET, BRAIN)
_REC = struct.Struct("<QI")  # payload length, crc32


class ForwardError(EdgefinderError):
    """The forward pass cannot run (no playbook or scaler, entry timeframe missing, bad journal)."""


@dataclass(frozen=True)
class ForwardConfig:
    """Phase 4 settings (CLI flags of ``edgefinder markets run``).

    ``match_distance``: Gate 1, scaled 11D distance to the nearest centroid must be below it (3.0).
    ``min_prob`` / ``min_conf``: Gate 2 (``BayesianBrain.should_fire``); defaults are the original's
    exploration gates 0.05 / 0.0, so an unseen template (prob 1/11 = 0.09) can trade.
    ``entry_timeframe``: where positions are opened and managed (15s; the finest timeframe of the
    hierarchy when 15s is not in it). ``regret_lookahead_bars``: bars of the next timeframe up that
    the regret analysis looks past each exit. ``instrument``: symbol for costs and PnL.
    """

    match_distance: float = 3.0
    min_prob: float = 0.05
    min_conf: float = 0.0
    entry_timeframe: str = "15s"
    regret_lookahead_bars: int = 5
    instrument: str = "MNQ"


# --------------------------------------------------------------------------------------------
# hierarchy
# --------------------------------------------------------------------------------------------


def resolve_hierarchy(data_dir: str | Path, checkpoint_dir: str | Path | None,
                      timeframes: Sequence[str] | None = None) -> list[str]:
    """The discovery hierarchy: ``timeframes`` if given, else the one recorded in ``state.json``
    (``phases.discovery.timeframes``, or its scanned levels' timeframes), else every ATLAS timeframe."""
    agent = FractalDiscoveryAgent()
    if timeframes:
        return agent.resolve_timeframes(data_dir, list(timeframes))
    if checkpoint_dir is not None:
        try:
            state = json.loads((Path(checkpoint_dir) / "state.json").read_text())
            disc = state.get("phases", {}).get("discovery", {})
            tfs = disc.get("timeframes") or [lv["tf"] for lv in disc.get("levels", [])]
        except (FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
            tfs = None
        if tfs:
            present = atlas.available_timeframes(data_dir)
            top = atlas.DISCOVERY_ORDER.index(tfs[0])
            if "timeframes" not in disc:
                # Levels stop at the first empty one; the hierarchy continued with the finer
                # timeframes present (discovery's default), which the entry level may need.
                tfs = [tf for tf in atlas.DISCOVERY_ORDER[top:] if tf in present]
            return agent.resolve_timeframes(data_dir, tfs)
    return agent.resolve_timeframes(data_dir, None)


def _recorded_discovery(checkpoint_dir: Path) -> dict | None:
    """Phase 2's record in ``state.json`` (timeframes, train_until), or None without one."""
    try:
        state = json.loads((checkpoint_dir / "state.json").read_text())
        disc = state["phases"]["discovery"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return disc if isinstance(disc, dict) else None


def _recorded_train_until(checkpoint_dir: Path) -> int | None:
    """The ``train_until`` Phases 2–3 ran with (``state.json``), so that a forward pass on an existing
    playbook still reports in-sample and out-of-sample sessions apart."""
    disc = _recorded_discovery(checkpoint_dir) or {}
    try:
        v = disc.get("train_until")
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _fmt_epoch(t: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def check_against_training(checkpoint_dir: Path, train_until: int | None, hierarchy: Sequence[str]) -> None:
    """Refuse a forward pass that would mislabel its samples or match against the wrong hierarchy.

    Phases 2–3 recorded (``state.json``) the bars they learned from and the timeframe hierarchy.
    A session that fed the playbook must never be reported (and significance-tested in Phase 5)
    as out-of-sample, so an explicit ``train_until`` earlier than the training one — or any
    ``train_until`` when training used all data — is an error; a later one is allowed (it only
    labels more sessions in-sample). Templates carry depths and roots of their hierarchy, so the
    forward pass's hierarchy must be the recorded one. Without a record (a library from elsewhere)
    nothing is checked.
    """
    disc = _recorded_discovery(checkpoint_dir)
    if disc is None:
        return
    if train_until is not None and "train_until" in disc:
        rec = disc.get("train_until")
        if rec is None:
            raise ForwardError(
                f"--train-until {_fmt_epoch(train_until)}: Phases 2–3 in {checkpoint_dir} learned from all "
                "the data, so no session is out-of-sample; rerun them with --train-until (add --fresh) "
                "or drop --train-until")
        if int(train_until) < int(rec):
            raise ForwardError(
                f"--train-until {_fmt_epoch(train_until)} is earlier than the {_fmt_epoch(int(rec))} Phases 2–3 "
                f"in {checkpoint_dir} trained with: sessions that fed the playbook would count as "
                "out-of-sample; use the same date (or drop --train-until)")
    rec_tfs = disc.get("timeframes")
    if rec_tfs and list(rec_tfs) != list(hierarchy):
        raise ForwardError(
            f"--timeframes {','.join(hierarchy)} differs from the hierarchy Phases 2–3 in {checkpoint_dir} "
            f"learned the templates with ({','.join(rec_tfs)}); use the same (or drop --timeframes)")


def resolve_physics(checkpoint_dir: Path, requested: PhysicsConfig | Mapping[str, float] | None = None
                    ) -> PhysicsConfig:
    """The physics thresholds of the playbook in ``checkpoint_dir``: the ones Phase 2 recorded.

    ``requested``: thresholds the user asked for explicitly (a full ``PhysicsConfig``, or a mapping
    of only the ones given by flag or ``EDGEFINDER_*``); any that differs from the record is refused
    with a one-line :class:`ForwardError` (the templates were learned from the patterns the recorded
    thresholds found; other thresholds would feed them patterns of another kind). A discovery record
    without thresholds predates them being settings, so it ran with the defaults. Without any record
    (a library from elsewhere) the requested thresholds, else the defaults, are used.
    """
    req = dataclasses.asdict(requested) if isinstance(requested, PhysicsConfig) else dict(requested or {})
    disc = _recorded_discovery(Path(checkpoint_dir))
    if disc is None:
        return PhysicsConfig(**req)
    names = {f.name for f in dataclasses.fields(PhysicsConfig)}
    rec_doc = disc.get("physics")
    recorded = PhysicsConfig(**{k: v for k, v in rec_doc.items() if k in names}) \
        if isinstance(rec_doc, dict) else PhysicsConfig()
    bad = [k for k, v in req.items() if float(v) != float(getattr(recorded, k))]
    if bad:
        def flag(k: str) -> str:
            return f"--{k.replace('_', '-')} {req[k]:g}" if k in THRESHOLDS else f"{k} {req[k]:g}"

        asked = ", ".join(flag(k) for k in bad)
        had = ", ".join(f"{getattr(recorded, k):g}" for k in bad)
        raise ForwardError(
            f"{asked} differs from the {had} Phases 2–3 in {checkpoint_dir} found the playbook's patterns with "
            "(flag or EDGEFINDER_* setting); rerun them with it (`markets run` without --forward-pass, or add "
            "--fresh) or drop it")
    return recorded


def _entry_timeframe(hierarchy: list[str], wanted: str) -> str:
    if wanted in hierarchy:
        return wanted
    finer = [tf for tf in hierarchy if atlas.TIMEFRAMES[tf] >= atlas.TIMEFRAMES.get(wanted, 15)]
    return finer[-1] if finer else hierarchy[-1]


# --------------------------------------------------------------------------------------------
# cascade
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Level:
    """Patterns of one hierarchy level as column arrays (``parent``: index into the level above)."""

    tf: str
    rows: np.ndarray
    ts: np.ndarray
    is_roche: np.ndarray
    z: np.ndarray
    velocity: np.ndarray
    momentum: np.ndarray
    coherence: np.ndarray
    parent: np.ndarray
    root: np.ndarray  # index into level 0 (-1 at level 0)


@dataclass(frozen=True)
class Candidates:
    """Entry-timeframe patterns with their ancestry, as column arrays (one row per candidate)."""

    tf: str
    depth: int
    levels: tuple[_Level, ...] = field(repr=False)

    @property
    def entry(self) -> _Level:
        return self.levels[-1]

    def __len__(self) -> int:
        return 0 if self.depth >= len(self.levels) else int(self.entry.rows.size)

    def chain(self, i: int) -> list[dict]:
        """``parent_chain`` of candidate ``i`` (immediate parent first, root last), as discovery's."""
        out = []
        k = self.depth
        p = int(self.levels[k].parent[i])
        while k > 0 and p >= 0:
            lv = self.levels[k - 1]
            out.append({"tf": lv.tf, "type": ROCHE_SNAP if lv.is_roche[p] else STRUCTURAL_DRIVE,
                        "z": float(lv.z[p]), "mom": float(lv.momentum[p]), "coh": float(lv.coherence[p]),
                        "timestamp": float(lv.ts[p])})
            p = int(lv.parent[p])
            k -= 1
        return out

    def root_fields(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(root |z|, root_is_roche, has_root) per candidate."""
        n = len(self)
        if self.depth == 0 or n == 0:
            return np.zeros(n), np.zeros(n), np.zeros(n, bool)
        top = self.levels[0]
        r = self.entry.root
        return np.abs(top.z[r]), top.is_roche[r].astype(np.float64), np.ones(n, bool)

    def events(self, idx: Sequence[int] | None = None, states: Any = None) -> list[PatternEvent]:
        """PatternEvent objects for candidates ``idx`` (for tests and inspection; not the hot path).
        ``states``: the entry timeframe's state arrays or frame (for ``state`` and ``price``)."""
        lv = self.entry
        idx = range(len(self)) if idx is None else idx
        arrs = _as_arrays(states) if states is not None else None
        out = []
        for i in idx:
            chain = self.chain(int(i))
            st = state_at(arrs, int(lv.rows[i]), self.tf) if arrs is not None else None
            out.append(PatternEvent(
                pattern_type=ROCHE_SNAP if lv.is_roche[i] else STRUCTURAL_DRIVE, timestamp=float(lv.ts[i]),
                price=float("nan") if arrs is None else float(arrs["close"][int(lv.rows[i])]),
                z_score=float(lv.z[i]), velocity=float(lv.velocity[i]), momentum=float(lv.momentum[i]),
                coherence=float(lv.coherence[i]), file_source="", idx=int(lv.rows[i]), state=st,  # type: ignore[arg-type]
                timeframe=self.tf, depth=self.depth, parent_type=chain[0]["type"] if chain else "",
                parent_tf=chain[0]["tf"] if chain else "", parent_chain=chain))
        return out


#: One timeframe's bars and physics state columns as plain arrays (``QuantumFieldEngine`` columns,
#: ``lagrange_zone`` as ``zone_code``); building a DataFrame per timeframe costs more than the physics.
StateArrays = dict[str, np.ndarray]
_BAR_COLS = ("timestamp", "open", "high", "low", "close", "volume")


def state_arrays(bars: pd.DataFrame, config: PhysicsConfig | None = None) -> StateArrays:
    """Bars plus every physics column of ``compute_state_arrays`` (one vectorized pass)."""
    base = {c: bars[c].to_numpy() for c in _BAR_COLS}
    out: StateArrays = dict(base)
    out.update(compute_state_arrays(base["close"], base["volume"], config or PhysicsConfig()))
    return out


def _as_arrays(states: pd.DataFrame | StateArrays) -> StateArrays:
    if isinstance(states, pd.DataFrame):
        out = {c: states[c].to_numpy() for c in states.columns if c != "lagrange_zone"}
        if "lagrange_zone" in states.columns:
            codes = {name: k for k, name in enumerate(ZONE_NAMES.tolist())}
            out["zone_code"] = np.array([codes.get(z, 0) for z in states["lagrange_zone"].tolist()], np.int8)
        return out
    return states


def state_at(st: StateArrays, i: int, tf: str) -> ThreeBodyQuantumState:
    """The ThreeBodyQuantumState of row ``i`` (made only for a trade's entry bar)."""
    kw: dict[str, Any] = {c: float(st[c][i]) for c in _BAR_COLS[1:] + tuple(STATE_COLUMNS)}
    return ThreeBodyQuantumState(
        timestamp=int(st["timestamp"][i]), **kw, lagrange_zone=str(ZONE_NAMES[int(st["zone_code"][i])]),
        roche_snap=bool(st["roche_snap"][i]), structural_drive=bool(st["structural_drive"][i]),
        structure_ok=bool(st["structure_ok"][i]), valid=bool(st["valid"][i]), timeframe=tf)


def pattern_rows(st: StateArrays) -> tuple[np.ndarray, np.ndarray]:
    """Rows and ROCHE flags of every pattern, as ``FractalDiscoveryAgent.pattern_rows`` (a bar meeting
    both rules appears twice, ROCHE_SNAP first), on arrays."""
    valid = np.asarray(st["valid"], dtype=bool)
    r_rows = np.flatnonzero(np.asarray(st["roche_snap"], dtype=bool) & valid)
    d_rows = np.flatnonzero(np.asarray(st["structural_drive"], dtype=bool) & valid)
    rows = np.concatenate([r_rows, d_rows])
    is_roche = np.concatenate([np.ones(r_rows.size, bool), np.zeros(d_rows.size, bool)])
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), is_roche[order]


def _level_from_states(states: StateArrays, tf: str, rows: np.ndarray, is_roche: np.ndarray,
                       parent: np.ndarray, root: np.ndarray) -> _Level:
    def col(name: str) -> np.ndarray:
        return np.asarray(states[name], dtype=np.float64)[rows]

    return _Level(tf=tf, rows=rows, ts=np.asarray(states["timestamp"], dtype=np.float64)[rows],
                  is_roche=is_roche, z=col("z_score"), velocity=col("velocity"), momentum=col("momentum"),
                  coherence=col("coherence"), parent=parent, root=root)


class FractalCascadeScanner:
    """Discovery's top-down cascade, made actionable: entry-timeframe candidates with their chains.

    Wraps :class:`FractalDiscoveryAgent`'s pieces (``pattern_rows``, ``_merge_windows`` on 5-tuples,
    ``window_index``) over column arrays: the window tuples carry the parent pattern's index instead
    of a chain list, chains are rebuilt on demand, and no per-bar Python object is made. The
    patterns and chains equal those ``scan_atlas_topdown`` finds at the entry level on the same data.
    """

    def __init__(self, timeframes: Sequence[str], entry_timeframe: str = "15s",
                 physics: PhysicsConfig | None = None) -> None:
        tfs = [tf for tf in atlas.DISCOVERY_ORDER if tf in set(timeframes)]
        if not tfs:
            raise ForwardError("empty timeframe hierarchy")
        self.entry_timeframe = _entry_timeframe(tfs, entry_timeframe)
        self.timeframes = tfs[: tfs.index(self.entry_timeframe) + 1]
        self.physics = physics or PhysicsConfig()
        self.agent = FractalDiscoveryAgent(self.physics)
        self.states: dict[str, StateArrays] = {}

    def compute_states(self, data_dir: str | Path, end: Any = None) -> dict[str, StateArrays]:
        """Each level's states over its whole continuous series (causal, so look-ahead free)."""
        self.states = {}
        for tf in self.timeframes:
            bars = atlas.read_bars(data_dir, tf, None, end)
            self.states[tf] = state_arrays(bars, self.physics)
        return self.states

    def scan(self, states: dict[str, Any] | None = None) -> Candidates:
        """The cascade over the whole series: level 0 = every pattern of the top timeframe; level k =
        the patterns of timeframe k whose bar opens inside a merged window of level k-1.

        ``states``: per timeframe, state arrays or ``QuantumFieldEngine.compute_states`` frames."""
        states = states if states is not None else self.states
        levels: list[_Level] = []
        for k, tf in enumerate(self.timeframes):
            st = _as_arrays(states[tf])
            rows, is_roche = pattern_rows(st)
            if k == 0:
                lv = _level_from_states(st, tf, rows, is_roche, np.full(rows.size, -1, np.int64),
                                        np.full(rows.size, -1, np.int64))
            else:
                prev = levels[-1]
                ps = float(atlas.TIMEFRAMES[prev.tf])
                length = max(ps, CHILD_WINDOW_BARS * float(atlas.TIMEFRAMES[tf]))
                start = prev.ts + ps  # the parent is known when its bar closes
                types = np.where(prev.is_roche, ROCHE_SNAP, STRUCTURAL_DRIVE)
                windows = list(zip(start.tolist(), (start + length).tolist(), types.tolist(),
                                   [prev.tf] * prev.ts.size, range(prev.ts.size)))
                merged = self.agent._merge_windows(windows)
                if merged:
                    w_start = np.array([w[0] for w in merged])
                    w_end = np.array([w[1] for w in merged])
                    w_ref = np.array([w[4] for w in merged], dtype=np.int64)
                    ts = np.asarray(st["timestamp"], dtype=np.float64)[rows]
                    widx = window_index(ts, w_start, w_end)
                else:
                    widx = np.full(rows.size, -1, np.int64)
                    w_ref = np.zeros(0, np.int64)
                keep = widx >= 0
                parent = w_ref[widx[keep]] if keep.any() else np.zeros(0, np.int64)
                root = parent if k == 1 else prev.root[parent]
                lv = _level_from_states(st, tf, rows[keep], is_roche[keep], parent, root)
            levels.append(lv)
            if lv.rows.size == 0:
                break  # discovery stops at the first level with no patterns
        depth = len(self.timeframes) - 1
        if len(levels) < len(self.timeframes):  # the cascade died out above the entry level
            empty = np.zeros(0, np.int64)
            ef = np.zeros(0)
            while len(levels) < len(self.timeframes):
                levels.append(_Level(self.timeframes[len(levels)], empty, ef, np.zeros(0, bool), ef, ef, ef,
                                     ef, empty, empty))
        return Candidates(tf=self.entry_timeframe, depth=depth, levels=tuple(levels))


    def scan_session(self, session_date: Any, candidates: Candidates | None = None) -> np.ndarray:
        """Indices of the candidates (of ``candidates`` or a fresh :meth:`scan`) whose entry bar opens
        in the CME session ending on ``session_date``, in bar order — one session's cascade. Chains
        may reach back into earlier sessions (a window opened late yesterday still counts)."""
        c = candidates if candidates is not None else self.scan()
        lo, hi = atlas.session_bounds(session_date)
        ts = c.entry.ts
        return np.arange(np.searchsorted(ts, lo, "left"), np.searchsorted(ts, hi, "left"), dtype=np.int64)


def candidate_features(c: Candidates) -> np.ndarray:
    """The (N, 11) raw feature matrix of the candidates, identical to ``clustering.pattern_features``
    on the equivalent PatternEvents (vectorized)."""
    n = len(c)
    x = np.zeros((n, 11))
    if n == 0:
        return x
    lv = c.entry
    x[:, 0] = np.abs(lv.z)
    x[:, 1] = np.abs(lv.velocity)
    x[:, 2] = np.abs(lv.momentum)
    x[:, 3] = lv.coherence
    x[:, 4] = np.log2(float(atlas.TIMEFRAMES[c.tf]))
    x[:, 5] = c.depth
    if c.depth > 0:
        par = c.levels[c.depth - 1]
        p = lv.parent
        x[:, 6] = par.is_roche[p].astype(np.float64)
        x[:, 7] = np.abs(par.z[p])
        x[:, 8] = np.abs(par.momentum[p])
        rz, rr, _ = c.root_fields()
        x[:, 9] = rz
        x[:, 10] = rr
    return x


def candidate_sides(c: Candidates) -> np.ndarray:
    """+1 long / -1 short: ROCHE_SNAP fades z, STRUCTURAL_DRIVE follows momentum (as the playbook)."""
    lv = c.entry
    x = np.where(lv.is_roche, -lv.z, lv.momentum)
    return np.where(x > 0, 1, -1).astype(np.int64)


# --------------------------------------------------------------------------------------------
# journal (append-only checkpoint)
# --------------------------------------------------------------------------------------------


def _journal_append(path: Path | Any, record: dict) -> None:
    """Append one record (to a path, or to an open binary file kept for the whole loop)."""
    payload = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    blob = _REC.pack(len(payload), zlib.crc32(payload)) + payload
    if isinstance(path, Path):
        with path.open("ab") as fh:
            fh.write(blob)
        return
    # One write per record and a flush: after a SIGKILL the kernel still holds every flushed byte.
    path.write(blob)
    path.flush()


def _journal_read(path: Path) -> list[dict]:
    """Complete records of the journal; a torn or corrupt tail (a kill mid-write) is truncated away."""
    if not path.exists():
        return []
    data = path.read_bytes()
    out, pos = [], 0
    while pos + _REC.size <= len(data):
        n, crc = _REC.unpack_from(data, pos)
        body = data[pos + _REC.size: pos + _REC.size + n]
        if len(body) < n or zlib.crc32(body) != crc:
            break
        try:
            out.append(pickle.loads(body))
        except Exception:  # noqa: BLE001 - an unreadable record ends the valid prefix
            break
        pos += _REC.size + n
    if pos < len(data):
        with path.open("r+b") as fh:
            fh.truncate(pos)
    return out


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------------------------
# forward pass
# --------------------------------------------------------------------------------------------


@dataclass
class ForwardResult:
    """What :func:`run_forward_pass` produced: the report dict, the brain, the trades and regret
    frames, per-session records, and whether every session was processed (``complete``)."""

    report: dict
    brain: BayesianBrain
    trades: pd.DataFrame
    regret: pd.DataFrame
    sessions: list[dict]
    complete: bool
    seconds: float = 0.0
    bars: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per stage (not in the report)

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else float("nan")


_TRADE_KEYS = ("row", "template_id", "side", "signal_price", "entry_price", "exit_price", "pnl",
               "pnl_ticks", "mfe_ticks", "mae_ticks", "exit_reason", "entry_time", "exit_time",
               "exit_row", "pattern_type", "root_tf", "root_type", "match_distance", "chain")


def _load_library(checkpoint_dir: Path) -> dict[int, dict]:
    path = checkpoint_dir / "pattern_library.pkl"
    lib = read_pickle(path, ForwardError, f"no playbook at {path}: run `edgefinder markets run` (Phases 2–3) first")
    if not isinstance(lib, dict):
        raise ForwardError(f"{path} is not a pattern library dict")
    out = {}
    for k, v in lib.items():
        try:
            out[int(k)] = v
        except (TypeError, ValueError):
            continue  # metadata keys, if any
    return out


def _load_scaler(checkpoint_dir: Path) -> Any:
    path = checkpoint_dir / "clustering_scaler.pkl"
    return read_pickle(path, ForwardError, f"no scaler at {path}: run `edgefinder markets run` (Phase 2.5) first")


def _block(trades: pd.DataFrame, days: int, daily_pnl: np.ndarray, n_templates: int) -> dict:
    """The seed's final-block figures for one sample of sessions (JSON-ready)."""
    pnl = trades["pnl"].to_numpy(np.float64) if len(trades) else np.zeros(0)
    counts = trades["template_id"].value_counts() if len(trades) else pd.Series(dtype=np.int64)
    wins = int((pnl > 0).sum())
    daily = np.asarray(daily_pnl, dtype=np.float64)
    dsd = float(np.std(daily, ddof=1)) if daily.size > 1 else 0.0
    return {
        "days": int(days),
        "total_trades": int(pnl.size),
        "wins": wins,
        "losses": int(pnl.size - wins),
        "win_rate": float(wins / pnl.size) if pnl.size else 0.0,
        "total_pnl": float(pnl.sum()),
        "mean_pnl_per_trade": float(pnl.mean()) if pnl.size else 0.0,
        "p_value_mean_pnl_gt_0": float(mean_pnl_test(pnl)) if pnl.size else 1.0,
        "sharpe_per_trade": float(sharpe(pnl)) if pnl.size else 0.0,
        "sharpe_daily_annualized": float(daily.mean() / dsd * np.sqrt(252.0)) if dsd > 0 else 0.0,
        "max_drawdown": float(max_drawdown(pnl)) if pnl.size else 0.0,
        "templates_fired": int(counts.size),
        "templates_total": int(n_templates),
        "brain_coverage_over_30": int((counts > 30).sum()),
    }


def _print_block(console: Console, title: str, b: dict) -> None:
    console.print(f"\n[bold]=== {title} ===[/bold]")
    console.print(f"Days: {b['days']}")
    console.print(f"Total trades: {b['total_trades']:,}")
    console.print(f"Win rate: {b['win_rate']:.1%}")
    pnl = b["total_pnl"]
    console.print(f"Total PnL: {'-' if pnl < 0 else ''}${abs(pnl):,.2f}")
    console.print(f"Sharpe: {b['sharpe_per_trade']:.2f} (per trade; daily annualized "
                  f"{b['sharpe_daily_annualized']:.2f})")
    dd = b["max_drawdown"]
    console.print(f"Max drawdown: {'-' if dd < 0 else ''}${abs(dd):,.2f}")
    console.print(f"Templates fired: {b['templates_fired']}/{b['templates_total']}")
    console.print(f"Brain coverage: {b['brain_coverage_over_30']} templates with >30 trades")
    mean = b["mean_pnl_per_trade"]
    console.print(f"Mean PnL per trade: {'-' if mean < 0 else ''}${abs(mean):,.2f} "
                  f"(one-sided p for > 0: {b['p_value_mean_pnl_gt_0']:.3g})")


def _fingerprint(data_dir: Path, ckpt: Path, hierarchy: list[str], cfg: ForwardConfig,
                 train_until: int | None, regret_tf: str, physics: PhysicsConfig) -> str:
    files = []
    for tf in list(hierarchy) + [regret_tf]:
        for p in atlas.month_files(data_dir, tf):
            s = p.stat()
            files.append([tf, p.name, s.st_size, s.st_mtime_ns])
    doc = {"files": files, "hierarchy": hierarchy, "config": dataclasses.asdict(cfg),
           "train_until": train_until, "library": _file_digest(ckpt / "pattern_library.pkl"),
           "scaler": _file_digest(ckpt / "clustering_scaler.pkl"), "physics": dataclasses.asdict(physics)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


def _session_ids_sorted(ts: np.ndarray) -> np.ndarray:
    """``atlas.session_ids`` for sorted timestamps, evaluated once per distinct UTC hour (sessions
    change only on whole Chicago hours, and Chicago's UTC offset is whole hours)."""
    h = ts // 3600
    first = np.concatenate(([0], np.flatnonzero(np.diff(h)) + 1))
    sid_h = atlas.session_ids(h[first] * 3600)
    return np.repeat(sid_h, np.diff(np.append(first, ts.size)))


def _regret_timeframe(data_dir: Path, entry_tf: str) -> str:
    """The next timeframe up from the entry timeframe that the ATLAS holds (the entry tf if none)."""
    present = set(atlas.available_timeframes(data_dir))
    up = sorted((tf for tf in present if atlas.TIMEFRAMES[tf] > atlas.TIMEFRAMES[entry_tf]),
                key=lambda tf: atlas.TIMEFRAMES[tf])
    return up[0] if up else entry_tf


def run_forward_pass(
    data_dir: str | Path,
    checkpoint_dir: str | Path,
    config: ForwardConfig | None = None,
    train_until: Any = None,
    *,
    timeframes: Sequence[str] | None = None,
    console: Console | None = None,
    fresh: bool = False,
    max_sessions: int | None = None,
    on_session: Callable[[int, dict], None] | None = None,
    day_lines: bool = True,
    physics: PhysicsConfig | Mapping[str, float] | None = None,
) -> ForwardResult:
    """Phase 4 (Task B) over every session of the ATLAS at ``data_dir``; see the module doc.

    Args:
        data_dir: ATLAS root. checkpoint_dir: holds the Phase 2–3 artifacts; Phase 4 writes
            ``phase4_journal.bin``, ``brain.pkl``, ``phase4_trades.parquet``, ``phase4_regret.parquet``
            and ``phase4_report.json`` there.
        config: gates and entry timeframe (:class:`ForwardConfig`).
        train_until: sessions starting at or after it are out-of-sample (same meaning as the
            orchestrator's ``--train-until``; a session straddling it counts as in-sample). Default:
            the value Phases 2–3 recorded in ``state.json``, if any.
        timeframes: the hierarchy; default: the one discovery used (``state.json``).
        console: Rich console for day lines and the final block (None: silent).
        fresh: ignore (delete) an existing journal. Otherwise a journal with the same inputs
            fingerprint is resumed from its last complete session.
        max_sessions: stop after processing this many sessions in this call (the journal keeps them;
            a later call resumes). ``on_session(index, record)`` is called after each checkpoint.
        day_lines: print one summary line per session (the seed's day summary).
        physics: thresholds the caller asked for explicitly (``PhysicsConfig`` or a mapping of
            some of them); the cascade uses the ones Phase 2 recorded and refuses differing ones
            (:func:`resolve_physics`). None: the recorded ones.
    """
    from edgefinder.markets.orchestrator import resolve_train_until

    t_start = time.perf_counter()
    cfg = config or ForwardConfig()
    data_dir, ckpt = Path(data_dir), Path(checkpoint_dir)
    if not data_dir.is_dir():
        raise ForwardError(f"data directory not found: {data_dir}")
    ckpt.mkdir(parents=True, exist_ok=True)
    inst: Instrument = get_instrument(cfg.instrument)
    t_until = resolve_train_until(train_until)
    if t_until is None:
        t_until = _recorded_train_until(ckpt)

    library = _load_library(ckpt)
    scaler = _load_scaler(ckpt)
    template_ids = np.array(sorted(library), dtype=np.int64)
    if template_ids.size and scaler is not None:
        centroids = np.array([np.asarray(library[t]["centroid"], dtype=np.float64) for t in template_ids])
        centroids_scaled = scaler.transform(centroids)  # scaled once
    else:
        centroids_scaled = np.zeros((0, 11))
    params = {int(t): library[int(t)].get("params", {}) for t in template_ids}

    timings: dict[str, float] = {}
    t_mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t_mark
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - t_mark
        t_mark = now

    lap("load")
    hierarchy = resolve_hierarchy(data_dir, ckpt, timeframes)
    check_against_training(ckpt, t_until, hierarchy)
    phys = resolve_physics(ckpt, physics)
    scanner = FractalCascadeScanner(hierarchy, cfg.entry_timeframe, phys)
    entry_tf = scanner.entry_timeframe
    entry_s = float(atlas.TIMEFRAMES[entry_tf])
    regret_tf = _regret_timeframe(data_dir, entry_tf)

    # ---- precompute: states per level, the cascade, features, nearest template (all vectorized)
    states = scanner.compute_states(data_dir)
    lap("read_and_states")
    cand = scanner.scan(states)
    est = states[entry_tf]
    ts = np.asarray(est["timestamp"], dtype=np.int64)
    ts_f = ts.astype(np.float64)
    high = np.asarray(est["high"], dtype=np.float64)
    low = np.asarray(est["low"], dtype=np.float64)
    close = np.asarray(est["close"], dtype=np.float64)
    n_bars = int(ts.size)
    x = candidate_features(cand)
    if len(cand) and centroids_scaled.shape[0]:
        from edgefinder.markets.clustering import nearest_template

        nidx, dist = nearest_template(scaler.transform(x), centroids_scaled)
        c_tid = template_ids[nidx]
    else:
        dist = np.full(len(cand), np.inf)
        c_tid = np.full(len(cand), -1, np.int64)
    c_rows = cand.entry.rows
    c_side = candidate_sides(cand) if len(cand) else np.zeros(0, np.int64)
    g1 = np.flatnonzero(dist < cfg.match_distance)
    g1_rows = c_rows[g1]
    root_tf = np.array([""] * len(cand), dtype=object)
    root_type = np.array([""] * len(cand), dtype=object)
    if cand.depth > 0 and len(cand):
        top = cand.levels[0]
        root_tf[:] = top.tf
        root_type[:] = np.where(top.is_roche[cand.entry.root], ROCHE_SNAP, STRUCTURAL_DRIVE)

    lap("cascade_and_match")
    # ---- sessions of the entry timeframe
    if n_bars:
        sid = _session_ids_sorted(ts)
        brk = np.flatnonzero(sid[1:] != sid[:-1]) + 1
        s_start = np.concatenate(([0], brk)).astype(np.int64)
        s_end = np.concatenate((brk - 1, [n_bars - 1])).astype(np.int64)
        s_label = sid[s_start]
    else:
        s_start = s_end = np.zeros(0, np.int64)
        s_label = np.zeros(0, "datetime64[D]")
    n_sessions = int(s_start.size)
    s_oos = (ts[s_start] >= t_until) if t_until is not None else np.zeros(n_sessions, bool)

    # ---- regret bars (next timeframe up), read once
    if regret_tf in states:  # already read for the cascade
        rst = states[regret_tf]
        rbars = pd.DataFrame({"timestamp": rst["timestamp"], "high": rst["high"], "low": rst["low"]})
    else:
        rbars = atlas.read_bars(data_dir, regret_tf)
    r_ts = rbars["timestamp"].to_numpy(np.float64)  # float: searchsorted with float keys would convert it per call
    r_hi = rbars["high"].to_numpy(np.float64)
    r_lo = rbars["low"].to_numpy(np.float64)
    r_s = float(atlas.TIMEFRAMES[regret_tf])
    analyzer = BatchRegretAnalyzer(inst, RegretConfig(lookahead_bars=cfg.regret_lookahead_bars), int(r_s))

    # ---- resume from the journal
    fp = _fingerprint(data_dir, ckpt, scanner.timeframes, cfg, t_until, regret_tf, phys)
    jpath = ckpt / JOURNAL
    if fresh:
        for name in PHASE4_FILES:
            (ckpt / name).unlink(missing_ok=True)
    records = _journal_read(jpath)
    if records and (records[0].get("kind") != "header" or records[0].get("fingerprint") != fp):
        jpath.unlink()  # inputs changed: the old journal describes another run
        records = []
    if not records:
        _journal_append(jpath, {"kind": "header", "fingerprint": fp, "sessions": n_sessions})
    sessions_done = [r for r in records[1:] if r.get("kind") == "session"]
    for k, r in enumerate(sessions_done):
        if r["index"] != k:
            raise ForwardError(f"journal {jpath} is out of order at session {k}; rerun with --fresh")

    brain = BayesianBrain()
    trades: list[TradeOutcome] = []
    day_records: list[dict] = []
    gates = {"candidates": int(len(cand)), "gate1_pass": int(g1.size), "gate2_reject": 0,
             "gate3_blocked": 0, "no_forward_bar": 0}

    # Entry states are built only for trades (one object per position), from a small matrix of the
    # Gate-1 candidates' rows rather than from the 15s columns one scalar at a time.
    state_cols = _BAR_COLS[1:] + tuple(STATE_COLUMNS)
    g1_state = np.column_stack([np.asarray(est[c], dtype=np.float64)[g1_rows] for c in state_cols]) \
        if g1_rows.size else np.zeros((0, len(state_cols)))

    def fast_state(i: int, r: int) -> ThreeBodyQuantumState:
        return ThreeBodyQuantumState(
            int(ts[r]), *g1_state[i].tolist(), str(ZONE_NAMES[int(est["zone_code"][r])]),
            bool(est["roche_snap"][r]), bool(est["structural_drive"][r]), bool(est["structure_ok"][r]),
            bool(est["valid"][r]), entry_tf)

    def make_outcome(t: dict, oos: bool, session: str, st: ThreeBodyQuantumState | None = None) -> TradeOutcome:
        st = st if st is not None else state_at(est, int(t["row"]), entry_tf)
        return TradeOutcome(
            state=st, entry_price=t["entry_price"], exit_price=t["exit_price"], pnl=t["pnl"],
            result="WIN" if t["pnl"] > 0 else "LOSS", timestamp=t["exit_time"], exit_reason=t["exit_reason"],
            entry_time=t["entry_time"], exit_time=t["exit_time"], duration=t["exit_time"] - t["entry_time"],
            direction="LONG" if t["side"] > 0 else "SHORT", template_id=int(t["template_id"]),
            pnl_ticks=t["pnl_ticks"], mfe_ticks=t["mfe_ticks"], mae_ticks=t["mae_ticks"], session=session,
            pattern_type=t["pattern_type"], root_tf=t["root_tf"], root_type=t["root_type"],
            chain=t["chain"], match_distance=t["match_distance"], out_of_sample=oos)

    for r in sessions_done:  # replay: the brain is a pure function of the trades, in order
        for t in r["trades"]:
            o = make_outcome(t, r["day"]["out_of_sample"], r["day"]["session"])
            brain.update(o)
            trades.append(o)
        day_records.append(r["day"])
        for key in ("gate2_reject", "gate3_blocked", "no_forward_bar"):
            gates[key] += r["gates"][key]

    lap("sessions_setup_and_resume")
    rider = WaveRider(inst, bar_seconds=entry_s)
    g1_lo = np.searchsorted(g1_rows, s_start, "left")  # each session's slice of the Gate-1 candidates
    g1_hi = np.searchsorted(g1_rows, s_end, "right")
    journal = jpath.open("ab")
    first = len(sessions_done)
    stop_at = n_sessions if max_sessions is None else min(n_sessions, first + int(max_sessions))
    progress = None
    if console is not None and console.is_terminal:
        from rich.progress import Progress

        progress = Progress(console=console, transient=True)
        progress.start()
        task = progress.add_task("Phase 4 — forward pass", total=n_sessions, completed=first)
    try:
        for k in range(first, stop_at):
            a, b = int(s_start[k]), int(s_end[k])
            lo, hi = int(g1_lo[k]), int(g1_hi[k])
            oos = bool(s_oos[k])
            label = str(s_label[k])
            next_free = a
            day_t: list[dict] = []
            sg = {"gate2_reject": 0, "gate3_blocked": 0, "no_forward_bar": 0}
            for i in range(lo, hi):
                c = int(g1[i])
                r = int(c_rows[c])
                if r < next_free:  # Gate 3: the position opened earlier is still open at this bar
                    sg["gate3_blocked"] += 1
                    continue
                if r >= b:  # the session's last bar: no bar left to manage a position on
                    sg["no_forward_bar"] += 1
                    continue
                tid = int(c_tid[c])
                if not brain.should_fire(tid, cfg.min_prob, cfg.min_conf):  # Gate 2
                    sg["gate2_reject"] += 1
                    continue
                p = params[tid]
                side = int(c_side[c])
                rider.open_position(
                    close[r], side, None, float(p.get("stop_loss_ticks", 15)),
                    take_profit_ticks=p.get("take_profit_ticks"),
                    trailing_stop_ticks=p.get("trailing_stop_ticks"),
                    max_hold_seconds=p.get("max_hold_seconds"), entry_time=ts_f[r] + entry_s,
                    template_id=tid)
                j, res = ride(rider, ts_f, high, low, close, r + 1, b)
                t = {"row": r, "template_id": tid, "side": side, "signal_price": float(close[r]),
                     "entry_price": res["entry_price"], "exit_price": res["exit_price"], "pnl": res["pnl"],
                     "pnl_ticks": res["pnl_ticks"], "mfe_ticks": res["mfe_ticks"], "mae_ticks": res["mae_ticks"],
                     "exit_reason": res["exit_reason"], "entry_time": res["entry_time"],
                     "exit_time": res["exit_time"], "exit_row": j,
                     "pattern_type": ROCHE_SNAP if cand.entry.is_roche[c] else STRUCTURAL_DRIVE,
                     "root_tf": root_tf[c], "root_type": root_type[c], "match_distance": float(dist[c]),
                     "chain": tuple((e["tf"], e["type"]) for e in cand.chain(c))}
                o = make_outcome(t, oos, label, fast_state(i, r))
                brain.update(o)
                trades.append(o)
                day_t.append(t)
                next_free = j  # the exit happened inside bar j: a candidate at j's close may enter
            pnl = [t["pnl"] for t in day_t]
            wins = sum(1 for v in pnl if v > 0)
            eff = float("nan")
            if day_t:  # the session's regret analysis (arrays only; the full table is built at the end)
                et = np.array([t["entry_time"] for t in day_t])
                xt = np.array([t["exit_time"] for t in day_t])
                i0, i1 = np.searchsorted(r_ts, [et.min() - r_s, xt.max() + (cfg.regret_lookahead_bars + 1) * r_s])
                m = analyzer.analyze_arrays(
                    np.array([t["side"] for t in day_t]), et, xt, np.array([t["entry_price"] for t in day_t]),
                    np.array([t["exit_price"] for t in day_t]), r_ts[i0:i1], r_hi[i0:i1], r_lo[i0:i1])
                eff = float(m["exit_efficiency"].mean())
            bs = brain.stats()
            day = {"index": k, "session": label, "out_of_sample": oos, "trades": len(day_t), "wins": wins,
                   "losses": len(day_t) - wins, "pnl": float(sum(pnl)), "avg_exit_efficiency": eff,
                   "brain_templates": bs["templates_seen"], "brain_trades": bs["trades"]}
            rec = {"kind": "session", "index": k, "day": day, "trades": day_t, "gates": sg}
            _journal_append(journal, rec)
            for key, v in sg.items():
                gates[key] += v
            day_records.append(day)
            if console is not None and day_lines:
                sample = "OOS" if oos else "IS "
                effs = f"{eff:.0%}" if np.isfinite(eff) else "—"
                console.print(f"[dim]{label} {sample}[/dim] trades {len(day_t):3d}  W {wins:3d}  "
                              f"L {len(day_t) - wins:3d}  PnL {'-' if sum(pnl) < 0 else ' '}${abs(sum(pnl)):9,.2f}  "
                              f"exit eff {effs:>4}  brain {bs['templates_seen']} templates / {bs['trades']} trades",
                              soft_wrap=True)  # one line per session, also in a log file (80 columns)
            if progress is not None:
                progress.update(task, advance=1)
            if on_session is not None:
                on_session(k, day)
    finally:
        journal.close()
        if progress is not None:
            progress.stop()

    lap("sessions")
    complete = len(day_records) == n_sessions
    tdf = trades_frame(trades)
    if len(tdf):
        tdf["chain"] = [" < ".join(f"{tf} {ty}" for tf, ty in t.chain) for t in trades]
    # Regret over every trade at once (the same figures as the per-session runs: lookahead windows
    # never cross the daily break).
    regret = analyzer.batch_analyze_day(tdf, rbars).markers if len(tdf) else \
        analyzer.batch_analyze_day([], rbars).markers
    brain.save(ckpt / BRAIN)
    tdf.to_parquet(ckpt / TRADES, index=False)
    regret.to_parquet(ckpt / REGRET, index=False)

    days = pd.DataFrame(day_records)
    report: dict[str, Any] = {
        "purpose": PURPOSE, "disclaimer": DISCLAIMER, "complete": complete,
        "sessions_total": n_sessions, "sessions_processed": len(day_records),
        "entry_timeframe": entry_tf, "timeframes": scanner.timeframes, "regret_timeframe": regret_tf,
        "train_until": t_until, "config": dataclasses.asdict(cfg), "instrument": dataclasses.asdict(inst),
        "physics": dataclasses.asdict(phys), "bars_entry_timeframe": n_bars, "gates": gates,
        "units": {"pnl": "dollars per contract, net of commission and slippage",
                  "sharpe_per_trade": "mean/std of trade PnL", "times": "epoch seconds (bar time)"},
    }
    n_t = int(template_ids.size)
    daily = days["pnl"].to_numpy(np.float64) if len(days) else np.zeros(0)
    report["all"] = _block(tdf, len(days), daily, n_t)
    if t_until is not None:
        is_d = ~days["out_of_sample"].to_numpy(bool) if len(days) else np.zeros(0, bool)
        is_t = ~tdf["out_of_sample"].to_numpy(bool) if len(tdf) else np.zeros(0, bool)
        report["in_sample"] = _block(tdf[is_t], int(is_d.sum()), daily[is_d], n_t)
        report["out_of_sample"] = _block(tdf[~is_t], int((~is_d).sum()), daily[~is_d], n_t)
    if len(regret):
        counts = regret["regret_type"].value_counts()
        report["regret"] = {"avg_exit_efficiency": float(regret["exit_efficiency"].mean()),
                            **{k: int(counts.get(k, 0)) for k in ("optimal", "closed_too_early", "closed_too_late")},
                            "left_on_table": float(regret["left_on_table"].sum()),
                            "gave_back": float(regret["gave_back"].sum())}
    report["sessions"] = day_records
    atomic_write_text(json.dumps(jsonable(report), indent=2, sort_keys=True), ckpt / REPORT)

    lap("finalize")
    seconds = time.perf_counter() - t_start
    if console is not None:
        title = "Phase 4 Forward Pass Complete" if complete else \
            f"Phase 4 Forward Pass — stopped after {len(day_records)}/{n_sessions} sessions (resumable)"
        _print_block(console, title, report["all"])
        if t_until is not None:
            _print_block(console, "In-sample sessions", report["in_sample"])
            _print_block(console, "Out-of-sample sessions", report["out_of_sample"])
        g = gates
        console.print(f"\nGates: {g['candidates']:,} candidates at {entry_tf}; Gate 1 (distance < "
                      f"{cfg.match_distance}) passed {g['gate1_pass']:,}; Gate 2 rejected {g['gate2_reject']:,}; "
                      f"Gate 3 blocked {g['gate3_blocked']:,}")
        console.print(f"Throughput: {n_bars / seconds:,.0f} {entry_tf} bars/s ({seconds:.2f} s)")
        console.print(f"Report: {ckpt / REPORT}")
    return ForwardResult(report=report, brain=brain, trades=tdf, regret=regret, sessions=day_records,
                         complete=complete, seconds=seconds, bars=n_bars, timings=timings)
