"""Shared input handling for the statistics package (domain-free, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from edgefinder.errors import EdgefinderError

#: Two-sided 95% normal quantile (1.959963984540054), from scipy rather than a literal.
Z_975: float = float(sps.norm.ppf(0.975))


class StatsInputError(EdgefinderError):
    """Input to a statistics function is malformed (wrong length, non-binary outcome, ...)."""


def as_float_array(values: object, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array (bools become 0/1); raise a one-line error otherwise."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim == 2 and 1 in arr.shape:  # a single DataFrame column or a column vector
        arr = arr.ravel()
    if arr.ndim != 1:
        raise StatsInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def paired_finite(x: object, y: object, xname: str = "x", yname: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Drop pairs where either value is NaN/inf (pairwise deletion) and return the kept arrays."""
    xa = as_float_array(x, xname)
    ya = as_float_array(y, yname)
    if xa.shape != ya.shape:
        raise StatsInputError(f"{xname} and {yname} differ in length ({xa.size} vs {ya.size})")
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep]


def check_binary(y: np.ndarray, name: str) -> None:
    """Raise unless every value of ``y`` is 0 or 1."""
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        example = y[bad][0]
        raise StatsInputError(f"{name} must be binary 0/1, found value {example!r}")


def direction_of(effect: float) -> str:
    """'positive', 'negative' or 'none' (zero or NaN) for a signed effect size."""
    if not np.isfinite(effect) or effect == 0:
        return "none"
    return "positive" if effect > 0 else "negative"


def fisher_z_ci(r: float, n: int, se: float | None = None, z_crit: float = Z_975) -> tuple[float, float]:
    """Fisher-z confidence interval for a correlation: tanh(atanh(r) +/- z_crit * se).

    ``se`` defaults to 1/sqrt(n - 3) (Pearson/point-biserial). Undefined (NaN, NaN) for n < 4 or NaN r;
    |r| == 1 gives the degenerate interval (r, r).
    """
    if not np.isfinite(r) or n < 4:
        return (float("nan"), float("nan"))
    if abs(r) >= 1.0:
        return (float(r), float(r))
    if se is None:
        se = 1.0 / np.sqrt(n - 3)
    z = np.arctanh(r)
    return (float(np.tanh(z - z_crit * se)), float(np.tanh(z + z_crit * se)))


def design_frame(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Numeric design columns: numbers/bools as float, text/categorical columns one-hot (first level dropped).

    Raises a one-line error for a missing column.
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StatsInputError(f"columns not in the data: {', '.join(map(str, missing))}")
    sub = df.loc[:, list(columns)]
    numeric = pd.api.types.is_numeric_dtype
    cat_cols = [c for c in sub.columns if not (numeric(sub[c]) or pd.api.types.is_bool_dtype(sub[c]))]
    if cat_cols:
        # Dummies keep the level name in the column ("side_defense") so odds ratios stay readable;
        # drop_first avoids the dummy trap with the intercept. NaN stays NaN (dummy_na=False -> all 0
        # would silently impute), so mark rows with a missing category as NaN explicitly.
        na_rows = sub[cat_cols].isna().any(axis=1)
        sub = pd.get_dummies(sub, columns=cat_cols, drop_first=True, dtype=np.float64)
        dummy_cols = [c for c in sub.columns if c not in columns]
        sub.loc[na_rows, dummy_cols] = np.nan
    return sub.astype(np.float64)
