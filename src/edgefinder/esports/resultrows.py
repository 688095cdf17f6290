"""The result rows of the correlation job and the knobs of one run.

Every test of a run becomes one row with the columns of :data:`RESULT_COLUMNS` (the typed
:class:`~edgefinder.esports.contract.ResultRow`, those of the ``correlation_results`` table without
the run id): :func:`_row` builds it, so the battery
(:mod:`edgefinder.esports.battery`), the exposure-aware design (:mod:`edgefinder.esports.exposure`)
and the storing step agree on one shape. :class:`JobParams` are the knobs stored with each run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.esports.aggregate import (
    IN_ROUND_FEATURES,
)
from edgefinder.esports.contract import RESULT_COLUMNS as RESULT_COLUMNS
from edgefinder.jsonsafe import finite_or_none
from edgefinder.stats.association import (
    PointBiserialResult,
)


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
    level of each refutation check; ``action_values``: fit the win-probability models, value the
    actions and combine both designs into the verdicts (:mod:`edgefinder.esports.design`).
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
    action_values: bool = True


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
    #: outcomes and intents the data cannot provide -> why (see :func:`battery.not_available`)
    not_available: dict[str, str] = field(default_factory=dict)
    #: win probability added per action (every stratum) and the two-design verdicts, when computed
    action_values: pd.DataFrame | None = field(default=None, repr=False)
    verdicts: pd.DataFrame | None = field(default=None, repr=False)


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


def _sign(x: float) -> str:
    if not np.isfinite(x) or x == 0:
        return "none"
    return "positive" if x > 0 else "negative"


def _cluster_details(n_clusters: int | None, design_effect: float | None) -> dict[str, Any]:
    return {
        "inference": "cluster-robust by match",
        "n_clusters": n_clusters,
        "design_effect": design_effect,
    }


#: Methods of the causal step. The headline compares a team with itself inside a match; the naive
#: between-team estimate stays beside it for comparison only (out of the BH family, never significant).
WITHIN_METHOD = "aipw_within"
NAIVE_METHOD = "aipw_naive"
#: The exposure-aware round-level design (:mod:`edgefinder.esports.exposure`).
OPENING_METHOD = "opening_within"
#: Methods whose rows are causal effects of an intent on round win.
CAUSAL_METHODS: tuple[str, ...] = (WITHIN_METHOD, OPENING_METHOD)
UNIT_COL = "__unit__"
#: Integer code of the match, made once per run: every clustered test groups by it (factorizing the
#: match_id strings once instead of in each of ~200 tests).
MATCH_CODE = "__match__"
