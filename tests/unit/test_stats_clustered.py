"""Match-clustered inference: the widening predicted by a known intra-match correlation, and references.

Planted truth: G matches of m team-rounds each; a feature x and an outcome latent y* each get a
match-level component with intra-match correlation (ICC) rho and an independent row component, and
no relation to each other (r = 0). For a correlation (or a regression slope) the variance under
clustering is the independent-rows variance times the design effect 1 + (m - 1) rho_x rho_y
(Kish 1965; Scott & Holt 1982), so the clustered CI is wider by sqrt(1 + (m - 1) rho_x rho_y). For a
0/1 outcome made by thresholding y* at 0 the outcome's own ICC is (2/pi) arcsin(rho) (the
tetrachoric relation), which is the rho_y of the prediction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from edgefinder.stats import logistic_model, point_biserial, spearman
from edgefinder.stats._common import cluster_se_of_mean
from edgefinder.stats.causal import _cross_fit_outcomes

G, M, RHO = 400, 22, 0.3


def _clustered(seed: int, rho: float = RHO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), M)
    x = np.sqrt(rho) * rng.standard_normal(G)[g] + np.sqrt(1 - rho) * rng.standard_normal(G * M)
    y_star = np.sqrt(rho) * rng.standard_normal(G)[g] + np.sqrt(1 - rho) * rng.standard_normal(
        G * M
    )
    return x, (y_star > 0).astype(float), g


def test_cluster_se_of_mean_is_statsmodels_cluster_robust_se() -> None:
    rng = np.random.default_rng(3)
    g = rng.integers(0, 57, 2000)
    psi = rng.standard_normal(2000) + rng.standard_normal(57)[g]
    ref = sm.OLS(psi, np.ones((psi.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": g})
    assert cluster_se_of_mean(psi, g) == pytest.approx(float(ref.bse[0]), rel=1e-12)
    iid = sm.OLS(psi, np.ones((psi.size, 1))).fit()
    assert cluster_se_of_mean(psi, None) == pytest.approx(float(iid.bse[0]), rel=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clustered_ci_is_wider_by_the_predicted_design_effect(seed: int) -> None:
    x, y, g = _clustered(seed)
    rho_y = 2 / np.pi * np.arcsin(RHO)
    predicted = np.sqrt(1 + (M - 1) * RHO * rho_y)  # 1.46 for rho = 0.3, m = 22
    clustered = point_biserial(x, y, groups=g)
    naive = point_biserial(x, y)
    ratio = (clustered.ci_high - clustered.ci_low) / (naive.ci_high - naive.ci_low)
    print(f"\nseed {seed}: clustered / naive CI width {ratio:.3f}, predicted {predicted:.3f}")
    # the sampling error of a variance estimate from G = 400 clusters is ~ sqrt(2 / G) = 7%
    assert ratio == pytest.approx(predicted, rel=0.15)
    assert clustered.design_effect == pytest.approx(ratio**2, rel=0.01)  # t(G-1) vs z: ~0.1% apart
    assert clustered.n_clusters == G and not clustered.exploratory


def test_clustered_se_of_r_matches_a_brute_force_match_bootstrap() -> None:
    x, y, g = _clustered(7)
    clustered = point_biserial(x, y, groups=g)
    se = (
        (np.arctanh(clustered.ci_high) - np.arctanh(clustered.ci_low)) / 2 / 1.9659
    )  # t(399) quantile
    rng = np.random.default_rng(11)
    rows_of = np.arange(G * M).reshape(G, M)
    boot = []
    for _ in range(400):
        idx = rows_of[rng.integers(0, G, G)].ravel()  # resample whole matches
        boot.append(np.corrcoef(x[idx], y[idx])[0, 1])
    assert se == pytest.approx(float(np.std(boot, ddof=1)), rel=0.12)


def test_independent_rows_give_a_design_effect_near_one() -> None:
    x, y, g = _clustered(5, rho=0.0)
    res = spearman(x, y, groups=g)
    assert res.design_effect == pytest.approx(1.0, abs=0.15)


def test_clustered_logistic_matches_statsmodels_cluster_covariance() -> None:
    x, y, g = _clustered(9)
    z = np.random.default_rng(9).standard_normal(x.size)
    df = pd.DataFrame({"x": x, "z": z, "y": y, "match": g})
    res = logistic_model(df, "x", "y", ["z"], groups=df["match"])
    ref = sm.Logit(y, sm.add_constant(df[["x", "z"]])).fit(
        disp=0, cov_type="cluster", cov_kwds={"groups": g}, use_t=True
    )
    assert res.table.loc["x", "se"] == pytest.approx(float(ref.bse["x"]), rel=1e-6)
    assert res.table.loc["x", "p_value"] == pytest.approx(float(ref.pvalues["x"]), rel=1e-6)
    plain = logistic_model(df, "x", "y", ["z"])
    assert res.table.loc["x", "se"] > 1.2 * plain.table.loc["x", "se"]  # clustering widens
    assert res.pseudo_r2 == pytest.approx(float(ref.prsquared), rel=1e-6)


def test_cross_fitted_least_squares_match_sklearn_linear_regression() -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(6)
    X = rng.standard_normal((2000, 5)) * [1, 1000, 0.01, 5, 1]
    X[:, 4] = 0.5 + 1e-3 * rng.standard_normal(
        2000
    )  # a near-constant column (like a unit mean of side)
    t = (rng.random(2000) < 0.4).astype(float)
    y = X @ [0.3, 0.001, 10, -0.2, 1] + t + rng.standard_normal(2000)
    folds = rng.integers(0, 3, 2000)
    mu0, mu1 = _cross_fit_outcomes(X, y, t, folds, None)
    for k in range(3):
        test = folds == k
        for arm, mu in ((0.0, mu0), (1.0, mu1)):
            rows = (folds != k) & (t == arm)
            ref = LinearRegression().fit(X[rows], y[rows]).predict(X[test])
            np.testing.assert_allclose(mu[test], ref, rtol=0, atol=1e-6)
