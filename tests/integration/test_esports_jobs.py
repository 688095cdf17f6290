"""The correlation job on a real SQLite database: every stored number checked against scipy/statsmodels."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from sqlalchemy import select
from statsmodels.stats.multitest import multipletests

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.esports.aggregate import (
    COUNT_FEATURES,
    COVARIATES,
    FEATURE_COLUMNS,
    extract_round_features,
)
from edgefinder.esports.jobs import (
    COVARIATE_EFFECTS,
    JobParams,
    arun_correlation_job,
    compute_results,
    run_correlation_job,
)
from edgefinder.esports.simulate import simulate
from edgefinder.esports.synthdb import load_units
from edgefinder.store.engine import make_engine
from edgefinder.store.migrate import upgrade
from edgefinder.store.tables import analysis_runs, correlation_results


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{(tmp_path_factory.mktemp('jobs') / 'jobs.sqlite3').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    load_units(engine, simulate(20, seed=57).units, seed=57)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def features(db: str) -> pd.DataFrame:
    return extract_round_features(db)


@pytest.fixture(scope="module")
def results(features: pd.DataFrame) -> pd.DataFrame:
    return compute_results(features, JobParams(seed=5, refute="all"))


def test_what_the_data_cannot_provide_is_named_not_tested(features: pd.DataFrame) -> None:
    """A source without an end-of-round bank and without peek signals (as the real ones are): no
    n = 0 rows for econ_delta or peek, and the run says why."""
    import io

    from rich.console import Console

    from edgefinder.esports.jobs import JobResult, not_available
    from edgefinder.esports.report import print_run

    real_like = features.assign(econ_delta=np.nan, peek_count=0, peek_share=0.0)
    missing = not_available(real_like)
    assert missing == {
        "econ_delta": "no end-of-round bank in this data",
        "peek": "no peek signal in this data",
    }
    assert not_available(features) == {}
    res = compute_results(real_like, JobParams(seed=5, refute="none"))
    assert len(res) and "econ_delta" not in set(res.outcome)
    assert not res.feature.str.startswith("peek_").any()
    buf = io.StringIO()
    print_run(
        JobResult(
            "r1", "succeeded", len(real_like), len(res), 0, 1.0, "m", res, not_available=missing
        ),
        Console(file=buf, width=200),
    )
    assert (
        "not available in this data, not tested: econ_delta (no end-of-round bank in this data), "
        "peek (no peek signal in this data)" in buf.getvalue()
    )


def _one(results: pd.DataFrame, feature: str, outcome: str, method: str) -> pd.Series:
    hit = results[
        (results.feature == feature) & (results.outcome == outcome) & (results.method == method)
    ]
    assert len(hit) == 1
    return hit.iloc[0]


def test_every_feature_gets_every_test(results: pd.DataFrame) -> None:
    n_feat, n_counts, n_cov = len(FEATURE_COLUMNS), len(COUNT_FEATURES), len(COVARIATE_EFFECTS)
    counts = results.groupby("method").size().to_dict()
    assert counts == {
        "point_biserial": 2 * n_feat + n_cov,
        "spearman": n_feat,
        "logistic": 2 * n_feat + n_cov,
        "chi2": 2 * n_counts,
        "aipw_within": n_counts,
        "aipw_naive": n_counts,
        # the exposure-aware design: one row per intent's opening-phase count
        "opening_within": n_counts,
    }
    assert (results["purpose"] == PURPOSE).all()
    # only the within-match effects carry a verdict
    assert (
        results.loc[results.method == "aipw_within", "verdict"]
        .isin(["robust", "fragile", "not significant"])
        .all()
    )
    assert results.loc[results.method != "aipw_within", "verdict"].isna().all()


def _cluster_se(psi: np.ndarray, groups: np.ndarray) -> float:
    """Reference: statsmodels' cluster-robust SE of the mean of influence values."""
    fit = sm.OLS(psi, np.ones((psi.size, 1))).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(groups)[0]}
    )
    return float(fit.bse[0])


def _corr_p(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Cluster-robust p-value of a Pearson r from its influence function psi = xs ys - r (xs² + ys²)/2."""
    xs, ys = (x - x.mean()) / x.std(), (y - y.mean()) / y.std()
    r = float(np.mean(xs * ys))
    se = _cluster_se(xs * ys - r * (xs**2 + ys**2) / 2, groups)
    g = len(set(groups))
    return float(2 * sps.t.sf(abs(r / se), g - 1))


def test_loadout_advantage_covariate_effect_matches_statsmodels(
    features: pd.DataFrame, results: pd.DataFrame
) -> None:
    adv = features["loadout_value"] - features["opp_loadout_value"]
    z = (adv - adv.mean()) / adv.std(ddof=1)
    X = sm.add_constant(pd.DataFrame({"loadout_advantage": z, "side": features["side"]}))
    # clustered by match like every test of the run
    ref = sm.Logit(features["round_win"].astype(float), X).fit(
        disp=0,
        cov_type="cluster",
        cov_kwds={"groups": pd.factorize(features["match_id"])[0]},
        use_t=True,
    )
    r = _one(results, "loadout_advantage", "round_win", "logistic")
    assert r["details"]["kind"] == "covariate" and r["details"]["adjusted_for"] == ["side"]
    assert r["effect"] == pytest.approx(ref.params["loadout_advantage"], rel=1e-6)
    assert r["p_value"] == pytest.approx(ref.pvalues["loadout_advantage"], rel=1e-6)
    lo, hi = ref.conf_int().loc["loadout_advantage"]
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), rel=1e-6)
    pb = _one(results, "loadout_advantage", "round_win", "point_biserial")
    assert pb["effect"] == pytest.approx(
        sps.pointbiserialr(features["round_win"], adv).statistic, abs=1e-12
    )
    # the simulator's buys follow its bank and a richer loadout wins more: the baseline is positive
    assert r["direction"] == "positive" and r["significant"]


def test_point_biserial_and_spearman_match_scipy(
    features: pd.DataFrame, results: pd.DataFrame
) -> None:
    groups = features["match_id"].to_numpy()
    for feat in ("trade_count", "retreat_share", "mean_confidence", "kills"):
        r = _one(results, feat, "round_win", "point_biserial")
        ref = sps.pointbiserialr(features["round_win"], features[feat])
        assert r["effect"] == pytest.approx(ref.statistic, abs=1e-12)
        # inference clustered by match (20 matches here: every clustered result is exploratory)
        x, y = features[feat].to_numpy(float), features["round_win"].to_numpy(float)
        assert r["p_value"] == pytest.approx(_corr_p(x, y, groups), rel=1e-9, abs=1e-300)
        assert r["n"] == len(features) and r["exploratory"] and r["details"]["n_clusters"] == 20
        assert r["ci_low"] < r["effect"] < r["ci_high"]
        # site_executed: attacking team-rounds only (defenders cannot execute)
        att = features[features.side == 1]
        r = _one(results, feat, "site_executed", "point_biserial")
        assert r["n"] == len(att)
        assert r["effect"] == pytest.approx(
            sps.pointbiserialr(att["site_executed"], att[feat]).statistic, abs=1e-12
        )
        s = _one(results, feat, "econ_delta", "spearman")
        ref = sps.spearmanr(features[feat], features["econ_delta"])
        assert s["effect"] == pytest.approx(ref.statistic, abs=1e-12)
        ranks = sps.rankdata(features[feat]), sps.rankdata(features["econ_delta"])
        assert s["p_value"] == pytest.approx(_corr_p(*ranks, groups), rel=1e-9, abs=1e-300)


def test_chi2_matches_scipy(features: pd.DataFrame, results: pd.DataFrame) -> None:
    x = features["trade_count"].to_numpy()
    bins = np.where(x == 0, 0, np.where(x == 1, 1, 2))
    table = pd.crosstab(bins, features["round_win"]).to_numpy()
    ref = sps.chi2_contingency(table, correction=False)
    r = _one(results, "trade_count", "round_win", "chi2")
    assert r["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    assert r["effect"] == pytest.approx(np.sqrt(ref.statistic / table.sum()), rel=1e-9)
    # p: cluster-robust Wald test that the win rate is equal in the three bins
    dummies = np.column_stack([np.ones(len(x)), bins == 1, bins == 2]).astype(float)
    fit = sm.OLS(features["round_win"].to_numpy(float), dummies).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(features["match_id"])[0]}, use_t=True
    )
    wald = fit.f_test(np.eye(3)[1:])
    assert r["p_value"] == pytest.approx(float(np.squeeze(wald.pvalue)), rel=1e-9)
    assert r["details"]["design_effect"] == pytest.approx(
        ref.statistic / 2 / float(np.squeeze(wald.fvalue)), rel=1e-9
    )


def test_logistic_is_adjusted_log_odds_per_sd(
    features: pd.DataFrame, results: pd.DataFrame
) -> None:
    def z(s: pd.Series) -> pd.Series:
        return (s - s.mean()) / s.std(ddof=1)

    X = pd.DataFrame(
        {"hold_count": z(features["hold_count"]), **{c: z(features[c]) for c in COVARIATES}}
    )
    fit = sm.Logit(features["round_win"].astype(float), sm.add_constant(X)).fit(
        disp=0,
        cov_type="cluster",
        cov_kwds={"groups": pd.factorize(features["match_id"])[0]},
        use_t=True,
    )
    r = _one(results, "hold_count", "round_win", "logistic")
    assert r["effect"] == pytest.approx(fit.params["hold_count"], abs=1e-6)
    assert r["p_value"] == pytest.approx(fit.pvalues["hold_count"], rel=1e-5)
    lo, hi = fit.conf_int().loc["hold_count"]
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), abs=1e-6)
    assert r["details"]["adjusted_for"] == list(COVARIATES)
    assert r["details"]["odds_ratio_per_sd"] == pytest.approx(
        np.exp(fit.params["hold_count"]), rel=1e-6
    )


def test_bh_over_all_tests_of_the_run(results: pd.DataFrame) -> None:
    p = results["p_value"].to_numpy(dtype=float)
    naive = (results["method"] == "aipw_naive").to_numpy()
    # the naive between-team rows keep their p but stay out of the family: never significant
    assert np.isfinite(p[naive]).all() and results.loc[naive, "q_value"].isna().all()
    assert not results.loc[naive, "significant"].any()
    ok = np.isfinite(p) & ~naive
    assert ok.sum() >= len(results) - naive.sum() - 5
    reject, q, _, _ = multipletests(p[ok], alpha=0.05, method="fdr_bh")
    assert np.allclose(results.loc[ok, "q_value"].to_numpy(dtype=float), q, rtol=1e-12, atol=0)
    assert (results.loc[ok, "significant"].to_numpy() == reject).all()
    assert not results.loc[~ok, "significant"].any()
    assert results["details"].iloc[0]["bh_family_size"] == ok.sum()


def test_causal_rows_use_only_pre_round_covariates(results: pd.DataFrame) -> None:
    aipw = results[results.method.str.startswith("aipw")]
    for d in aipw["details"]:
        assert set(d["adjusted_for"]) <= set(COVARIATES)
        assert {"naive", "adjusted", "ipw", "balance", "n_clipped_low", "n_clusters"} <= set(d)
        assert all(set(b) == {"covariate", "smd_before", "smd_after"} for b in d["balance"])
    # plant only happens on attack: positivity restricts its estimate to attacking rows
    plant = _one(results, "plant_count", "round_win", "aipw_within")
    assert (
        plant["details"]["population"].startswith("attack")
        and "side" not in plant["details"]["adjusted_for"]
    )
    trade = _one(results, "trade_count", "round_win", "aipw_within")
    assert (
        trade["details"]["naive"] is not None
        and trade["ci_low"] < trade["effect"] < trade["ci_high"]
    )
    d = trade["details"]
    # the within design: Mundlak terms of the round covariates and of the treatment, the unit a team in a match
    assert (
        "treatment__unit_mean" in d["mundlak_terms"]
        and "bank_start__unit_mean" in d["mundlak_terms"]
    )
    assert "score_diff__unit_mean" not in d["mundlak_terms"]
    assert (
        d["n_units"] == 40 and d["n_clusters"] <= 20 and d["between_team"]["method"] == "aipw_naive"
    )
    assert d["e_value"] >= 1.0 and d["e_value_ci"] >= 1.0
    # refutation figures for every effect (refute='all'); the verdict follows q and the checks
    for r in results[results.method == "aipw_within"].to_dict(orient="records"):
        ref = r["details"]["refutations"]
        assert set(ref) == {"placebo", "random_common_cause", "subset", "e_value"}
        passed = all(ref[c]["passed"] is True for c in ("placebo", "random_common_cause", "subset"))
        assert r["verdict"] == (
            "not significant" if not r["significant"] else "robust" if passed else "fragile"
        )
        assert (
            ref["placebo"]["rule"].startswith("placebo p >=") and ref["subset"]["n_clusters"] <= 10
        )


def test_refute_significant_skips_the_checks_of_effects_that_are_not(
    features: pd.DataFrame,
) -> None:
    res = compute_results(features, JobParams(seed=5))  # refute="significant", the default
    within = res[res.method == "aipw_within"]
    assert (~within["significant"]).any()
    for r in within.to_dict(orient="records"):
        if not r["significant"]:
            assert r["details"]["refutations"] is None and r["verdict"] == "not significant"
            assert "not significant" in r["details"]["refutations_skipped"]
        else:
            assert r["details"]["refutations"] and r["verdict"] in ("robust", "fragile")


def test_same_seed_same_numbers_and_workers_do_not_matter(
    features: pd.DataFrame, results: pd.DataFrame
) -> None:
    again = compute_results(features, JobParams(seed=5, workers=1))
    a = results[["effect", "ci_low", "ci_high", "p_value"]].to_numpy(dtype=float)
    b = again[["effect", "ci_low", "ci_high", "p_value"]].to_numpy(dtype=float)
    assert np.array_equal(np.nan_to_num(a, nan=-9.0), np.nan_to_num(b, nan=-9.0))


def test_stored_run_and_rows(db: str) -> None:
    res = asyncio.run(
        arun_correlation_job(db, params=JobParams(seed=2))
    )  # the original asyncio.run form
    assert res.status == "succeeded" and res.n_tests == len(res.results) > 100
    engine = make_engine(db)
    with engine.connect() as conn:
        run = conn.execute(select(analysis_runs).where(analysis_runs.c.run_id == res.run_id)).one()
        rows = conn.execute(
            select(correlation_results).where(correlation_results.c.run_id == res.run_id)
        ).all()
    engine.dispose()
    assert run.status == "succeeded" and run.purpose == PURPOSE and run.disclaimer == DISCLAIMER
    assert (
        run.n_tests == len(rows) == res.n_tests
        and run.summary["n_significant"] == res.n_significant
    )
    assert run.params["seed"] == 2 and run.duration_s > 0
    assert all(
        r.purpose == PURPOSE and r.details["kind"] in ("micro", "in_round", "covariate")
        for r in rows
    )
    # every stored result row says what it is for, on its own
    assert all(
        r.details["purpose"] == PURPOSE and r.details["disclaimer"] == DISCLAIMER for r in rows
    )
    assert sum(r.significant for r in rows) == res.n_significant
    verdicts = {r.feature: r.verdict for r in rows if r.method == "aipw_within"}
    assert len(verdicts) == len(COUNT_FEATURES) and set(verdicts.values()) <= {
        "robust",
        "fragile",
        "not significant",
    }


def test_tiny_database_runs_and_flags_everything_exploratory(sqlite_url: str) -> None:
    from tests.integration.test_esports_aggregate import _seed

    engine = make_engine(sqlite_url)
    _seed(engine)  # four team-rounds
    res = run_correlation_job(engine)
    engine.dispose()
    assert res.status == "succeeded" and res.n_rows == 4 and res.n_tests == len(res.results) > 100
    assert res.results["exploratory"].all()
    untestable = res.results[res.results["p_value"].isna()]
    assert len(untestable) > 50 and not untestable["significant"].any()
    assert all(d["reason"] for d in untestable["details"])
