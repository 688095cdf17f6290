"""Shared input handling for the statistics package (domain-free, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from edgefinder.errors import EdgefinderError

#: Two-sided 95% normal quantile (1.959963984540054), from scipy rather than a literal.
Z_975: float = float(sps.norm.ppf(0.975))


#: Cluster-robust intervals need clusters: with fewer than this many (matches) a clustered result is
#: flagged ``exploratory`` (the sandwich variance is biased down with few clusters; Cameron & Miller
#: 2015 put the usual comfort zone at 30-50).
DEFAULT_MIN_CLUSTERS = 30


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


def paired_finite(
    x: object, y: object, xname: str = "x", yname: str = "y"
) -> tuple[np.ndarray, np.ndarray]:
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


def fisher_z_ci(
    r: float, n: int, se: float | None = None, z_crit: float = Z_975
) -> tuple[float, float]:
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


def cluster_codes(groups: object, n: int, name: str = "groups") -> np.ndarray:
    """Integer codes 0..G-1 of a cluster label per row (any hashable labels; NaN is refused)."""
    labels = pd.Series(
        np.asarray(groups).ravel() if not isinstance(groups, pd.Series) else groups.to_numpy()
    )
    if labels.size != n:
        raise StatsInputError(f"{name} has {labels.size} labels for {n} rows")
    if labels.isna().any():
        raise StatsInputError(f"{name} has missing labels")
    codes, _ = pd.factorize(labels, sort=False)
    return codes.astype(np.int64)


def cluster_sums(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-cluster sums of ``values`` (rows x k, or a vector), one row per cluster code."""
    n_clusters = int(codes.max()) + 1 if codes.size else 0
    if values.ndim == 1:
        return np.bincount(codes, weights=values, minlength=n_clusters)
    out = np.zeros((n_clusters, values.shape[1]))
    np.add.at(out, codes, values)
    return out


def cluster_se_of_mean(psi: np.ndarray, codes: np.ndarray | None) -> float:
    """Standard error of mean(psi) for influence values ``psi``: cluster-robust when ``codes`` is given.

    Cluster-robust (CR1, the Liang-Zeger sandwich with statsmodels' small-sample factor G/(G-1)):
    sqrt(G/(G-1) * sum_g (sum_{i in g} (psi_i - mean))^2) / n; this is exactly the standard error
    statsmodels reports for the intercept of ``OLS(psi, 1).fit(cov_type='cluster')``. Without
    ``codes``: sd(psi, ddof=1) / sqrt(n) (every row its own cluster).
    """
    n = psi.size
    if n < 2:
        return float("nan")
    if codes is None:
        return float(psi.std(ddof=1) / np.sqrt(n))
    g = int(codes.max()) + 1
    if g < 2:
        return float("nan")
    s = cluster_sums(psi - psi.mean(), codes)
    return float(np.sqrt(g / (g - 1) * np.sum(s * s)) / n)


def normal_or_t_crit(n_clusters: int | None, alpha: float = 0.05) -> float:
    """Two-sided critical value: t with G-1 degrees of freedom for G clusters, else the normal one.

    With clustered data the sandwich variance has about G-1 degrees of freedom (Cameron & Miller
    2015), so a t(G-1) quantile keeps coverage honest when matches are few.
    """
    if n_clusters is None:
        return float(sps.norm.ppf(1 - alpha / 2))
    return float(sps.t.ppf(1 - alpha / 2, max(n_clusters - 1, 1)))


def two_sided_p(stat: float, n_clusters: int | None) -> float:
    """Two-sided p-value of a z (no clusters) or t(G-1) statistic; 1.0 when undefined."""
    if not np.isfinite(stat):
        return 1.0
    if n_clusters is None:
        return float(2.0 * sps.norm.sf(abs(stat)))
    return float(2.0 * sps.t.sf(abs(stat), max(n_clusters - 1, 1)))


def design_frame(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Numeric design columns: numbers/bools as float, text/categorical columns one-hot (first level dropped).

    Raises a one-line error for a missing column.
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StatsInputError(f"columns not in the data: {', '.join(map(str, missing))}")
    sub = df.loc[:, list(columns)]
    numeric = pd.api.types.is_numeric_dtype
    cat_cols = [
        c for c in sub.columns if not (numeric(sub[c]) or pd.api.types.is_bool_dtype(sub[c]))
    ]
    if cat_cols:
        # Dummies keep the level name in the column ("side_defense") so odds ratios stay readable;
        # drop_first avoids the dummy trap with the intercept. NaN stays NaN (dummy_na=False -> all 0
        # would silently impute), so mark rows with a missing category as NaN explicitly.
        na_rows = sub[cat_cols].isna().any(axis=1)
        sub = pd.get_dummies(sub, columns=cat_cols, drop_first=True, dtype=np.float64)
        dummy_cols = [c for c in sub.columns if c not in columns]
        sub.loc[na_rows, dummy_cols] = np.nan
    return sub.astype(np.float64)
