"""Propensity-score effect estimates: cross-fitted propensities, Hájek IPW and doubly-robust AIPW.

Design (docs/decisions.md §D7, §D8):

* **Cross-fitting.** Propensities e(x) = P(T=1 | x) and outcome regressions m_t(x) = E[Y | T=t, x]
  are predicted *out of fold*: :class:`sklearn.model_selection.StratifiedKFold` (shuffled,
  ``random_state=seed``) splits the rows; each row is scored by models that never saw it. The
  original system fitted and scored in-sample, which overfits a random forest to ~0/1 propensities.
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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import PredefinedSplit, StratifiedKFold, cross_val_predict

from edgefinder.stats._common import (
    DEFAULT_MIN_CLUSTERS,
    StatsInputError,
    as_float_array,
    check_binary,
    cluster_codes,
    cluster_se_of_mean,
    design_frame,
    normal_or_t_crit,
    two_sided_p,
)

__all__ = [
    "EffectResult",
    "LinearEffectResult",
    "PropensityResult",
    "compute_propensity",
    "covariate_balance",
    "mundlak_terms",
    "propensity_adjusted_effect",
    "weighted_outcome_diff",
    "within_linear_effect",
    "within_unit_effect",
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
    seed: int,
    n_estimators: int,
    min_samples_leaf: int,
    max_samples: float | int | None,
    n_jobs: int,
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
        return None  # fitted per fold by _logistic_fit_predict
    raise StatsInputError(f"unknown propensity_model {model!r}: use 'random_forest' or 'logistic'")


def _outcome_estimator(model: str, forest: dict[str, Any]) -> Any:
    if model == "linear":
        return None  # least squares by _least_squares_predict
    if model == "random_forest":
        return RandomForestRegressor(**forest)
    raise StatsInputError(f"unknown outcome_model {model!r}: use 'linear' or 'random_forest'")


def _with_intercept(X: np.ndarray) -> np.ndarray:
    """[1, standardized X]: columns scaled by their SD over all rows (constant columns left at 0)."""
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    Xs = np.where(sd > 0, (X - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    return np.hstack([np.ones((X.shape[0], 1)), Xs])


def _logistic_fit_predict(
    X_train: np.ndarray, t_train: np.ndarray, X_test: np.ndarray
) -> np.ndarray:
    """P(T=1 | X) of an L2-penalized logistic regression (scikit-learn, C = 1 on standardized columns).

    The penalty keeps collinear or separating columns from sending coefficients to infinity; a
    training fold with one class only gets that class's share (0 or 1, clipped later) instead of an
    error.
    """
    share = float(t_train.mean()) if t_train.size else 0.5
    if share in (0.0, 1.0):
        return np.full(X_test.shape[0], share)
    model = LogisticRegression(C=1.0, max_iter=500)
    model.fit(X_train, t_train.astype(np.int64))
    return model.predict_proba(X_test)[:, 1]


def _cross_fit_propensity(X: np.ndarray, t: np.ndarray, folds: np.ndarray, est: Any) -> np.ndarray:
    """Out-of-fold P(T=1 | X): penalized logistic (``est`` None) or any sklearn classifier."""
    if est is not None:
        return cross_val_predict(
            est, X, t.astype(np.int64), cv=PredefinedSplit(folds), method="predict_proba"
        )[:, 1]
    Xs = _with_intercept(X)[:, 1:]
    out = np.empty(t.size)
    for k in range(int(folds.max()) + 1):
        test = folds == k
        out[test] = _logistic_fit_predict(Xs[~test], t[~test], Xs[test])
    return out


def _cross_fit_outcomes(
    X: np.ndarray, y: np.ndarray, t: np.ndarray, folds: np.ndarray, base: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions of E[Y | T=0, X] and E[Y | T=1, X], one regression per arm and fold.

    ``base`` None: least squares on the standardized design (SVD, so collinear or constant columns
    never make it fail); otherwise clones of an sklearn regressor. An arm without training rows in a
    fold predicts the fold's training mean.
    """
    mu0 = np.empty(t.size)
    mu1 = np.empty(t.size)
    Xa = _with_intercept(X) if base is None else X
    for k in range(int(folds.max()) + 1):
        test = folds == k
        for arm, out in ((0.0, mu0), (1.0, mu1)):
            rows = ~test & (t == arm)
            if not rows.any():
                out[test] = float(y[~test].mean()) if (~test).any() else float(y.mean())
            elif base is None:
                # least squares by SVD: a constant or collinear column gives the minimum-norm
                # solution instead of a singular system
                coef = np.linalg.lstsq(Xa[rows], y[rows], rcond=None)[0]
                out[test] = Xa[test] @ coef
            else:
                out[test] = clone(base).fit(X[rows], y[rows]).predict(X[test])
    return mu0, mu1


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
        raise StatsInputError(
            f"covariate(s) {', '.join(bad)} are forbidden (post-treatment or outcome columns)"
        )


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
    groups: object | None = None,
) -> PropensityResult:
    """Cross-fitted (out-of-fold) propensity scores for a binary 0/1 ``treatment_col``.

    :func:`sklearn.model_selection.cross_val_predict` with a shuffled
    ``StratifiedKFold(n_splits, random_state=seed)``; ``propensity_model`` 'random_forest' (the
    original system's choice; ``n_estimators`` trees, leaves of at least ``min_samples_leaf`` rows, seeded) or
    'logistic'. ``max_samples`` (rows or fraction per tree bootstrap) and ``n_jobs`` go to the
    forest. Same inputs, seed and ``n_jobs`` give bit-identical results; another ``n_jobs`` gives
    the same trees (their seeds are drawn from ``seed`` up front) but may sum the trees' votes in a
    different order, so results agree only to ~1e-15.

    Leaf size trades noise against smoothing: in planted-truth simulations (n = 4000) leaves of 20
    rows gave noisy propensities whose extreme weights over-corrected the Hájek IPW estimate,
    leaves of 100 under-corrected it, 50 was about right; AIPW was unbiased with all three.

    Rows must be complete (no NaN in treatment or covariates): the caller decides how to handle
    missing data. Text covariates are one-hot encoded. ``groups`` (a cluster label per row):
    whole clusters are dealt to the folds (see :func:`_fold_ids`), so no cluster is split across folds.
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
        raise StatsInputError(
            f"only {n_min} rows in the smaller treatment group; need at least n_splits={n_splits}"
        )
    codes = None if groups is None else cluster_codes(groups, t.size)
    folds = _fold_ids(X, t, n_splits, seed, codes)
    forest = _forest_kwargs(seed, n_estimators, min_samples_leaf, max_samples, n_jobs)
    raw = _cross_fit_propensity(X, t, folds, _propensity_estimator(propensity_model, forest))
    e = np.clip(raw, lo, hi)
    return PropensityResult(
        e, raw, int((raw < lo).sum()), int((raw > hi).sum()), (float(lo), float(hi)), folds
    )


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
        np.average(x1, axis=0, weights=1.0 / e[treated])
        - np.average(x0, axis=0, weights=1.0 / (1.0 - e[~treated]))
    ) / safe
    before[pooled == 0] = 0.0
    after[pooled == 0] = 0.0
    return pd.DataFrame(
        {"smd_before": before, "smd_after": after}, index=pd.Index(X.columns, name="covariate")
    )


def _binarize(values: np.ndarray, threshold: float | None) -> tuple[np.ndarray, float | None]:
    """0/1 treatment: kept as is when already 0/1 and no threshold is given, else ``values > threshold``
    with the median as the default threshold (for counts with median 0 this is "any action")."""
    if threshold is None and np.isin(values, (0.0, 1.0)).all():
        return values.copy(), None
    thr = float(np.median(values)) if threshold is None else float(threshold)
    return (values > thr).astype(np.float64), thr


def _fold_ids(
    X: np.ndarray, t: np.ndarray, n_splits: int, seed: int, codes: np.ndarray | None
) -> np.ndarray:
    """Fold index per row: shuffled StratifiedKFold, or whole clusters when ``codes`` name them.

    With clusters, a seeded permutation deals the clusters round-robin to the folds, so a cluster
    never straddles two folds (a held-out match was never seen by the models) and fold sizes differ
    by at most one cluster. With hundreds of matches the treated share of each fold is balanced by
    the law of large numbers; sklearn's StratifiedGroupKFold balances it exactly but spends half of
    a within estimate's time doing so (0.17 s at 37,000 rows).
    """
    if codes is not None:
        n_clusters = int(codes.max()) + 1
        if n_clusters < n_splits:
            raise StatsInputError(f"only {n_clusters} clusters for n_splits={n_splits} folds")
        order = np.random.default_rng(seed).permutation(n_clusters)
        return (order % n_splits)[codes].astype(np.int64)
    folds = np.empty(t.size, dtype=np.int64)
    for k, (_, test_idx) in enumerate(
        StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(X, t)
    ):
        folds[test_idx] = k
    return folds


@dataclass(frozen=True)
class EffectResult(Mapping[str, Any]):
    """An AIPW effect estimate: the headline figures as attributes, every figure by name.

    ``n`` rows used, ``estimate`` (the AIPW ATE; probability points for a 0/1 outcome, inside
    [-1, 1]), ``ci_low``/``ci_high`` its 95% CI, ``p_value``, ``se``, ``reason`` why there is no
    estimate (None when there is). Reading it like a dict (``res["ate"]``, ``res.get("mu1")``)
    gives every figure the estimator computed, under the names of its docstring.
    """

    n: int
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    se: float
    reason: str | None
    figures: Mapping[str, Any]

    @classmethod
    def of(cls, figures: dict[str, Any]) -> EffectResult:
        """Wrap the estimator's figures (keys ``n``, ``ate``, ``ate_ci``, ``ate_p_value``, …)."""
        lo, hi = figures.get("ate_ci", (float("nan"), float("nan")))
        return cls(
            n=int(figures.get("n", 0)),
            estimate=float(figures.get("ate", float("nan"))),
            ci_low=float(lo),
            ci_high=float(hi),
            p_value=float(figures.get("ate_p_value", float("nan"))),
            se=float(figures.get("ate_se", float("nan"))),
            reason=figures.get("reason"),
            figures=MappingProxyType(dict(figures)),
        )

    @property
    def ci(self) -> tuple[float, float]:
        """The 95% CI as a pair."""
        return (self.ci_low, self.ci_high)

    def __getitem__(self, key: str) -> Any:
        return self.figures[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.figures)

    def __len__(self) -> int:
        return len(self.figures)


def _nan_effect() -> dict[str, Any]:
    nan2 = (float("nan"), float("nan"))
    return {
        "ate": float("nan"),
        "ate_se": float("nan"),
        "ate_ci": nan2,
        "ate_p_value": 1.0,
        "ipw_ate": float("nan"),
        "ipw_se": float("nan"),
        "ipw_ci": nan2,
        "naive_ate": float("nan"),
        "naive_ci": nan2,
        "naive_p_value": 1.0,
        "mu1": float("nan"),
        "mu0": float("nan"),
        "rr": float("nan"),
        "rr_ci": nan2,
        "n_clipped_low": 0,
        "n_clipped_high": 0,
        "ess_treated": float("nan"),
        "ess_control": float("nan"),
        "balance": pd.DataFrame(columns=["smd_before", "smd_after"]),
        "max_abs_smd_before": float("nan"),
        "max_abs_smd_after": float("nan"),
    }


def _aipw_core(
    design: pd.DataFrame,
    t: np.ndarray,
    y: np.ndarray,
    ps: PropensityResult,
    codes: np.ndarray | None,
    base: Any,
    *,
    with_balance: bool = True,
) -> dict[str, Any]:
    """AIPW, Hájek IPW and the naive difference from cross-fitted propensities ``ps`` (same folds for the
    outcome models, fitted per arm); standard errors from influence values, summed by cluster when
    ``codes`` is given. Also the arm means mu1, mu0 and the risk ratio mu1/mu0 with a delta-method CI
    (for E-values)."""
    e = ps.propensity
    mu0, mu1 = _cross_fit_outcomes(design.to_numpy(dtype=np.float64), y, t, ps.folds, base)
    g = None if codes is None else int(codes.max()) + 1
    crit = normal_or_t_crit(g)
    treated = t == 1
    # AIPW influence values per arm; their means are the arm means and their difference the estimate.
    phi1 = mu1 + t * (y - mu1) / e
    phi0 = mu0 + (1.0 - t) * (y - mu0) / (1.0 - e)
    psi = phi1 - phi0
    ate = float(psi.mean())
    ate_se = cluster_se_of_mean(psi, codes)
    m1_hat, m0_hat = float(phi1.mean()), float(phi0.mean())
    rr, rr_ci = float("nan"), (float("nan"), float("nan"))
    if m1_hat > 0 and m0_hat > 0:
        # log RR = log mu1 - log mu0; delta method on the same influence values
        lr_se = cluster_se_of_mean(phi1 / m1_hat - phi0 / m0_hat, codes)
        rr = m1_hat / m0_hat
        rr_ci = (float(np.exp(np.log(rr) - crit * lr_se)), float(np.exp(np.log(rr) + crit * lr_se)))

    ipw = weighted_outcome_diff(y, t, e)
    w1 = t / e
    w0 = (1.0 - t) / (1.0 - e)
    m1 = np.sum(w1 * y) / np.sum(w1)
    m0 = np.sum(w0 * y) / np.sum(w0)
    # Hájek influence function (linearization of the two ratio estimators).
    phi = w1 * (y - m1) / w1.mean() - w0 * (y - m0) / w0.mean()
    ipw_se = cluster_se_of_mean(phi, codes)

    naive = float(y[treated].mean() - y[~treated].mean())
    if codes is None:
        welch = sps.ttest_ind(y[treated], y[~treated], equal_var=False)
        welch_ci = welch.confidence_interval(0.95)
        naive_ci = (float(welch_ci.low), float(welch_ci.high))
        naive_p = float(welch.pvalue) if np.isfinite(welch.pvalue) else 1.0
    else:
        p1 = treated.mean()
        nu = t * (y - y[treated].mean()) / p1 - (1.0 - t) * (y - y[~treated].mean()) / (1.0 - p1)
        naive_se = cluster_se_of_mean(nu, codes)
        naive_ci = (naive - crit * naive_se, naive + crit * naive_se)
        naive_p = two_sided_p(naive / naive_se if naive_se > 0 else float("nan"), g)

    balance = (
        covariate_balance(design, t, e)
        if with_balance
        else pd.DataFrame(columns=["smd_before", "smd_after"])
    )
    ess = lambda w: float(w.sum() ** 2 / np.sum(w * w))  # noqa: E731 - Kish effective sample size
    # a difference of two probabilities lies in [-1, 1]: so do its estimate and its interval
    bound = 1.0 if np.isin(y, (0.0, 1.0)).all() else np.inf

    def within(lo: float, hi: float) -> tuple[float, float]:
        return (float(np.clip(lo, -bound, bound)), float(np.clip(hi, -bound, bound)))

    return {
        "ate": float(np.clip(ate, -bound, bound)),
        "ate_se": ate_se,
        "ate_ci": within(ate - crit * ate_se, ate + crit * ate_se),
        "ate_p_value": two_sided_p(ate / ate_se if ate_se > 0 else float("nan"), g),
        "ipw_ate": ipw,
        "ipw_se": ipw_se,
        "ipw_ci": within(ipw - crit * ipw_se, ipw + crit * ipw_se),
        "naive_ate": naive,
        "naive_ci": within(*naive_ci),
        "naive_p_value": naive_p,
        "mu1": m1_hat,
        "mu0": m0_hat,
        "rr": rr,
        "rr_ci": rr_ci,
        "n_clipped_low": ps.n_clipped_low,
        "n_clipped_high": ps.n_clipped_high,
        "ess_treated": ess(w1[treated]),
        "ess_control": ess(w0[~treated]),
        "balance": balance,
        "max_abs_smd_before": float(balance["smd_before"].abs().max())
        if with_balance
        else float("nan"),
        "max_abs_smd_after": float(balance["smd_after"].abs().max())
        if with_balance
        else float("nan"),
    }


def _prepare(
    df: pd.DataFrame,
    treatment_col: str,
    outcome_col: str,
    covariates: Sequence[str],
    forbidden: Iterable[str],
    threshold: float | None,
    extra_cols: Sequence[str] = (),
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, float | None, np.ndarray]:
    """Design (complete rows), binarized treatment, outcome, threshold and the kept-row mask of ``df``."""
    _check_covariates(df, covariates, [treatment_col, outcome_col], forbidden)
    for col in (treatment_col, outcome_col, *extra_cols):
        if col not in df.columns:
            raise StatsInputError(f"column {col!r} not in the data")
    design = design_frame(df, covariates)
    t_raw = pd.to_numeric(df[treatment_col], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    y_all = pd.to_numeric(df[outcome_col], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    keep = np.isfinite(t_raw) & np.isfinite(y_all) & design.notna().all(axis=1).to_numpy()
    for col in extra_cols:
        keep &= df[col].notna().to_numpy()
    design = design.loc[keep].reset_index(drop=True)
    t, thr = _binarize(t_raw[keep], threshold)
    return design, t, y_all[keep], thr, keep


def _result_head(
    design: str,
    treatment_col: str,
    outcome_col: str,
    covariates: Sequence[str],
    threshold: float | None,
    t: np.ndarray,
    seed: int,
    n_splits: int,
    propensity_model: str,
    outcome_model: str,
    clip: tuple[float, float],
    min_group_n: int,
) -> dict[str, Any]:
    """The keys every effect dict starts with (what was estimated, on what, how)."""
    n, n_treated = int(t.size), int(t.sum())
    return {
        "estimator": "aipw",
        "design": design,
        "treatment_col": treatment_col,
        "outcome_col": outcome_col,
        "covariates": list(covariates),
        "threshold": threshold,
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


def _too_few(t: np.ndarray, n_splits: int) -> str | None:
    small = int(min(t.sum(), t.size - t.sum()))
    if small == 0:
        return "treatment has no variation"
    if small < max(n_splits, 2):
        return f"smaller treatment group has {small} rows (need >= {max(n_splits, 2)})"
    return None


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
    groups: object | None = None,
) -> EffectResult:
    """Effect of a binarized treatment on an outcome, adjusted for pre-treatment ``covariates``.

    Treatment: a 0/1 column is used as is; otherwise T = value > ``threshold`` (default: the
    median; with counts whose median is 0 that means "at least one"). Rows with a missing treatment,
    outcome or covariate are dropped. Propensities as :func:`compute_propensity`; outcome
    regressions m_0, m_1 are fitted per arm on the training folds of the *same* split and predicted
    on the held-out fold (``outcome_model`` 'linear' = :class:`~sklearn.linear_model.LinearRegression`
    (default: fast; AIPW is doubly robust, so the cross-fitted propensities correct a misspecified
    linear outcome model) or 'random_forest').

    This compares *different* units with similar covariates (a between-unit design): a confounder the
    covariates do not measure (team strength) biases it; :func:`within_unit_effect` removes the
    unit-constant ones. ``groups`` (a cluster label per row of ``df``): folds never split a cluster,
    and every standard error sums the influence values by cluster (CIs and p-values on t(G-1)).

    Returns an :class:`EffectResult` (attributes n, estimate, ci, p_value, se, reason; read like a dict for every figure): ``ate`` (AIPW), ``ate_se``, ``ate_ci`` (95%, influence function), ``ate_p_value``
    (two-sided z, or t(G-1) with ``groups``), ``ipw_ate`` (Hájek), ``ipw_se``, ``ipw_ci``, ``naive_ate``
    (difference in means), ``naive_ci`` (Welch; clustered influence function with ``groups``),
    ``naive_p_value``, ``mu1``/``mu0`` (AIPW arm means) and ``rr``/``rr_ci`` (their ratio, for
    E-values), ``n``, ``n_treated``, ``n_control``, ``n_clusters`` (None without ``groups``), ``threshold``
    (None if the treatment was already binary), ``n_clipped_low``, ``n_clipped_high``, ``clip``,
    ``ess_treated``/``ess_control`` (Kish effective sample sizes of the weights), ``balance``
    (DataFrame of SMDs, see :func:`covariate_balance`), ``max_abs_smd_before``/``_after``,
    ``exploratory`` (smaller arm < ``min_group_n``), ``estimator`` ('aipw'), the models, seed and
    n_splits, and ``reason`` (None, or why the estimates are NaN: no treatment variation, too few rows).
    """
    design, t, y, thr, keep = _prepare(
        df, treatment_col, outcome_col, covariates, forbidden, threshold
    )
    codes = None
    if groups is not None:
        _, inv = np.unique(cluster_codes(groups, len(df))[keep], return_inverse=True)
        codes = inv.astype(np.int64)
    result = _result_head(
        "between units (covariates only)",
        treatment_col,
        outcome_col,
        covariates,
        thr,
        t,
        seed,
        n_splits,
        propensity_model,
        outcome_model,
        clip,
        min_group_n,
    )
    result["n_clusters"] = None if codes is None else int(codes.max(initial=-1)) + 1
    n = result["n"]
    reason = _too_few(t, n_splits)
    if reason is not None:
        result.update(_nan_effect())
        result["exploratory"] = True
        result["reason"] = reason
        return EffectResult.of(result)

    if propensity is None:
        frame = design.copy()
        frame["__t__"] = t
        ps = compute_propensity(
            frame,
            "__t__",
            list(design.columns),
            n_splits=n_splits,
            seed=seed,
            clip=clip,
            propensity_model=propensity_model,
            n_estimators=n_estimators,
            min_samples_leaf=min_samples_leaf,
            max_samples=max_samples,
            n_jobs=n_jobs,
            groups=codes,
        )
    else:
        ps = propensity
        if ps.propensity.size != n or int(ps.folds.max()) + 1 != n_splits:
            raise StatsInputError(
                f"the given propensities cover {ps.propensity.size} rows in {int(ps.folds.max()) + 1} folds; "
                f"this estimate has {n} rows and n_splits={n_splits}"
            )
        result["clip"] = ps.clip
    forest = _forest_kwargs(seed, n_estimators, min_samples_leaf, max_samples, n_jobs)
    result.update(_aipw_core(design, t, y, ps, codes, _outcome_estimator(outcome_model, forest)))
    return EffectResult.of(result)


#: Suffix of the Mundlak columns: a unit's mean of a covariate (or of the treatment) over its rows.
UNIT_MEAN_SUFFIX = "__unit_mean"


def mundlak_terms(
    design: pd.DataFrame,
    t: np.ndarray,
    unit_codes: np.ndarray,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``design`` plus, per column and for the treatment, the unit's mean over its rows (Mundlak 1978).

    Columns ``{col}__unit_mean`` and ``treatment__unit_mean`` (the unit's treated share, in (0, 1) once
    units without a within-unit contrast are gone) and ``treatment__unit_logit`` (its log-odds: with it
    a logistic propensity can reproduce "the unit's own treated share", the propensity that compares
    a unit only with itself).
    """
    counts = np.bincount(unit_codes).astype(np.float64)

    def unit_mean(values: np.ndarray) -> np.ndarray:
        return (np.bincount(unit_codes, weights=values, minlength=counts.size) / counts)[unit_codes]

    added = {
        f"{col}{UNIT_MEAN_SUFFIX}": unit_mean(design[col].to_numpy(dtype=np.float64))
        for col in (design.columns if columns is None else columns)
    }
    share = unit_mean(t)
    out = pd.concat([design, pd.DataFrame(added, index=design.index)], axis=1)
    out[f"treatment{UNIT_MEAN_SUFFIX}"] = share
    out["treatment__unit_logit"] = np.log(share / (1.0 - share))
    return out


def within_unit_effect(
    df: pd.DataFrame,
    treatment_col: str,
    outcome_col: str,
    covariates: Sequence[str],
    unit_col: str,
    cluster_col: str,
    threshold: float | None = None,
    seed: int = 0,
    n_splits: int = 3,
    *,
    clip: tuple[float, float] = (0.01, 0.99),
    forbidden: Iterable[str] = (),
    propensity_model: str = "logistic",
    outcome_model: str = "linear",
    n_estimators: int = 100,
    min_samples_leaf: int = 50,
    max_samples: float | int | None = None,
    n_jobs: int = 1,
    min_group_n: int = DEFAULT_MIN_GROUP_N,
    min_clusters: int = DEFAULT_MIN_CLUSTERS,
    unit_mean_covariates: Sequence[str] | None = None,
    with_balance: bool = True,
) -> EffectResult:
    """Within-unit AIPW: the effect of a binarized treatment comparing each unit only with itself.

    A *unit* (``unit_col``, e.g. a team in one match) is what an unmeasured confounder is constant
    over (the team's strength that day); a *cluster* (``cluster_col``, e.g. the match) is what
    inference treats as independent (both teams of a match share its rounds). Design:

    * **Mundlak terms** (:func:`mundlak_terms`): the unit's means of the ``unit_mean_covariates``
      (default: every covariate; leave out covariates that are functions of the unit's own outcomes,
      such as its score, whose unit mean is its win rate) and of the treatment join the time-varying
      ``covariates`` in both the propensity and the outcome model.
      Any unit-constant confounder acts through the unit's mean treatment, so conditioning on it
      leaves only the within-unit variation: in a linear outcome model, OLS with the Mundlak terms
      gives exactly the fixed-effects (within) coefficient (Mundlak 1978), and the propensity can
      reproduce the unit's own treated share adjusted for the round's state.
    * **Units without a contrast** (every row treated, or none) carry no within-unit information and
      are dropped (``n_units_dropped``, ``rows_dropped``): the estimand is the average effect over the
      rows of units that show both arms.
    * **Cross-fitting by cluster**: whole clusters are dealt to the folds, so a match (both its units)
      is predicted by models that never saw any of its rows.
    * **Inference by cluster**: influence values summed per cluster (CR1), t(G-1) intervals and p-values.
      Fewer than ``min_clusters`` clusters, or a smaller arm under ``min_group_n`` rows, flag the
      estimate exploratory.

    Defaults are a logistic propensity and per-arm linear outcome models (``propensity_model``
    'random_forest' / ``outcome_model`` 'random_forest' also work). Returns the dict of
    :func:`propensity_adjusted_effect` (estimates in the outcome's unit: probability points for a
    0/1 outcome) plus ``design``, ``n_units``, ``n_units_dropped``, ``rows_dropped``, ``n_clusters``
    and ``mundlak_terms`` (the added column names; their balance is in ``balance``).
    ``with_balance=False`` skips the balance table (the refutation re-estimates do not need it).
    """
    design, t, y, thr, keep = _prepare(
        df,
        treatment_col,
        outcome_col,
        covariates,
        forbidden,
        threshold,
        extra_cols=(unit_col, cluster_col),
    )
    units = cluster_codes(df.loc[keep, unit_col], int(keep.sum()), unit_col)
    clusters = cluster_codes(df.loc[keep, cluster_col], int(keep.sum()), cluster_col)
    share = (np.bincount(units, weights=t) / np.bincount(units))[units]
    contrast = (share > 0.0) & (share < 1.0)
    n_units = int(units.max(initial=-1)) + 1
    n_units_kept = int(np.unique(units[contrast]).size)
    design = design.loc[contrast].reset_index(drop=True)
    t, y = t[contrast], y[contrast]
    _, u_codes = np.unique(units[contrast], return_inverse=True)
    _, c_codes = np.unique(clusters[contrast], return_inverse=True)
    n, g = int(t.size), int(c_codes.max(initial=-1)) + 1
    result = _result_head(
        "within unit (Mundlak terms); folds and standard errors by cluster",
        treatment_col,
        outcome_col,
        covariates,
        thr,
        t,
        seed,
        n_splits,
        propensity_model,
        outcome_model,
        clip,
        min_group_n,
    )
    result.update(
        {
            "n_units": n_units,
            "n_units_dropped": n_units - n_units_kept,
            "rows_dropped": int((~contrast).sum()),
            "n_clusters": g,
            "mundlak_terms": [],
        }
    )
    result["exploratory"] = result["exploratory"] or g < min_clusters
    reason = _too_few(t, n_splits) if n else "no unit shows both treatment arms"
    if reason is None and g < n_splits:
        reason = f"only {g} clusters with a within-unit contrast (need >= n_splits={n_splits})"
    if reason is not None:
        result.update(_nan_effect())
        result["exploratory"] = True
        result["reason"] = reason
        return EffectResult.of(result)
    mean_cols = None
    if unit_mean_covariates is not None:
        unknown = [c for c in unit_mean_covariates if c not in covariates]
        if unknown:
            raise StatsInputError(
                f"unit_mean_covariates not among the covariates: {', '.join(unknown)}"
            )
        mean_cols = [
            c
            for c in design.columns
            if any(c == u or c.startswith(f"{u}_") for u in unit_mean_covariates)
        ]
    w = mundlak_terms(design, t, u_codes.astype(np.int64), mean_cols)
    result["mundlak_terms"] = [c for c in w.columns if c not in design.columns]
    frame = w.assign(__t__=t)
    ps = compute_propensity(
        frame,
        "__t__",
        list(w.columns),
        n_splits=n_splits,
        seed=seed,
        clip=clip,
        propensity_model=propensity_model,
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_samples=max_samples,
        n_jobs=n_jobs,
        groups=c_codes.astype(np.int64),
    )
    forest = _forest_kwargs(seed, n_estimators, min_samples_leaf, max_samples, n_jobs)
    # the outcome models see the treated share, not its logit (a linear model needs only one of them)
    cols = [c for c in w.columns if c != "treatment__unit_logit"]
    core = _aipw_core(
        w[cols],
        t,
        y,
        ps,
        c_codes.astype(np.int64),
        _outcome_estimator(outcome_model, forest),
        with_balance=with_balance,
    )
    result.update(core)
    return EffectResult.of(result)


@dataclass(frozen=True)
class LinearEffectResult:
    """A within-unit linear-probability effect of a count on an outcome.

    ``estimate``: change in P(outcome) (probability points for a 0/1 outcome) per one more unit of
    the treatment, holding the covariates and the unit fixed; ``ci_low``/``ci_high`` its 95% CI
    (cluster-robust, t on G - 1 df, inside [-1, 1] for a 0/1 outcome); ``p_value`` two-sided;
    ``n`` rows, ``n_units`` units, ``n_clusters`` clusters; ``covariates`` those kept,
    ``dropped`` those left out (constant inside units or collinear with the others); ``reason`` why
    there is no estimate ("not estimable: …"), else None.
    """

    n: int
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    se: float
    n_units: int
    n_clusters: int
    covariates: tuple[str, ...]
    dropped: tuple[str, ...]
    exploratory: bool
    reason: str | None = None

    @property
    def ci(self) -> tuple[float, float]:
        """The 95% CI as a pair."""
        return (self.ci_low, self.ci_high)


def _demean(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Columns of ``values`` minus their mean within each unit code."""
    n_units = int(codes.max()) + 1
    sums = np.zeros((n_units, values.shape[1]))
    np.add.at(sums, codes, values)
    counts = np.bincount(codes, minlength=n_units).astype(np.float64)
    return values - (sums / counts[:, None])[codes]


def within_linear_effect(
    df: pd.DataFrame,
    treatment_col: str,
    outcome_col: str,
    covariates: Sequence[str],
    *,
    unit_col: str,
    cluster_col: str,
    min_clusters: int = DEFAULT_MIN_CLUSTERS,
    min_group_n: int = DEFAULT_MIN_GROUP_N,
) -> LinearEffectResult:
    """Within-unit (fixed-effects) linear probability model of ``outcome_col`` on a count.

    Outcome, treatment and covariates are demeaned inside each unit (a team in a match: its strength
    and anything else constant over the match drop out), then fitted by statsmodels OLS with
    cluster-robust standard errors by ``cluster_col`` (the match), t with G - 1 df. Rows with a
    missing value are dropped. A covariate without variation inside units, or collinear with the
    others, is left out and named in ``dropped``; a treatment without it gives a result with
    ``reason`` "not estimable: …" and NaN figures, never an exception. ``exploratory``: fewer than
    ``min_clusters`` clusters or fewer than ``min_group_n`` rows with a non-zero treatment.
    """
    cols = [treatment_col, outcome_col, *covariates]
    for col in (*cols, unit_col, cluster_col):
        if col not in df.columns:
            raise StatsInputError(f"column {col!r} not in the data")
    data = df.loc[:, [*cols, unit_col, cluster_col]].apply(pd.to_numeric, errors="coerce")
    data = data.loc[np.isfinite(data.to_numpy(dtype=np.float64)).all(axis=1)]
    n = len(data)
    nan = float("nan")

    def fail(reason: str, n_units: int = 0, n_clusters: int = 0) -> LinearEffectResult:
        return LinearEffectResult(
            n, nan, nan, nan, nan, nan, n_units, n_clusters, (), tuple(covariates), True,
            f"not estimable: {reason}",
        )  # fmt: skip

    if n < 3:
        return fail(f"{n} complete rows")
    units = pd.factorize(data[unit_col])[0].astype(np.int64)
    clusters = pd.factorize(data[cluster_col])[0].astype(np.int64)
    g = int(clusters.max()) + 1
    n_units = int(units.max()) + 1
    if g < 2:
        return fail("fewer than 2 clusters", n_units, g)
    values = _demean(data[cols].to_numpy(dtype=np.float64), units)
    y, X = values[:, 1], np.delete(values, 1, axis=1)
    scale = np.sqrt((X * X).mean(axis=0))
    if not scale[0] > 1e-9 * max(1.0, float(np.abs(data[treatment_col]).max())):
        return fail("the treatment does not vary inside any unit", n_units, g)
    # keep columns one by one while they add rank (the treatment first, so it is never the one dropped)
    keep = [0]
    for j in range(1, X.shape[1]):
        if scale[j] <= 1e-12:
            continue
        cand = X[:, [*keep, j]] / np.where(scale[[*keep, j]] > 0, scale[[*keep, j]], 1.0)
        if np.linalg.matrix_rank(cand, tol=1e-8 * np.sqrt(n)) == len(keep) + 1:
            keep.append(j)
    kept = tuple(covariates[j - 1] for j in keep[1:])
    dropped = tuple(c for c in covariates if c not in kept)
    fit = sm.OLS(y, X[:, keep]).fit(
        cov_type="cluster", cov_kwds={"groups": clusters, "use_correction": True}, use_t=True
    )
    est, se = float(fit.params[0]), float(fit.bse[0])
    if not (np.isfinite(est) and np.isfinite(se) and se > 0):
        return fail("the fit gave no finite standard error", n_units, g)
    crit = normal_or_t_crit(g)
    bound = 1.0 if np.isin(data[outcome_col].to_numpy(), (0.0, 1.0)).all() else np.inf
    lo, hi = (float(np.clip(v, -bound, bound)) for v in (est - crit * se, est + crit * se))
    return LinearEffectResult(
        n=n,
        estimate=est,
        ci_low=lo,
        ci_high=hi,
        p_value=two_sided_p(est / se, g),
        se=se,
        n_units=n_units,
        n_clusters=g,
        covariates=kept,
        dropped=dropped,
        # few clusters, or few rows that show the treatment at all: the t approximation is weak
        exploratory=g < min_clusters or int((data[treatment_col] != 0).sum()) < min_group_n,
    )
