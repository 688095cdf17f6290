"""The fractal cascade: which coarser-timeframe patterns back each pattern (its parent chain).

One implementation serves discovery (Phase 2, which turns it into ``PatternEvent`` objects) and the
forward pass (Phase 4, which keeps the column arrays), so the scan that built the templates is the
scan that trades them. Both work on the patterns of each timeframe as column arrays
(:class:`Level`), found over that timeframe's whole continuous series.

**Windows** (docs/decisions.md §D17). A pattern on a bar of P seconds is known when its bar closes,
so it opens a child window ``[open + P, open + P + max(P, 30 x child bar seconds))`` (epoch seconds)
for each finer timeframe. A child bar belongs to a window when its **open** lies inside it, so no
child is ever attributed to a parent that had not closed yet. Windows of one timeframe all have the
same length for a given child timeframe, so overlapping ones form runs and the earliest window of a
run owns it: the rule of ``discovery.merge_windows`` for equal lengths, vectorized here.

**Two modes** (``--cascade``; docs/decisions.md §D18):

* ``context`` (default): every timeframe is scanned over its whole series; a pattern's immediate
  parent is the pattern owning the window that holds it on the finest coarser timeframe that has
  one, and its chain continues with that parent's own chain. ``depth`` = chain length, from 0
  (backed by nothing) to the number of coarser timeframes (the full hierarchy aligned). Ancestry is
  measured, not required; the forward pass may demand it with ``--min-depth``.
* ``strict``: the top-down funnel read literally — level k keeps only the patterns of timeframe k
  inside a window of a pattern kept at level k-1, and the scan stops at the first empty level;
  ``depth`` = level index (an empty level empties every level below it). Seven levels leave a few patterns a quarter: too few to learn from or
  to judge, which is why it is not the default.

In both, ``len(chain) == depth`` and chains run from the immediate parent to the root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from edgefinder.markets import atlas
from edgefinder.markets.physics import PhysicsConfig, StateArrays, as_arrays
from edgefinder.settings import setting_default

__all__ = [
    "CASCADE_MODES",
    "CHILD_WINDOW_BARS",
    "Cascade",
    "CascadeMode",
    "FractalCascadeScanner",
    "Level",
    "ROCHE_SNAP",
    "STRUCTURAL_DRIVE",
    "child_window_length",
    "entry_timeframe",
    "link_cascade",
    "pattern_rows",
    "window_owner",
]

ROCHE_SNAP = "ROCHE_SNAP"
STRUCTURAL_DRIVE = "STRUCTURAL_DRIVE"
#: A child window lasts at least this many child bars (and at least one parent bar).
CHILD_WINDOW_BARS = 30
CascadeMode = Literal["context", "strict"]
CASCADE_MODES: tuple[str, ...] = ("context", "strict")
#: Number of features of :meth:`Cascade.features` (the clustering's 11D vector).
N_FEATURES = 11


def pattern_rows(states: StateArrays | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows and ROCHE flags of every pattern bar of one timeframe's states (vectorized).

    Returns ``(rows, is_roche)``: a bar meeting both rules appears twice, ROCHE_SNAP first;
    ``is_roche`` is False for STRUCTURAL_DRIVE.
    """
    st = as_arrays(states)
    valid = np.asarray(st["valid"], dtype=bool)
    r_rows = np.flatnonzero(np.asarray(st["roche_snap"], dtype=bool) & valid)
    d_rows = np.flatnonzero(np.asarray(st["structural_drive"], dtype=bool) & valid)
    rows = np.concatenate([r_rows, d_rows])
    is_roche = np.concatenate([np.ones(r_rows.size, bool), np.zeros(d_rows.size, bool)])
    order = np.argsort(rows, kind="stable")  # ROCHE_SNAP (listed first) stays first on a shared bar
    return rows[order].astype(np.int64), is_roche[order]


def child_window_length(parent_tf: str, child_tf: str) -> float:
    """Seconds a ``parent_tf`` pattern's window lasts for ``child_tf`` bars: max(P, 30 child bars)."""
    return float(max(atlas.TIMEFRAMES[parent_tf], CHILD_WINDOW_BARS * atlas.TIMEFRAMES[child_tf]))


@dataclass(frozen=True)
class Level:
    """The patterns of one timeframe as column arrays, in bar order, with their links upward.

    ``rows``: row in the timeframe's scanned series; ``ts``: bar open (epoch s); ``z``,
    ``velocity`` (points per bar), ``momentum``, ``coherence``: the bar's state. Links (filled by
    :func:`link_cascade`): ``parent_level`` / ``parent`` — level index and position of the
    immediate parent (-1 when none); ``root_level`` / ``root`` — the last ancestor (-1 when none);
    ``depth`` — chain length.
    """

    tf: str
    rows: np.ndarray
    ts: np.ndarray
    is_roche: np.ndarray
    z: np.ndarray
    velocity: np.ndarray
    momentum: np.ndarray
    coherence: np.ndarray
    parent_level: np.ndarray
    parent: np.ndarray
    root_level: np.ndarray
    root: np.ndarray
    depth: np.ndarray

    @classmethod
    def from_states(cls, states: StateArrays | pd.DataFrame, tf: str) -> Level:
        """Every pattern of one timeframe's states, unlinked (depth 0)."""
        st = as_arrays(states)
        rows, is_roche = pattern_rows(st)

        def col(name: str) -> np.ndarray:
            return np.asarray(st[name], dtype=np.float64)[rows]

        none = np.full(rows.size, -1, np.int64)
        return cls(
            tf=tf,
            rows=rows,
            ts=col("timestamp"),
            is_roche=is_roche,
            z=col("z_score"),
            velocity=col("velocity"),
            momentum=col("momentum"),
            coherence=col("coherence"),
            parent_level=none,
            parent=none,
            root_level=none,
            root=none,
            depth=np.zeros(rows.size, np.int64),
        )

    def __len__(self) -> int:
        return int(self.rows.size)

    def chain_entry(self, p: int) -> dict[str, Any]:
        """Pattern ``p`` as one ``parent_chain`` entry: ``{tf, type, z, mom, coh, timestamp}``."""
        return {
            "tf": self.tf,
            "type": ROCHE_SNAP if self.is_roche[p] else STRUCTURAL_DRIVE,
            "z": float(self.z[p]),
            "mom": float(self.momentum[p]),
            "coh": float(self.coherence[p]),
            "timestamp": float(self.ts[p]),
        }

    def subset(self, mask: np.ndarray) -> Level:
        """The patterns where ``mask`` holds (links are copied as they are)."""
        return Level(
            **{
                name: (getattr(self, name) if name == "tf" else getattr(self, name)[mask])
                for name in self.__dataclass_fields__
            }
        )

    @property
    def types(self) -> np.ndarray:
        """Pattern type names (object array)."""
        return np.where(self.is_roche, ROCHE_SNAP, STRUCTURAL_DRIVE).astype(object)


def window_owner(child_ts: np.ndarray, parents: Level, child_tf: str) -> np.ndarray:
    """Position in ``parents`` of the pattern owning the window that holds each child bar, or -1.

    ``child_ts``: child bar opens (epoch s). The windows of ``parents`` (all of one timeframe, so
    of one length) form runs of overlapping windows; a run covers ``[first start, last end)`` and
    belongs to its first window (the earliest parent: it was known first). Windows that only touch
    stay separate runs. O((n + w) log w), no Python loop.
    """
    ts = np.asarray(child_ts, dtype=np.float64)
    if len(parents) == 0 or ts.size == 0:
        return np.full(ts.shape, -1, np.int64)
    p_s = float(atlas.TIMEFRAMES[parents.tf])
    starts = parents.ts + p_s  # parents are in bar order, so starts ascend (ties: input order)
    ends = starts + child_window_length(parents.tf, child_tf)
    new_run = np.ones(starts.size, bool)
    new_run[1:] = starts[1:] >= ends[:-1]
    run_first = np.maximum.accumulate(np.where(new_run, np.arange(starts.size), 0))
    w = np.searchsorted(starts, ts, side="right") - 1
    safe = np.maximum(w, 0)
    inside = (w >= 0) & (
        ts < ends[safe]
    )  # equal lengths: the last window started covers the run's end
    return np.where(inside, run_first[safe], -1).astype(np.int64)


@dataclass(frozen=True)
class Cascade:
    """Every level of one scan, coarsest first (``timeframes[k]`` is ``levels[k].tf``)."""

    mode: str
    levels: tuple[Level, ...]
    # per level, what _chain_codes computed: levels are immutable, so it never goes stale
    _chain_memo: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def timeframes(self) -> list[str]:
        return [lv.tf for lv in self.levels]

    def level(self, tf: str) -> Level:
        return self.levels[self.timeframes.index(tf)]

    def chain(self, k: int, i: int) -> list[dict]:
        """``parent_chain`` of pattern ``i`` of level ``k``: ``{tf, type, z, mom, coh, timestamp}``
        per ancestor, immediate parent first, root last."""
        out = []
        lv = self.levels[k]
        pl, p = int(lv.parent_level[i]), int(lv.parent[i])
        while pl >= 0:
            up = self.levels[pl]
            out.append(up.chain_entry(p))
            pl, p = int(up.parent_level[p]), int(up.parent[p])
        return out

    def chains(self, k: int) -> list[list[dict]]:
        """:meth:`chain` of every pattern of level ``k``; ancestors' entry dicts are shared between
        the chains that contain them (treat them as read-only)."""
        memo: dict[tuple[int, int], list[dict]] = {}

        def chain_of(j: int, p: int) -> list[dict]:
            key = (j, p)
            got = memo.get(key)
            if got is None:
                up = self.levels[j]
                pl = int(up.parent_level[p])
                got = [up.chain_entry(p)] + (chain_of(pl, int(up.parent[p])) if pl >= 0 else [])
                memo[key] = got
            return got

        lv = self.levels[k]
        return [
            list(chain_of(pl, p)) if pl >= 0 else []
            for pl, p in zip(lv.parent_level.tolist(), lv.parent.tolist())
        ]

    def chain_labels(self, k: int, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """``brain.chain_label`` of the chains of patterns ``idx`` of level ``k``
        (``"1m ROCHE_SNAP < 5m STRUCTURAL_DRIVE"``, immediate parent first; "" at depth 0), as an
        object array."""
        lv = self.levels[k]
        idx = np.asarray(idx, dtype=np.int64)
        out = np.full(idx.size, "", dtype=object)
        pl, p = lv.parent_level[idx], lv.parent[idx]
        for j in np.unique(pl[pl >= 0]).tolist():
            at = pl == j
            codes, labels = self._chain_codes(int(j))
            out[at] = labels[codes[p[at]]]
        return out

    def _chain_codes(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(code per pattern of level ``j``, label per code): the label of the chain that starts at
        each pattern (itself first). A level holds thousands of patterns but a handful of distinct
        chains, so the strings are built once per distinct chain, level by level upward."""
        memo = self._chain_memo
        if j in memo:
            return memo[j]
        lv = self.levels[j]
        n_levels = len(self.levels)
        parent_code = np.full(len(lv), -1, np.int64)
        parent_labels: dict[int, np.ndarray] = {}
        for up in np.unique(lv.parent_level[lv.parent_level >= 0]).tolist():
            at = lv.parent_level == up
            codes, parent_labels[up] = self._chain_codes(int(up))
            parent_code[at] = codes[lv.parent[at]]
        # one integer per (own type, parent level, parent's chain)
        key = lv.is_roche.astype(np.int64) + 2 * (
            (lv.parent_level + 1) + (n_levels + 1) * (parent_code + 1)
        )
        uniq, inv = np.unique(key, return_inverse=True)
        labels = []
        for u in uniq.tolist():
            own = f"{lv.tf} {ROCHE_SNAP if u % 2 else STRUCTURAL_DRIVE}"
            up, code = (u // 2) % (n_levels + 1) - 1, (u // 2) // (n_levels + 1) - 1
            labels.append(own if up < 0 else f"{own} < {parent_labels[up][code]}")
        memo[j] = (inv.reshape(-1).astype(np.int64), np.array(labels, dtype=object))
        return memo[j]

    def _linked(self, k: int, which: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(has_link, {field: value per pattern}) of each pattern's parent or root."""
        lv = self.levels[k]
        lvl = lv.parent_level if which == "parent" else lv.root_level
        pos = lv.parent if which == "parent" else lv.root
        has = lvl >= 0
        out = {
            "is_roche": np.zeros(len(lv), bool),
            "z": np.zeros(len(lv)),
            "momentum": np.zeros(len(lv)),
            "tf": np.full(len(lv), "", dtype=object),
        }
        for j in np.unique(lvl[has]).tolist():
            sel = lvl == j
            up = self.levels[j]
            for name in ("is_roche", "z", "momentum"):
                out[name][sel] = getattr(up, name)[pos[sel]]
            out["tf"][sel] = up.tf
        return has, out

    def features(self, k: int) -> np.ndarray:
        """The (n, 11) raw clustering vectors of level ``k``'s patterns, equal to
        ``clustering.pattern_features`` of the same patterns: |z|, |velocity|, |momentum|, coherence,
        log2(tf seconds), depth, parent is ROCHE, |parent z|, |parent momentum|, |root z|, root is ROCHE
        (the ancestry entries are 0 without ancestors)."""
        lv = self.levels[k]
        x = np.zeros((len(lv), N_FEATURES))
        if not len(lv):
            return x
        x[:, 0] = np.abs(lv.z)
        x[:, 1] = np.abs(lv.velocity)
        x[:, 2] = np.abs(lv.momentum)
        x[:, 3] = lv.coherence
        x[:, 4] = np.log2(float(atlas.TIMEFRAMES[lv.tf]))
        x[:, 5] = lv.depth
        has_p, par = self._linked(k, "parent")
        x[:, 6] = np.where(has_p, par["is_roche"], 0.0)
        x[:, 7] = np.where(has_p, np.abs(par["z"]), 0.0)
        x[:, 8] = np.where(has_p, np.abs(par["momentum"]), 0.0)
        has_r, root = self._linked(k, "root")
        x[:, 9] = np.where(has_r, np.abs(root["z"]), 0.0)
        x[:, 10] = np.where(has_r, root["is_roche"], 0.0)
        return x

    def root_context(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(root timeframe, root pattern type) per pattern of level ``k``; "" for depth 0."""
        has, root = self._linked(k, "root")
        types = np.where(root["is_roche"], ROCHE_SNAP, STRUCTURAL_DRIVE).astype(object)
        return root["tf"], np.where(has, types, "").astype(object)

    def sides(self, k: int) -> np.ndarray:
        """+1 long / -1 short per pattern: ROCHE_SNAP fades z, STRUCTURAL_DRIVE follows momentum."""
        lv = self.levels[k]
        x = np.where(lv.is_roche, -lv.z, lv.momentum)
        return np.where(x > 0, 1, -1).astype(np.int64)


def link_cascade(
    levels: Sequence[Level] | Mapping[str, Level], mode: str = setting_default("cascade")
) -> Cascade:
    """Link per-timeframe patterns (coarsest first) into a :class:`Cascade`; see the module doc.

    ``strict`` drops the patterns of levels >= 1 that no kept parent window holds (and every level
    after the first empty one); ``context`` keeps every pattern and links those it can.
    """
    if mode not in CASCADE_MODES:
        raise ValueError(f"cascade mode must be one of {', '.join(CASCADE_MODES)}, got {mode!r}")
    given = list(levels.values()) if isinstance(levels, Mapping) else list(levels)
    out: list[Level] = []
    for k, lv in enumerate(given):
        if k == 0:
            out.append(lv)
            continue
        if mode == "strict":
            prev = out[k - 1]
            owner = window_owner(lv.ts, prev, lv.tf)
            keep = owner >= 0
            sub = lv.subset(keep)
            parent = owner[keep]
            root_level = np.where(prev.root_level[parent] >= 0, prev.root_level[parent], k - 1)
            root = np.where(prev.root_level[parent] >= 0, prev.root[parent], parent)
            out.append(
                replace(
                    sub,
                    parent_level=np.full(parent.size, k - 1, np.int64),
                    parent=parent,
                    root_level=root_level.astype(np.int64),
                    root=root.astype(np.int64),
                    depth=np.full(parent.size, k, np.int64),
                )
            )
            continue
        parent_level = np.full(len(lv), -1, np.int64)
        parent = np.full(len(lv), -1, np.int64)
        for j in range(k - 1, -1, -1):  # the finest coarser timeframe with a window is the parent
            need = np.flatnonzero(parent < 0)
            if need.size == 0:
                break
            owner = window_owner(lv.ts[need], out[j], lv.tf)
            found = owner >= 0
            parent_level[need[found]] = j
            parent[need[found]] = owner[found]
        depth = np.zeros(len(lv), np.int64)
        root_level = np.full(len(lv), -1, np.int64)
        root = np.full(len(lv), -1, np.int64)
        for j in np.unique(parent_level[parent_level >= 0]).tolist():
            sel = parent_level == j
            up, p = out[j], parent[sel]
            depth[sel] = up.depth[p] + 1
            up_has_root = up.root_level[p] >= 0
            root_level[sel] = np.where(up_has_root, up.root_level[p], j)
            root[sel] = np.where(up_has_root, up.root[p], p)
        out.append(
            replace(
                lv,
                parent_level=parent_level,
                parent=parent,
                root_level=root_level,
                root=root,
                depth=depth,
            )
        )
    return Cascade(mode=mode, levels=tuple(out))


def entry_timeframe(hierarchy: Sequence[str], wanted: str = "15s") -> str:
    """Where positions open: ``wanted`` when the hierarchy has it, else its finest timeframe not
    finer than ``wanted``, else the finest timeframe."""
    if wanted in hierarchy:
        return wanted
    coarser = [tf for tf in hierarchy if atlas.TIMEFRAMES[tf] >= atlas.TIMEFRAMES.get(wanted, 15)]
    return coarser[-1] if coarser else list(hierarchy)[-1]


class FractalCascadeScanner:
    """Discovery's scan, made actionable: every level's states, then the cascade down to the entry
    timeframe, as column arrays (no per-bar Python object).

    ``timeframes``: the hierarchy discovery used (any order; sorted coarsest first and cut at the
    entry timeframe). ``mode``: the cascade mode discovery used. ``physics``: its thresholds.
    """

    def __init__(
        self,
        timeframes: Sequence[str],
        entry_timeframe_: str = "15s",
        physics: PhysicsConfig | None = None,
        mode: str = setting_default("cascade"),
    ) -> None:
        tfs = [tf for tf in atlas.DISCOVERY_ORDER if tf in set(timeframes)]
        if not tfs:
            raise ValueError("empty timeframe hierarchy")
        if mode not in CASCADE_MODES:
            raise ValueError(
                f"cascade mode must be one of {', '.join(CASCADE_MODES)}, got {mode!r}"
            )
        self.entry_timeframe = entry_timeframe(tfs, entry_timeframe_)
        self.timeframes = tfs[: tfs.index(self.entry_timeframe) + 1]
        self.physics = physics or PhysicsConfig()
        self.mode = mode
        self.states: dict[str, StateArrays] = {}

    def compute_states(self, data_dir: str | Path, end: Any = None) -> dict[str, StateArrays]:
        """Each level's states over its whole continuous series (bars opening before ``end``);
        causal, so computing them once is look-ahead free."""
        from edgefinder.markets import state_cache

        self.states = {
            tf: state_cache.states(data_dir, tf, self.physics, end) for tf in self.timeframes
        }
        return self.states

    def scan(self, states: Mapping[str, StateArrays | pd.DataFrame] | None = None) -> Cascade:
        """The cascade over the whole series (``states``: per timeframe, arrays or frames)."""
        states = states if states is not None else self.states
        return link_cascade(
            [Level.from_states(states[tf], tf) for tf in self.timeframes], self.mode
        )

    def scan_session(self, session_date: Any, cascade: Cascade | None = None) -> np.ndarray:
        """Positions (in the entry level) of the patterns whose bar opens in the CME session ending on
        ``session_date``, in bar order. Their chains may reach back into earlier sessions."""
        c = cascade if cascade is not None else self.scan()
        lo, hi = atlas.session_bounds(session_date)
        ts = c.levels[-1].ts
        return np.arange(
            np.searchsorted(ts, lo, "left"), np.searchsorted(ts, hi, "left"), dtype=np.int64
        )
