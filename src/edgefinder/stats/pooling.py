"""Empirical-Bayes shrinkage of group means toward their pooled mean (random-effects model).

Many small groups that belong together (e.g. the templates of one trading family) each estimate
their own mean badly; treating them as draws from one distribution with mean ``mu`` and
between-group variance ``tau2`` gives each a better estimate, its **shrunk** mean::

    shrunk_j = mu + B_j (m_j - mu),   B_j = tau2 / (tau2 + v_j),   posterior sd_j = sqrt(B_j v_j)

with ``v_j`` the sampling variance of group j's mean. ``mu`` and ``tau2`` are the random-effects
(DerSimonian-Laird) estimates of :func:`statsmodels.stats.meta_analysis.combine_effects`; the
shrinkage itself (the normal-normal posterior mean) is the two lines above. When the groups agree
(``tau2`` = 0) every group gets the pooled mean; a group with much data keeps nearly its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefinder.stats._common import StatsInputError, as_float_array

__all__ = ["Shrinkage", "shrink_means"]


@dataclass(frozen=True)
class Shrinkage:
    """Result of :func:`shrink_means`: ``k`` groups, pooled random-effects mean ``mu`` with its standard
    error ``mu_se``, between-group variance ``tau2``, and per group the ``shrunk`` mean, its
    ``posterior_sd`` and the weight ``b`` it keeps on its own mean (0 = fully pooled, 1 = its own)."""

    k: int
    mu: float
    mu_se: float
    tau2: float
    shrunk: np.ndarray
    posterior_sd: np.ndarray
    b: np.ndarray


def shrink_means(means: object, variances: object) -> Shrinkage:
    """Shrink group ``means`` (their sampling ``variances`` > 0, same units squared) toward their
    random-effects pooled mean; see the module doc. One group is returned as it is (nothing to
    pool with)."""
    m = as_float_array(means, "means")
    v = as_float_array(variances, "variances")
    if m.shape != v.shape or m.ndim != 1 or m.size == 0:
        raise StatsInputError("means and variances must be non-empty 1-D arrays of one length")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v)) and np.all(v > 0)):
        raise StatsInputError("means must be finite and variances finite and positive")
    if m.size == 1:
        return Shrinkage(
            k=1,
            mu=float(m[0]),
            mu_se=float(np.sqrt(v[0])),
            tau2=0.0,
            shrunk=m.copy(),
            posterior_sd=np.sqrt(v),
            b=np.ones(1),
        )
    from statsmodels.stats.meta_analysis import combine_effects

    res = combine_effects(m, v, method_re="dl")
    tau2 = float(max(res.tau2, 0.0))
    mu = float(res.mean_effect_re)
    mu_se = float(res.sd_eff_w_re)
    b = tau2 / (tau2 + v)
    return Shrinkage(
        k=int(m.size),
        mu=mu,
        mu_se=mu_se,
        tau2=tau2,
        shrunk=mu + b * (m - mu),
        posterior_sd=np.sqrt(b * v),
        b=b,
    )
