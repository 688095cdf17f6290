"""The original ``causal``: ``propensity_adjusted_effect(df, treatment_col=…, outcome_col=…, covariates=[…])``.

The functions of :mod:`edgefinder.stats.causal` (cross-fitted propensities, Hájek IPW, AIPW); the
result is a dict with ``ate`` (AIPW), ``naive_ate``, ``ipw_ate``, their CIs, balance and clipping.
"""

from edgefinder.stats.causal import (
    compute_propensity,
    propensity_adjusted_effect,
    weighted_outcome_diff,
)

__all__ = ["compute_propensity", "propensity_adjusted_effect", "weighted_outcome_diff"]
