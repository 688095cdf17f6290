"""The context at entry: what every coarser timeframe looked like when a candidate trade was taken.

For an entry on a bar of the entry timeframe (15 s), decided at that bar's close ``t``, each coarser
timeframe of the hierarchy contributes its **last closed bar** — the last bar whose close
(``open + bar seconds``) is at or before ``t`` — and nothing later (no look-ahead: a bar still
forming at ``t`` is never read). Per coarser timeframe ``tf`` the columns are:

* ``ctx_{tf}_z``, ``ctx_{tf}_velocity`` (points per bar), ``ctx_{tf}_momentum``,
  ``ctx_{tf}_coherence``: that bar's physics state;
* ``ctx_{tf}_stretch``: the sign of its stretch relative to the trade — ``+1`` **with** (|z| >=
  :data:`STRETCH_Z` and z points the way the trade bets: a long while the coarser bar is stretched
  up), ``-1`` **against**, ``0`` **calm** (|z| below it, or no closed bar yet);
* ``ctx_{tf}_age``: how many of its bars ago that timeframe's last pattern (ROCHE_SNAP or
  STRUCTURAL_DRIVE) closed (0 = its bar closed at ``t``; NaN = none yet), and ``ctx_{tf}_last``:
  which way it pointed relative to the trade (+1 the way the trade bets, -1 against, 0 none);

plus one **volatility regime** measure, ``ctx_vol_regime``: the range (high − low) of the last
closed bar of the regime timeframe (1h when the hierarchy has it, else the coarser timeframe closest
to an hour) divided by the median range of the :data:`VOL_LOOKBACK` bars before it (1 = ordinary,
2 = twice the recent norm; NaN until enough bars).

Everything is vectorized over candidates (one ``searchsorted`` per timeframe), so computing the
context costs milliseconds for a year of candidates.

**Context splits** (:func:`context_splits`) turn the columns into named yes/no states used by the
selection's context families and the ancestry analysis: per coarser timeframe ``"{tf} with"``,
``"{tf} against"``, ``"{tf} calm"`` and ``"{tf} fired"`` (its last pattern at most
:data:`RECENT_BARS` of its bars ago), and ``"vol high"`` / ``"vol normal"`` (regime measure at or
above :data:`VOL_HIGH`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from edgefinder.markets import atlas
from edgefinder.markets.cascade import pattern_rows
from edgefinder.markets.physics import StateArrays

__all__ = [
    "RECENT_BARS",
    "STRETCH_NAMES",
    "STRETCH_Z",
    "VOL_HIGH",
    "VOL_LOOKBACK",
    "EntryContext",
    "context_label",
    "context_splits",
    "entry_context",
    "regime_timeframe",
]

#: |z| of a coarser bar at or above which it counts as stretched (sigmas of its regression).
STRETCH_Z = 1.0
#: A coarser timeframe "fired" when its last pattern closed at most this many of its bars ago.
RECENT_BARS = 2.0
#: Bars before the last closed regime bar whose median range is the volatility norm.
VOL_LOOKBACK = 24
#: Regime measure at or above which volatility counts as high.
VOL_HIGH = 1.5
#: The stretch codes' names (``ctx_{tf}_stretch``).
STRETCH_NAMES = {1: "with", -1: "against", 0: "calm"}


@dataclass(frozen=True)
class EntryContext:
    """The context of many candidates as column arrays (one row per candidate, same order).

    ``timeframes``: the coarser timeframes, finest first; ``columns``: ``ctx_*`` name -> array.
    """

    timeframes: tuple[str, ...]
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(next(iter(self.columns.values())).size) if self.columns else 0


def regime_timeframe(coarser: Sequence[str]) -> str | None:
    """The timeframe whose bar ranges measure the volatility regime: 1h, else the closest to an hour."""
    if not coarser:
        return None
    return min(coarser, key=lambda tf: abs(np.log(atlas.TIMEFRAMES[tf] / 3600.0)))


def _last_closed(close_times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the last of the sorted ``close_times`` at or before each ``t`` (-1 when none)."""
    return np.searchsorted(close_times, t, side="right").astype(np.int64) - 1


def entry_context(
    states: Mapping[str, StateArrays],
    entry_tf: str,
    rows: np.ndarray,
    side: np.ndarray,
    timeframes: Sequence[str],
    cache: dict[tuple[str, str], np.ndarray] | None = None,
) -> EntryContext:
    """The context of entries on rows ``rows`` of ``entry_tf``'s series, trading ``side`` (+1/-1).

    ``states``: per timeframe state arrays over the whole series (``timestamp`` = bar open, epoch s);
    ``timeframes``: the hierarchy (any order); the ones coarser than ``entry_tf`` give context.
    ``cache``: a dict kept between calls on the same ``states`` (each timeframe's pattern rows and the
    regime ratios are whole-series passes; per-session calls would repeat them otherwise).
    """
    memo: dict[tuple[str, str], np.ndarray] = {} if cache is None else cache
    rows = np.asarray(rows, dtype=np.int64)
    side = np.asarray(side, dtype=np.int64)
    p_entry = atlas.TIMEFRAMES[entry_tf]
    t = np.asarray(states[entry_tf]["timestamp"])[rows].astype(np.int64) + p_entry
    coarser = sorted(
        (tf for tf in timeframes if atlas.TIMEFRAMES[tf] > p_entry),
        key=lambda tf: atlas.TIMEFRAMES[tf],
    )
    cols: dict[str, np.ndarray] = {}
    n = rows.size
    for tf in coarser:
        st = states[tf]
        p = atlas.TIMEFRAMES[tf]
        if (tf, "close") not in memo:
            memo[tf, "close"] = np.asarray(st["timestamp"], dtype=np.int64) + p
            memo[tf, "patterns"] = pattern_rows(st)[0]
            memo[tf, "pattern_close"] = memo[tf, "close"][memo[tf, "patterns"]]
        close, prow = memo[tf, "close"], memo[tf, "patterns"]
        k = _last_closed(close, t)
        ok = k >= 0
        kk = np.where(ok, k, 0)
        for name, src in (
            ("z", "z_score"),
            ("velocity", "velocity"),
            ("momentum", "momentum"),
            ("coherence", "coherence"),
        ):
            if (tf, src) not in memo:  # a float64 copy of a float32 column: once, not per call
                memo[tf, src] = np.asarray(st[src], dtype=np.float64)
            v = memo[tf, src]
            cols[f"ctx_{tf}_{name}"] = np.where(ok, v[kk] if v.size else np.nan, np.nan)
        z = cols[f"ctx_{tf}_z"]
        stretched = np.abs(np.nan_to_num(z)) >= STRETCH_Z
        cols[f"ctx_{tf}_stretch"] = (np.sign(np.nan_to_num(z)) * side * stretched).astype(np.int8)
        j = _last_closed(memo[tf, "pattern_close"], t) if prow.size else np.full(n, -1, np.int64)
        has = j >= 0
        last = prow[np.where(has, j, 0)] if prow.size else np.zeros(n, np.int64)
        pz = memo[tf, "z_score"]
        cols[f"ctx_{tf}_age"] = np.where(has, (t - close[last]) / p, np.nan)
        cols[f"ctx_{tf}_last"] = np.where(
            has, np.sign(pz[last] if pz.size else 0) * side, 0
        ).astype(np.int8)
    vt = regime_timeframe(coarser)
    if vt is None:
        cols["ctx_vol_regime"] = np.full(n, np.nan)
    else:
        st = states[vt]
        if (vt, "regime") not in memo:
            rng = pd.Series(np.asarray(st["high"], np.float64) - np.asarray(st["low"], np.float64))
            norm = rng.rolling(VOL_LOOKBACK).median().shift(1).to_numpy()
            memo[vt, "regime"] = rng.to_numpy() / np.where(norm > 0, norm, np.nan)
        ratio = memo[vt, "regime"]
        k = _last_closed(memo[vt, "close"], t)  # vt is one of the coarser timeframes
        cols["ctx_vol_regime"] = np.where(k >= 0, ratio[np.where(k >= 0, k, 0)], np.nan)
    return EntryContext(timeframes=tuple(coarser), columns=cols)


def context_timeframes(frame: pd.DataFrame | Mapping[str, np.ndarray]) -> list[str]:
    """The coarser timeframes whose context columns ``frame`` carries (finest first)."""
    names = frame.columns if isinstance(frame, pd.DataFrame) else frame.keys()
    tfs = {c[len("ctx_") : -len("_stretch")] for c in names if c.endswith("_stretch")}
    return sorted(tfs, key=lambda tf: atlas.TIMEFRAMES[tf])


def context_splits(frame: pd.DataFrame | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The named yes/no context states of each row (see the module doc), in a fixed order."""
    out: dict[str, np.ndarray] = {}
    for tf in context_timeframes(frame):
        s = np.asarray(frame[f"ctx_{tf}_stretch"], dtype=np.int64)
        for code, name in STRETCH_NAMES.items():
            out[f"{tf} {name}"] = s == code
        age = np.asarray(frame[f"ctx_{tf}_age"], dtype=np.float64)
        out[f"{tf} fired"] = np.nan_to_num(age, nan=np.inf) <= RECENT_BARS
    if "ctx_vol_regime" in (frame.columns if isinstance(frame, pd.DataFrame) else frame):
        v = np.asarray(frame["ctx_vol_regime"], dtype=np.float64)
        out["vol high"] = v >= VOL_HIGH
        out["vol normal"] = v < VOL_HIGH
    return out


def context_label(row: Mapping[str, object], timeframes: Sequence[str]) -> str:
    """One trade's context as text, coarsest first, e.g. ``"1h with z+2.3 fired 1 ago · 15m calm ·
    vol 1.8x"`` (for reports; vectorized code uses the columns)."""
    parts = []
    for tf in sorted(timeframes, key=lambda tf: atlas.TIMEFRAMES[tf], reverse=True):
        z = float(row.get(f"ctx_{tf}_z", np.nan))  # type: ignore[arg-type]
        s = STRETCH_NAMES[int(row.get(f"ctx_{tf}_stretch", 0))]  # type: ignore[call-overload]
        text = f"{tf} {s}" + ("" if np.isnan(z) else f" z{z:+.1f}")
        age = float(row.get(f"ctx_{tf}_age", np.nan))  # type: ignore[arg-type]
        if age <= RECENT_BARS:
            text += f" fired {age:.0f} ago"
        parts.append(text)
    v = float(row.get("ctx_vol_regime", np.nan))  # type: ignore[arg-type]
    if not np.isnan(v):
        parts.append(f"vol {v:.1f}x")
    return " · ".join(parts)
