"""Phase 2: fractal discovery with full parent chains.

:meth:`FractalDiscoveryAgent.scan_atlas_topdown` reads the ATLAS coarsest timeframe first
(``DISCOVERY_ORDER``: 1D, 4h, 1h, 15m, 5m, 1m, 15s, 5s, 1s; those present or asked for), computes
each timeframe's physics states **once over its continuous series** (never over concatenated window
fragments), finds its ROCHE_SNAP and STRUCTURAL_DRIVE bars (a bar meeting both rules yields two
events, ROCHE_SNAP first) and links them into chains with :mod:`edgefinder.markets.cascade` — the
same code the forward pass trades with:

* A pattern on a bar of P seconds is only known when that bar **closes** (``timestamp + P``), so its
  child window is ``[close, close + max(P, 30 * child_seconds))`` (seconds, epoch UTC). Opening it
  at the bar's open, as the original did, leaks the future (docs/decisions.md §D17). A child bar
  belongs to a window when its **open** lies inside it, so no child is ever attributed to a parent
  that was not known yet.
* ``cascade="context"`` (default): every pattern of every timeframe is kept; its chain is the run of
  windows that hold it (immediate parent on the finest coarser timeframe with a window), so
  ``depth`` runs from 0 (backed by nothing) to the full hierarchy.
* ``cascade="strict"``: the original top-down funnel — level k keeps only the patterns inside a window
  of a level k-1 pattern, ``depth`` = level index, and the scan stops at the first empty level.
* Always ``len(parent_chain) == depth``; chain entries are ``{"tf", "type", "z", "mom", "coh",
  "timestamp"}``, immediate parent first, root last.

The original funnel's pieces stay available for callers that build windows themselves:
``_batch_scan_full``, ``_batch_scan_windowed`` and ``_merge_windows`` (on 5-tuples
``(start, end, parent_type, parent_tf, chain)``), with :func:`child_windows`, :func:`merge_windows`
and :func:`window_index`. Python objects are created only for the patterns themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsInt, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from edgefinder.errors import EdgefinderError
from edgefinder.markets import atlas, state_cache
from edgefinder.markets.cascade import (
    CASCADE_MODES,
    CHILD_WINDOW_BARS,
    ROCHE_SNAP,
    STRUCTURAL_DRIVE,
    Level,
    link_cascade,
    pattern_rows,
)
from edgefinder.markets.physics import (
    ZONE_NAMES,
    PhysicsConfig,
    QuantumFieldEngine,
    StateArrays,
    ThreeBodyQuantumState,
    as_arrays,
    state_arrays,
    states_at,
)
from edgefinder.settings import setting_default

__all__ = [
    "CHAIN_KEYS",
    "CHILD_WINDOW_BARS",
    "DiscoveryError",
    "FractalDiscoveryAgent",
    "ManifestError",
    "PatternEvent",
    "ROCHE_SNAP",
    "STRUCTURAL_DRIVE",
    "Window",
    "chain_entry",
    "child_windows",
    "load_manifest",
    "manifest_summary",
    "manifest_to_frame",
    "merge_windows",
    "save_manifest",
    "window_index",
]

#: Keys of one ``parent_chain`` entry, in storage order.
CHAIN_KEYS = ("tf", "type", "z", "mom", "coh", "timestamp")

#: (start s, end s, parent_type, parent_tf, parent chain incl. the parent itself) — half-open.
Window = tuple[float, float, str, str, list]
LevelCallback = Callable[[int, str, int], None]


class DiscoveryError(EdgefinderError):
    """Discovery cannot run (no timeframes, unknown timeframe name, empty ATLAS)."""


class ManifestError(EdgefinderError):
    """A manifest file is missing, unreadable or not a pattern manifest."""


@dataclass(eq=True, slots=True)
class PatternEvent:
    """One pattern found by discovery (the original fields plus ``parent_chain``).

    ``timestamp`` is the bar's **open** in epoch seconds UTC (the pattern is known at
    ``timestamp + TIMEFRAMES[timeframe]``); ``price`` is the bar's close (points);
    ``idx`` is the bar's row in its timeframe's scanned series; ``file_source`` names the ATLAS
    month file holding the bar. ``parent_chain`` lists the ancestors, immediate parent first,
    root last; treat it as read-only (events of one window share its entry dicts).
    ``window_data`` is optional scratch data and takes no part in equality or the manifest.
    """

    pattern_type: str
    timestamp: float
    price: float
    z_score: float
    velocity: float
    momentum: float
    coherence: float
    file_source: str
    idx: int
    state: ThreeBodyQuantumState
    timeframe: str = "15s"
    depth: int = 0
    parent_type: str = ""
    parent_tf: str = ""
    window_data: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    parent_chain: list | None = None

    @property
    def close_time(self) -> float:
        """Epoch seconds at which the pattern's bar closed (when the pattern became known)."""
        return self.timestamp + atlas.TIMEFRAMES[self.timeframe]


def chain_entry(p: PatternEvent) -> dict:
    """The ``parent_chain`` entry describing pattern ``p`` (plain Python floats)."""
    return {
        "tf": p.timeframe,
        "type": p.pattern_type,
        "z": float(p.z_score),
        "mom": float(p.momentum),
        "coh": float(p.coherence),
        "timestamp": float(p.timestamp),
    }


def child_windows(patterns: Iterable[PatternEvent], child_tf: str) -> list[Window]:
    """Unmerged child windows opened by ``patterns`` for timeframe ``child_tf``.

    Each window is ``[close, close + max(P, 30 * child_seconds))`` seconds, ``close`` being the
    pattern bar's close, and carries ``[chain_entry(p)] + p.parent_chain``.
    """
    child_s = atlas.TIMEFRAMES[child_tf]
    out: list[Window] = []
    for p in patterns:
        parent_s = atlas.TIMEFRAMES[p.timeframe]
        start = float(p.timestamp) + parent_s
        end = start + max(parent_s, CHILD_WINDOW_BARS * child_s)
        chain = [chain_entry(p)] + list(p.parent_chain or [])
        out.append((start, end, p.pattern_type, p.timeframe, chain))
    return out


def merge_windows(windows: Sequence[Window]) -> list[Window]:
    """Merge overlapping half-open windows into disjoint ones, sorted by start.

    Rule (the original "keep the chain of the dominant, longer window", made causal):

    * Windows are visited by start time (ties: longer first, then input order).
    * A window that overlaps the current merged window (``start < current end``; windows that only
      touch stay separate) extends it and keeps the current chain — unless it is **strictly
      longer** than the window whose chain the current one carries. Then the longer window takes
      over **from its own start**: the current merged window is cut there and a new one begins
      with the longer window's chain. Before its start, that parent had not closed yet, so its
      chain cannot be back-dated onto earlier bars.
    * Equal lengths (the common case: all windows of one level come from one timeframe): the
      earlier window, already open, keeps its chain; for identical windows (one bar giving both
      pattern types) the first in input order wins.

    Every output window therefore starts at or after the close of the parent its chain names.
    """
    n = len(windows)
    if n == 0:
        return []
    starts = np.fromiter((w[0] for w in windows), dtype=np.float64, count=n)
    ends = np.fromiter((w[1] for w in windows), dtype=np.float64, count=n)
    lengths = ends - starts
    # lexsort: last key is primary -> start asc, length desc, input order asc
    order = np.lexsort((np.arange(n), -lengths, starts))
    out: list[Window] = []
    cur: list | None = None  # [start, end, ptype, ptf, chain, dominant_length]
    for i in order.tolist():
        s, e, ptype, ptf, chain = windows[i]
        length = e - s
        if length <= 0:
            continue
        if cur is None or s >= cur[1]:
            if cur is not None:
                out.append((cur[0], cur[1], cur[2], cur[3], cur[4]))
            cur = [s, e, ptype, ptf, chain, length]
        elif length > cur[5]:
            if s > cur[0]:
                out.append((cur[0], s, cur[2], cur[3], cur[4]))
            cur = [s, max(e, cur[1]), ptype, ptf, chain, length]
        elif e > cur[1]:
            cur[1] = e
    assert cur is not None
    out.append((cur[0], cur[1], cur[2], cur[3], cur[4]))
    return out


def window_index(timestamps: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Index of the disjoint, start-sorted window ``[start, end)`` holding each timestamp, or -1.

    Vectorized with ``np.searchsorted``: O((n + w) log w), no per-bar Python loop.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    if starts.size == 0:
        return np.full(ts.shape, -1, dtype=np.int64)
    w = np.searchsorted(starts, ts, side="right") - 1
    safe = np.maximum(w, 0)
    inside = (w >= 0) & (ts < ends[safe])
    return np.where(inside, w, -1).astype(np.int64)


def _state_field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ThreeBodyQuantumState)]


def _month_labels(ts: np.ndarray) -> np.ndarray:
    """'YYYY_MM' label of each epoch-second timestamp (vectorized)."""
    months = ts.astype("int64").astype("datetime64[s]").astype("datetime64[M]")
    years = months.astype("int64") // 12 + 1970
    mons = months.astype("int64") % 12 + 1
    return np.char.add(np.char.add(years.astype(str), "_"), np.char.zfill(mons.astype(str), 2))


class FractalDiscoveryAgent:
    """Top-down fractal scan of an ATLAS into a manifest of :class:`PatternEvent`.

    ``config`` holds the physics thresholds (``PhysicsConfig``: rp, snap_z, snap_velocity,
    drive_momentum, drive_coherence). ``keep_window_data=True`` attaches to each event the
    ``rp`` state rows that produced it (memory-hungry; off by default).
    """

    def __init__(
        self,
        config: PhysicsConfig | None = None,
        *,
        keep_window_data: bool = False,
        engine: QuantumFieldEngine | None = None,
    ) -> None:
        self.config = config if config is not None else PhysicsConfig()
        self.engine = engine if engine is not None else QuantumFieldEngine(self.config)
        self.keep_window_data = keep_window_data
        #: per-level summary of the last scan: (level, tf, bars, windows, patterns)
        self.level_stats: list[dict] = []
        self._atlas_root: str | None = None

    # ------------------------------------------------------------------ public API
    def resolve_timeframes(
        self, atlas_root: str | Path, timeframes: Sequence[str] | None = None
    ) -> list[str]:
        """The hierarchy to scan: ``timeframes`` (or all present) in DISCOVERY_ORDER."""
        present = list(atlas.available_timeframes(atlas_root))
        if timeframes is None:
            chosen = [tf for tf in atlas.DISCOVERY_ORDER if tf in present]
        else:
            unknown = [tf for tf in timeframes if tf not in atlas.DISCOVERY_ORDER]
            if unknown:
                raise DiscoveryError(
                    f"unknown timeframe(s) {', '.join(unknown)}; choose from {', '.join(atlas.DISCOVERY_ORDER)}"
                )
            missing = [tf for tf in timeframes if tf not in present]
            if missing:
                raise DiscoveryError(f"timeframe(s) {', '.join(missing)} not in ATLAS {atlas_root}")
            chosen = [tf for tf in atlas.DISCOVERY_ORDER if tf in set(timeframes)]
        if not chosen:
            raise DiscoveryError(f"no timeframes found in ATLAS {atlas_root}")
        return chosen

    def scan_atlas_topdown(
        self,
        atlas_root: str | Path,
        timeframes: Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        *,
        cascade: str = setting_default("cascade"),
        on_level: LevelCallback | None = None,
        progress: bool = False,
    ) -> list[PatternEvent]:
        """Scan ``atlas_root`` coarsest timeframe first; return the manifest sorted by (level, timestamp).

        ``timeframes`` restricts the hierarchy (e.g. ``['5m', '1m', '15s']``); ``start``/``end``
        bound the bars read (epoch seconds or a date/time string, naive = UTC; end exclusive as
        ``atlas.read_bars`` defines it). ``cascade``: ``"context"`` (every timeframe over its whole
        series, ancestry measured: depth 0 to the full hierarchy) or ``"strict"`` (the top-down
        funnel: only patterns inside the level above's windows) — see :mod:`edgefinder.markets.cascade`.
        ``on_level(level_index, tf, n_patterns)`` is called after each level; ``progress=True``
        shows a Rich progress bar.
        """
        if cascade not in CASCADE_MODES:
            raise DiscoveryError(
                f"--cascade must be one of {', '.join(CASCADE_MODES)}, got {cascade!r}"
            )
        tfs = self.resolve_timeframes(atlas_root, timeframes)
        self._atlas_root = str(atlas_root)
        self.level_stats = []
        t0 = None if start is None else atlas.to_epoch_seconds(start)
        t1 = None if end is None else atlas.to_epoch_seconds(end)

        bar = None
        task = None
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task("discovery", total=len(tfs))
        levels: list[Level] = []
        states_of: list[list[ThreeBodyQuantumState]] = []
        window_data: list[list[pd.DataFrame] | None] = []
        n_bars: list[int] = []
        try:
            for level, tf in enumerate(tfs):
                if bar is not None and task is not None:
                    bar.update(task, description=f"level {level} ({tf})")
                st = (
                    state_cache.states(atlas_root, tf, self.config, t1)
                    if t0 is None  # a prefix: the same bits as the whole series' first rows
                    else state_arrays(atlas.read_bars(atlas_root, tf, t0, t1), self.config)
                )
                lv = Level.from_states(st, tf)
                if cascade == "strict" and levels:
                    # the funnel: only what the level above's windows hold is kept (and needs a state)
                    lv = link_cascade([*levels, lv], "strict").levels[-1]
                levels.append(lv)
                states_of.append(states_at(st, lv.rows, tf))
                window_data.append(
                    self._window_data(st, lv.rows) if self.keep_window_data else None
                )
                n_bars.append(int(st["timestamp"].size))
                del st  # free this timeframe before the next (finer, larger) one is read
                if bar is not None and task is not None:
                    bar.update(
                        task, advance=1, description=f"level {level} ({tf}): {len(lv)} patterns"
                    )
                if cascade == "strict" and len(lv) == 0:
                    break  # the funnel stops at the first level with no patterns
        finally:
            if bar is not None:
                bar.stop()
        linked = link_cascade(levels, cascade)
        manifest: list[PatternEvent] = []
        for level, lv in enumerate(linked.levels):
            manifest.extend(
                self._make_events(lv, states_of[level], linked.chains(level), window_data[level])
            )
            depths = np.bincount(lv.depth).tolist() if len(lv) else []
            self.level_stats.append(
                {
                    "level": level,
                    "tf": lv.tf,
                    "bars": n_bars[level],
                    "patterns": len(lv),
                    "patterns_by_depth": depths,
                }
            )
            if on_level is not None:
                on_level(level, lv.tf, len(lv))
        return manifest

    # ------------------------------------------------------------------ seed pieces
    def _batch_scan_full(self, states_df: pd.DataFrame, tf: str) -> list[PatternEvent]:
        """Every pattern of one timeframe's states (level 0 of the funnel: ``parent_chain == []``)."""
        st = as_arrays(states_df)
        lv = Level.from_states(st, tf)
        return self._make_events(lv, states_at(st, lv.rows, tf), [[] for _ in range(len(lv))])

    def _batch_scan_windowed(
        self,
        states_df: pd.DataFrame,
        tf: str,
        parent_windows: Sequence[Window],
        depth: int,
    ) -> list[PatternEvent]:
        """Patterns of ``states_df`` whose bar opens inside one of ``parent_windows`` (the funnel's step).

        ``parent_windows`` are 5-tuples (start, end, parent_type, parent_tf, chain), merged here
        (merging is idempotent, so raw windows may be passed). Each event gets ``parent_type`` /
        ``parent_tf`` / ``parent_chain`` from its window and ``depth``.
        """
        windows = self._merge_windows(parent_windows)
        st = as_arrays(states_df)
        lv = Level.from_states(st, tf)
        if not windows or not len(lv):
            return []
        starts = np.array([w[0] for w in windows], dtype=np.float64)
        ends = np.array([w[1] for w in windows], dtype=np.float64)
        widx = window_index(lv.ts, starts, ends)
        keep = widx >= 0
        lv = lv.subset(keep)
        lv = dataclasses.replace(lv, depth=np.full(len(lv), int(depth), np.int64))
        chains = [list(windows[w][4]) for w in widx[keep].tolist()]
        return self._make_events(lv, states_at(st, lv.rows, tf), chains)

    @staticmethod
    def _merge_windows(windows: Sequence[Window]) -> list[Window]:
        """Merge overlapping 5-tuple windows; see :func:`merge_windows` for the rule."""
        return merge_windows(windows)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def pattern_rows(states_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Rows and types of all pattern events in ``states_df``; see :func:`cascade.pattern_rows`."""
        return pattern_rows(states_df)

    def _window_data(self, st: StateArrays, rows: np.ndarray) -> list[pd.DataFrame]:
        """The ``rp`` state rows that produced each pattern row (``keep_window_data``)."""
        frame = pd.DataFrame({c: v for c, v in st.items() if c != "zone_code"})
        frame["lagrange_zone"] = ZONE_NAMES[np.asarray(st["zone_code"], np.int64)]
        rp = int(self.config.rp)
        return [
            frame.iloc[max(0, r - rp + 1) : r + 1].reset_index(drop=True) for r in rows.tolist()
        ]

    def _make_events(
        self,
        lv: Level,
        states: Sequence[ThreeBodyQuantumState],
        chains: Sequence[list],
        window_data: Sequence[pd.DataFrame] | None = None,
    ) -> list[PatternEvent]:
        """PatternEvents of one level's patterns (``states``, ``chains``, ``window_data`` aligned with ``lv``)."""
        if not len(lv):
            return []
        root = self._atlas_root
        prefix = f"{root}/{lv.tf}/" if root else f"{lv.tf}/"
        sources = np.char.add(np.char.add(prefix, _month_labels(lv.ts)), ".parquet").tolist()
        cols = {
            c: getattr(lv, c).tolist() for c in ("ts", "z", "velocity", "momentum", "coherence")
        }
        rows = lv.rows.tolist()
        depth = lv.depth.tolist()
        types = lv.types.tolist()
        return [
            PatternEvent(
                pattern_type=types[j],
                timestamp=cols["ts"][j],
                price=states[j].close,
                z_score=cols["z"][j],
                velocity=cols["velocity"][j],
                momentum=cols["momentum"][j],
                coherence=cols["coherence"][j],
                file_source=sources[j],
                idx=rows[j],
                state=states[j],
                timeframe=lv.tf,
                depth=depth[j],
                parent_type=chains[j][0]["type"] if chains[j] else "",
                parent_tf=chains[j][0]["tf"] if chains[j] else "",
                window_data=None if window_data is None else window_data[j],
                parent_chain=chains[j],
            )
            for j in range(len(lv))
        ]


# ---------------------------------------------------------------------- manifest I/O
_CHAIN_TYPE = pa.list_(
    pa.struct(
        [
            ("tf", pa.string()),
            ("type", pa.string()),
            ("z", pa.float64()),
            ("mom", pa.float64()),
            ("coh", pa.float64()),
            ("timestamp", pa.float64()),
        ]
    )
)
_EVENT_COLUMNS = [
    ("pattern_type", pa.string()),
    ("timestamp", pa.float64()),
    ("price", pa.float64()),
    ("z_score", pa.float64()),
    ("velocity", pa.float64()),
    ("momentum", pa.float64()),
    ("coherence", pa.float64()),
    ("file_source", pa.string()),
    ("idx", pa.int64()),
    ("timeframe", pa.string()),
    ("depth", pa.int64()),
    ("parent_type", pa.string()),
    ("parent_tf", pa.string()),
]
_MANIFEST_TAG = b"edgefinder.manifest"
_MANIFEST_VERSION = b"1"
_STATE_PREFIX = "state_"


def _manifest_columns(manifest: Sequence[PatternEvent]) -> dict[str, list]:
    data: dict[str, list] = {
        name: [getattr(p, name) for p in manifest] for name, _ in _EVENT_COLUMNS
    }
    data["parent_chain"] = [
        [{k: e[k] for k in CHAIN_KEYS} for e in (p.parent_chain or [])] for p in manifest
    ]
    for name in _state_field_names():
        data[_STATE_PREFIX + name] = [getattr(p.state, name) for p in manifest]
    return data


def manifest_to_frame(manifest: Sequence[PatternEvent]) -> pd.DataFrame:
    """One row per pattern: the event fields, ``parent_chain`` (list of dicts), ``chain_len``,
    and the state's fields as ``state_<name>`` columns."""
    data = _manifest_columns(manifest)
    df = pd.DataFrame(data)
    df["chain_len"] = [len(c) for c in data["parent_chain"]]
    return df


def save_manifest(manifest: Sequence[PatternEvent], path: str | Path) -> Path:
    """Write ``manifest`` to Parquet (chain as ``list<struct>``, state as ``state_*`` columns).

    ``window_data`` is not stored. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _manifest_columns(manifest)
    fields = [pa.field(n, t) for n, t in _EVENT_COLUMNS] + [pa.field("parent_chain", _CHAIN_TYPE)]
    arrays = [pa.array(data[n], type=t) for n, t in _EVENT_COLUMNS]
    arrays.append(pa.array(data["parent_chain"], type=_CHAIN_TYPE))
    for name in _state_field_names():
        col = _STATE_PREFIX + name
        arr = pa.array(data[col]) if manifest else pa.array([], type=pa.float64())
        arrays.append(arr)
        fields.append(pa.field(col, arr.type))
    schema = pa.schema(fields, metadata={_MANIFEST_TAG: _MANIFEST_VERSION})
    table = pa.Table.from_arrays(arrays, schema=schema)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # atomic: a killed run never leaves half a manifest
    return path


def load_manifest(path: str | Path) -> list[PatternEvent]:
    """Read a manifest written by :func:`save_manifest` back into equal :class:`PatternEvent`s."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"manifest not found: {path}")
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
    meta = table.schema.metadata or {}
    if meta.get(_MANIFEST_TAG) != _MANIFEST_VERSION:
        raise ManifestError(
            f"{path} is not an edgefinder pattern manifest (version {_MANIFEST_VERSION.decode()})"
        )
    names = _state_field_names()
    missing = [n for n, _ in _EVENT_COLUMNS if n not in table.column_names]
    missing += [_STATE_PREFIX + n for n in names if _STATE_PREFIX + n not in table.column_names]
    if missing:
        raise ManifestError(f"manifest {path} lacks column(s) {', '.join(missing)}")
    cols = [_pylist(table.column(n)) for n, _ in _EVENT_COLUMNS]
    states = [
        ThreeBodyQuantumState(*vals)
        for vals in zip(*(_pylist(table.column(_STATE_PREFIX + n)) for n in names))
    ]
    chains = _chains(table.column("parent_chain"))
    # positional, in PatternEvent's field order: the 9 event columns up to idx, the state, timeframe ..
    # parent_tf, window_data, parent_chain (the round-trip test guards the order); one starred
    # tuple, as mypy cannot count a starred argument that other arguments follow
    return [
        PatternEvent(*(*row[:9], st, *row[9:], None, chain))
        for row, st, chain in zip(zip(*cols), states, chains)
    ]


def _pylist(col: pa.ChunkedArray) -> list:
    """A column as Python values (numbers through NumPy: far faster than ``to_pylist``)."""
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col.to_pylist()
    return col.to_numpy().tolist()


def _chains(col: pa.ChunkedArray) -> list[list[dict]]:
    """The ``parent_chain`` column (``list<struct>``) as lists of dicts, from its flat child arrays."""
    arr = col.combine_chunks()
    offsets = arr.offsets.to_numpy()
    flat = arr.flatten()
    fields = {k: _pylist(pa.chunked_array([flat.field(k)])) for k in CHAIN_KEYS}
    entries = [dict(zip(CHAIN_KEYS, vals)) for vals in zip(*(fields[k] for k in CHAIN_KEYS))]
    return [entries[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def manifest_summary(manifest: Sequence[PatternEvent]) -> dict:
    """Counts per depth/timeframe/type, for dashboards and reports (JSON-ready)."""
    df = pd.DataFrame(
        {
            "depth": [p.depth for p in manifest],
            "tf": [p.timeframe for p in manifest],
            "type": [p.pattern_type for p in manifest],
        }
    )
    if df.empty:
        return {"patterns": 0, "levels": []}
    levels = []
    for (depth, tf), g in df.groupby(["depth", "tf"], sort=True):
        levels.append(
            {
                "depth": int(cast(SupportsInt, depth)),  # the stubs type keys Hashable: numpy ints
                "tf": tf,
                "patterns": int(len(g)),
                "roche_snap": int((g["type"] == ROCHE_SNAP).sum()),
                "structural_drive": int((g["type"] == STRUCTURAL_DRIVE).sum()),
            }
        )
    return {"patterns": int(len(df)), "max_depth": int(df["depth"].max()), "levels": levels}
