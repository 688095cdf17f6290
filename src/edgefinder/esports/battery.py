"""The test battery of the correlation job: association tests, covariate baseline, causal effects, BH.

See :mod:`edgefinder.esports.jobs` for what a run computes; :func:`compute_results` is the pure
function from a feature frame to the result rows (importable from ``edgefinder.esports.jobs`` too).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import first_line
from edgefinder.esports.aggregate import (
    BINARY_OUTCOMES,
    COUNT_FEATURES,
    COVARIATES,
    FEATURE_COLUMNS,
    ROUND_COVARIATES,
)
from edgefinder.esports.exposure import opening_rows
from edgefinder.esports.mechanisms import intent_of, outcome_mechanism
from edgefinder.esports.resultrows import (
    MATCH_CODE,
    NAIVE_METHOD,
    RESULT_COLUMNS,
    UNIT_COL,
    WITHIN_METHOD,
    JobParams,
    _cluster_details,
    _point_biserial_row,
    _row,
    _sign,
)
from edgefinder.jsonsafe import finite_or_none, jsonable
from edgefinder.stats._common import StatsInputError
from edgefinder.stats.association import (
    chi2_feature_counts,
    logistic_model,
    point_biserial,
    spearman,
)
from edgefinder.stats.causal import EffectResult, propensity_adjusted_effect, within_unit_effect
from edgefinder.stats.multiple import multiple_test_correction
from edgefinder.stats.refute import Refutation, e_value, e_value_ci, refute_within_effect, verdict


def _population(df: pd.DataFrame, outcome: str) -> tuple[pd.DataFrame, list[str]]:
    """Rows and adjustment covariates of one outcome (site_executed: attackers only, side dropped).

    A covariate the data never carries (money on imports from sources without it) is left out of
    the adjustment set: listwise deletion would otherwise drop every row.
    """
    covs = [c for c in COVARIATES if df[c].notna().any()]
    if outcome == "site_executed" and df["side"].notna().any():
        return df.loc[df["side"] == 1.0], [c for c in covs if c != "side"]
    return df, covs


def _zscore(s: pd.Series) -> tuple[pd.Series, float]:
    sd = float(s.std(ddof=1)) if s.notna().sum() > 1 else float("nan")
    if not np.isfinite(sd) or sd == 0:
        return s - s.mean(), sd
    return (s - s.mean()) / sd, sd


def _logistic_rows(
    df: pd.DataFrame, features: list[str], outcome: str, params: JobParams
) -> list[dict[str, Any]]:
    pop, covs = _population(df, outcome)
    groups = pop[MATCH_CODE].to_numpy()
    std = pd.DataFrame({c: _zscore(pop[c].astype(float))[0] for c in covs})
    std[outcome] = pop[outcome].astype(float).to_numpy()
    out = []
    for feat in features:
        z, sd = _zscore(pop[feat].astype(float))
        frame = std.assign(**{feat: z.to_numpy()})
        res = logistic_model(
            frame,
            feat,
            outcome,
            covs,
            min_group_n=params.min_group_n,
            groups=groups,
            min_clusters=params.min_clusters,
        )
        row = res.table.loc[feat]
        coef, se = float(row["coef"]), float(row["se"])
        ok = res.status in ("ok", "not_converged") and np.isfinite(coef)
        reason = None if ok else (res.reason or res.status)
        ci = (
            math.log(row["or_ci_low"]) if ok and row["or_ci_low"] > 0 else None,
            math.log(row["or_ci_high"]) if ok and row["or_ci_high"] > 0 else None,
        )
        details = {
            "reason": reason,
            "status": res.status,
            "scale": "log odds ratio per 1 SD of the feature",
            "feature_sd": sd,
            "odds_ratio_per_sd": float(row["odds_ratio"]),
            "odds_ratio_ci": [float(row["or_ci_low"]), float(row["or_ci_high"])],
            "se": se,
            "adjusted_for": covs,
            "population": "attack team-rounds" if outcome == "site_executed" else "all team-rounds",
            "pseudo_r2": res.pseudo_r2,
            "separation": res.separation,
            "inference": "cluster-robust by match (t on G - 1 df)",
        }
        out.append(
            _row(
                feat,
                outcome,
                "logistic",
                res.n,
                row["z"],
                coef,
                ci,
                row["p_value"],
                res.exploratory,
                _sign(coef) if ok else "none",
                details,
            )
        )
    return out


def _association_rows(
    df: pd.DataFrame, features: list[str], params: JobParams
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for outcome in BINARY_OUTCOMES:
        pop, _ = _population(df, outcome)
        y = pop[outcome].to_numpy(dtype=np.float64)
        groups = pop[MATCH_CODE].to_numpy()
        pb_dir: dict[str, str] = {}
        for feat in features:
            r = point_biserial(
                pop[feat].to_numpy(dtype=np.float64),
                y,
                min_group_n=params.min_group_n,
                groups=groups,
                min_clusters=params.min_clusters,
            )
            pb_dir[feat] = r.direction
            population = "attack team-rounds" if outcome == "site_executed" else "all team-rounds"
            details = {
                "n_positive": r.n_positive,
                "n_negative": r.n_negative,
                "population": population,
            }
            rows.append(_point_biserial_row(feat, outcome, r, details))
        for feat in features:
            if feat not in COUNT_FEATURES:
                continue
            c = chi2_feature_counts(
                pop[feat].to_numpy(dtype=np.float64),
                y,
                bins="count",
                min_group_n=params.min_group_n,
                groups=groups,
                min_clusters=params.min_clusters,
            )
            details = {
                "reason": c.reason,
                "dof": c.dof,
                "bins": list(c.bins),
                "min_expected": c.min_expected,
                "effect_size": "Cramér's V (unsigned; direction from the point-biserial r)",
                "statistic": "Pearson chi-square; p from the cluster-robust Wald F test",
                **_cluster_details(c.n_clusters, c.design_effect),
            }
            rows.append(
                _row(
                    feat,
                    outcome,
                    "chi2",
                    c.n,
                    c.chi2,
                    c.cramers_v,
                    (None, None),
                    c.p_value,
                    c.exploratory,
                    pb_dir.get(feat, "none") if c.reason is None else "none",
                    details,
                )
            )
    econ = df["econ_delta"].to_numpy(dtype=np.float64)
    groups = df[MATCH_CODE].to_numpy()
    for feat in features:
        s = spearman(
            df[feat].to_numpy(dtype=np.float64),
            econ,
            min_n=params.min_group_n,
            groups=groups,
            min_clusters=params.min_clusters,
        )
        rows.append(
            _row(
                feat,
                "econ_delta",
                "spearman",
                s.n,
                s.rho,
                s.rho,
                (s.ci_low, s.ci_high),
                s.p_value,
                s.exploratory,
                s.direction,
                {
                    "reason": s.reason,
                    "unit": "rank correlation with dollars",
                    **_cluster_details(s.n_clusters, s.design_effect),
                },
            )
        )
    return rows


#: Pre-round quantities whose own effect on round win is reported (``details.kind`` "covariate"):
#: not edges, but the baseline every micro feature is adjusted for. ``loadout_advantage`` =
#: loadout_value - opp_loadout_value (dollars of game currency at ROUND_START).
COVARIATE_EFFECTS: tuple[str, ...] = ("loadout_advantage",)


def _covariate_rows(df: pd.DataFrame, params: JobParams) -> list[dict[str, Any]]:
    """Point-biserial r and logistic log-OR per SD (adjusted for side) of the loadout advantage on round win."""
    adv = (df["loadout_value"] - df["opp_loadout_value"]).astype(float)
    keep = adv.notna().to_numpy()
    if keep.sum() == 0:
        return []
    frame = pd.DataFrame(
        {
            "loadout_advantage": adv,
            "side": df["side"].astype(float),
            "round_win": df["round_win"].astype(float),
        }
    ).loc[keep]
    covs = ["side"] if frame["side"].notna().any() and frame["side"].nunique() > 1 else []
    base = {
        "kind": "covariate",
        "unit": "dollars (game currency), own minus opponent's loadout at round start",
        "population": "team-rounds with both loadouts recorded",
    }
    groups = df[MATCH_CODE].to_numpy()[keep]
    r = point_biserial(
        frame["loadout_advantage"].to_numpy(),
        frame["round_win"].to_numpy(),
        min_group_n=params.min_group_n,
        groups=groups,
        min_clusters=params.min_clusters,
    )
    rows = [_point_biserial_row("loadout_advantage", "round_win", r, base)]
    z, sd = _zscore(frame["loadout_advantage"])
    res = logistic_model(
        frame.assign(loadout_advantage=z),
        "loadout_advantage",
        "round_win",
        covs,
        min_group_n=params.min_group_n,
        groups=groups,
        min_clusters=params.min_clusters,
    )
    t = res.table.loc["loadout_advantage"]
    coef = float(t["coef"])
    ok = res.status in ("ok", "not_converged") and np.isfinite(coef)
    ci = (
        math.log(t["or_ci_low"]) if ok and t["or_ci_low"] > 0 else None,
        math.log(t["or_ci_high"]) if ok and t["or_ci_high"] > 0 else None,
    )
    details = {
        **base,
        "reason": None if ok else (res.reason or res.status),
        "status": res.status,
        "scale": "log odds ratio per 1 SD of the loadout advantage",
        "feature_sd": sd,
        "odds_ratio_per_sd": float(t["odds_ratio"]),
        "adjusted_for": covs,
    }
    rows.append(
        _row(
            "loadout_advantage",
            "round_win",
            "logistic",
            res.n,
            t["z"],
            coef,
            ci,
            t["p_value"],
            res.exploratory,
            _sign(coef) if ok else "none",
            details,
        )
    )
    return rows


def _causal_kwargs(params: JobParams, n_rows: int) -> dict[str, Any]:
    """Forest knobs (used when ``params.propensity_model`` is 'random_forest').

    An integer ``max_samples`` larger than a training fold of the subset check (half of ``n_rows``
    minus one fold) means "all rows": sklearn refuses a bootstrap bigger than its input.
    """
    ms = params.max_samples
    if isinstance(ms, int):
        n_train = (n_rows // 2 * (params.n_splits - 1)) // params.n_splits - 1
        ms = None if ms >= n_train else ms
    # parallelism is across estimates (compute_results), not inside one forest
    return {
        "n_estimators": params.n_estimators,
        "min_samples_leaf": params.min_samples_leaf,
        "max_samples": ms,
        "n_jobs": 1,
    }


def _causal_tasks(
    df: pd.DataFrame, params: JobParams
) -> list[tuple[pd.DataFrame, str, str, list[str]]]:
    tasks: list[tuple[pd.DataFrame, str, str, list[str]]] = []
    for outcome in params.causal_outcomes:
        pop, covs = _population(df, outcome)
        tasks.extend((pop, feat, outcome, covs) for feat in COUNT_FEATURES)
    return tasks


def _overlap(
    pop: pd.DataFrame, feat: str, covs: list[str], params: JobParams
) -> tuple[pd.DataFrame, list[str], float, str | None]:
    """Treatment threshold (median rule over the population) and positivity by side.

    An intent that only one side shows (plant on attack) has no treated rows on the other side, so
    its propensity there is 0 and no weighting can fix that: the estimate is restricted to the side
    levels where both arms have at least ``min_group_n`` rows, and the restriction is reported.
    """
    x = pop[feat].to_numpy(dtype=np.float64)
    thr = float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0
    if "side" not in covs:
        return pop, covs, thr, None
    t = x > thr
    keep_levels = []
    for level in (0.0, 1.0):
        on = (pop["side"] == level).to_numpy()
        if min(int((t & on).sum()), int((~t & on).sum())) >= params.min_group_n:
            keep_levels.append(level)
    if len(keep_levels) == 2 or not keep_levels:
        return pop, covs, thr, None
    name = "attack" if keep_levels[0] == 1.0 else "defense"
    sub = pop.loc[pop["side"] == keep_levels[0]]
    return (
        sub,
        [c for c in covs if c != "side"],
        thr,
        f"{name} team-rounds only (positivity: the other side has no overlap)",
    )


def _balance_records(balance: Any) -> list[dict[str, Any]] | None:
    """SMDs as ``[{"covariate", "smd_before", "smd_after"}, ...]`` (one flat record per covariate)."""
    if not isinstance(balance, pd.DataFrame):
        return None
    return [
        {"covariate": str(i), "smd_before": r["smd_before"], "smd_after": r["smd_after"]}
        for i, r in balance.iterrows()
    ]


def _effect_details(res: Mapping[str, Any], covs: list[str], population: str) -> dict[str, Any]:
    """What every causal row stores beside its estimate (both designs)."""
    return {
        "reason": res.get("reason"),
        "estimand": "ATE of T = count > threshold on P(outcome), probability points",
        "design": res.get("design"),
        "treatment_rule": "count > median(count)",
        "threshold": res.get("threshold"),
        "n_treated": res.get("n_treated"),
        "n_control": res.get("n_control"),
        "n_clusters": res.get("n_clusters"),
        "cluster": "match",
        "adjusted_for": covs,
        "population": population,
        "naive": res.get("naive_ate"),
        "naive_ci": list(res.get("naive_ci", (None, None))),
        "naive_p_value": res.get("naive_p_value"),
        "adjusted": res.get("ate"),
        "aipw_se": res.get("ate_se"),
        "ipw": res.get("ipw_ate"),
        "ipw_ci": list(res.get("ipw_ci", (None, None))),
        "mu1": res.get("mu1"),
        "mu0": res.get("mu0"),
        "n_clipped_low": res.get("n_clipped_low"),
        "n_clipped_high": res.get("n_clipped_high"),
        "clip": list(res.get("clip", ())),
        "ess_treated": res.get("ess_treated"),
        "ess_control": res.get("ess_control"),
        "balance": _balance_records(res.get("balance")),
        "max_abs_smd_before": res.get("max_abs_smd_before"),
        "max_abs_smd_after": res.get("max_abs_smd_after"),
        "propensity_model": res.get("propensity_model"),
        "outcome_model": res.get("outcome_model"),
        "n_splits": res.get("n_splits"),
        "seed": res.get("seed"),
    }


def _effect_row(
    feat: str, outcome: str, method: str, res: Mapping[str, Any], details: dict[str, Any]
) -> dict[str, Any]:
    ate = res.get("ate", float("nan"))
    se = res.get("ate_se", float("nan"))
    stat = ate / se if se and np.isfinite(se) and se > 0 else float("nan")
    return _row(
        feat,
        outcome,
        method,
        res["n"],
        stat,
        ate,
        res.get("ate_ci", (None, None)),
        res.get("ate_p_value"),
        res.get("exploratory", True),
        _sign(ate),
        details,
    )


def _estimable(
    estimator: Callable[..., EffectResult], pop: pd.DataFrame, *args: Any, **kw: Any
) -> EffectResult:
    """The estimate, or an empty one whose reason says why the data cannot give it.

    Inputs the estimator refuses (a constant or collinear design, no rows left, an arm too small)
    make that one feature "not estimable" instead of failing the whole run.
    """
    try:
        return estimator(pop, *args, **kw)
    except (StatsInputError, ValueError, np.linalg.LinAlgError) as exc:
        return EffectResult.of(
            {"n": len(pop), "reason": f"not estimable: {first_line(exc)}", "exploratory": True}
        )


def _causal_rows(
    pop: pd.DataFrame, feat: str, outcome: str, covs: list[str], params: JobParams
) -> list[dict[str, Any]]:
    """The within-match effect (refutations deferred to compute_results) and the naive effect of one intent."""
    pop, covs, thr, restricted = _overlap(pop, feat, covs, params)
    population = restricted or (
        "attack team-rounds" if outcome == "site_executed" else "all team-rounds"
    )
    pop = pop.assign(
        **{UNIT_COL: pop.groupby(["match_id", "team_id"], sort=False).ngroup().to_numpy()}
    )
    forbidden = [*FEATURE_COLUMNS, "round_win", "econ_delta", "site_executed"]
    models = {
        "propensity_model": params.propensity_model,
        "n_splits": params.n_splits,
        "min_group_n": params.min_group_n,
        "forbidden": forbidden,
        **_causal_kwargs(params, len(pop)),
    }
    # Mundlak means of the round's money and side only: the means of score_diff, prev_round_result and
    # loss_streak are functions of the team's own results over the match (its win rate), and
    # conditioning on them biases the within contrast toward zero (see docs/esports.md).
    means = [c for c in covs if c in ROUND_COVARIATES]
    within_kw = {
        "unit_col": UNIT_COL,
        "cluster_col": MATCH_CODE,
        "unit_mean_covariates": means,
        "min_clusters": params.min_clusters,
        **models,
    }
    res = _estimable(
        within_unit_effect, pop, feat, outcome, covs, threshold=thr, seed=params.seed, **within_kw
    )
    naive = _estimable(
        propensity_adjusted_effect,
        pop,
        feat,
        outcome,
        covs,
        threshold=thr,
        seed=params.seed,
        groups=pop[MATCH_CODE],
        **models,
    )
    details = _effect_details(res, covs, population)
    details.update(
        {
            "unit": "team in a match",
            "mundlak_terms": res.get("mundlak_terms"),
            "n_units": res.get("n_units"),
            "n_units_dropped": res.get("n_units_dropped"),
            "rows_dropped": res.get("rows_dropped"),
            "between_team": {
                "method": NAIVE_METHOD,
                "estimate": naive.get("ate"),
                "ci": list(naive.get("ate_ci", ())),
            },
        }
    )
    rr_lo, rr_hi = res.get("rr_ci", (float("nan"), float("nan")))
    details["e_value"] = e_value(float(res.get("rr", float("nan"))))
    details["e_value_ci"] = e_value_ci(float(rr_lo), float(rr_hi))
    details["refutations"] = None

    def refute() -> Refutation:
        return refute_within_effect(
            within_unit_effect,
            pop,
            res,
            treatment_col=feat,
            covariates=covs,
            threshold=thr,
            seed=params.seed,
            outcome_col=outcome,
            check_alpha=params.check_alpha,
            with_balance=False,
            **within_kw,
        )

    # read by compute_results (then removed): the checks run once BH has said which effects are significant
    details["_refute"] = refute if params.refute != "none" and res.get("reason") is None else None
    within_row = _effect_row(feat, outcome, WITHIN_METHOD, res, details)
    naive_details = _effect_details(naive, covs, population)
    naive_details["comparison_only"] = (
        "between-team estimate: confounded by anything constant over a match (team strength); "
        f"not an edge, kept beside {WITHIN_METHOD} for comparison and out of the BH family"
    )
    return [within_row, _effect_row(feat, outcome, NAIVE_METHOD, naive, naive_details)]


#: Why an outcome can be missing from every round of a source.
_MISSING_OUTCOME = {
    "round_win": "no round winner in this data",
    "econ_delta": "no end-of-round bank in this data",
    "site_executed": "no bomb plant or site in this data",
}


def not_available(features: pd.DataFrame) -> dict[str, str]:
    """The outcomes and intents this data cannot provide, each with the reason (pure function).

    An outcome is missing when no team-round has a value (real sources carry no end-of-round bank,
    so ``econ_delta`` is empty); an intent when no round has a signal of it (no source records line
    of sight, so ``peek`` never fires). Their tests would all be n = 0 rows: the job leaves them out
    and says so (CLI, run summary, report) instead.
    """
    out = {
        o: why
        for o, why in _MISSING_OUTCOME.items()
        if o not in features.columns or not features[o].notna().any()
    }
    for col in COUNT_FEATURES:
        if col in features.columns and not (features[col].fillna(0) > 0).any():
            intent = col.removesuffix("_count")
            out[intent] = f"no {intent} signal in this data"
    return out


def _tested(feature: str, outcome: str, missing: dict[str, str]) -> bool:
    """Whether a (feature, outcome) test can run on data whose missing parts are ``missing``."""
    return outcome not in missing and (intent_of(feature) or feature) not in missing


def compute_results(
    features: pd.DataFrame,
    params: JobParams | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    kill_derived: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Every test of one run on a feature frame, with BH q-values over all of them (pure function).

    Returns one row per test with the columns of ``correlation_results`` (without run id) plus
    ``purpose``. Tests that could not run keep ``p_value``/``q_value`` None and are not significant;
    tests of an outcome or intent the data cannot provide (:func:`not_available`) are left out.
    ``outcome_mechanism`` flags the rows whose feature is the outcome by the rules of the game
    (:mod:`edgefinder.esports.mechanisms`; ``kill_derived`` names the intents whose signals the
    import rules made from kills).
    """
    params = params or JobParams()
    missing = not_available(features)
    features = features.assign(**{MATCH_CODE: pd.factorize(features["match_id"])[0]})
    features_present = [f for f in FEATURE_COLUMNS if f in features.columns]
    tasks = [t for t in _causal_tasks(features, params) if _tested(t[1], t[2], missing)]
    if progress:
        progress(f"association tests and {len(tasks)} causal estimates")
    # Threads overlap the association tests with the causal estimates where NumPy and LAPACK release
    # the GIL (much of the work is Python-bound: CPU time is close to wall time). Row order stays fixed.
    # One BLAS/OpenMP thread per worker: OpenBLAS's own threads (busy-waiting, one per core) on top
    # of our workers oversubscribe the cores; measured 2-3x slower at 20,000 rounds without this.
    # (threadpoolctl comes with scikit-learn.)
    with (
        threadpool_limits(limits=1),
        ThreadPoolExecutor(
            max_workers=max(1, params.workers), thread_name_prefix="edgefinder-job"
        ) as pool,
    ):
        # longest tasks first: the adjusted logistic fits, then the forests, then the quick tests
        logit = [
            pool.submit(_logistic_rows, features, features_present, o, params)
            for o in BINARY_OUTCOMES
        ]
        causal = [pool.submit(_causal_rows, *task, params) for task in tasks]
        opening = (
            pool.submit(opening_rows, features, _population(features, "round_win")[1], params)
            if "round_win" in params.causal_outcomes
            else None
        )
        assoc = pool.submit(_association_rows, features, features_present, params)
        rows = assoc.result()
        rows.extend(_covariate_rows(features, params))
        for f in logit:
            rows.extend(f.result())
        for f in causal:
            rows.extend(f.result())
        if opening is not None:
            rows.extend(opening.result())
    rows = [r for r in rows if _tested(r["feature"], r["outcome"], missing)]
    refuters = [d.pop("_refute", None) for d in (r["details"] for r in rows)]
    later = ("q_value", "significant", "verdict", "outcome_mechanism")
    out = pd.DataFrame.from_records(rows, columns=[c for c in RESULT_COLUMNS if c not in later])
    p = pd.to_numeric(out["p_value"], errors="coerce").to_numpy(dtype=np.float64)
    # the naive between-team rows are for comparison only: their p stays visible, outside the family
    family = np.isfinite(p) & ~out["method"].str.contains("naive").to_numpy()
    q = np.full(p.shape, np.nan)
    if family.any():
        _, q[family] = multiple_test_correction(p[family], alpha=params.alpha, method="fdr_bh")
    out["q_value"] = [finite_or_none(v) for v in q]
    out["significant"] = [bool(v is not None and v < params.alpha) for v in out["q_value"]]
    # After BH, because the verdict needs q. With refute='significant' only the effects whose verdict
    # depends on the checks get them (an effect that is not significant is "not significant" whatever
    # they say); 'all' also gives the others' figures.
    todo = [
        i
        for i, (sig, fn) in enumerate(zip(out["significant"], refuters, strict=True))
        if fn is not None and (sig or params.refute == "all")
    ]
    if progress and todo:
        progress(f"refutation checks of {len(todo)} causal effects")
    with (
        threadpool_limits(limits=1),
        ThreadPoolExecutor(
            max_workers=max(1, params.workers), thread_name_prefix="edgefinder-refute"
        ) as pool,
    ):
        done = dict(zip(todo, pool.map(lambda i: refuters[i](), todo), strict=True))
    verdicts: list[str | None] = []
    for i, (method, sig, d) in enumerate(
        zip(out["method"], out["significant"], out["details"], strict=True)
    ):
        if method != WITHIN_METHOD:
            verdicts.append(None)
            continue
        ref = done.get(i)
        if ref is not None:
            d["refutations"] = ref.as_dict()
        elif params.refute == "significant" and not sig:
            d["refutations_skipped"] = "not significant: the checks ran on significant effects only"
        else:
            d["refutations_skipped"] = (
                d.get("reason") or "the refutation checks were turned off (JobParams.refute)"
            )
        verdicts.append(verdict(bool(sig), ref))
    out["verdict"] = verdicts
    reasons = [
        outcome_mechanism(f, o, kill_derived)
        for f, o in zip(out["feature"], out["outcome"], strict=True)
    ]
    out["outcome_mechanism"] = [r is not None for r in reasons]
    for d, why in zip(out["details"], reasons, strict=True):
        d["outcome_mechanism"] = why
    out["purpose"] = PURPOSE
    m = int(family.sum())
    # correlation_results has a purpose column but no disclaimer column: each stored row carries the
    # disclaimer in its details, so a row read on its own (SQL, export) still says what it is for.
    out["details"] = [
        jsonable({**d, "bh_family_size": m, "purpose": PURPOSE, "disclaimer": DISCLAIMER})
        for d in out["details"]
    ]
    return out.loc[:, [*RESULT_COLUMNS, "purpose"]]


def top_findings(
    results: pd.DataFrame, n: int = 15, *, include_in_round: bool = False
) -> pd.DataFrame:
    """The ``n`` strongest significant results: by q, then |effect| (largest first).

    Outcome mechanisms (true by the rules of the game) are never findings.
    """
    if results.empty:
        return results
    sig = results[results["significant"]]
    if "outcome_mechanism" in sig.columns:
        sig = sig.loc[~sig["outcome_mechanism"].fillna(False).astype(bool)]
    # pre-round covariate effects are the baseline, never a finding
    # boolean arrays, not lists: an empty list would select columns
    sig = sig.loc[np.array([d.get("kind") != "covariate" for d in sig["details"]], dtype=bool)]
    if not include_in_round:
        sig = sig.loc[np.array([d.get("kind") != "in_round" for d in sig["details"]], dtype=bool)]
    effect = pd.to_numeric(sig["effect"], errors="coerce")  # None where a test could not run
    order = sig.assign(_abs=effect.abs().fillna(0.0)).sort_values(
        ["q_value", "_abs"], ascending=[True, False]
    )
    return order.drop(columns="_abs").head(n)
