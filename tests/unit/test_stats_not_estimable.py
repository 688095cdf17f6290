"""Estimators never crash on degenerate designs, and probability differences stay in [-1, 1].

Degenerate inputs the real data produce: a covariate constant everywhere (money on imports without
it), two collinear covariates (a loadout recorded twice), a treatment without variation, a handful
of rows whose CI would spill past ±1. Each gives an estimate or a "not estimable: …" reason, never
an exception; results are the typed objects (``EffectResult``, ``LinearEffectResult``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from edgefinder.esports.jobs import MATCH_CODE, JobParams, _causal_rows
from edgefinder.stats.causal import (
    EffectResult,
    LinearEffectResult,
    propensity_adjusted_effect,
    within_linear_effect,
)


def _frame(n_matches: int = 60, rounds: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_matches * rounds * 2
    df = pd.DataFrame(
        {
            "match_id": np.repeat([f"m{i}" for i in range(n_matches)], rounds * 2),
            "team_id": np.tile(["a", "b"], n // 2),
            "round_no": np.tile(np.repeat(np.arange(rounds), 2), n_matches),
            "side": rng.integers(0, 2, n).astype(float),
            "bank_start": rng.normal(10_000, 3000, n),
            "count": rng.poisson(2.0, n).astype(float),
        }
    )
    df["bank_copy"] = 2.0 * df["bank_start"]  # collinear
    df["constant"] = 7.0
    df["round_win"] = (rng.random(n) < 0.4 + 0.05 * df["count"].clip(upper=4)).astype(int)
    df[MATCH_CODE] = pd.factorize(df["match_id"])[0]
    df["unit"] = df.groupby(["match_id", "team_id"]).ngroup()
    return df


def test_within_linear_effect_drops_degenerate_covariates_and_matches_statsmodels() -> None:
    df = _frame()
    res = within_linear_effect(
        df, "count", "round_win", ["side", "bank_start", "bank_copy", "constant"],
        unit_col="unit", cluster_col=MATCH_CODE,
    )  # fmt: skip
    assert isinstance(res, LinearEffectResult) and res.reason is None
    assert set(res.dropped) == {"bank_copy", "constant"}
    # reference: the same fixed-effects regression with unit dummies in statsmodels
    X = pd.get_dummies(df["unit"], prefix="u", dtype=float)
    X[["count", "side", "bank_start"]] = df[["count", "side", "bank_start"]]
    ref = sm.OLS(df["round_win"].astype(float), X).fit(
        cov_type="cluster", cov_kwds={"groups": df[MATCH_CODE]}
    )
    assert res.estimate == pytest.approx(ref.params["count"], rel=1e-8)
    assert res.se == pytest.approx(ref.bse["count"], rel=0.05)  # df corrections differ slightly
    assert res.estimate > 0 and res.ci_low > 0


def test_constant_treatment_is_not_estimable() -> None:
    df = _frame().assign(count=3.0)
    res = within_linear_effect(
        df, "count", "round_win", ["side"], unit_col="unit", cluster_col=MATCH_CODE
    )
    assert res.reason is not None and res.reason.startswith("not estimable:")
    assert np.isnan(res.estimate)


def test_aipw_with_constant_and_collinear_covariates_gives_a_typed_result() -> None:
    df = _frame()
    res = propensity_adjusted_effect(
        df, "count", "round_win", ["side", "bank_start", "bank_copy", "constant"],
        propensity_model="logistic", seed=1, groups=df[MATCH_CODE],
    )  # fmt: skip
    assert isinstance(res, EffectResult) and res.reason is None
    assert res.estimate == res["ate"] and res.ci == tuple(res["ate_ci"])
    assert -1.0 <= res.ci_low <= res.estimate <= res.ci_high <= 1.0


def test_tiny_samples_keep_probability_cis_inside_minus_one_one() -> None:
    df = _frame(n_matches=4, rounds=3, seed=3)
    res = propensity_adjusted_effect(
        df, "count", "round_win", ["side"], propensity_model="logistic", n_splits=2,
        min_group_n=1, seed=0, groups=df[MATCH_CODE],
    )  # fmt: skip
    for lo, hi in (res.ci, res["ipw_ci"], res["naive_ci"]):
        assert -1.0 <= lo <= hi <= 1.0


def test_the_job_reports_not_estimable_instead_of_failing() -> None:
    df = _frame().assign(count=0.0)  # nobody shows the intent: no treated rows at all
    within, naive = _causal_rows(df, "count", "round_win", ["side", "constant"], JobParams())
    assert within["p_value"] is None and within["effect"] is None
    assert within["details"]["reason"]
