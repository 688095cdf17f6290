"""QuantumFieldEngine: the per-bar "three-body" state columns of one timeframe, in one pass.

For bar i, over the last ``rp`` closes y_0..y_{rp-1} (x = 0..rp-1, the last one is bar i):

* ``center`` — OLS fit evaluated at x = rp-1 (points); ``sigma`` — sqrt(RSS / (rp-2)) floored at
  ``sigma_floor`` (points); ``z_score`` = (close - center) / sigma (dimensionless)
* ``velocity`` = close_i - close_{i-1} (points per bar); ``momentum`` = velocity * volume / sigma
* ``reversion_force`` = -0.5 * z * sigma (points)
* ``band_repulsion`` = -sign * min(1 / (d^3 + 0.01), 100), d = |close - band| / sigma, band =
  center + 2 sigma when z >= 0 (sign +1, pushes down) else center - 2 sigma (sign -1, pushes up)
* ``f_net`` = reversion_force + momentum + band_repulsion
* ``P0, P1, P2`` = softmax(-z^2/2, -(z-2)^2/2, -(z+2)^2/2); ``entropy`` = -sum p ln(p + 1e-10);
  ``coherence`` = entropy / ln 3
* ``lagrange_zone``: |z| < 1 L1_STABLE, |z| < 2 CHAOS, z >= 2 L2_ROCHE, z <= -2 L3_ROCHE
* ``roche_snap`` = |z| > snap_z and |velocity| > snap_velocity; ``structural_drive`` =
  |momentum| > drive_momentum and coherence < drive_coherence; ``structure_ok`` = |z| >= snap_z

Each timeframe's columns are computed once over its whole continuous series, never over window
fragments (docs/decisions.md §D16). Every state is causal (bar i uses bars <= i). The first rp-1
bars have no state (``valid`` False, floats NaN, flags False, zone ""). The hot loop is a numba
kernel: the window sums slide in O(1) per bar, offset by a nearby close and re-seeded exactly every
64 bars, so prices near 20,000 lose no precision (a per-bar np.polyfit reference agrees to 1e-9);
contiguous chunks of a long series run on all cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from edgefinder.markets.kernels import STATE_BLOCK as _BLOCK
from edgefinder.markets.kernels import state_kernel as _states_range
from edgefinder.settings import setting_default

ZONE_NAMES = np.array(
    ["", "L1_STABLE", "CHAOS", "L2_ROCHE", "L3_ROCHE"], dtype=object
)  # index = zone_code

STATE_COLUMNS: list[str] = [
    "center",
    "sigma",
    "z_score",
    "velocity",
    "momentum",
    "reversion_force",
    "band_repulsion",
    "f_net",
    "P0",
    "P1",
    "P2",
    "entropy",
    "coherence",
]
ALL_COLUMNS: list[str] = (
    ["timestamp", "open", "high", "low", "close", "volume"]
    + STATE_COLUMNS
    + ["lagrange_zone", "roche_snap", "structural_drive", "structure_ok", "valid"]
)


@dataclass(frozen=True)
class PhysicsConfig:
    """Thresholds of the state engine (units: rp bars; snap_velocity points/bar; others unitless)."""

    rp: int = 21
    snap_z: float = setting_default("snap_z")
    snap_velocity: float = setting_default("snap_velocity")
    drive_momentum: float = setting_default("drive_momentum")
    drive_coherence: float = setting_default("drive_coherence")
    sigma_floor: float = 1e-6

    def __post_init__(self) -> None:
        if self.rp < 3:
            raise ValueError(
                f"PhysicsConfig.rp must be at least 3 bars (RSS / (rp - 2)), got {self.rp}"
            )

    @classmethod
    def from_settings(cls, settings: Any, **overrides: float | None) -> PhysicsConfig:
        """The thresholds of ``settings`` (``EDGEFINDER_SNAP_Z`` …), each replaced by an override
        that is not None (a CLI flag); ``rp`` and ``sigma_floor`` keep their defaults."""
        unknown = set(overrides) - set(THRESHOLDS)
        if unknown:
            raise TypeError(f"not a physics threshold: {', '.join(sorted(unknown))}")
        vals = {k: getattr(settings, k) for k in THRESHOLDS}
        vals.update({k: v for k, v in overrides.items() if v is not None})
        return cls(
            snap_z=float(vals["snap_z"]),
            snap_velocity=float(vals["snap_velocity"]),
            drive_momentum=float(vals["drive_momentum"]),
            drive_coherence=float(vals["drive_coherence"]),
        )

    def thresholds(self) -> dict[str, float]:
        """The four pattern thresholds (what ``state.json`` records for the forward pass)."""
        return {k: float(getattr(self, k)) for k in THRESHOLDS}


#: The pattern thresholds that are user settings (``Settings`` fields, ``markets run`` flags).
THRESHOLDS: tuple[str, ...] = ("snap_z", "snap_velocity", "drive_momentum", "drive_coherence")


_PARALLEL_MIN_BARS = 1 << 18  # below this, one thread is faster than handing out chunks
_POOL: ThreadPoolExecutor | None = None


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # the CPUs this process may use
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor:
    # Python threads around a nogil kernel rather than numba's parallel=True: no OpenMP runtime
    # (GNU OpenMP hangs children forked after use) and safe when callers already use threads.
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="physics")
    return _POOL


def compute_state_arrays(
    close: np.ndarray, volume: np.ndarray, config: PhysicsConfig | None = None
) -> dict[str, np.ndarray]:
    """State columns as a dict of numpy arrays (the fast path; no DataFrame).

    Keys: STATE_COLUMNS, ``zone_code`` (int8: 0 none, 1 L1_STABLE, 2 CHAOS, 3 L2_ROCHE,
    4 L3_ROCHE), ``roche_snap``, ``structural_drive``, ``structure_ok``, ``valid`` (bool).
    """
    cfg = config or PhysicsConfig()
    c = np.ascontiguousarray(close, dtype=np.float64)
    v = np.ascontiguousarray(volume, dtype=np.float64)
    n = c.shape[0]
    out = np.empty((13, n), dtype=np.float64)
    zone = np.empty(n, dtype=np.int8)
    flags = np.empty((3, n), dtype=np.bool_)
    args = (
        c,
        v,
        int(cfg.rp),
        float(cfg.sigma_floor),
        float(cfg.snap_z),
        float(cfg.snap_velocity),
        float(cfg.drive_momentum),
        float(cfg.drive_coherence),
        out,
        zone,
        flags,
    )
    workers = _workers()
    if n < _PARALLEL_MIN_BARS or workers == 1:
        _states_range(*args, 0, n)
    else:
        # every bar is an independent window fit, so contiguous chunks run on all cores
        edges = (np.linspace(0, n, workers + 1) // _BLOCK).astype(np.int64) * _BLOCK
        edges[-1] = n
        # the numba dispatcher is untyped (Any); typed as a callable, mypy can bind submit's *args
        kernel: Callable[..., None] = _states_range
        futures = [
            _pool().submit(kernel, *args, int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])
        ]
        for f in futures:
            f.result()
    res = {name: out[j] for j, name in enumerate(STATE_COLUMNS)}
    res["zone_code"] = zone
    res["roche_snap"] = flags[0]
    res["structural_drive"] = flags[1]
    res["structure_ok"] = flags[2]
    valid = np.zeros(n, dtype=np.bool_)
    valid[cfg.rp - 1 :] = True
    res["valid"] = valid
    return res


#: One timeframe's bars and physics state columns as plain arrays (:func:`compute_state_arrays`'s keys
#: plus the bar columns; ``lagrange_zone`` as ``zone_code``). Building a DataFrame per timeframe costs
#: more than the physics, so the pipeline's hot paths use these.
StateArrays = dict[str, np.ndarray]
BAR_COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")


def state_arrays(bars: pd.DataFrame, config: PhysicsConfig | None = None) -> StateArrays:
    """Bars plus every physics column of :func:`compute_state_arrays` (one vectorized pass)."""
    base = {c: bars[c].to_numpy() for c in BAR_COLUMNS}
    out: StateArrays = dict(base)
    out.update(compute_state_arrays(base["close"], base["volume"], config or PhysicsConfig()))
    return out


def as_arrays(states: pd.DataFrame | StateArrays) -> StateArrays:
    """State arrays of a :meth:`QuantumFieldEngine.compute_states` frame (arrays pass through)."""
    if not isinstance(states, pd.DataFrame):
        return states
    out = {c: states[c].to_numpy() for c in states.columns if c != "lagrange_zone"}
    if "lagrange_zone" in states.columns:
        zone = states["lagrange_zone"]
        if (
            isinstance(zone.dtype, pd.CategoricalDtype)
            and list(zone.cat.categories) == ZONE_NAMES.tolist()
        ):
            out["zone_code"] = zone.cat.codes.to_numpy().astype(np.int8)
        else:
            codes = {name: k for k, name in enumerate(ZONE_NAMES.tolist())}
            out["zone_code"] = np.array([codes.get(z, 0) for z in zone.tolist()], np.int8)
    return out


def state_at(states: StateArrays, i: int, tf: str) -> ThreeBodyQuantumState:
    """The :class:`ThreeBodyQuantumState` of row ``i`` (made only where one object is needed)."""
    kw: dict[str, Any] = {c: float(states[c][i]) for c in BAR_COLUMNS[1:] + tuple(STATE_COLUMNS)}
    return ThreeBodyQuantumState(
        timestamp=int(states["timestamp"][i]),
        **kw,
        lagrange_zone=str(ZONE_NAMES[int(states["zone_code"][i])]),
        roche_snap=bool(states["roche_snap"][i]),
        structural_drive=bool(states["structural_drive"][i]),
        structure_ok=bool(states["structure_ok"][i]),
        valid=bool(states["valid"][i]),
        timeframe=tf,
    )


def states_at(states: StateArrays, rows: np.ndarray, tf: str) -> list[ThreeBodyQuantumState]:
    """:func:`state_at` for many rows, reading each column once."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = {
        c: np.asarray(states[c], dtype=np.float64)[rows].tolist()
        for c in BAR_COLUMNS[1:] + tuple(STATE_COLUMNS)
    }
    ts = np.asarray(states["timestamp"])[rows].astype(np.int64).tolist()
    zone = ZONE_NAMES[np.asarray(states["zone_code"])[rows].astype(np.int64)].tolist()
    flags = {
        c: np.asarray(states[c], dtype=bool)[rows].tolist()
        for c in ("roche_snap", "structural_drive", "structure_ok", "valid")
    }
    names = BAR_COLUMNS[1:] + tuple(STATE_COLUMNS)
    # one tuple per row in field order (a starred sequence of unknown length must come last for
    # the call to type-check; zipping the columns is also faster than indexing each per row)
    per_row = zip(
        ts,
        *(cols[c] for c in names),
        zone,
        flags["roche_snap"],
        flags["structural_drive"],
        flags["structure_ok"],
        flags["valid"],
        repeat(tf),
    )
    return [ThreeBodyQuantumState(*r) for r in per_row]


class QuantumFieldEngine:
    """Computes every state column of a timeframe's whole continuous bar series at once."""

    def __init__(self, config: PhysicsConfig | None = None) -> None:
        self.config = config or PhysicsConfig()

    def compute_states(self, bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
        """Return ``bars`` (timestamp, open, high, low, close, volume) plus the state columns.

        Rows align with ``bars`` one-for-one (index reset). ``timeframe`` is recorded in
        ``DataFrame.attrs["timeframe"]``; bars must be one continuous series in time order.
        """
        # copies of the input columns (the result must not alias the caller's frame); the state
        # arrays are handed over without a copy (copy=False also skips pandas' block consolidation,
        # which otherwise costs more than the physics itself)
        base = {
            col: np.array(bars[col])
            for col in ("timestamp", "open", "high", "low", "close", "volume")
        }
        arrs = compute_state_arrays(base["close"], base["volume"], self.config)
        data: dict[str, np.ndarray | pd.Categorical] = dict(base)
        for name in STATE_COLUMNS:
            data[name] = arrs[name]
        # a categorical over the int8 codes: str values, but no per-bar Python string objects
        data["lagrange_zone"] = pd.Categorical.from_codes(
            arrs["zone_code"],  # type: ignore[arg-type]  # pandas-stubs: codes only Sequence[int]
            categories=pd.Index(ZONE_NAMES),
        )
        for name in ("roche_snap", "structural_drive", "structure_ok", "valid"):
            data[name] = arrs[name]
        df = pd.DataFrame(data, columns=ALL_COLUMNS, copy=False)
        df.attrs["timeframe"] = timeframe
        return df


@dataclass(frozen=True)
class ThreeBodyQuantumState:
    """One bar's state (the view a PatternEvent carries). Units as in the module docstring."""

    timestamp: int  # epoch seconds UTC, bar open
    open: float
    high: float
    low: float
    close: float
    volume: float
    center: float
    sigma: float
    z_score: float
    velocity: float
    momentum: float
    reversion_force: float
    band_repulsion: float
    f_net: float
    P0: float
    P1: float
    P2: float
    entropy: float
    coherence: float
    lagrange_zone: str
    roche_snap: bool
    structural_drive: bool
    structure_ok: bool
    valid: bool
    timeframe: str = "15s"

    @classmethod
    def from_states(
        cls, states_df: pd.DataFrame, i: int, timeframe: str | None = None
    ) -> ThreeBodyQuantumState:
        """The state of row position ``i`` of a :meth:`QuantumFieldEngine.compute_states` frame."""
        tf = timeframe or states_df.attrs.get("timeframe", "15s")
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "timeframe":
                continue
            col = states_df[f.name]
            if f.name == "timestamp":
                kw[f.name] = int(col.to_numpy()[i])
            elif f.name == "lagrange_zone":
                kw[f.name] = str(col.iat[i])
            elif f.name in ("roche_snap", "structural_drive", "structure_ok", "valid"):
                kw[f.name] = bool(col.iat[i])
            else:
                kw[f.name] = float(col.to_numpy()[i])
        return cls(timeframe=tf, **kw)
