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

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Any

import numba as nb
import numpy as np
import pandas as pd

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


_BLOCK = 64  # bars between exact re-seeds of the rolling window sums (bounds |close - ref|)


@nb.njit(
    cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc", "nsz", "arcp"}
)
def _states_range(
    close: np.ndarray,
    volume: np.ndarray,
    rp: int,
    sigma_floor: float,
    snap_z: float,
    snap_v: float,
    drive_m: float,
    drive_c: float,
    out: np.ndarray,
    zone: np.ndarray,
    flags: np.ndarray,
    lo: int,
    hi: int,
) -> None:  # pragma: no cover - compiled
    """Fill bars lo..hi-1 of out[13, n] float states, zone[n] codes, flags[3, n]."""
    half = 0.5 * (rp - 1)
    sxx = 0.0
    for k in range(rp):
        sxx += (k - half) * (k - half)
    ln3 = math.log(3.0)
    seeded = False
    ref = 0.0
    s1 = 0.0
    s2 = 0.0
    q = 0.0
    for i in range(lo, hi):
        if i < rp - 1:
            for j in range(13):
                out[j, i] = np.nan
            zone[i] = 0
            flags[0, i] = False
            flags[1, i] = False
            flags[2, i] = False
            continue
        if not seeded or i % _BLOCK == 0:
            # seeds sit at absolute multiples of _BLOCK, so any chunking gives identical bits
            seeded = True
            # (Re)seed exact window sums every _BLOCK bars, offset by a nearby close, so rounding
            # cannot accumulate and prices ~2e4 lose no digits (matches per-window lstsq ~1e-12).
            s = i - rp + 1
            ref = close[s]
            s1 = 0.0
            s2 = 0.0
            q = 0.0
            for k in range(rp):
                d = close[s + k] - ref
                s1 += d
                s2 += k * d
                q += d * d
        else:
            # O(1) slide: drop close[i-rp], add close[i]; x positions shift down by one.
            d_out = close[i - rp] - ref
            d_in = close[i] - ref
            s1_old = s1
            s1 = s1_old - d_out + d_in
            s2 = s2 - (s1_old - d_out) + (rp - 1) * d_in
            q = q - d_out * d_out + d_in * d_in
        ybar = s1 / rp
        sxy = s2 - half * s1
        slope = sxy / sxx
        rss = q - s1 * ybar - slope * sxy
        if rss < 0.0:
            rss = 0.0
        center = ref + ybar + slope * half
        sigma = math.sqrt(rss / (rp - 2))
        if sigma < sigma_floor:
            sigma = sigma_floor
        c = close[i]
        z = (c - center) / sigma
        vel = c - close[i - 1]
        mom = vel * volume[i] / sigma
        rev = -0.5 * z * sigma
        if z >= 0.0:
            d = abs(z - 2.0)
            sgn = 1.0
        else:
            d = abs(z + 2.0)
            sgn = -1.0
        rep = 1.0 / (d * d * d + 0.01)
        if rep > 100.0:
            rep = 100.0
        rep = -sgn * rep
        # softmax(-z^2/2, -(z-2)^2/2, -(z+2)^2/2) from one exp: the log-odds between the three
        # terms are +-(2z - 2) and -(2z + 2), so every ratio is a power of r = exp(-2|z| - 2) <= 1.
        az = abs(z)
        r = math.exp(-2.0 * az - 2.0)
        if az < 1.0:  # the center term is largest
            e_mid = 1.0
            e_near = 0.01831563888873418 / r  # exp(-4) / r = exp(2|z| - 2) <= 1
            e_far = r
            l_mid = 0.0  # natural logs of the three terms, known in closed form
            l_near = 2.0 * az - 2.0
            l_far = -2.0 * az - 2.0
        else:  # the band on z's side is largest
            e_near = 1.0
            e_mid = r * 54.598150033144236  # exp(4) r = exp(2 - 2|z|)
            e_far = e_mid * e_mid * 0.01831563888873418  # exp(-4|z|)
            l_near = 0.0
            l_mid = 2.0 - 2.0 * az
            l_far = -4.0 * az
        tot = e_mid + e_near + e_far
        ltot = math.log(tot)
        p0 = e_mid / tot
        if z >= 0.0:
            p1 = e_near / tot
            p2 = e_far / tot
            l1 = l_near
            l2 = l_far
        else:
            p1 = e_far / tot
            p2 = e_near / tot
            l1 = l_far
            l2 = l_near
        # entropy = -sum p ln(p + 1e-10). ln p = l - ln(tot) is exact in closed form, and
        # ln(p + 1e-10) = ln p + log1p(1e-10/p) = ln p + x - x^2/2 + O(x^3) with x = 1e-10/p, which
        # is exact to 1e-13 for p >= 1e-6; smaller p (|z| > ~6) take the plain log. This replaces
        # three logs per bar by one (the logs were over half the kernel time).
        ent = 0.0
        if p0 >= 1e-6:
            x = 1e-10 / p0
            ent -= p0 * (l_mid - ltot + x - 0.5 * x * x)
        else:
            ent -= p0 * math.log(p0 + 1e-10)
        if p1 >= 1e-6:
            x = 1e-10 / p1
            ent -= p1 * (l1 - ltot + x - 0.5 * x * x)
        else:
            ent -= p1 * math.log(p1 + 1e-10)
        if p2 >= 1e-6:
            x = 1e-10 / p2
            ent -= p2 * (l2 - ltot + x - 0.5 * x * x)
        else:
            ent -= p2 * math.log(p2 + 1e-10)
        coh = ent / ln3
        out[0, i] = center
        out[1, i] = sigma
        out[2, i] = z
        out[3, i] = vel
        out[4, i] = mom
        out[5, i] = rev
        out[6, i] = rep
        out[7, i] = rev + mom + rep
        out[8, i] = p0
        out[9, i] = p1
        out[10, i] = p2
        out[11, i] = ent
        out[12, i] = coh
        if az < 1.0:
            zone[i] = 1
        elif az < 2.0:
            zone[i] = 2
        elif z >= 2.0:
            zone[i] = 3
        else:
            zone[i] = 4
        flags[0, i] = az > snap_z and abs(vel) > snap_v
        flags[1, i] = abs(mom) > drive_m and coh < drive_c
        flags[2, i] = az >= snap_z


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
