"""The correlation job: features -> every test -> BH over the run -> causal estimates -> one stored run.

:func:`run_correlation_job` reads the round features (:func:`~edgefinder.esports.aggregate.extract_round_features`),
runs

* point-biserial r of every feature against ``round_win`` and ``site_executed``,
* Spearman rho of every feature against ``econ_delta`` (dollars),
* chi-square (Cramér's V) of every intent count (binned 0 / 1 / 2+) against the two binary outcomes,
* logistic regression of each binary outcome on each feature **adjusted for the pre-round
  covariates** (side, bank, loadouts and the match state: score difference, previous result, loss
  streak); the feature and covariates are standardized so the effect is the log odds ratio per
  standard deviation of the feature,
* every CI and p-value above **clustered by match** (rounds of one match are not independent),
* for every intent count, the causal effect of the binarized count (T = count > median; "at least
  one" when the median is 0) on ``round_win`` comparing a team with its own rounds of the same
  match (``aipw_within``: :func:`~edgefinder.stats.causal.within_unit_effect`, Mundlak terms,
  cross-fitted and clustered by match), beside the naive between-team AIPW on the same covariates
  (``aipw_naive``, comparison only: outside the BH family, never significant),
* a Benjamini-Hochberg correction over all other tests of the run (q-values),
* the refutation checks (placebo, random common cause, half of the matches) of the significant
  within-match effects (``JobParams.refute='all'``: of every one) and each effect's verdict (``correlation_results.verdict``: robust, fragile, not
  significant), with E-values,

and writes one ``analysis_runs`` row and all its ``correlation_results`` rows in one transaction.

Populations: ``site_executed`` is analysed on attacking team-rounds only (defenders never execute a
site, so the outcome has no variation on defense and ``side`` would separate it perfectly); the
other outcomes use every finished team-round.

Effects by method (``correlation_results.effect``, always signed so ``direction`` is its sign):
``point_biserial`` r; ``spearman`` rho; ``chi2`` Cramér's V (unsigned; direction taken from the
point-biserial r of the same pair); ``logistic`` log odds ratio per SD of the feature (odds ratio
and its CI in ``details``); ``aipw_within`` / ``aipw_naive`` average treatment effect in probability
points.

**Run lifecycle** (``analysis_runs.status``): ``queued`` (POST /run-analysis put it on the Celery
broker) → ``running`` → ``succeeded`` | ``failed`` (with ``error``). A run started directly (CLI, beat,
Python, the API without a broker) starts at ``running``. ``trigger`` says who started it, ``worker``
which process (host:pid) runs it, ``db_queries``/``db_seconds`` what it asked of the database.

**One job at a time**, across processes: on Postgres a session advisory lock (held by a dedicated
connection for the whole job, released by the server if the process dies); on SQLite an atomic
conditional INSERT (or UPDATE of the queued row) of the ``running`` row (SQLite serializes writers).
A second job raises :class:`JobAlreadyRunning`. A run whose process died is marked failed
(:func:`reap_abandoned`): on Postgres when nobody holds the lock, on SQLite when its process is gone
or after ``stale_after_s`` (default 10 minutes); :func:`queue_run` refuses while a run is queued or
running.

After each run :mod:`edgefinder.esports.postrun` computes alerts, keeps the feature frame and
publishes insights (see there). The original system calls ``asyncio.run(run_correlation_job())``;
the job is synchronous (CPU-bound statistics): ``edgefinder.analytics.jobs.run_correlation_job`` is
that awaitable, and ``await arun_correlation_job()`` here runs it in a thread
(:func:`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    event,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from threadpoolctl import threadpool_limits

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import EdgefinderError, first_line
from edgefinder.esports.aggregate import (
    BINARY_OUTCOMES,
    COUNT_FEATURES,
    COVARIATES,
    FEATURE_COLUMNS,
    IN_ROUND_FEATURES,
    ROUND_COVARIATES,
    extract_round_features,
)
from edgefinder.esports.postrun import after_run
from edgefinder.jsonsafe import finite_or_none, jsonable
from edgefinder.settings import Settings, get_settings
from edgefinder.stats.association import (
    PointBiserialResult,
    chi2_feature_counts,
    logistic_model,
    point_biserial,
    spearman,
)
from edgefinder.stats.causal import propensity_adjusted_effect, within_unit_effect
from edgefinder.stats.multiple import multiple_test_correction
from edgefinder.stats.refute import Refutation, e_value, e_value_ci, refute_within_effect, verdict
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import analysis_runs, correlation_results

__all__ = [
    "COVARIATE_EFFECTS",
    "JobAlreadyRunning",
    "JobParams",
    "JobResult",
    "RunLock",
    "acquire_run",
    "arun_correlation_job",
    "compute_results",
    "fail_queued",
    "queue_run",
    "reap_abandoned",
    "run_correlation_job",
    "top_findings",
]

# "edgefind" in ASCII: the Postgres advisory-lock key of the correlation job.
_PG_LOCK_KEY = 0x6564676566696E64

RESULT_COLUMNS = (
    "feature",
    "outcome",
    "method",
    "n",
    "statistic",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "significant",
    "verdict",
    "exploratory",
    "direction",
    "details",
)


class JobAlreadyRunning(EdgefinderError):
    """Another correlation job holds the job lock."""


@dataclass(frozen=True)
class JobParams:
    """Knobs of one run (stored in ``analysis_runs.params``).

    ``alpha``: FDR level of the BH correction (q < alpha is significant); ``min_group_n``: smaller
    outcome/treatment group below this flags a result exploratory; ``seed``: every random step
    (fold split, forests); ``n_splits``: cross-fitting folds; ``n_estimators``/``min_samples_leaf``/
    ``max_samples``: the propensity random forest (``max_samples`` = bootstrap rows per tree, an
    int, or a fraction: 2,000 rows per tree keep 20,000 rounds fast with four covariates, see
    bench/esports_analysis.py); ``workers``: threads that run the association tests and the causal
    estimates side by side (results do not depend on it: every estimate has its own seeded forest);
    ``causal_outcomes``: outcomes of the causal step; ``stale_after_s``: age (seconds) after which a ``running`` row on SQLite
    counts as abandoned. ``propensity_model``: 'logistic' (default) or 'random_forest' (then the
    forest knobs apply); ``min_clusters``: fewer matches than this flag a clustered result
    exploratory; ``refute``: which within-match effects get the refutation checks ('significant', the
    default: those whose verdict depends on them, since an effect that is not significant is "not
    significant" whatever the checks say; 'all': every intent's figures too, about 1.5 s more at
    20,000 rounds; 'none'); ``check_alpha``:
    level of each refutation check.
    """

    alpha: float = 0.05
    min_group_n: int = 30
    seed: int = 0
    n_splits: int = 3
    n_estimators: int = 40
    min_samples_leaf: int = 50
    max_samples: int | float | None = 2000
    workers: int = 2
    causal_outcomes: tuple[str, ...] = ("round_win",)
    stale_after_s: float = 600.0
    propensity_model: str = "logistic"
    min_clusters: int = 30
    refute: Literal["all", "significant", "none"] = "significant"
    check_alpha: float = 0.01


@dataclass(frozen=True)
class JobResult:
    """What one run produced. ``results`` holds the stored rows (one per test)."""

    run_id: str
    status: str
    n_rows: int
    n_tests: int
    n_significant: int
    duration_s: float
    message: str
    results: pd.DataFrame = field(repr=False)
    purpose: str = PURPOSE
    disclaimer: str = DISCLAIMER
    n_alerts: int = 0
    #: outcomes and intents the data cannot provide -> why (see :func:`not_available`)
    not_available: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------- statistics


def _kind(feature: str) -> str:
    return "in_round" if feature in IN_ROUND_FEATURES else "micro"


def _point_biserial_row(
    feature: str, outcome: str, r: PointBiserialResult, details: dict[str, Any]
) -> dict[str, Any]:
    """A point-biserial result as a stored row; ``details`` gain the reason and the cluster figures."""
    return _row(
        feature,
        outcome,
        "point_biserial",
        r.n,
        r.r,
        r.r,
        (r.ci_low, r.ci_high),
        r.p_value,
        r.exploratory,
        r.direction,
        {"reason": r.reason, **details, **_cluster_details(r.n_clusters, r.design_effect)},
    )


def _row(
    feature: str,
    outcome: str,
    method: str,
    n: int,
    statistic: Any,
    effect: Any,
    ci: tuple[Any, Any],
    p: Any,
    exploratory: bool,
    direction: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    pv = finite_or_none(p)
    return {
        "feature": feature,
        "outcome": outcome,
        "method": method,
        "n": int(n),
        "statistic": finite_or_none(statistic),
        "effect": finite_or_none(effect),
        "ci_low": finite_or_none(ci[0]),
        "ci_high": finite_or_none(ci[1]),
        # a test that could not run (constant feature, separation, ...) is stored without p and
        # stays out of the BH family instead of counting as p = 1
        "p_value": pv if details.get("reason") is None else None,
        "exploratory": bool(exploratory),
        "direction": direction,
        "details": {"kind": _kind(feature), **details},
    }


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


def _sign(x: float) -> str:
    if not np.isfinite(x) or x == 0:
        return "none"
    return "positive" if x > 0 else "negative"


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


def _cluster_details(n_clusters: int | None, design_effect: float | None) -> dict[str, Any]:
    return {
        "inference": "cluster-robust by match",
        "n_clusters": n_clusters,
        "design_effect": design_effect,
    }


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


#: Methods of the causal step. The headline compares a team with itself inside a match; the naive
#: between-team estimate stays beside it for comparison only (out of the BH family, never significant).
WITHIN_METHOD = "aipw_within"
NAIVE_METHOD = "aipw_naive"
UNIT_COL = "__unit__"
#: Integer code of the match, made once per run: every clustered test groups by it (factorizing the
#: match_id strings once instead of in each of ~200 tests).
MATCH_CODE = "__match__"


def _balance_records(balance: Any) -> list[dict[str, Any]] | None:
    """SMDs as ``[{"covariate", "smd_before", "smd_after"}, ...]`` (one flat record per covariate)."""
    if not isinstance(balance, pd.DataFrame):
        return None
    return [
        {"covariate": str(i), "smd_before": r["smd_before"], "smd_after": r["smd_after"]}
        for i, r in balance.iterrows()
    ]


def _effect_details(res: dict[str, Any], covs: list[str], population: str) -> dict[str, Any]:
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
    feat: str, outcome: str, method: str, res: dict[str, Any], details: dict[str, Any]
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
    res = within_unit_effect(pop, feat, outcome, covs, threshold=thr, seed=params.seed, **within_kw)
    naive = propensity_adjusted_effect(
        pop, feat, outcome, covs, threshold=thr, seed=params.seed, groups=pop[MATCH_CODE], **models
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
    return outcome not in missing and feature.rsplit("_", 1)[0] not in missing


def compute_results(
    features: pd.DataFrame,
    params: JobParams | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Every test of one run on a feature frame, with BH q-values over all of them (pure function).

    Returns one row per test with the columns of ``correlation_results`` (without run id) plus
    ``purpose``. Tests that could not run keep ``p_value``/``q_value`` None and are not significant;
    tests of an outcome or intent the data cannot provide (:func:`not_available`) are left out.
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
        assoc = pool.submit(_association_rows, features, features_present, params)
        rows = assoc.result()
        rows.extend(_covariate_rows(features, params))
        for f in logit:
            rows.extend(f.result())
        for f in causal:
            rows.extend(f.result())
    rows = [r for r in rows if _tested(r["feature"], r["outcome"], missing)]
    refuters = [d.pop("_refute", None) for d in (r["details"] for r in rows)]
    later = ("q_value", "significant", "verdict")
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
    """The ``n`` strongest significant results: by q, then |effect| (largest first)."""
    if results.empty:
        return results
    sig = results[results["significant"]]
    # pre-round covariate effects are the baseline, never a finding
    # boolean arrays, not lists: an empty list would select columns
    sig = sig.loc[np.array([d.get("kind") != "covariate" for d in sig["details"]], dtype=bool)]
    if not include_in_round:
        sig = sig.loc[np.array([d.get("kind") != "in_round" for d in sig["details"]], dtype=bool)]
    order = sig.assign(_abs=sig["effect"].abs().fillna(0.0)).sort_values(
        ["q_value", "_abs"], ascending=[True, False]
    )
    return order.drop(columns="_abs").head(n)


# --------------------------------------------------------------------------------- run lock

#: A ``queued`` run that no worker started within this many seconds is failed (lost message, no worker).
QUEUED_EXPIRES_S = 3600.0
# Second advisory key: serializes "is anything queued or running? then queue" on Postgres.
_PG_QUEUE_KEY = _PG_LOCK_KEY + 1
ABANDONED = "abandoned: the process running it stopped"


@dataclass
class RunLock:
    """The job lock plus the ``running`` row it guards; release it exactly once."""

    engine: Engine
    run_id: str
    started: float
    params: JobParams
    _conn: Connection | None = None
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self._conn is not None:
            try:
                self._conn.execute(select(func.pg_advisory_unlock(literal(_PG_LOCK_KEY))))
                self._conn.commit()
            finally:
                self._conn.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _params_json(params: JobParams) -> dict[str, Any]:
    d = asdict(params)
    d["causal_outcomes"] = list(params.causal_outcomes)
    return d


def worker_id() -> str:
    """``host:pid`` of this process, stored in ``analysis_runs.worker`` while it runs a job."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(worker: str | None) -> bool:
    """True when ``worker`` (host:pid) names a process of this host that no longer exists."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def _pg_job_lock_held(conn: Connection) -> bool:
    """Whether any session of this database holds the job's advisory lock (without taking it)."""
    hi, lo = _PG_LOCK_KEY >> 32, _PG_LOCK_KEY & 0xFFFFFFFF
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid::bigint = :hi AND objid::bigint = :lo)"
            ),
            {"hi": hi, "lo": lo},
        ).scalar()
    )


def reap_abandoned(
    engine: Engine, *, stale_after_s: float = 600.0, queued_expires_s: float = QUEUED_EXPIRES_S
) -> int:
    """Mark failed the runs nobody will finish; returns how many rows changed.

    * ``running`` on Postgres while no session holds the job's advisory lock: the server drops the
      lock with the connection of a process that died, so the row's process is gone.
    * ``running`` on SQLite whose process (``worker``, same host) no longer exists, or that started
      more than ``stale_after_s`` seconds ago.
    * ``queued`` for more than ``queued_expires_s`` seconds: no worker took it.

    Every update is conditional on the status it read, so a run that finishes meanwhile is left alone.
    The API calls this before it answers about runs, workers when they start: a killed job never
    stays ``running``.
    """
    now = _now()
    c = analysis_runs.c
    changed = 0
    with (
        engine.connect() as conn
    ):  # the common case, nothing queued or running, stays a single read
        rows = conn.execute(
            select(c.run_id, c.status, c.worker).where(c.status.in_(("queued", "running")))
        ).all()
    if not rows:
        return 0
    with engine.begin() as tx:
        running = [r for r in rows if r.status == "running"]
        if engine.dialect.name == "postgresql":
            gone = [r.run_id for r in running] if running and not _pg_job_lock_held(tx) else []
        else:
            gone = [r.run_id for r in running if _process_gone(r.worker)]
            cutoff = now - timedelta(seconds=stale_after_s)
            changed += tx.execute(
                update(analysis_runs)
                .where(c.status == "running", c.started_at < cutoff)
                .values(
                    status="failed",
                    finished_at=now,
                    error=f"abandoned: running for more than {stale_after_s:g} s",
                )
            ).rowcount
        if gone:
            changed += tx.execute(
                update(analysis_runs)
                .where(c.run_id.in_(gone), c.status == "running")
                .values(status="failed", finished_at=now, error=ABANDONED)
            ).rowcount
        if any(r.status == "queued" for r in rows):
            changed += tx.execute(
                update(analysis_runs)
                .where(
                    c.status == "queued", c.queued_at < now - timedelta(seconds=queued_expires_s)
                )
                .values(
                    status="failed",
                    finished_at=now,
                    error=f"not started within {queued_expires_s:g} s of being queued: is a worker running?",
                )
            ).rowcount
    return changed


def _active(*statuses: str) -> Any:
    """EXISTS (a run with one of ``statuses``), over an alias so an UPDATE of the table does not correlate it."""
    other = analysis_runs.alias("other_run")
    return exists().where(other.c.status.in_(statuses))


def queue_run(engine: Engine, params: JobParams | None = None, *, trigger: str = "api") -> str:
    """Insert a ``queued`` run for a worker to start and return its id.

    Raises :class:`JobAlreadyRunning` when a run is already queued or running (one job at a time,
    whoever starts it). The check and the insert are one statement; on Postgres a transaction-scoped
    advisory lock also serializes concurrent callers (READ COMMITTED would let two both insert).
    """
    params = params or JobParams()
    reap_abandoned(engine, stale_after_s=params.stale_after_s)
    now = _now()
    values = {
        "run_id": str(uuid.uuid4()),
        "status": "queued",
        "started_at": now,
        "queued_at": now,
        "trigger": trigger,
        "params": _params_json(params),
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
    }
    cols = list(values)
    src = select(*[literal(values[k], type_=analysis_runs.c[k].type).label(k) for k in cols]).where(
        ~_active("queued", "running")
    )
    c = analysis_runs.c
    with engine.begin() as tx:
        if engine.dialect.name == "postgresql":
            tx.execute(select(func.pg_advisory_xact_lock(literal(_PG_QUEUE_KEY))))
        tx.execute(insert(analysis_runs).from_select(cols, src))
        # (psycopg reports no rowcount for INSERT ... SELECT: look for the row instead)
        if tx.execute(select(c.run_id).where(c.run_id == values["run_id"])).first() is None:
            busy = tx.execute(
                select(c.run_id, c.status).where(c.status.in_(("queued", "running"))).limit(1)
            ).first()
            what = (
                f"run {busy.run_id} is {busy.status}"
                if busy is not None
                else "another run is active"
            )
            raise JobAlreadyRunning(f"a correlation job is already queued or running ({what})")
    return str(values["run_id"])


def fail_queued(engine: Engine, run_id: str, error: str) -> bool:
    """Mark a still-``queued`` run failed with ``error`` (broker down, job refused); False if it was not queued."""
    c = analysis_runs.c
    with engine.begin() as tx:
        return bool(
            tx.execute(
                update(analysis_runs)
                .where(c.run_id == run_id, c.status == "queued")
                .values(status="failed", finished_at=_now(), error=error)
            ).rowcount
        )


def acquire_run(
    engine: Engine,
    params: JobParams | None = None,
    run_id: str | None = None,
    *,
    trigger: str = "python",
) -> RunLock:
    """Take the job lock and mark the run ``running``; raise JobAlreadyRunning if another job holds it.

    ``run_id`` of a ``queued`` run (POST /run-analysis on a broker) starts that run; otherwise a new
    ``running`` row is inserted. ``trigger`` (api, schedule, cli, python) is stored with the run.
    """
    params = params or JobParams()
    run_id = run_id or str(uuid.uuid4())
    now = _now()
    values = {
        "run_id": run_id,
        "status": "running",
        "started_at": now,
        "params": _params_json(params),
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
        "trigger": trigger,
        "worker": worker_id(),
    }
    c = analysis_runs.c
    start_queued = (
        update(analysis_runs)
        .where(c.run_id == run_id, c.status == "queued")
        .values(status="running", started_at=now, worker=values["worker"])
    )
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        try:
            got = conn.execute(select(func.pg_try_advisory_lock(literal(_PG_LOCK_KEY)))).scalar()
            conn.commit()
            if not got:
                raise JobAlreadyRunning(
                    "a correlation job is already running (Postgres advisory lock is held)"
                )
            with engine.begin() as tx:
                # We hold the lock, so a 'running' row belongs to a process that died mid-job.
                tx.execute(
                    update(analysis_runs)
                    .where(c.status == "running")
                    .values(status="failed", finished_at=now, error=ABANDONED)
                )
                if tx.execute(start_queued).rowcount != 1:
                    tx.execute(insert(analysis_runs).values(**values))
        except BaseException:
            try:
                conn.execute(select(func.pg_advisory_unlock(literal(_PG_LOCK_KEY))))
                conn.commit()
            finally:
                conn.close()
            raise
        return RunLock(engine, run_id, time.perf_counter(), params, conn)

    reap_abandoned(engine, stale_after_s=params.stale_after_s)
    running = _active("running")
    cols = list(values)
    # One statement each (UPDATE ... WHERE NOT EXISTS, INSERT ... SELECT ... WHERE NOT EXISTS): SQLite
    # takes the write lock at the start of the first, so two processes cannot both see "nothing running".
    src = select(*[literal(values[k], type_=c[k].type).label(k) for k in cols]).where(~running)
    with engine.begin() as tx:
        n = tx.execute(start_queued.where(~running)).rowcount
        if n == 0 and tx.execute(select(c.run_id).where(c.run_id == run_id)).first() is None:
            tx.execute(insert(analysis_runs).from_select(cols, src))
            n = int(
                tx.execute(
                    select(c.run_id).where(c.run_id == run_id, c.status == "running")
                ).first()
                is not None
            )
    if n != 1:
        raise JobAlreadyRunning(
            "a correlation job is already running (see analysis_runs with status 'running')"
        )
    return RunLock(engine, run_id, time.perf_counter(), params)


class _QueryCounter:
    """Counts the SQL statements one thread issues on an engine, and their time (seconds)."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.thread = engine, threading.get_ident()
        self.queries, self.seconds, self._t0 = 0, 0.0, 0.0

    def _before(self, *_: Any) -> None:
        if threading.get_ident() == self.thread:
            self._t0 = time.perf_counter()

    def _after(self, *_: Any) -> None:
        if threading.get_ident() == self.thread:
            self.queries += 1
            self.seconds += time.perf_counter() - self._t0

    def __enter__(self) -> _QueryCounter:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


# --------------------------------------------------------------------------------- the job


def _finish(
    lock: RunLock,
    status: str,
    *,
    results: pd.DataFrame | None,
    n_rows: int,
    message: str,
    error: str | None = None,
    queries: _QueryCounter | None = None,
    missing: dict[str, str] | None = None,
) -> float:
    duration = time.perf_counter() - lock.started
    n_tests = 0 if results is None else int(len(results))
    n_sig = 0 if results is None else int(results["significant"].sum())
    summary: dict[str, Any] = {
        "message": message,
        "n_significant": n_sig,
        "not_available": missing or {},
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
    }
    if results is not None and n_tests:
        top = top_findings(results, 5)
        summary["top"] = [
            {
                k: r[k]
                for k in ("feature", "outcome", "method", "effect", "ci_low", "ci_high", "q_value")
            }
            for r in top.to_dict(orient="records")
        ]
    with lock.engine.begin() as tx:
        if results is not None and n_tests:
            # pandas turns None into NaN in float columns; Postgres would store NaN (not NULL)
            records = [
                {str(k): (finite_or_none(v) if isinstance(v, float) else v) for k, v in rec.items()}
                for rec in results.assign(run_id=lock.run_id).to_dict(orient="records")
            ]
            tx.execute(insert(correlation_results), records)
        # the statements so far, the results' INSERT included (the final UPDATE stores the count)
        db = (
            {"db_queries": queries.queries, "db_seconds": queries.seconds}
            if queries is not None
            else {}
        )
        tx.execute(
            update(analysis_runs)
            .where(analysis_runs.c.run_id == lock.run_id)
            .values(
                status=status,
                finished_at=_now(),
                duration_s=duration,
                n_rows=n_rows,
                n_tests=n_tests,
                summary=jsonable(summary),
                error=error,
                **db,
            )
        )
    return duration


def run_correlation_job(
    engine: Engine | str | None = None,
    settings: Settings | None = None,
    *,
    params: JobParams | None = None,
    lock: RunLock | None = None,
    progress: Callable[[str], None] | None = None,
    trigger: str = "python",
) -> JobResult:
    """Run the whole job once and store it; see the module docstring.

    ``engine``: an Engine or URL (default: ``settings.effective_database_url``). ``lock``: a lock
    already taken with :func:`acquire_run` (the API and the Celery task take it first); without it
    the job takes one (stored with ``trigger``) and raises :class:`JobAlreadyRunning` if another job
    runs. A database without finished rounds gives a succeeded run with zero tests and a message.

    After the run is stored, :func:`edgefinder.esports.postrun.after_run` compares it with the
    previous run (alerts), keeps its feature frame, publishes insights and hands alerts to the
    webhook; none of that can fail or delay the stored run (errors are logged).
    """
    settings = settings or get_settings()
    own_engine = False
    if lock is not None:
        eng = lock.engine
    elif isinstance(engine, Engine):
        eng = engine
    else:
        eng = make_engine(engine if isinstance(engine, str) else settings.effective_database_url)
        own_engine = True
    try:
        lock = lock or acquire_run(eng, params, trigger=trigger)
        params = lock.params
        features: pd.DataFrame | None = None
        try:
            with _QueryCounter(eng) as queries:
                if progress:
                    progress("extracting round features")
                features = extract_round_features(eng)
                missing = not_available(features) if not features.empty else {}
                if features.empty:
                    message = "no finished rounds in the database: ingest events first (edgefinder esports ingest)"
                    results = pd.DataFrame(columns=[*RESULT_COLUMNS, "purpose"])
                else:
                    results = compute_results(features, params, progress)
                    n_sig = int(results["significant"].sum())
                    message = (
                        f"{len(features)} team-rounds, {len(results)} tests, "
                        f"{n_sig} significant at q < {params.alpha:g}"
                    )
                if progress:
                    progress("storing results")
                duration = _finish(
                    lock,
                    "succeeded",
                    results=results if len(results) else None,
                    n_rows=len(features),
                    message=message,
                    queries=queries,
                    missing=missing,
                )
            out = JobResult(
                lock.run_id,
                "succeeded",
                len(features),
                len(results),
                int(results["significant"].sum()),
                duration,
                message,
                results,
                not_available=missing,
            )
        except BaseException as exc:
            error = f"{type(exc).__name__}: {first_line(exc)}"
            try:
                _finish(lock, "failed", results=None, n_rows=0, message="failed", error=error)
            except Exception:
                pass
            lock.release()
            after_run(eng, lock.run_id, settings)
            raise
        lock.release()
        n_alerts = after_run(eng, lock.run_id, settings, features=features)
        return replace(out, n_alerts=n_alerts)
    finally:
        if lock is not None:
            lock.release()
        if own_engine:
            eng.dispose()


async def arun_correlation_job(
    engine: Engine | str | None = None,
    settings: Settings | None = None,
    *,
    params: JobParams | None = None,
    trigger: str = "python",
) -> JobResult:
    """Awaitable :func:`run_correlation_job` (runs in a worker thread): ``asyncio.run(arun_correlation_job())``."""
    return await asyncio.to_thread(
        run_correlation_job, engine, settings, params=params, trigger=trigger
    )
