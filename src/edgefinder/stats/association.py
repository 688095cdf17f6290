"""Association between one feature and one outcome: point-biserial, chi-square, logistic, Spearman.

Every function is pure, drops missing values pairwise (or listwise for models), reports ``n``, an
effect size with a 95% confidence interval and a raw p-value (cluster-robust when ``groups`` names
each row's cluster, e.g. its match: rounds of one match are not independent observations), flags small samples as
``exploratory`` and never raises on degenerate data (constant input, one outcome class, perfect
separation): those come back as NaN effects with ``p_value = 1.0`` and a ``reason``. Malformed
input (different lengths, non-binary outcome, missing column) raises
:class:`~edgefinder.stats._common.StatsInputError` with a one-line message.

Units: correlations, Cramér's V and probabilities are dimensionless; logistic coefficients are
log-odds per one unit of the feature *in the feature's own unit* (counts, shares, dollars, ...),
odds ratios are the exponentiated coefficients.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize
from scipy import stats as sps
from scipy.stats import contingency
from statsmodels.tools import sm_exceptions

from edgefinder.stats._common import (
    DEFAULT_MIN_CLUSTERS,
    StatsInputError,
    as_float_array,
    check_binary,
    cluster_codes,
    cluster_se_of_mean,
    design_frame,
    direction_of,
    fisher_z_ci,
    normal_or_t_crit,
    paired_finite,
    two_sided_p,
)

__all__ = [
    "DEFAULT_MIN_CLUSTERS",
    "DEFAULT_MIN_GROUP_N",
    "Chi2Result",
    "ClusteredCorrelation",
    "LogisticResult",
    "PointBiserialResult",
    "SpearmanResult",
    "chi2_feature_counts",
    "clustered_correlation",
    "logistic_model",
    "point_biserial",
    "spearman",
]

#: A result is flagged ``exploratory`` when its smaller outcome group (or, for Spearman, its n)
#: has fewer observations than this. 30 per group is the usual rule of thumb below which the
#: normal approximations behind the CIs and p-values are not trusted.
DEFAULT_MIN_GROUP_N = 30

_NAN = float("nan")


# --------------------------------------------------------------------------- point-biserial


@dataclass(frozen=True)
class PointBiserialResult:
    """Point-biserial correlation of a numeric feature with a binary outcome.

    ``r`` in [-1, 1]; ``ci_low``/``ci_high`` the Fisher-z 95% interval tanh(atanh(r) ± 1.96/sqrt(n-3));
    ``p_value`` two-sided (t-test of r = 0); ``n`` the pairs kept after dropping NaNs;
    ``n_positive``/``n_negative`` the outcome-1 / outcome-0 group sizes; ``exploratory`` true when
    the smaller group is below ``min_group_n``; ``direction`` 'positive', 'negative' or 'none';
    ``reason`` is set (and r is NaN, p 1.0) when r is undefined. Clustered (``groups`` given): the CI
    and p come from the cluster-robust standard error of r (see :func:`clustered_correlation`),
    ``n_clusters`` is G and ``design_effect`` the ratio of the clustered to the independent-rows
    variance of r.
    """

    r: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    n_positive: int
    n_negative: int
    exploratory: bool
    direction: str
    reason: str | None = None
    n_clusters: int | None = None
    design_effect: float | None = None


@dataclass(frozen=True)
class ClusteredCorrelation:
    """Cluster-robust inference for a correlation r: ``se`` (of r), ``ci_low``/``ci_high`` (Fisher z
    with se/(1-r²), t(G-1) quantile), ``p_value`` (t = r/se on G-1 df), ``n_clusters`` G, ``se_iid`` (the
    same influence-function SE with every row its own cluster) and ``design_effect`` = (se/se_iid)²."""

    se: float
    ci_low: float
    ci_high: float
    p_value: float
    n_clusters: int
    se_iid: float
    design_effect: float


def clustered_correlation(
    x: np.ndarray, y: np.ndarray, r: float, codes: np.ndarray
) -> ClusteredCorrelation:
    """Cluster-robust standard error, CI and p-value of the Pearson correlation ``r`` of ``x`` and ``y``.

    The influence function of r (standardized xs, ys with population SDs) is
    psi = xs·ys − r (xs² + ys²) / 2; its clustered variance (:func:`~edgefinder.stats._common.cluster_se_of_mean`,
    CR1) is the variance of r when rows of one cluster are correlated. For bivariate normal rows
    without clustering it reduces to the textbook (1 − r²)²/n. Spearman's rho is this on ranks.
    """
    xs = (x - x.mean()) / x.std()
    ys = (y - y.mean()) / y.std()
    psi = xs * ys - r * (xs * xs + ys * ys) / 2.0
    g = int(codes.max()) + 1
    se = cluster_se_of_mean(psi, codes)
    se_iid = cluster_se_of_mean(psi, None)
    crit = normal_or_t_crit(g)
    if abs(r) < 1.0 and np.isfinite(se) and se > 0:
        z = float(np.arctanh(r))
        half = crit * se / (1.0 - r * r)
        lo, hi = float(np.tanh(z - half)), float(np.tanh(z + half))
    else:
        lo = hi = float(r)
    p = two_sided_p(r / se if se > 0 else float("nan"), g)
    deff = float((se / se_iid) ** 2) if se_iid > 0 else float("nan")
    return ClusteredCorrelation(se, lo, hi, p, g, se_iid, deff)


def _paired_with_groups(
    x: object, y: object, groups: object | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if groups is None:
        xa, ya = paired_finite(x, y, "x", "y")
        return xa, ya, None
    xa, ya = as_float_array(x, "x"), as_float_array(y, "y")
    if xa.shape != ya.shape:
        raise StatsInputError(f"x and y differ in length ({xa.size} vs {ya.size})")
    codes = cluster_codes(groups, xa.size)
    keep = np.isfinite(xa) & np.isfinite(ya)
    _, codes_kept = np.unique(codes[keep], return_inverse=True)
    return xa[keep], ya[keep], codes_kept.astype(np.int64)


def point_biserial(
    x: object,
    y: object,
    *,
    min_group_n: int = DEFAULT_MIN_GROUP_N,
    groups: object | None = None,
    min_clusters: int = DEFAULT_MIN_CLUSTERS,
) -> PointBiserialResult:
    """Point-biserial correlation between feature ``x`` (numeric) and binary outcome ``y`` (0/1).

    Pairs with a NaN on either side are dropped. Uses :func:`scipy.stats.pointbiserialr` (which
    equals the Pearson correlation with the 0/1 variable). A constant feature, a single outcome class
    or fewer than 3 pairs give ``r = NaN``, ``p_value = 1.0`` and a ``reason`` instead of an error.
    ``groups`` (one cluster label per row, e.g. the match): CI and p-value are cluster-robust
    (:func:`clustered_correlation`) and fewer than ``min_clusters`` clusters flag the result exploratory.
    """
    xa, ya, codes = _paired_with_groups(x, y, groups)
    check_binary(ya, "y")
    n = int(xa.size)
    n_pos = int(ya.sum())
    n_neg = n - n_pos
    exploratory = min(n_pos, n_neg) < min_group_n
    reason = _degenerate_reason(xa, ya, n, binary_y=True) or _one_cluster_reason(codes)
    if reason is not None:
        return PointBiserialResult(_NAN, _NAN, _NAN, 1.0, n, n_pos, n_neg, True, "none", reason)
    res = sps.pointbiserialr(ya, xa)  # scipy takes the binary variable first
    r = float(res.statistic)
    if codes is not None:
        c = clustered_correlation(xa, ya, r, codes)
        return PointBiserialResult(
            r,
            c.ci_low,
            c.ci_high,
            c.p_value,
            n,
            n_pos,
            n_neg,
            exploratory or c.n_clusters < min_clusters,
            direction_of(r),
            None,
            c.n_clusters,
            c.design_effect,
        )
    lo, hi = fisher_z_ci(r, n)
    return PointBiserialResult(
        r, lo, hi, float(res.pvalue), n, n_pos, n_neg, exploratory, direction_of(r)
    )


def _one_cluster_reason(codes: np.ndarray | None) -> str | None:
    if codes is not None and int(codes.max(initial=-1)) + 1 < 2:
        return "fewer than two clusters (matches): no clustered inference"
    return None


def _degenerate_reason(xa: np.ndarray, ya: np.ndarray, n: int, *, binary_y: bool) -> str | None:
    if n < 3:
        return f"only {n} complete pairs (need at least 3)"
    if np.ptp(xa) == 0:
        return "feature is constant"
    if np.ptp(ya) == 0:
        return "outcome has a single class" if binary_y else "outcome is constant"
    return None


# --------------------------------------------------------------------------- Spearman


@dataclass(frozen=True)
class SpearmanResult:
    """Spearman rank correlation of a numeric feature with a continuous outcome (e.g. econ_delta).

    ``rho`` in [-1, 1]; the 95% CI is Fisher-z with the Bonett & Wright (2000) standard error
    sqrt((1 + rho²/2) / (n - 3)), which keeps coverage near nominal for rank correlations where
    1/sqrt(n-3) is too narrow; ``p_value`` two-sided from :func:`scipy.stats.spearmanr`;
    ``exploratory`` when n < ``min_n``; ``reason`` set (rho NaN, p 1.0) when undefined. Clustered
    (``groups``): CI and p from the cluster-robust SE of the correlation of the ranks.
    """

    rho: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    exploratory: bool
    direction: str
    reason: str | None = None
    n_clusters: int | None = None
    design_effect: float | None = None


def spearman(
    x: object,
    y: object,
    *,
    min_n: int = DEFAULT_MIN_GROUP_N,
    groups: object | None = None,
    min_clusters: int = DEFAULT_MIN_CLUSTERS,
) -> SpearmanResult:
    """Spearman correlation of ``x`` and ``y`` (any numeric units), NaN pairs dropped.

    ``groups``: cluster-robust CI and p-value (:func:`clustered_correlation` on the ranks, which
    treats the ranks as fixed); fewer than ``min_clusters`` clusters flag the result exploratory.
    """
    xa, ya, codes = _paired_with_groups(x, y, groups)
    n = int(xa.size)
    reason = _degenerate_reason(xa, ya, n, binary_y=False) or _one_cluster_reason(codes)
    if reason is not None:
        return SpearmanResult(_NAN, _NAN, _NAN, 1.0, n, True, "none", reason)
    if codes is not None:
        # Spearman's rho is Pearson's r of the (average) ranks: rank once, use the ranks for both
        rx, ry = sps.rankdata(xa), sps.rankdata(ya)
        rho = float(np.corrcoef(rx, ry)[0, 1])
        c = clustered_correlation(rx, ry, rho, codes)
        return SpearmanResult(
            rho,
            c.ci_low,
            c.ci_high,
            c.p_value,
            n,
            n < min_n or c.n_clusters < min_clusters,
            direction_of(rho),
            None,
            c.n_clusters,
            c.design_effect,
        )
    res = sps.spearmanr(xa, ya)
    rho = float(res.statistic)
    se = np.sqrt((1.0 + rho * rho / 2.0) / (n - 3)) if n > 3 else _NAN
    lo, hi = fisher_z_ci(rho, n, se=se)
    return SpearmanResult(rho, lo, hi, float(res.pvalue), n, n < min_n, direction_of(rho))


# --------------------------------------------------------------------------- chi-square


@dataclass(frozen=True)
class Chi2Result:
    """Chi-square test of independence between a binned feature and a categorical outcome.

    ``chi2`` the Pearson statistic, ``dof`` its degrees of freedom, ``cramers_v`` in [0, 1]
    (sqrt(chi2 / (n · (min(rows, cols) - 1)))), ``p_value`` upper tail, ``n`` the pairs used,
    ``bins`` the feature levels that occurred (table rows, in order), ``min_expected`` the smallest
    expected cell count; ``exploratory`` when it is below 5 (Cochran's rule: the chi-square
    approximation is unreliable) or the smaller outcome group is below ``min_group_n``. Clustered
    (``groups``): ``p_value`` is the cluster-robust Wald test of independence (see
    :func:`chi2_feature_counts`), ``n_clusters`` G, ``design_effect`` = (chi2 / dof) / F_clustered,
    the factor by which treating rows as independent overstates the evidence.
    """

    chi2: float
    dof: int
    cramers_v: float
    p_value: float
    n: int
    bins: tuple[str, ...]
    min_expected: float
    exploratory: bool
    reason: str | None = None
    n_clusters: int | None = None
    design_effect: float | None = None


def _bin_feature(feature: pd.Series, bins: str | int | Sequence[float] | None) -> pd.Series:
    if bins is None:
        return feature.astype(str)
    if isinstance(bins, str):
        if bins != "count":
            raise StatsInputError(
                f"unknown bins {bins!r}: use 'count', an int (quantiles), edges or None"
            )
        values = feature.to_numpy(dtype=np.float64)
        if (values < 0).any():
            raise StatsInputError("bins='count' needs non-negative counts")
        # 0 / 1 / 2+: most per-round intent counts are 0 or 1, so a finer split leaves empty cells.
        labels = np.where(values < 0.5, "0", np.where(values < 1.5, "1", "2+"))
        return pd.Series(pd.Categorical(labels, categories=["0", "1", "2+"]), index=feature.index)
    if isinstance(bins, (int, np.integer)):
        # Quantile bins; ties can make edges coincide, duplicates='drop' merges those bins.
        cut = pd.qcut(feature, int(bins), duplicates="drop")
    else:
        # edges as a list of floats: pandas-stubs' cut takes no ndarray (pandas makes one again)
        edges = np.asarray(bins, dtype=np.float64).tolist()
        cut = pd.cut(feature, edges, include_lowest=True)
    # String labels, but keep the interval order (plain astype(str) would sort them as text).
    return cut.cat.rename_categories([str(c) for c in cut.cat.categories])


def chi2_feature_counts(
    feature: object,
    outcome: object,
    bins: str | int | Sequence[float] | None = "count",
    *,
    correction: bool = False,
    min_group_n: int = DEFAULT_MIN_GROUP_N,
    groups: object | None = None,
    min_clusters: int = DEFAULT_MIN_CLUSTERS,
) -> Chi2Result:
    """Chi-square test of a (binned) feature against a categorical outcome (binary or multi-class).

    ``bins``: ``"count"`` (default) bins a non-negative count into 0 / 1 / 2+; an ``int`` k makes k
    quantile bins (:func:`pandas.qcut`, tied edges merged); a sequence gives explicit bin edges
    (:func:`pandas.cut`, lowest edge included); ``None`` uses the values as categories. Pairs with a
    missing value are dropped; empty bins do not enter the table. The table goes to
    :func:`scipy.stats.chi2_contingency` with ``correction`` (Yates, 2x2 only; off by default so the
    statistic matches Cramér's V, from :func:`scipy.stats.contingency.association`). Fewer than two
    occupied rows or columns give ``chi2 = NaN``, ``p_value = 1.0`` and a ``reason``.

    ``groups`` (binary outcomes only): the p-value is the cluster-robust Wald F test that the outcome
    rate is the same in every bin: :class:`statsmodels.api.OLS` of the 0/1 outcome on the bin dummies
    with ``cov_type='cluster'`` (F on (bins - 1, G - 1) degrees of freedom), a design-based test of
    independence in the spirit of the Rao-Scott correction. The Pearson statistic and Cramér's V
    stay as the effect size.
    """
    f = pd.Series(
        np.asarray(feature).ravel() if not isinstance(feature, pd.Series) else feature.to_numpy()
    )
    o = pd.Series(
        np.asarray(outcome).ravel() if not isinstance(outcome, pd.Series) else outcome.to_numpy()
    )
    if f.size != o.size:
        raise StatsInputError(f"feature and outcome differ in length ({f.size} vs {o.size})")
    keep = f.notna().to_numpy() & o.notna().to_numpy()
    if bins is not None:
        f = pd.to_numeric(f, errors="coerce")
        keep &= np.isfinite(f.to_numpy(dtype=np.float64))
    codes = None if groups is None else cluster_codes(groups, keep.size)
    f, o = f[keep].reset_index(drop=True), o[keep].reset_index(drop=True)
    if codes is not None:
        _, inv = np.unique(codes[keep], return_inverse=True)
        codes = inv.astype(np.int64)
    n = int(f.size)
    if n == 0:
        return Chi2Result(_NAN, 0, _NAN, 1.0, 0, (), _NAN, True, "no complete pairs")
    binned = _bin_feature(f, bins)
    table = pd.crosstab(binned, o)
    table = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0]
    levels = tuple(str(i) for i in table.index)
    if table.shape[0] < 2 or table.shape[1] < 2:
        what = "feature has a single bin" if table.shape[0] < 2 else "outcome has a single class"
        return Chi2Result(_NAN, 0, _NAN, 1.0, n, levels, _NAN, True, what)
    observed = table.to_numpy(dtype=np.int64)
    res = sps.chi2_contingency(observed, correction=correction)
    v = float(contingency.association(observed, method="cramer", correction=correction))
    min_expected = float(res.expected_freq.min())
    smaller_group = float(observed.sum(axis=0).min())
    exploratory = min_expected < 5.0 or smaller_group < min_group_n
    if codes is None:
        return Chi2Result(
            float(res.statistic),
            int(res.dof),
            v,
            float(res.pvalue),
            n,
            levels,
            min_expected,
            exploratory,
        )
    if table.shape[1] != 2:
        raise StatsInputError("the clustered chi-square test needs a binary outcome")
    one = _one_cluster_reason(codes)
    if one is not None:
        return Chi2Result(
            float(res.statistic), int(res.dof), v, 1.0, n, levels, min_expected, True, one
        )
    y = (o.to_numpy() == table.columns[1]).astype(np.float64)
    cells = pd.Categorical(binned.astype(str), categories=list(levels))
    dummies = pd.get_dummies(cells, drop_first=True, dtype=np.float64)
    fit = sm.OLS(y, sm.add_constant(dummies.to_numpy(), has_constant="add")).fit(
        cov_type="cluster", cov_kwds={"groups": codes}, use_t=True
    )
    k = dummies.shape[1]
    wald = fit.f_test(np.eye(k + 1)[1:])
    f_stat = float(np.squeeze(wald.fvalue))
    g = int(codes.max()) + 1
    deff = float(res.statistic) / k / f_stat if f_stat > 0 else float("nan")
    return Chi2Result(
        float(res.statistic),
        int(res.dof),
        v,
        float(np.squeeze(wald.pvalue)),
        n,
        levels,
        min_expected,
        exploratory or g < min_clusters,
        None,
        g,
        deff,
    )


# --------------------------------------------------------------------------- logistic


@dataclass(frozen=True)
class LogisticResult:
    """Logistic regression of a binary outcome on features (+ pre-treatment covariates).

    ``table``: one row per model term (index = term name, the intercept is ``const``; text columns
    appear as one-hot dummies ``col_level``) with columns ``coef`` (log-odds per unit of the term),
    ``se``, ``z``, ``p_value`` (two-sided Wald), ``odds_ratio`` = exp(coef), ``or_ci_low``,
    ``or_ci_high`` (Wald 95% CI, exponentiated) and ``role`` ('feature', 'covariate', 'intercept').
    ``status``: 'ok'; 'perfect_separation' or 'quasi_separation' (the maximum-likelihood estimate does
    not exist: every estimate is NaN and ``separation`` is True); 'not_converged' (estimates kept,
    interpret with care); 'no_variation' (one outcome class or a constant term); 'singular'
    (collinear design); 'too_few' (fewer rows than terms). ``exploratory`` when the smaller
    outcome group is below ``min_group_n``.
    """

    table: pd.DataFrame
    n: int
    n_events: int
    converged: bool
    status: str
    separation: bool
    exploratory: bool
    llf: float
    pseudo_r2: float
    reason: str | None = None

    def odds_ratio(self, term: str) -> tuple[float, float, float]:
        """(odds ratio, CI low, CI high) of one term; a KeyError names an unknown term."""
        row = self.table.loc[term]
        return float(row["odds_ratio"]), float(row["or_ci_low"]), float(row["or_ci_high"])


_TABLE_COLUMNS = ["coef", "se", "z", "p_value", "odds_ratio", "or_ci_low", "or_ci_high", "role"]


def _nan_table(terms: Sequence[str], roles: Sequence[str]) -> pd.DataFrame:
    table = pd.DataFrame(
        np.nan, index=pd.Index(list(terms), name="term"), columns=_TABLE_COLUMNS[:-1]
    )
    table["role"] = list(roles)
    return table


def detect_separation(X: np.ndarray, y: np.ndarray) -> str | None:
    """Separation check by linear programming (Konis 2007), independent of any fit's convergence.

    ``X`` must contain the intercept column. Returns 'perfect_separation' when some direction b
    puts every observation strictly on its outcome's side (s_i · x_i·b > 0 with s = 2y - 1),
    'quasi_separation' when some b gives s_i · x_i·b >= 0 for all i with at least one strict
    inequality, and None when the maximum-likelihood estimate exists.
    """
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(axis=0)
    # Standardize non-constant columns so the box |b| <= 1 treats every column alike (separation
    # is invariant to affine rescaling when an intercept is present).
    Xs = np.where(sd > 0, (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0), X)
    A = (2.0 * y - 1.0)[:, None] * Xs
    n, k = A.shape
    # Complete separation: maximize t s.t. A b >= t, |b| <= 1, t <= 1. Variables (b, t).
    c = np.zeros(k + 1)
    c[-1] = -1.0
    a_ub = np.hstack([-A, np.ones((n, 1))])
    bounds = [(-1.0, 1.0)] * k + [(None, 1.0)]
    res = optimize.linprog(c, A_ub=a_ub, b_ub=np.zeros(n), bounds=bounds, method="highs")
    tol = 1e-9 * max(1.0, float(np.abs(A).max()))
    if res.status == 0 and -res.fun > tol:
        return "perfect_separation"
    # Quasi-complete: maximize sum(A b) s.t. A b >= 0, |b| <= 1.
    res = optimize.linprog(
        -A.sum(axis=0), A_ub=-A, b_ub=np.zeros(n), bounds=[(-1.0, 1.0)] * k, method="highs"
    )
    if res.status == 0 and -res.fun > 1e-7 * n:
        return "quasi_separation"
    return None


def logistic_model(
    df: pd.DataFrame,
    feature_cols: str | Sequence[str],
    outcome_col: str,
    covariates: Sequence[str] | None = None,
    *,
    alpha: float = 0.05,
    maxiter: int = 100,
    min_group_n: int = DEFAULT_MIN_GROUP_N,
    groups: object | None = None,
    min_clusters: int = DEFAULT_MIN_CLUSTERS,
) -> LogisticResult:
    """Fit ``outcome ~ const + features + covariates`` with :class:`statsmodels.api.Logit` (Newton).

    Rows with any missing value in the used columns are dropped (listwise). Text/categorical columns
    are one-hot encoded with the first level dropped. Separation never raises: statsmodels'
    ``PerfectSeparationError``/``PerfectSeparationWarning``, non-convergence, a singular Hessian or
    fitted probabilities within 1e-8 of 0 or 1 trigger an exact linear-programming check
    (:func:`detect_separation`), and a separated design returns NaN estimates with ``status``
    'perfect_separation' or 'quasi_separation'. ``alpha`` sets the CI level (0.05 -> 95%).
    ``groups`` (a cluster label per row of ``df``, e.g. the match): standard errors, Wald CIs and
    p-values are cluster-robust (statsmodels ``cov_type='cluster'``, t on G - 1 degrees of freedom);
    fewer than ``min_clusters`` clusters flag the fit exploratory.
    """
    features = [feature_cols] if isinstance(feature_cols, str) else list(feature_cols)
    covs = list(covariates or [])
    overlap = set(features) & set(covs)
    if overlap or outcome_col in features or outcome_col in covs:
        twice = ", ".join(sorted(overlap or {outcome_col}))
        raise StatsInputError(f"a column is used twice (feature, covariate or outcome): {twice}")
    if outcome_col not in df.columns:
        raise StatsInputError(f"outcome column {outcome_col!r} not in the data")
    design = design_frame(df, features + covs)
    roles = ["intercept"] + [
        "feature" if _origin(c, features, covs) else "covariate" for c in design.columns
    ]
    y_all = pd.to_numeric(df[outcome_col], errors="coerce").astype(np.float64)
    keep = design.notna().all(axis=1).to_numpy() & y_all.notna().to_numpy()
    # the design as one float array with the intercept first (pandas' add_constant copies block by block)
    kept = design.loc[keep]
    X = pd.DataFrame(
        np.hstack([np.ones((len(kept), 1)), kept.to_numpy(dtype=np.float64)]),
        columns=["const", *kept.columns],
        index=kept.index,
    )
    y = y_all.to_numpy()[keep]
    check_binary(y, outcome_col)
    terms = list(X.columns)
    n, n_events = int(y.size), int(y.sum())
    exploratory = min(n_events, n - n_events) < min_group_n
    fit_kw: dict[str, object] = {}
    if groups is not None:
        _, codes = np.unique(cluster_codes(groups, len(df))[keep], return_inverse=True)
        fit_kw = {
            "cov_type": "cluster",
            "cov_kwds": {"groups": codes.astype(np.int64)},
            "use_t": True,
        }
        exploratory = exploratory or int(codes.max(initial=-1)) + 1 < min_clusters

    def failed(status: str, reason: str, separation: bool = False) -> LogisticResult:
        table = _nan_table(terms, roles)
        return LogisticResult(
            table, n, n_events, False, status, separation, True, _NAN, _NAN, reason
        )

    if n <= len(terms):
        return failed("too_few", f"{n} complete rows for {len(terms)} terms")
    if fit_kw and _one_cluster_reason(fit_kw["cov_kwds"]["groups"]) is not None:  # type: ignore[index]
        return failed("too_few", "fewer than two clusters (matches): no clustered inference")
    if n_events in (0, n):
        return failed("no_variation", "outcome has a single class")
    Xv = X.to_numpy()
    constant_terms = [t for t, s in zip(terms[1:], Xv[:, 1:].std(axis=0), strict=True) if s == 0]
    if constant_terms:
        return failed("no_variation", "constant term(s): " + ", ".join(constant_terms))
    # rank(X) = rank(X'X): the k x k Gram matrix instead of an SVD of the n x k design
    if np.linalg.matrix_rank(Xv.T @ Xv, hermitian=True) < Xv.shape[1]:
        return failed("singular", "collinear design (a term is a linear combination of others)")

    suspect = False
    res = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = sm.Logit(y, X.to_numpy()).fit(method="newton", maxiter=maxiter, disp=0, **fit_kw)
        except sm_exceptions.PerfectSeparationError:
            suspect = True
        except np.linalg.LinAlgError:
            suspect = True
    trouble = (
        sm_exceptions.PerfectSeparationWarning,
        sm_exceptions.ConvergenceWarning,
        sm_exceptions.HessianInversionWarning,
        RuntimeWarning,
    )
    suspect = suspect or any(issubclass(w.category, trouble) for w in caught)
    if res is not None:
        fitted = np.asarray(res.predict())
        suspect = suspect or not bool(res.mle_retvals.get("converged", False))
        suspect = suspect or bool(np.min(np.minimum(fitted, 1.0 - fitted)) < 1e-8)
        suspect = suspect or not np.all(np.isfinite(np.asarray(res.bse)))
    if suspect:
        sep = detect_separation(Xv, y)
        if sep is not None:
            return failed(
                sep,
                sep.replace("_", " ") + ": the maximum-likelihood odds ratios do not exist",
                True,
            )
        if res is None:
            return failed("not_converged", "fit failed without separation")

    assert res is not None
    params = np.asarray(res.params)
    ci = np.asarray(res.conf_int(alpha=alpha))
    table = pd.DataFrame(
        {
            "coef": params,
            "se": np.asarray(res.bse),
            "z": np.asarray(res.tvalues),
            "p_value": np.asarray(res.pvalues),
            "odds_ratio": np.exp(params),
            "or_ci_low": np.exp(ci[:, 0]),
            "or_ci_high": np.exp(ci[:, 1]),
            "role": roles,
        },
        index=pd.Index(terms, name="term"),
    )
    converged = bool(res.mle_retvals.get("converged", False))
    status = "ok" if converged else "not_converged"
    reason = None if converged else f"Newton did not converge in {maxiter} iterations"
    # McFadden's pseudo R² = 1 - llf / llnull; the constant-only MLE is the event rate, so llnull is
    # closed-form (statsmodels' prsquared refits it with Nelder-Mead, a third of this function's time)
    rate = n_events / n
    llnull = n_events * math.log(rate) + (n - n_events) * math.log(1.0 - rate)
    return LogisticResult(
        table,
        n,
        n_events,
        converged,
        status,
        False,
        exploratory,
        float(res.llf),
        1.0 - float(res.llf) / llnull,
        reason,
    )


def _origin(design_col: str, features: Sequence[str], covariates: Sequence[str]) -> bool:
    """True when a design column comes from one of ``features`` (itself or one of its dummies)."""
    if design_col in features or design_col in covariates:
        return design_col in features
    # A one-hot dummy "col_level": attribute it to the longest matching source column.
    sources = [c for c in (*features, *covariates) if design_col.startswith(f"{c}_")]
    return bool(sources) and max(sources, key=len) in features
