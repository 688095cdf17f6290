"""The checkpoint directory: its file names, ``state.json``, and what each phase recorded there.

One module owns the checkpoint state so that every phase reads it the same way: the orchestrator
writes ``state.json`` (Phases 2–3, and Phase 4's sample boundaries), the forward pass, strategy
selection and paper trading read it through :func:`training_record` and :func:`forward_record`.

``state.json`` layout (``version`` 1)::

    {"version": 1, "phases": {
        "discovery":  {"key", "timeframes", "train_until", "physics", "cascade", "levels",
                       "data", ...},
        "clustering": {"key", "templates", ...},
        "playbook":   {"key", "library_templates", "instrument", ...},
        "forward":    {"first_session", "last_session", "forward_until", "train_until", ...}}}

``train_until`` / ``forward_until`` are epoch seconds (exclusive bounds on bar open times) or null.
``data`` is the :func:`data_fingerprint` of the bars Phases 2–3 learned from: every later command
given an ATLAS checks it (:func:`check_dataset`), so a playbook is never replayed, judged or
approved on data it was not built from. ``instrument`` is the symbol whose costs Phase 3 optimised
the exits for (:func:`check_instrument`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefinder.errors import EdgefinderError
from edgefinder.markets import atlas
from edgefinder.markets._io import atomic_write_text, read_pickle
from edgefinder.markets.physics import PhysicsConfig

__all__ = [
    "BRAIN",
    "CHECKPOINT_FILES",
    "FORWARD_FILES",
    "JOURNAL",
    "LIBRARY",
    "MANIFEST",
    "PAPER_REPORT",
    "PAPER_TRADES",
    "PHASE_FILES",
    "PLAYBOOK_JSON",
    "PLAYBOOK_PKL",
    "REGRET",
    "REPORT",
    "SCALER",
    "SELECTION_ANCESTRY_CSV",
    "SELECTION_CSV",
    "SELECTION_FAMILIES_CSV",
    "STATE",
    "TEMPLATES",
    "TRADES",
    "CheckpointError",
    "ForwardRecord",
    "TrainingRecord",
    "check_dataset",
    "check_instrument",
    "data_fingerprint",
    "file_digest",
    "files_fingerprint",
    "forward_record",
    "load_library",
    "load_scaler",
    "read_state",
    "recorded_instrument",
    "training_record",
    "write_state",
]

STATE = "state.json"
STATE_VERSION = 1
MANIFEST = "manifest.parquet"
TEMPLATES = "templates.pkl"
SCALER = "clustering_scaler.pkl"
LIBRARY = "pattern_library.pkl"
LIBRARY_JSON = "pattern_library.json"
JOURNAL = "phase4_journal.bin"
REPORT = "phase4_report.json"
TRADES = "phase4_trades.parquet"
REGRET = "phase4_regret.parquet"
BRAIN = "brain.pkl"
PLAYBOOK_PKL = "production_playbook.pkl"
PLAYBOOK_JSON = "production_playbook.json"
SELECTION_CSV = "phase5_templates.csv"
SELECTION_FAMILIES_CSV = "phase5_families.csv"
SELECTION_ANCESTRY_CSV = "phase5_ancestry.csv"
PAPER_REPORT = "paper_trade_report.json"
PAPER_TRADES = "paper_trade_trades.parquet"

#: Files each of Phases 2, 2.5 and 3 writes.
PHASE_FILES: dict[str, tuple[str, ...]] = {
    "discovery": (MANIFEST,),
    "clustering": (TEMPLATES, SCALER),
    "playbook": (LIBRARY, LIBRARY_JSON),
}
#: Files Phase 4 writes (a fresh forward pass removes them).
FORWARD_FILES: tuple[str, ...] = (JOURNAL, REPORT, TRADES, REGRET, BRAIN)
#: Every file ``--fresh`` removes.
CHECKPOINT_FILES: tuple[str, ...] = (
    *(f for fs in PHASE_FILES.values() for f in fs),
    STATE,
    *FORWARD_FILES,
    PLAYBOOK_PKL,
    PLAYBOOK_JSON,
    SELECTION_CSV,
    SELECTION_FAMILIES_CSV,
    SELECTION_ANCESTRY_CSV,
    PAPER_REPORT,
    PAPER_TRADES,
)


class CheckpointError(EdgefinderError):
    """A checkpoint file is missing or unreadable."""


def read_state(checkpoint_dir: str | Path) -> dict:
    """``state.json`` of ``checkpoint_dir``; an empty state when missing, unreadable or of another version."""
    try:
        state = json.loads((Path(checkpoint_dir) / STATE).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {"version": STATE_VERSION, "phases": {}}
    if (
        not isinstance(state, dict)
        or state.get("version") != STATE_VERSION
        or not isinstance(state.get("phases"), dict)
    ):
        return {"version": STATE_VERSION, "phases": {}}
    return state


def write_state(checkpoint_dir: str | Path, state: dict) -> None:
    """Write ``state.json`` atomically."""
    atomic_write_text(json.dumps(state, indent=2), Path(checkpoint_dir) / STATE)


def _epoch_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class TrainingRecord:
    """What Phases 2–3 learned from (``state.json``'s discovery phase).

    ``timeframes``: the hierarchy (None when an old record lacks it; ``levels_tfs`` then lists the
    levels it scanned). ``train_until``: exclusive end of the training bars (epoch s) or None for all
    data; ``has_train_until`` says whether the record states it at all. ``physics``: the pattern
    thresholds. ``cascade``: ``context`` or ``strict``.
    """

    timeframes: tuple[str, ...] | None
    levels_tfs: tuple[str, ...]
    train_until: int | None
    has_train_until: bool
    physics: PhysicsConfig
    physics_recorded: bool
    cascade: str


def training_record(checkpoint_dir: str | Path) -> TrainingRecord | None:
    """The discovery phase's record, or None without one (a library made elsewhere)."""
    disc = read_state(checkpoint_dir)["phases"].get("discovery")
    if not isinstance(disc, dict):
        return None
    names = {f.name for f in dataclasses.fields(PhysicsConfig)}
    phys_doc = disc.get("physics")
    physics = (
        PhysicsConfig(**{k: v for k, v in phys_doc.items() if k in names})
        if isinstance(phys_doc, dict)
        else PhysicsConfig()
    )
    tfs = disc.get("timeframes")
    levels = [tf for lv in disc.get("levels", []) if isinstance(lv, dict) and (tf := lv.get("tf"))]
    return TrainingRecord(
        timeframes=tuple(tfs) if tfs else None,
        levels_tfs=tuple(levels),
        train_until=_epoch_or_none(disc.get("train_until")),
        has_train_until="train_until" in disc,
        physics=physics,
        physics_recorded=isinstance(phys_doc, dict),
        # records written before the context cascade existed describe the strict funnel
        cascade=str(disc.get("cascade", "strict")),
    )


@dataclass(frozen=True)
class ForwardRecord:
    """The sessions Phase 4 replayed (``state.json``'s forward phase): ISO session dates, bounds in epoch s."""

    first_session: str | None
    last_session: str | None
    train_until: int | None
    forward_until: int | None
    sessions: int


def forward_record(checkpoint_dir: str | Path) -> ForwardRecord | None:
    """Phase 4's record, or None when no forward pass ran."""
    fwd = read_state(checkpoint_dir)["phases"].get("forward")
    if not isinstance(fwd, dict):
        return None
    return ForwardRecord(
        first_session=fwd.get("first_session"),
        last_session=fwd.get("last_session"),
        train_until=_epoch_or_none(fwd.get("train_until")),
        forward_until=_epoch_or_none(fwd.get("forward_until")),
        sessions=int(fwd.get("sessions", 0) or 0),
    )


def record_forward(checkpoint_dir: str | Path, record: ForwardRecord) -> None:
    """Store Phase 4's sample boundaries in ``state.json`` (read by paper trading's overlap guard)."""
    state = read_state(checkpoint_dir)
    state["phases"]["forward"] = dataclasses.asdict(record)
    write_state(checkpoint_dir, state)


def load_library(
    checkpoint_dir: str | Path, error: type[Exception] = CheckpointError
) -> dict[int, dict]:
    """``pattern_library.pkl`` as ``{template_id: entry}`` (non-integer keys, if any, left out)."""
    path = Path(checkpoint_dir) / LIBRARY
    lib = read_pickle(
        path, error, f"no playbook at {path}: run `edgefinder markets run` (Phases 2–3) first"
    )
    if not isinstance(lib, dict):
        raise error(f"{path} is not a pattern library dict")
    out: dict[int, dict] = {}
    for k, v in lib.items():
        try:
            out[int(k)] = v
        except (TypeError, ValueError):
            continue
    return out


def load_scaler(checkpoint_dir: str | Path, error: type[Exception] = CheckpointError) -> Any:
    """The Phase 2.5 ``StandardScaler`` (None when clustering found no patterns)."""
    path = Path(checkpoint_dir) / SCALER
    return read_pickle(
        path, error, f"no scaler at {path}: run `edgefinder markets run` (Phase 2.5) first"
    )


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of the file's SHA-256 ("" when it does not exist)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return ""


def files_fingerprint(data_dir: str | Path, timeframes: Sequence[str]) -> list[list[Any]]:
    """``[tf, name, size, mtime_ns]`` of every ATLAS month file of ``timeframes`` (a changed file
    changes the fingerprint of every phase that read it)."""
    files: list[list[Any]] = []
    for tf in dict.fromkeys(timeframes):
        for p in atlas.month_files(data_dir, tf):
            st = p.stat()
            files.append([tf, p.name, st.st_size, st.st_mtime_ns])
    return files


def data_fingerprint(data_dir: str | Path, timeframe: str, end: int | None) -> dict[str, Any]:
    """What identifies the data Phases 2–3 learned from: the bars of ``timeframe`` (the coarsest of
    the hierarchy) opening before ``end`` (epoch s; None = all, then recorded as the last bar's end).

    Returns ``{"timeframe", "end", "bars", "sha256"}``: a content hash of timestamps and OHLCV, so
    an ATLAS rebuilt from the same source, or extended with later months, keeps its fingerprint and
    another instrument's or period's data does not. The coarsest timeframe is read because it is
    small and every other timeframe of one source aggregates to it.
    """
    # Every phase checks the ATLAS again (a study's worker once per fold and phase): the hash is
    # kept per process, keyed like the task keys by each month file's name, size and mtime_ns, so
    # a changed file is read again.
    files = tuple(tuple(f) for f in files_fingerprint(data_dir, [timeframe]))
    return dict(_content_fingerprint(str(Path(data_dir).resolve()), timeframe, end, files))


@functools.lru_cache(maxsize=64)
def _content_fingerprint(
    data_dir: str, timeframe: str, end: int | None, files: tuple[tuple[Any, ...], ...]
) -> tuple[tuple[str, Any], ...]:
    import pandas as pd

    del files  # part of the cache key only
    bars = atlas.read_bars(data_dir, timeframe, None, end)
    if end is None and len(bars):
        end = int(bars["timestamp"].iloc[-1]) + atlas.tf_seconds(timeframe)
    cols = ["timestamp", "open", "high", "low", "close", "volume"]
    hashed = pd.util.hash_pandas_object(bars[cols], index=False).to_numpy()
    return (
        ("timeframe", timeframe),
        ("end", end),
        ("bars", len(bars)),
        ("sha256", hashlib.sha256(hashed.tobytes()).hexdigest()[:16]),
    )


def check_dataset(
    checkpoint_dir: str | Path, data_dir: str | Path, error: type[Exception] = CheckpointError
) -> None:
    """Refuse (one-line ``error``) an ATLAS that is not the data the checkpoints were built from.

    Compares :func:`data_fingerprint` of ``data_dir`` with the one Phase 2 recorded; checkpoints
    without a record (written before it existed, or a library made elsewhere) are not checked.
    """
    import datetime as _dt

    disc = read_state(checkpoint_dir)["phases"].get("discovery")
    rec = disc.get("data") if isinstance(disc, dict) else None
    if not isinstance(rec, dict) or "sha256" not in rec:
        return
    here = data_fingerprint(data_dir, str(rec["timeframe"]), _epoch_or_none(rec.get("end")))
    if here["sha256"] == rec["sha256"] and here["bars"] == rec["bars"]:
        return
    end = rec.get("end")
    until = (
        ""
        if end is None
        else " before "
        + _dt.datetime.fromtimestamp(int(end), _dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    )
    differs = "" if here["bars"] != rec["bars"] else ", with other prices"
    raise error(
        f"{data_dir} is not the data the checkpoints in {checkpoint_dir} were built from "
        f"({rec['timeframe']} bars{until}: {here['bars']:,} here, {rec['bars']:,} there{differs}): "
        "give that ATLAS, or rebuild the checkpoints on this one (`markets run --fresh`)"
    )


def recorded_instrument(checkpoint_dir: str | Path) -> str | None:
    """The instrument Phase 3 optimised the playbook's exits for (None without a record)."""
    play = read_state(checkpoint_dir)["phases"].get("playbook")
    sym = play.get("instrument") if isinstance(play, dict) else None
    return str(sym) if sym else None


def check_instrument(
    checkpoint_dir: str | Path, requested: str | None, error: type[Exception] = CheckpointError
) -> str | None:
    """The instrument to price a replay of ``checkpoint_dir``'s playbook with: ``requested`` if
    given (refused, one line, when it differs from the recorded one), else the recorded one."""
    from edgefinder.markets.instruments import get_instrument

    recorded = recorded_instrument(checkpoint_dir)
    asked = get_instrument(requested).symbol if requested else None
    if asked and recorded and asked != recorded:
        raise error(
            f"--instrument {asked} differs from {recorded}, the instrument Phase 3 in "
            f"{checkpoint_dir} optimised the playbook's exits for; rerun Phases 2–3 with it "
            "(`markets run --fresh --instrument " + asked + "`) or drop --instrument"
        )
    return asked or recorded
