"""Refutation checks of a within-unit causal effect, E-values, and the verdict robust / fragile / not significant.

An effect that is real survives attempts to break it. For one estimate of
:func:`~edgefinder.stats.causal.within_unit_effect` this module re-runs the same estimator

* **placebo** — on the treatment permuted *within each unit* (a team's own rounds of the match are
  shuffled, seeded). The unit's treated share is unchanged, so whatever the design conditions on
  stays the same and only the link between a round and its treatment is broken: a sound design
  finds no effect. Fails when the placebo estimate differs from 0 at level ``check_alpha``.
* **random common cause** — with an extra covariate of pure noise (seeded, standard normal; its unit
  mean joins the Mundlak terms). A stable estimator barely moves. Fails when the estimate shifts by
  more than ``max_shift_se`` of its standard error.
* **subset stability** — on a random half of the clusters (matches, seeded). The half estimate
  differs from the full one only by sampling noise: for a nested half sample
  Var(half − full) = SE_half² − SE_full², so z = (half − full) / sqrt(SE_half² − SE_full²). Fails when
  |z| is significant at level ``check_alpha`` (an effect carried by a few matches).

and computes the **E-values** (VanderWeele & Ding 2017) of the estimate and of its CI bound nearer to
the null from the risk ratio RR = mu1 / mu0 of the AIPW arm means: E = RR* + sqrt(RR* (RR* − 1)) with
RR* = RR or 1/RR, whichever is ≥ 1; 1 when the CI includes RR = 1. An E-value is the strength (risk
ratio with both treatment and outcome) an unmeasured confounder would need, beyond the design, to
explain the effect away. It is a sensitivity figure, not a pass/fail test, and is reported beside
the verdict.

The checks use ``check_alpha`` = 0.01: each is a test that a sound estimate fails by chance with
that probability, so a real effect is called fragile by chance about 2% of the time.

**Verdict** (:func:`verdict`): ``not significant`` when the effect is not significant (BH q of the
run ≥ alpha, decided by the caller), ``fragile`` when it is significant but a check failed or could
not run, ``robust`` when significant and every check passed.

DoWhy's refuters do the same kind of checks, but permute globally (not within unit), know no
clusters and pin an old SciPy; they are not used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from edgefinder.stats._common import StatsInputError, cluster_codes

__all__ = [
    "CHECK_ALPHA",
    "Check",
    "Refutation",
    "e_value",
    "e_value_ci",
    "permute_within",
    "refute_within_effect",
    "verdict",
]

#: Level of each refutation check (see the module docstring).
CHECK_ALPHA = 0.01
#: The random common cause may move the estimate by at most this many standard errors.
MAX_SHIFT_SE = 0.5
#: Column name of the random common cause (never a real feature).
RANDOM_CAUSE_COL = "__random_common_cause__"

ROBUST, FRAGILE, NOT_SIGNIFICANT = "robust", "fragile", "not significant"


@dataclass(frozen=True)
class Check:
    """One refutation check: ``name``, ``passed`` (None when it could not run) and its ``figures``."""

    name: str
    passed: bool | None
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refutation:
    """The checks of one effect plus its E-values (of the estimate and of the CI bound nearer to 1)."""

    checks: tuple[Check, ...]
    e_value: float
    e_value_ci: float
    risk_ratio: float
    risk_ratio_ci: tuple[float, float]

    @property
    def all_passed(self) -> bool:
        """Every check ran and passed."""
        return all(c.passed is True for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for storage: ``{check name: {"passed": ..., **figures}, "e_value": {...}}``."""
        out: dict[str, Any] = {c.name: {"passed": c.passed, **c.figures} for c in self.checks}
        out["e_value"] = {
            "estimate": self.e_value,
            "ci_bound": self.e_value_ci,
            "risk_ratio": self.risk_ratio,
            "risk_ratio_ci": list(self.risk_ratio_ci),
        }
        return out


def e_value(rr: float) -> float:
    """E-value of a risk ratio (VanderWeele & Ding 2017): RR + sqrt(RR (RR − 1)), with 1/RR for RR < 1.

    Worked example of the paper: RR = 3.9 gives 7.26. NaN for a non-positive or undefined RR.
    """
    if not np.isfinite(rr) or rr <= 0:
        return float("nan")
    r = rr if rr >= 1.0 else 1.0 / rr
    return float(r + np.sqrt(r * (r - 1.0)))


def e_value_ci(rr_low: float, rr_high: float) -> float:
    """E-value of the confidence limit nearer to the null: 1 when the CI contains RR = 1.

    Worked example of the paper: CI 1.8–8.7 gives 3.0 (the E-value of 1.8).
    """
    if not (np.isfinite(rr_low) and np.isfinite(rr_high)) or rr_low <= 0:
        return float("nan")
    if rr_low <= 1.0 <= rr_high:
        return 1.0
    return e_value(rr_low if rr_low > 1.0 else rr_high)


def verdict(significant: bool, refutation: Refutation | None) -> str:
    """``robust``, ``fragile`` (significant, but a check failed or could not run) or ``not significant``."""
    if not significant:
        return NOT_SIGNIFICANT
    return ROBUST if refutation is not None and refutation.all_passed else FRAGILE


def permute_within(values: np.ndarray, unit_codes: np.ndarray, seed: int) -> np.ndarray:
    """``values`` shuffled inside each unit (seeded): every unit keeps its own multiset of values."""
    rng = np.random.default_rng(seed)
    by_unit = np.argsort(unit_codes, kind="stable")
    shuffled = np.lexsort((rng.random(unit_codes.size), unit_codes))
    out = np.empty_like(values)
    out[by_unit] = values[shuffled]
    return out


def _figures(res: Mapping[str, Any]) -> dict[str, Any]:
    lo, hi = res.get("ate_ci", (float("nan"), float("nan")))
    return {
        "estimate": res.get("ate"),
        "ci": [lo, hi],
        "p_value": res.get("ate_p_value"),
        "n": res.get("n"),
    }


def refute_within_effect(
    estimate: Callable[..., Mapping[str, Any]],
    df: pd.DataFrame,
    result: Mapping[str, Any],
    *,
    treatment_col: str,
    covariates: Sequence[str],
    unit_col: str,
    cluster_col: str,
    unit_mean_covariates: Sequence[str] | None,
    threshold: float | None,
    seed: int,
    check_alpha: float = CHECK_ALPHA,
    max_shift_se: float = MAX_SHIFT_SE,
    **kwargs: Any,
) -> Refutation:
    """Run the three checks of the module docstring on ``result`` = ``estimate(df, treatment_col, ...)``.

    ``estimate`` is the estimator that produced ``result`` (normally
    :func:`~edgefinder.stats.causal.within_unit_effect`); it is called again with the same
    ``covariates``, ``unit_col``, ``cluster_col``, ``unit_mean_covariates``, ``threshold``, ``seed``
    and ``kwargs`` (the outcome column and model options). Every random step is seeded from ``seed``.
    """
    if not 0.0 < check_alpha < 1.0:
        raise StatsInputError(f"check_alpha must be in (0, 1), got {check_alpha}")
    common = dict(unit_col=unit_col, cluster_col=cluster_col, seed=seed, **kwargs)
    ate, se = float(result.get("ate", float("nan"))), float(result.get("ate_se", float("nan")))
    checks: list[Check] = []

    # placebo: the binarized treatment shuffled inside each unit (rows with a missing value keep NaN)
    raw = pd.to_numeric(df[treatment_col], errors="coerce").to_numpy(dtype=np.float64)
    thr = result.get("threshold")
    t = (
        raw.copy()
        if thr is None
        else np.where(np.isfinite(raw), (raw > thr).astype(np.float64), np.nan)
    )
    units = cluster_codes(df[unit_col], len(df), unit_col)
    placebo_col = f"{treatment_col}__placebo"
    placebo = estimate(
        df.assign(**{placebo_col: permute_within(t, units, seed + 1)}),
        placebo_col,
        covariates=covariates,
        unit_mean_covariates=unit_mean_covariates,
        threshold=None,
        **common,
    )
    p_pl = placebo.get("ate_p_value")
    ok = None if placebo.get("reason") or p_pl is None else bool(p_pl >= check_alpha)
    checks.append(
        Check("placebo", ok, {**_figures(placebo), "rule": f"placebo p >= {check_alpha:g}"})
    )

    # random common cause: a noise covariate (and its unit mean) added to both models
    noise = np.random.default_rng(seed + 2).standard_normal(len(df))
    means = None if unit_mean_covariates is None else [*unit_mean_covariates, RANDOM_CAUSE_COL]
    rcc = estimate(
        df.assign(**{RANDOM_CAUSE_COL: noise}),
        treatment_col,
        covariates=[*covariates, RANDOM_CAUSE_COL],
        unit_mean_covariates=means,
        threshold=threshold,
        **common,
    )
    shift = float(rcc.get("ate", float("nan"))) - ate
    shift_se = shift / se if se > 0 else float("nan")
    ok = bool(abs(shift_se) <= max_shift_se) if np.isfinite(shift_se) else None
    checks.append(
        Check(
            "random_common_cause",
            ok,
            {
                **_figures(rcc),
                "shift": shift,
                "shift_in_se": shift_se,
                "rule": f"|shift| <= {max_shift_se:g} SE",
            },
        )
    )

    # subset stability: a random half of the clusters
    clusters = cluster_codes(df[cluster_col], len(df), cluster_col)
    n_clusters = int(clusters.max(initial=-1)) + 1
    half = np.random.default_rng(seed + 3).permutation(n_clusters)[: max(1, n_clusters // 2)]
    sub = estimate(
        df.loc[np.isin(clusters, half)],
        treatment_col,
        covariates=covariates,
        unit_mean_covariates=unit_mean_covariates,
        threshold=threshold,
        **common,
    )
    se_half = float(sub.get("ate_se", float("nan")))
    diff_var = se_half * se_half - se * se
    z = (
        (float(sub.get("ate", float("nan"))) - ate) / np.sqrt(diff_var)
        if diff_var > 0
        else float("nan")
    )
    p_sub = float(2.0 * sps.norm.sf(abs(z))) if np.isfinite(z) else float("nan")
    ok = bool(p_sub >= check_alpha) if np.isfinite(p_sub) and not sub.get("reason") else None
    checks.append(
        Check(
            "subset",
            ok,
            {
                **_figures(sub),
                "n_clusters": sub.get("n_clusters"),
                "z": z,
                "p_value_difference": p_sub,
                "rule": f"half vs full: p >= {check_alpha:g}",
            },
        )
    )

    rr = float(result.get("rr", float("nan")))
    rr_lo, rr_hi = result.get("rr_ci", (float("nan"), float("nan")))
    return Refutation(
        tuple(checks),
        e_value(rr),
        e_value_ci(float(rr_lo), float(rr_hi)),
        rr,
        (float(rr_lo), float(rr_hi)),
    )
