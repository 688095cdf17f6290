"""edgefinder.stats.association against scipy/statsmodels references and closed forms (to 1e-9)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as sps

from edgefinder.stats import (
    StatsInputError,
    chi2_feature_counts,
    detect_separation,
    logistic_model,
    point_biserial,
    spearman,
)

Z = 1.959963984540054  # Phi^-1(0.975), written out so the CI check does not reuse the module's constant
TOL = 1e-9


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(20240601)
    n = 400
    x = rng.normal(2.0, 1.5, n)
    counts = rng.poisson(1.2, n)
    bank = rng.normal(3000.0, 900.0, n)
    side = rng.choice(["attack", "defense"], n)
    lin = -0.5 + 0.6 * x + 0.0004 * (bank - 3000) + 0.3 * (side == "attack")
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-lin))).astype(int)
    econ = 500.0 * x + rng.normal(0, 1500.0, n)
    return pd.DataFrame(
        {"x": x, "counts": counts, "bank": bank, "side": side, "y": y, "econ": econ}
    )


# ------------------------------------------------------------------ point-biserial


def test_point_biserial_matches_pearsonr_and_fisher_ci(data: pd.DataFrame) -> None:
    res = point_biserial(data["x"], data["y"])
    ref = sps.pearsonr(data["x"], data["y"])
    assert res.r == pytest.approx(ref.statistic, abs=TOL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=TOL, abs=1e-300)
    n = len(data)
    z = math.atanh(ref.statistic)
    assert res.ci_low == pytest.approx(math.tanh(z - Z / math.sqrt(n - 3)), abs=TOL)
    assert res.ci_high == pytest.approx(math.tanh(z + Z / math.sqrt(n - 3)), abs=TOL)
    assert (
        res.n == n
        and res.n_positive == int(data["y"].sum())
        and res.n_negative == n - res.n_positive
    )
    assert res.direction == "positive" and not res.exploratory and res.reason is None


def test_point_biserial_drops_nan_pairwise(data: pd.DataFrame) -> None:
    x = data["x"].to_numpy().copy()
    y = data["y"].to_numpy().astype(float)
    x[[3, 10]] = np.nan
    y[[10, 20, 30]] = np.nan
    res = point_biserial(x, y)
    keep = ~(np.isnan(x) | np.isnan(y))
    ref = sps.pearsonr(x[keep], y[keep])
    assert res.n == len(data) - 4
    assert res.r == pytest.approx(ref.statistic, abs=TOL)


def test_point_biserial_negative_direction_and_exploratory() -> None:
    x = np.array([5.0, 4.0, 4.5, 1.0, 2.0, 1.5, 3.0, 0.5])
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    res = point_biserial(x, y)
    assert res.direction == "negative" and res.r < 0
    assert res.exploratory  # 4 per group < 30
    assert point_biserial(x, y, min_group_n=4).exploratory is False


@pytest.mark.parametrize(
    ("x", "y", "reason"),
    [
        ([1.0, 1.0, 1.0, 1.0], [0, 1, 0, 1], "feature is constant"),
        ([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1], "outcome has a single class"),
        ([1.0, 2.0], [0, 1], "only 2 complete pairs"),
    ],
)
def test_point_biserial_degenerate_input_is_reported_not_raised(x, y, reason) -> None:
    res = point_biserial(x, y)
    assert math.isnan(res.r) and res.p_value == 1.0 and math.isnan(res.ci_low)
    assert reason in (res.reason or "") and res.exploratory and res.direction == "none"


def test_point_biserial_rejects_bad_input() -> None:
    with pytest.raises(StatsInputError, match="binary"):
        point_biserial([1.0, 2.0, 3.0, 4.0], [0, 1, 2, 1])
    with pytest.raises(StatsInputError, match="length"):
        point_biserial([1.0, 2.0, 3.0], [0, 1])


# ------------------------------------------------------------------ Spearman


def test_spearman_matches_scipy_and_bonett_wright_ci(data: pd.DataFrame) -> None:
    res = spearman(data["x"], data["econ"])
    ref = sps.spearmanr(data["x"], data["econ"])
    n = len(data)
    rho = float(ref.statistic)
    se = math.sqrt((1 + rho**2 / 2) / (n - 3))
    assert res.rho == pytest.approx(rho, abs=TOL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=TOL, abs=1e-300)
    assert res.ci_low == pytest.approx(math.tanh(math.atanh(rho) - Z * se), abs=TOL)
    assert res.ci_high == pytest.approx(math.tanh(math.atanh(rho) + Z * se), abs=TOL)
    assert res.n == n and res.direction == "positive" and not res.exploratory


def test_spearman_constant_outcome() -> None:
    res = spearman([1.0, 2.0, 3.0, 4.0, 5.0], [7.0] * 5)
    assert math.isnan(res.rho) and res.p_value == 1.0 and res.reason == "outcome is constant"


# ------------------------------------------------------------------ chi-square


def test_chi2_count_bins_match_chi2_contingency_and_cramers_v(data: pd.DataFrame) -> None:
    res = chi2_feature_counts(data["counts"], data["y"])
    level = np.minimum(data["counts"].to_numpy(), 2)  # 0 / 1 / 2+
    table = np.array([[np.sum((level == b) & (data["y"] == o)) for o in (0, 1)] for b in (0, 1, 2)])
    ref = sps.chi2_contingency(table, correction=False)
    n = table.sum()
    assert res.chi2 == pytest.approx(ref.statistic, rel=TOL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=TOL)
    assert res.dof == ref.dof == 2
    assert res.cramers_v == pytest.approx(
        math.sqrt(ref.statistic / (n * (min(table.shape) - 1))), rel=TOL
    )
    assert res.n == n and res.bins == ("0", "1", "2+")
    assert res.min_expected == pytest.approx(ref.expected_freq.min(), rel=TOL)


def test_chi2_quantile_bins_and_multiclass_outcome(data: pd.DataFrame) -> None:
    outcome = np.where(data["econ"] > 1500, "big", np.where(data["econ"] > 0, "small", "loss"))
    res = chi2_feature_counts(data["x"], outcome, bins=4)
    table = pd.crosstab(pd.qcut(data["x"], 4), outcome).to_numpy()
    ref = sps.chi2_contingency(table, correction=False)
    assert res.chi2 == pytest.approx(ref.statistic, rel=TOL)
    assert res.dof == 6 and len(res.bins) == 4
    # Interval labels keep their numeric order.
    upper = [float(b.split(",")[1].rstrip("]")) for b in res.bins]
    assert upper == sorted(upper)
    assert res.cramers_v == pytest.approx(math.sqrt(ref.statistic / (len(data) * 2)), rel=TOL)


def test_chi2_yates_correction_on_2x2() -> None:
    f = np.array([0] * 30 + [1] * 30)
    o = np.array([0] * 20 + [1] * 10 + [0] * 8 + [1] * 22)
    res = chi2_feature_counts(f, o, bins=None, correction=True)
    ref = sps.chi2_contingency(np.array([[20, 10], [8, 22]]), correction=True)
    assert res.chi2 == pytest.approx(ref.statistic, rel=TOL) and res.p_value == pytest.approx(
        ref.pvalue, rel=TOL
    )


def test_chi2_degenerate_and_small_tables() -> None:
    res = chi2_feature_counts([0, 1, 2, 3], [1, 1, 1, 1])
    assert (
        math.isnan(res.chi2) and res.p_value == 1.0 and res.reason == "outcome has a single class"
    )
    res = chi2_feature_counts([0, 0, 0, 0], [0, 1, 0, 1])
    assert res.reason == "feature has a single bin"
    small = chi2_feature_counts([0, 1, 2, 0, 1, 2, 0, 3], [0, 1, 1, 0, 0, 1, 1, 0])
    assert small.exploratory and small.min_expected < 5
    with pytest.raises(StatsInputError, match="non-negative"):
        chi2_feature_counts([-1, 0, 1], [0, 1, 0])


# ------------------------------------------------------------------ logistic


def test_logistic_matches_statsmodels_logit(data: pd.DataFrame) -> None:
    res = logistic_model(data, "x", "y", covariates=["bank", "side"])
    X = sm.add_constant(
        pd.DataFrame(
            {
                "x": data["x"],
                "bank": data["bank"],
                "side_defense": (data["side"] == "defense").astype(float),
            }
        )
    )
    ref = sm.Logit(data["y"].astype(float), X).fit(disp=0)
    ci = ref.conf_int(alpha=0.05)
    tab = res.table
    assert list(tab.index) == ["const", "x", "bank", "side_defense"]
    assert list(tab["role"]) == ["intercept", "feature", "covariate", "covariate"]
    np.testing.assert_allclose(tab["coef"], ref.params, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(tab["se"], ref.bse, rtol=TOL)
    np.testing.assert_allclose(tab["p_value"], ref.pvalues, rtol=TOL)
    np.testing.assert_allclose(tab["odds_ratio"], np.exp(ref.params), rtol=TOL)
    np.testing.assert_allclose(tab["or_ci_low"], np.exp(ci[0]), rtol=TOL)
    np.testing.assert_allclose(tab["or_ci_high"], np.exp(ci[1]), rtol=TOL)
    assert res.status == "ok" and res.converged and not res.separation
    assert res.llf == pytest.approx(ref.llf, rel=TOL)
    assert res.n == len(data) and res.n_events == int(data["y"].sum())
    or_, lo, hi = res.odds_ratio("x")
    assert lo < or_ < hi and or_ > 1


def test_logistic_drops_incomplete_rows(data: pd.DataFrame) -> None:
    df = data.copy()
    df.loc[[1, 2], "x"] = np.nan
    df.loc[[2, 5], "bank"] = np.nan
    res = logistic_model(df, ["x"], "y", ["bank"])
    assert res.n == len(data) - 3
    ref = sm.Logit(df.dropna()["y"].astype(float), sm.add_constant(df.dropna()[["x", "bank"]])).fit(
        disp=0
    )
    np.testing.assert_allclose(res.table["coef"], ref.params, rtol=TOL, atol=TOL)


def test_logistic_perfect_separation_is_flagged_not_raised() -> None:
    df = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], "y": [0, 0, 0, 0, 1, 1, 1, 1]}
    )
    res = logistic_model(df, "x", "y")
    assert res.status == "perfect_separation" and res.separation and not res.converged
    assert res.table[["coef", "odds_ratio", "or_ci_low", "or_ci_high"]].isna().all().all()


def test_logistic_quasi_separation_is_flagged() -> None:
    # y = 1 whenever x > 3; at x == 3 both classes occur: quasi-complete separation.
    df = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 2.5], "y": [0, 0, 0, 1, 1, 1, 1, 0]}
    )
    res = logistic_model(df, "x", "y")
    assert res.status == "quasi_separation" and res.separation
    assert np.isnan(res.table["odds_ratio"]).all()


def test_separation_check_does_not_flag_overlapping_classes(data: pd.DataFrame) -> None:
    X = sm.add_constant(data[["x", "bank"]]).to_numpy()
    assert detect_separation(X, data["y"].to_numpy().astype(float)) is None
    # A strong but overlapping effect still fits normally.
    rng = np.random.default_rng(5)
    x = rng.normal(size=300)
    y = (rng.random(300) < 1 / (1 + np.exp(-4 * x))).astype(int)
    res = logistic_model(pd.DataFrame({"x": x, "y": y}), "x", "y")
    assert res.status == "ok" and res.table.loc["x", "odds_ratio"] > 10


def test_logistic_degenerate_designs() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "c": [1.0] * 5, "y": [1, 1, 1, 1, 1]})
    assert logistic_model(df, "x", "y").status == "no_variation"
    df["y"] = [0, 1, 0, 1, 1]
    assert logistic_model(df, "x", "y", ["c"]).status == "no_variation"
    df["x2"] = 2 * df["x"]
    assert logistic_model(df, ["x", "x2"], "y").status == "singular"
    with pytest.raises(StatsInputError, match="not in the data"):
        logistic_model(df, "nope", "y")
    with pytest.raises(StatsInputError, match="binary"):
        logistic_model(df.assign(y=[0, 1, 2, 1, 0]), "x", "y")
