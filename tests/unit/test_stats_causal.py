"""Causal estimates on simulations with a planted, known effect (seeded), plus exact checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from edgefinder.stats import (
    StatsInputError,
    compute_propensity,
    propensity_adjusted_effect,
    weighted_outcome_diff,
)

TRUE_ATE = 0.3  # planted effect of the treatment on y, in y's units
COVS = ["side", "bank", "loadout"]


def _simulate(n: int, seed: int) -> pd.DataFrame:
    """Treatment more likely with a high bank and on attack; both also raise the outcome (confounding)."""
    rng = np.random.default_rng(seed)
    side = rng.choice(["attack", "defense"], n)
    bank = rng.normal(0.0, 1.0, n)
    loadout = bank + rng.normal(0.0, 0.5, n)
    attack = (side == "attack").astype(float)
    t = (rng.random(n) < 1.0 / (1.0 + np.exp(-(-0.2 + 1.0 * bank + 0.8 * attack)))).astype(float)
    y = TRUE_ATE * t + 1.0 * bank + 0.5 * attack + 0.3 * loadout + rng.normal(0.0, 1.0, n)
    # A win-probability outcome with the same structure: the true ATE on the probability scale is
    # the sample mean of expit(lin + 0.5) - expit(lin), computed from the known model.
    lin = -0.3 + 0.8 * bank + 0.4 * attack
    p1, p0 = 1 / (1 + np.exp(-(lin + 0.5))), 1 / (1 + np.exp(-lin))
    u = rng.random(n)
    win = np.where(t == 1, u < p1, u < p0).astype(int)
    # A post-treatment column (caused by the treatment) that must never be used as a covariate.
    after = t + rng.normal(0.0, 0.1, n)
    return pd.DataFrame(
        {
            "side": side,
            "bank": bank,
            "loadout": loadout,
            "t": t,
            "y": y,
            "win": win,
            "after": after,
            "true_win_ate": float(np.mean(p1 - p0)),
            "count": rng.poisson(1.0 + t, n),
        }
    )


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    return _simulate(4000, seed=14)


@pytest.fixture(scope="module")
def effect(sim: pd.DataFrame) -> dict:
    return propensity_adjusted_effect(sim, "t", "y", COVS, seed=0, n_estimators=60)


def test_aipw_recovers_planted_effect_where_naive_is_biased(effect: dict) -> None:
    lo, hi = effect["ate_ci"]
    assert lo < TRUE_ATE < hi
    assert abs(effect["ate"] - TRUE_ATE) < 0.1
    nlo, nhi = effect["naive_ci"]
    assert not (nlo < TRUE_ATE < nhi) and effect["naive_ate"] > TRUE_ATE + 0.5  # confounding bias
    ilo, ihi = effect["ipw_ci"]
    assert ilo < TRUE_ATE < ihi
    assert effect["ate_se"] > 0 and effect["ate_p_value"] < 1e-6
    assert effect["n"] == 4000 and effect["n_treated"] + effect["n_control"] == 4000
    assert (
        effect["estimator"] == "aipw" and effect["threshold"] is None and effect["reason"] is None
    )
    assert (
        effect["ess_treated"] < effect["n_treated"] and effect["ess_control"] < effect["n_control"]
    )


def test_weighting_balances_covariates(effect: dict) -> None:
    bal = effect["balance"]
    assert list(bal.index) == ["bank", "loadout", "side_defense"]
    assert (bal["smd_after"].abs() < bal["smd_before"].abs()).all()
    assert effect["max_abs_smd_before"] > 0.5 and effect["max_abs_smd_after"] < 0.1


def test_smd_before_weighting_matches_closed_form(sim: pd.DataFrame, effect: dict) -> None:
    t = sim["t"] == 1
    b1, b0 = sim.loc[t, "bank"], sim.loc[~t, "bank"]
    smd = (b1.mean() - b0.mean()) / np.sqrt((b1.var(ddof=1) + b0.var(ddof=1)) / 2)
    assert effect["balance"].loc["bank", "smd_before"] == pytest.approx(smd, rel=1e-12)


def test_binary_outcome_effect_on_probability_scale(sim: pd.DataFrame) -> None:
    res = propensity_adjusted_effect(sim, "t", "win", COVS, seed=0, n_estimators=60)
    truth = float(sim["true_win_ate"].iloc[0])
    lo, hi = res["ate_ci"]
    assert lo < truth < hi
    assert res["naive_ate"] > res["ate"]  # confounders push the naive difference up


def test_propensities_are_out_of_fold(sim: pd.DataFrame) -> None:
    sub = sim.iloc[:2000]
    ps = compute_propensity(
        sub, "t", ["bank", "loadout"], n_splits=5, seed=3, n_estimators=25, clip=(0.0, 1.0)
    )
    X, t = sub[["bank", "loadout"]].to_numpy(), sub["t"].to_numpy().astype(int)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    rf = RandomForestClassifier(n_estimators=25, min_samples_leaf=50, random_state=3, n_jobs=1)
    reference = cross_val_predict(rf, X, t, cv=cv, method="predict_proba")[:, 1]
    np.testing.assert_allclose(ps.raw, reference, rtol=0, atol=1e-12)
    in_sample = rf.fit(X, t).predict_proba(X)[:, 1]
    assert np.mean(np.abs(in_sample - ps.raw)) > 0.02
    # The in-sample fit has seen each row's own label; it separates the arms more than honest scores.
    gap_in = in_sample[t == 1].mean() - in_sample[t == 0].mean()
    gap_oof = ps.raw[t == 1].mean() - ps.raw[t == 0].mean()
    assert gap_in > gap_oof
    assert set(np.unique(ps.folds)) == set(range(5))


def test_clipping_is_reported(sim: pd.DataFrame) -> None:
    ps = compute_propensity(sim.iloc[:2000], "t", COVS, seed=0, clip=(0.2, 0.8), n_estimators=20)
    assert ps.n_clipped_low == int((ps.raw < 0.2).sum()) > 0
    assert ps.n_clipped_high == int((ps.raw > 0.8).sum()) > 0
    assert ps.n_clipped == ps.n_clipped_low + ps.n_clipped_high
    assert ps.propensity.min() >= 0.2 and ps.propensity.max() <= 0.8


def test_same_seed_same_result_different_seed_differs(sim: pd.DataFrame, effect: dict) -> None:
    again = propensity_adjusted_effect(sim, "t", "y", COVS, seed=0, n_estimators=60)
    assert again["ate"] == effect["ate"] and again["ipw_ate"] == effect["ipw_ate"]  # bit for bit
    assert again["ate_ci"] == effect["ate_ci"]
    pd.testing.assert_frame_equal(again["balance"], effect["balance"], check_exact=True)
    # Two workers build the same seeded trees; only the order of summing their votes may differ.
    small = sim.iloc[:1500]
    one = propensity_adjusted_effect(small, "t", "y", COVS, seed=0, n_estimators=20)
    threaded = propensity_adjusted_effect(small, "t", "y", COVS, seed=0, n_estimators=20, n_jobs=2)
    assert threaded["ate"] == pytest.approx(one["ate"], rel=1e-12)
    other = propensity_adjusted_effect(small, "t", "y", COVS, seed=1, n_estimators=20)
    assert other["ate"] != one["ate"]


def test_reused_propensities_give_the_same_estimate(sim: pd.DataFrame, effect: dict) -> None:
    ps = compute_propensity(sim.assign(t=sim["t"]), "t", COVS, seed=0, n_estimators=60)
    res = propensity_adjusted_effect(sim, "t", "y", COVS, seed=0, propensity=ps)
    assert res["ate"] == pytest.approx(effect["ate"], rel=1e-12)
    with pytest.raises(StatsInputError, match="rows"):
        propensity_adjusted_effect(sim.iloc[:100], "t", "y", COVS, seed=0, propensity=ps)


def test_count_treatment_is_binarized_at_the_median(sim: pd.DataFrame) -> None:
    res = propensity_adjusted_effect(
        sim, "count", "y", COVS, seed=0, n_splits=3, n_estimators=20, propensity_model="logistic"
    )
    median = float(np.median(sim["count"]))
    assert res["threshold"] == median
    assert res["n_treated"] == int((sim["count"] > median).sum())
    res = propensity_adjusted_effect(
        sim, "count", "y", COVS, threshold=0, n_splits=3, propensity_model="logistic"
    )
    assert res["n_treated"] == int((sim["count"] > 0).sum())


def test_post_treatment_and_outcome_covariates_are_refused(sim: pd.DataFrame) -> None:
    with pytest.raises(StatsInputError, match="forbidden"):
        propensity_adjusted_effect(sim, "t", "y", ["bank", "after"], forbidden=["after", "win"])
    with pytest.raises(StatsInputError, match="treatment or outcome"):
        propensity_adjusted_effect(sim, "t", "y", ["bank", "y"])
    with pytest.raises(StatsInputError, match="treatment or outcome"):
        compute_propensity(sim, "t", ["t", "bank"])


def test_no_treatment_variation_is_reported(sim: pd.DataFrame) -> None:
    res = propensity_adjusted_effect(sim.assign(t=1.0), "t", "y", COVS)
    assert (
        np.isnan(res["ate"])
        and res["reason"] == "treatment has no variation"
        and res["exploratory"]
    )


def test_hajek_ipw_closed_form() -> None:
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    t = np.array([1, 1, 1, 0, 0, 0])
    e = np.array([0.5, 0.25, 0.8, 0.5, 0.2, 0.4])
    w1 = 1 / e[:3]
    w0 = 1 / (1 - e[3:])
    expected = (w1 @ y[:3]) / w1.sum() - (w0 @ y[3:]) / w0.sum()
    # by hand: (2 + 1.25) / (2 + 4 + 1.25) - 2 / (2 + 1.25 + 1/0.6)
    assert expected == pytest.approx(3.25 / 7.25 - 2 / (3.25 + 1 / 0.6), rel=1e-12)
    assert weighted_outcome_diff(y, t, e) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(StatsInputError, match="inside"):
        weighted_outcome_diff(y, t, np.array([0.0, 0.25, 0.8, 0.5, 0.2, 0.4]))
