"""Propensity-score effect estimates: cross-fitted propensities, Hájek IPW and doubly-robust AIPW.

Design (see DESIGN.md, "Analysis"):

* **Cross-fitting.** Propensities e(x) = P(T=1 | x) and outcome regressions m_t(x) = E[Y | T=t, x]
  are predicted *out of fold*: :class:`sklearn.model_selection.StratifiedKFold` (shuffled,
  ``random_state=seed``) splits the rows; each row is scored by models that never saw it. The
  seed's original fitted and scored in-sample, which overfits a random forest to ~0/1 propensities.
* **Pre-treatment covariates only.** The caller names the covariates; ``forbidden`` lists columns
  that must never be used (outcomes, post-treatment features) and the treatment and outcome columns
  are always refused.
* **Clipping.** Propensities are clipped to ``clip`` (default [0.01, 0.99]) and the number clipped
  on each side is reported, because weights 1/e explode near 0 and 1.
* **Estimators.** ``ate`` is the AIPW (augmented IPW, doubly robust) estimate with an
  influence-function standard error; ``ipw_ate`` is the Hájek (normalized-weights) IPW estimate
  with its influence-function standard error (propensities treated as known, which is usually
  conservative); ``naive_ate`` is the plain difference in means with a Welch t interval.
* **Balance.** Standardized mean differences per covariate before and after weighting, both over
  the unweighted pooled SD sqrt((s1² + s0²)/2) so that only the mean gap changes.

Units: effects are in the outcome's unit (probability points for a 0/1 outcome, dollars for
econ_delta); propensities are probabilities.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from edgefinder.stats._common import Z_975, StatsInputError, as_float_array, check_binary, design_frame

__all__ = [
    "PropensityResult",
    "compute_propensity",
    "covariate_balance",
    "propensity_adjusted_effect",
    "weighted_outcome_diff",
]

#: Fewer treated (or control) rows than this flags the estimate exploratory.
DEFAULT_MIN_GROUP_N = 30


@dataclass(frozen=True)
class PropensityResult:
    """Out-of-fold propensities P(T=1 | covariates) for every row, clipped, plus a clipping report.

    ``propensity`` clipped to ``clip``; ``raw`` before clipping; ``n_clipped_low``/``n_clipped_high``
    rows raised to ``clip[0]`` / lowered to ``clip[1]``; ``folds`` the fold index of each row
    (the outcome models reuse the same split).
    """

    propensity: np.ndarray
    raw: np.ndarray
    n_clipped_low: int
    n_clipped_high: int
    clip: tuple[float, float]
    folds: np.ndarray

    @property
    def n_clipped(self) -> int:
        """Rows clipped on either side."""
        return self.n_clipped_low + self.n_clipped_high


def _forest_kwargs(
    seed: int, n_estimators: int, min_samples_leaf: int, max_samples: float | int | None, n_jobs: int
) -> dict[str, Any]:
    # Trees draw their seeds from random_state up front, so results do not depend on n_jobs.
    return {
        "n_estimators": n_estimators,
        "min_samples_leaf": min_samples_leaf,
        "max_samples": max_samples,
        "random_state": seed,
        "n_jobs": n_jobs,
    }


def _propensity_estimator(model: str, forest: dict[str, Any]) -> Any:
    if model == "random_forest":
        # min_samples_leaf smooths leaf frequencies: fully grown trees give 0/1 propensities.
        return RandomForestClassifier(**forest)
    if model == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    raise StatsInputError(f"unknown propensity_model {model!r}: use 'random_forest' or 'logistic'")


def _outcome_estimator(model: str, forest: dict[str, Any]) -> Any:
    if model == "linear":
        return LinearRegression()
    if model == "random_forest":
        return RandomForestRegressor(**forest)
    raise StatsInputError(f"unknown outcome_model {model!r}: use 'linear' or 'random_forest'")


def _check_covariates(
    df: pd.DataFrame, covariates: Sequence[str], refused: Iterable[str], forbidden: Iterable[str]
) -> None:
    if not covariates:
        raise StatsInputError("at least one pre-treatment covariate is needed")
    bad = [c for c in covariates if c in set(refused)]
    if bad:
        raise StatsInputError(f"covariate(s) {', '.join(bad)} are the treatment or outcome itself")
    bad = [c for c in covariates if c in set(forbidden)]
    if bad:
        raise StatsInputError(f"covariate(s) {', '.join(bad)} are forbidden (post-treatment or outcome columns)")


def compute_propensity(
    df: pd.DataFrame,
    treatment_col: str,
    covariates: Sequence[str],
    n_splits: int = 5,
    seed: int = 0,
    clip: tuple[float, float] = (0.01, 0.99),
    *,
    forbidden: Iterable[str] = (),
    propensity_model: str = "random_forest",
    n_estimators: int = 100,
    min_samples_leaf: int = 50,
    max_samples: float | int | None = None,
    n_jobs: int = 1,
) -> PropensityResult:
    """Cross-fitted (out-of-fold) propensity scores for a binary 0/1 ``treatment_col``.

    :func:`sklearn.model_selection.cross_val_predict` with a shuffled
    ``StratifiedKFold(n_splits, random_state=seed)``; ``propensity_model`` 'random_forest' (the
    seed's choice; ``n_estimators`` trees, leaves of at least ``min_samples_leaf`` rows, seeded) or
    'logistic'. ``max_samples`` (rows or fraction per tree bootstrap) and ``n_jobs`` go to the
    forest. Same inputs, seed and ``n_jobs`` give bit-identical results; another ``n_jobs`` gives
    the same trees (their seeds are drawn from ``seed`` up front) but may sum the trees' votes in a
    different order, so results agree only to ~1e-15.

    Leaf size trades noise against smoothing: in planted-truth simulations (n = 4000) leaves of 20
    rows gave noisy propensities whose extreme weights over-corrected the Hájek IPW estimate,
    leaves of 100 under-corrected it, 50 was about right; AIPW was unbiased with all three.

    Rows must be complete (no NaN in treatment or covariates): the caller decides how to handle
    missing data. Text covariates are one-hot encoded.
    """
    _check_covariates(df, covariates, [treatment_col], forbidden)
    lo, hi = clip
    if not 0.0 <= lo < hi <= 1.0:
        raise StatsInputError(f"clip must satisfy 0 <= low < high <= 1, got {clip}")
    X = design_frame(df, covariates).to_numpy()
    t = as_float_array(df[treatment_col], treatment_col)
    if np.isnan(X).any() or np.isnan(t).any():
        raise StatsInputError("treatment and covariates must have no missing values")
    check_binary(t, treatment_col)
    n_min = int(min(t.sum(), t.size - t.sum()))
    if n_min < n_splits:
        raise StatsInputError(f"only {n_min} rows in the smaller treatment group; need at least n_splits={n_splits}")
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = np.empty(t.size, dtype=np.int64)
    for k, (_, test_idx) in enumerate(cv.split(X, t)):
        folds[test_idx] = k
    forest = _forest_kwargs(seed, n_estimators, min_samples_leaf, max_samples, n_jobs)
    est = _propensity_estimator(propensity_model, forest)
    raw = cross_val_predict(est, X, t.astype(np.int64), cv=cv, method="predict_proba")[:, 1]
    e = np.clip(raw, lo, hi)
    return PropensityResult(e, raw, int((raw < lo).sum()), int((raw > hi).sum()), (float(lo), float(hi)), folds)


def weighted_outcome_diff(y: object, t: object, e: object) -> float:
    """Hájek IPW average treatment effect: weighted mean of y among treated (weights 1/e) minus
    weighted mean among controls (weights 1/(1-e)). Units of ``y``; NaN if an arm is empty."""
    ya, ta, ea = (as_float_array(v, name) for v, name in ((y, "y"), (t, "t"), (e, "e")))
    if not (ya.size == ta.size == ea.size):
        raise StatsInputError("y, t and e differ in length")
    check_binary(ta, "t")
    if np.any((ea <= 0.0) | (ea >= 1.0)):
        raise StatsInputError("propensities must lie strictly inside (0, 1); clip them first")
    treated = ta == 1
    if treated.all() or not treated.any():
        return float("nan")
    mu1 = np.average(ya[treated], weights=1.0 / ea[treated])
    mu0 = np.average(ya[~treated], weights=1.0 / (1.0 - ea[~treated]))
    return float(mu1 - mu0)


def covariate_balance(X: pd.DataFrame, t: np.ndarray, e: np.ndarray) -> pd.DataFrame:
    """Standardized mean differences (treated minus control) per covariate column of ``X``.

    Columns ``smd_before`` (raw means), ``smd_after`` (IPW-weighted means, weights 1/e and 1/(1-e)),
    both divided by the unweighted pooled SD sqrt((var_treated + var_control) / 2) (ddof=1); a
    constant covariate gets 0. |SMD| < 0.1 is the usual "balanced" line.
    """
    Xv = X.to_numpy(dtype=np.float64)
    treated = t == 1
    x1, x0 = Xv[treated], Xv[~treated]
    pooled = np.sqrt((x1.var(axis=0, ddof=1) + x0.var(axis=0, ddof=1)) / 2.0)
    safe = np.where(pooled > 0, pooled, 1.0)
    before = (x1.mean(axis=0) - x0.mean(axis=0)) / safe
    after = (
        np.average(x1, axis=0, weights=1.0 / e[treated]) - np.average(x0, axis=0, weights=1.0 / (1.0 - e[~treated]))
    ) / safe
    before[pooled == 0] = 0.0
    after[pooled == 0] = 0.0
    return pd.DataFrame({"smd_before": before, "smd_after": after}, index=pd.Index(X.columns, name="covariate"))


def _binarize(values: np.ndarray, threshold: float | None) -> tuple[np.ndarray, float | None]:
    """0/1 treatment: kept as is when already 0/1 and no threshold is given, else ``values > threshold``
    with the median as the default threshold (for counts with median 0 this is "any action")."""
    if threshold is None and np.isin(values, (0.0, 1.0)).all():
        return values.copy(), None
    thr = float(np.median(values)) if threshold is None else float(threshold)
    return (values > thr).astype(np.float64), thr


def _ci(est: float, se: float) -> tuple[float, float]:
    return (est - Z_975 * se, est + Z_975 * se)


def propensity_adjusted_effect(
    df: pd.DataFrame,
    treatment_col: str,
    outcome_col: str,
    covariates: Sequence[str],
    threshold: float | None = None,
    seed: int = 0,
    n_splits: int = 5,
    *,
    clip: tuple[float, float] = (0.01, 0.99),
    forbidden: Iterable[str] = (),
    propensity_model: str = "random_forest",
    outcome_model: str = "linear",
    n_estimators: int = 100,
    min_samples_leaf: int = 50,
    max_samples: float | int | None = None,
    n_jobs: int = 1,
    min_group_n: int = DEFAULT_MIN_GROUP_N,
    propensity: PropensityResult | None = None,
) -> dict[str, Any]:
    """Effect of a binarized treatment on an outcome, adjusted for pre-treatment ``covariates``.

    Treatment: a 0/1 column is used as is; otherwise T = value > ``threshold`` (default: the
    median; with counts whose median is 0 that means "at least one"). Rows with a missing treatment,
    outcome or covariate are dropped. Propensities as :func:`compute_propensity`; outcome
    regressions m_0, m_1 are fitted per arm on the training folds of the *same* split and predicted
    on the held-out fold (``outcome_model`` 'linear' = :class:`~sklearn.linear_model.LinearRegression`
    (default: fast; AIPW is doubly robust, so the cross-fitted propensities correct a misspecified
    linear outcome model) or 'random_forest').

    Returns a dict: ``ate`` (AIPW), ``ate_se``, ``ate_ci`` (95%, influence function), ``ate_p_value``
    (two-sided z), ``ipw_ate`` (Hájek), ``ipw_se``, ``ipw_ci``, ``naive_ate`` (difference in means),
    ``naive_ci`` (Welch), ``naive_p_value``, ``n``, ``n_treated``, ``n_control``, ``threshold``
    (None if the treatment was already binary), ``n_clipped_low``, ``n_clipped_high``, ``clip``,
    ``ess_treated``/``ess_control`` (Kish effective sample sizes of the weights), ``balance``
    (DataFrame of SMDs, see :func:`covariate_balance`), ``max_abs_smd_before``/``_after``,
    ``exploratory`` (smaller arm < ``min_group_n``), ``estimator`` ('aipw'), the models, seed and
    n_splits, and ``reason`` (None, or why the estimates are NaN: no treatment variation, too few rows).
    """
    _check_covariates(df, covariates, [treatment_col, outcome_col], forbidden)
    for col in (treatment_col, outcome_col):
        if col not in df.columns:
            raise StatsInputError(f"column {col!r} not in the data")
    design = design_frame(df, covariates)
    t_raw = pd.to_numeric(df[treatment_col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    y_all = pd.to_numeric(df[outcome_col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    keep = np.isfinite(t_raw) & np.isfinite(y_all) & design.notna().all(axis=1).to_numpy()
    design = design.loc[keep].reset_index(drop=True)
    y = y_all[keep]
    t, thr = _binarize(t_raw[keep], threshold)
    n, n_treated = int(t.size), int(t.sum())
    nan2 = (float("nan"), float("nan"))
    result: dict[str, Any] = {
        "estimator": "aipw",
        "treatment_col": treatment_col,
        "outcome_col": outcome_col,
        "covariates": list(covariates),
        "threshold": thr,
        "n": n,
        "n_treated": n_treated,
        "n_control": n - n_treated,
        "seed": seed,
        "n_splits": n_splits,
        "propensity_model": propensity_model,
        "outcome_model": outcome_model,
        "clip": tuple(float(c) for c in clip),
        "exploratory": min(n_treated, n - n_treated) < min_group_n,
        "reason": None,
    }
    empty = {
        "ate": float("nan"), "ate_se": float("nan"), "ate_ci": nan2, "ate_p_value": 1.0,
        "ipw_ate": float("nan"), "ipw_se": float("nan"), "ipw_ci": nan2,
        "naive_ate": float("nan"), "naive_ci": nan2, "naive_p_value": 1.0,
        "n_clipped_low": 0, "n_clipped_high": 0, "ess_treated": float("nan"), "ess_control": float("nan"),
        "balance": pd.DataFrame(columns=["smd_before", "smd_after"]),
        "max_abs_smd_before": float("nan"), "max_abs_smd_after": float("nan"),
    }  # fmt: skip
    if min(n_treated, n - n_treated) < max(n_splits, 2):
        result.update(empty)
        result["exploratory"] = True
        result["reason"] = (
            "treatment has no variation" if min(n_treated, n - n_treated) == 0
            else f"smaller treatment group has {min(n_treated, n - n_treated)} rows (need >= {max(n_splits, 2)})"
        )  # fmt: skip
        return result

    if propensity is None:
        frame = design.copy()
        frame["__t__"] = t
        ps = compute_propensity(
            frame, "__t__", list(design.columns), n_splits=n_splits, seed=seed, clip=clip,
            propensity_model=propensity_model, n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
            max_samples=max_samples, n_jobs=n_jobs,
        )  # fmt: skip
    else:
        ps = propensity
        if ps.propensity.size != n or int(ps.folds.max()) + 1 != n_splits:
            raise StatsInputError(
                f"the given propensities cover {ps.propensity.size} rows in {int(ps.folds.max()) + 1} folds; "
                f"this estimate has {n} rows and n_splits={n_splits}"
            )
        result["clip"] = ps.clip
    e = ps.propensity
    X = design.to_numpy(dtype=np.float64)

    # Cross-fitted outcome regressions per arm on the same folds as the propensities.
    forest = _forest_kwargs(seed, n_estimators, min_samples_leaf, max_samples, n_jobs)
    base = _outcome_estimator(outcome_model, forest)
    mu0 = np.empty(n)
    mu1 = np.empty(n)
    for k in range(n_splits):
        test = ps.folds == k
        train = ~test
        for arm, out in ((0.0, mu0), (1.0, mu1)):
            rows = train & (t == arm)
            model = clone(base).fit(X[rows], y[rows])
            out[test] = model.predict(X[test])

    treated = t == 1
    # AIPW influence values; their mean is the estimate and their SD/sqrt(n) its standard error.
    psi = mu1 - mu0 + t * (y - mu1) / e - (1.0 - t) * (y - mu0) / (1.0 - e)
    ate = float(psi.mean())
    ate_se = float(psi.std(ddof=1) / np.sqrt(n))

    ipw = weighted_outcome_diff(y, t, e)
    w1 = t / e
    w0 = (1.0 - t) / (1.0 - e)
    m1 = np.sum(w1 * y) / np.sum(w1)
    m0 = np.sum(w0 * y) / np.sum(w0)
    # Hájek influence function (linearization of the two ratio estimators).
    phi = w1 * (y - m1) / w1.mean() - w0 * (y - m0) / w0.mean()
    ipw_se = float(phi.std(ddof=1) / np.sqrt(n))

    welch = sps.ttest_ind(y[treated], y[~treated], equal_var=False)
    naive_ci = welch.confidence_interval(0.95)
    naive = float(y[treated].mean() - y[~treated].mean())

    balance = covariate_balance(design, t, e)
    ess = lambda w: float(w.sum() ** 2 / np.sum(w * w))  # noqa: E731 - Kish effective sample size
    result.update(
        {
            "ate": ate,
            "ate_se": ate_se,
            "ate_ci": _ci(ate, ate_se),
            "ate_p_value": float(2.0 * sps.norm.sf(abs(ate / ate_se))) if ate_se > 0 else 1.0,
            "ipw_ate": ipw,
            "ipw_se": ipw_se,
            "ipw_ci": _ci(ipw, ipw_se),
            "naive_ate": naive,
            "naive_ci": (float(naive_ci.low), float(naive_ci.high)),
            "naive_p_value": float(welch.pvalue) if np.isfinite(welch.pvalue) else 1.0,
            "n_clipped_low": ps.n_clipped_low,
            "n_clipped_high": ps.n_clipped_high,
            "ess_treated": ess(w1[treated]),
            "ess_control": ess(w0[~treated]),
            "balance": balance,
            "max_abs_smd_before": float(balance["smd_before"].abs().max()),
            "max_abs_smd_after": float(balance["smd_after"].abs().max()),
        }
    )
    return result
