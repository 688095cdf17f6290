"""E-values against the published worked examples, the within-unit design on a planted panel, the checks.

Planted panel: 300 clusters of two units with 20 rows each. Each unit has a latent u ~ N(0, 1) that
raises both the treatment probability and the outcome (a unit-constant confounder no covariate
measures); a round covariate z confounds within units; the treatment adds TRUE_EFFECT to the outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgefinder.stats.causal import propensity_adjusted_effect, within_unit_effect
from edgefinder.stats.refute import (
    e_value,
    e_value_ci,
    permute_within,
    refute_within_effect,
    verdict,
)

TRUE_EFFECT = 0.10


def test_e_value_worked_examples() -> None:
    # VanderWeele & Ding (2017): RR 3.9 (95% CI 1.8 to 8.7) -> E-values 7.26 and 3.0
    assert e_value(3.9) == pytest.approx(7.263034, abs=1e-6)
    assert e_value_ci(1.8, 8.7) == pytest.approx(3.0, abs=1e-12)
    assert e_value_ci(2.4, 8.7) == pytest.approx(4.23303, abs=1e-5)
    # a protective effect is read on the inverted scale, the CI bound nearer to 1 is the upper one
    assert e_value(1 / 3.9) == pytest.approx(7.263034, abs=1e-6)
    assert e_value_ci(1 / 8.7, 1 / 1.8) == pytest.approx(3.0, abs=1e-12)
    assert e_value_ci(0.8, 1.3) == 1.0 and e_value(1.0) == 1.0
    assert np.isnan(e_value(0.0)) and np.isnan(e_value_ci(float("nan"), 2.0))


def test_permute_within_keeps_each_units_values() -> None:
    units = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    values = np.array([1.0, 0, 0, 1, 1, 0, 1, 0, 1])
    out = permute_within(values, units, seed=3)
    for u in np.unique(units):
        assert sorted(out[units == u]) == sorted(values[units == u])
    assert not np.array_equal(
        permute_within(np.arange(200.0), np.zeros(200, int), 1), np.arange(200.0)
    )
    assert np.array_equal(permute_within(values, units, 3), out)  # seeded


def _panel(seed: int, clusters: int = 300, rows: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_units = 2 * clusters
    unit = np.repeat(np.arange(n_units), rows)
    u = rng.standard_normal(n_units)[unit]
    z = rng.standard_normal(unit.size)
    t = (rng.random(unit.size) < 1 / (1 + np.exp(-(0.8 * u + 0.5 * z)))).astype(float)
    y = (
        2.0 + TRUE_EFFECT * t + 0.3 * u + 0.2 * z + rng.standard_normal(unit.size) * 0.5
    )  # positive: RR defined
    return pd.DataFrame({"unit": unit, "cluster": unit // 2, "z": z, "t": t, "y": y})


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return _panel(21)


@pytest.fixture(scope="module")
def within(panel: pd.DataFrame) -> dict:
    return within_unit_effect(panel, "t", "y", ["z"], "unit", "cluster", seed=0)


def test_within_design_removes_a_unit_constant_confounder(
    panel: pd.DataFrame, within: dict
) -> None:
    lo, hi = within["ate_ci"]
    assert lo < TRUE_EFFECT < hi and abs(within["ate"] - TRUE_EFFECT) < 0.03
    between = propensity_adjusted_effect(
        panel, "t", "y", ["z"], seed=0, groups=panel["cluster"], propensity_model="logistic"
    )
    blo, bhi = between["ate_ci"]
    assert not blo < TRUE_EFFECT < bhi and between["ate"] > TRUE_EFFECT + 0.1  # fooled by u
    assert within["n_clusters"] == 300 and within["n_units"] == 600
    assert (
        "treatment__unit_mean" in within["mundlak_terms"]
        and "z__unit_mean" in within["mundlak_terms"]
    )
    bal = within["balance"]
    assert (
        abs(bal.loc["treatment__unit_mean", "smd_before"])
        > 0.3
        > abs(bal.loc["treatment__unit_mean", "smd_after"])
    )


def test_within_se_matches_a_brute_force_cluster_bootstrap(
    panel: pd.DataFrame, within: dict
) -> None:
    rng = np.random.default_rng(5)
    clusters = panel["cluster"].to_numpy()
    by_cluster = {c: np.flatnonzero(clusters == c) for c in np.unique(clusters)}
    labels = np.array(list(by_cluster))
    boot = []
    for b in range(60):
        pick = rng.choice(labels, labels.size)
        parts = []
        for k, c in enumerate(
            pick
        ):  # a drawn cluster twice is two clusters (and two sets of units)
            part = panel.iloc[by_cluster[c]].copy()
            part["cluster"] = k
            part["unit"] = part["unit"] * 1000 + k
            parts.append(part)
        boot.append(
            within_unit_effect(
                pd.concat(parts, ignore_index=True), "t", "y", ["z"], "unit", "cluster", seed=b
            )["ate"]
        )
    # 60 replicates estimate an SD to about +-9%
    assert within["ate_se"] == pytest.approx(float(np.std(boot, ddof=1)), rel=0.3)


def test_units_without_a_contrast_are_dropped(panel: pd.DataFrame) -> None:
    df = panel.copy()
    df.loc[df["unit"] < 10, "t"] = 1.0  # ten units always treated
    res = within_unit_effect(df, "t", "y", ["z"], "unit", "cluster", seed=0)
    assert (
        res["n_units_dropped"] >= 10
        and res["rows_dropped"] >= 200
        and res["n"] == len(df) - res["rows_dropped"]
    )
    few = within_unit_effect(
        panel[panel["cluster"] < 10], "t", "y", ["z"], "unit", "cluster", seed=0
    )
    assert few["exploratory"] and few["n_clusters"] == 10


def test_refutations_pass_for_a_real_effect_and_placebo_finds_nothing(
    panel: pd.DataFrame, within: dict
) -> None:
    ref = refute_within_effect(
        within_unit_effect,
        panel,
        within,
        treatment_col="t",
        outcome_col="y",
        covariates=["z"],
        unit_col="unit",
        cluster_col="cluster",
        unit_mean_covariates=None,
        threshold=None,
        seed=0,
    )
    checks = {c.name: c for c in ref.checks}
    assert set(checks) == {"placebo", "random_common_cause", "subset"}
    assert abs(checks["placebo"].figures["estimate"]) < 0.03 and checks["placebo"].passed
    assert abs(checks["random_common_cause"].figures["shift_in_se"]) < 0.5
    assert checks["subset"].figures["n_clusters"] == 150
    assert ref.all_passed and verdict(True, ref) == "robust"
    assert ref.e_value > ref.e_value_ci > 1.0
    assert verdict(False, ref) == "not significant" and verdict(True, None) == "fragile"


def test_a_leaky_estimator_fails_the_placebo(panel: pd.DataFrame, within: dict) -> None:
    """An estimator that reports the effect whatever the treatment (a broken design) is caught."""

    def leaky(df: pd.DataFrame, treatment_col: str, **kw: object) -> dict:
        res = within_unit_effect(df, treatment_col, **kw)  # type: ignore[arg-type]
        return {**res, "ate": within["ate"], "ate_p_value": 1e-9}

    ref = refute_within_effect(
        leaky,
        panel,
        within,
        treatment_col="t",
        outcome_col="y",
        covariates=["z"],
        unit_col="unit",
        cluster_col="cluster",
        unit_mean_covariates=None,
        threshold=None,
        seed=0,
    )
    assert not {c.name: c for c in ref.checks}["placebo"].passed and verdict(True, ref) == "fragile"
