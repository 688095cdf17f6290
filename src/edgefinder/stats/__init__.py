"""Domain-free statistics shared by both pipelines.

association: point_biserial, spearman, chi2_feature_counts, logistic_model (+ result dataclasses;
             each cluster-robust with ``groups``), clustered_correlation
multiple:    multiple_test_correction (Benjamini-Hochberg q-values)
causal:      compute_propensity, weighted_outcome_diff, propensity_adjusted_effect (AIPW + Hájek IPW),
             within_unit_effect (within-unit AIPW with Mundlak terms), mundlak_terms
refute:      refute_within_effect (placebo, random common cause, subset), e_value, e_value_ci, verdict
performance: sharpe, max_drawdown, max_consecutive_losses, win_rate, mean_pnl_test,
             probabilistic_sharpe_ratio, deflated_sharpe_ratio, summarize_pnls
"""

from edgefinder.stats._common import StatsInputError
from edgefinder.stats.association import (
    DEFAULT_MIN_CLUSTERS,
    DEFAULT_MIN_GROUP_N,
    Chi2Result,
    ClusteredCorrelation,
    LogisticResult,
    PointBiserialResult,
    SpearmanResult,
    chi2_feature_counts,
    clustered_correlation,
    detect_separation,
    logistic_model,
    point_biserial,
    spearman,
)
from edgefinder.stats.causal import (
    PropensityResult,
    compute_propensity,
    covariate_balance,
    mundlak_terms,
    propensity_adjusted_effect,
    weighted_outcome_diff,
    within_unit_effect,
)
from edgefinder.stats.multiple import CorrectionResult, multiple_test_correction
from edgefinder.stats.performance import (
    PnLSummary,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    max_consecutive_losses,
    max_drawdown,
    mean_pnl_test,
    probabilistic_sharpe_ratio,
    sharpe,
    summarize_pnls,
    win_rate,
)
from edgefinder.stats.refute import (
    Check,
    Refutation,
    e_value,
    e_value_ci,
    refute_within_effect,
    verdict,
)

__all__ = [
    "DEFAULT_MIN_CLUSTERS",
    "DEFAULT_MIN_GROUP_N",
    "Check",
    "Chi2Result",
    "ClusteredCorrelation",
    "CorrectionResult",
    "LogisticResult",
    "PnLSummary",
    "PointBiserialResult",
    "PropensityResult",
    "Refutation",
    "SpearmanResult",
    "StatsInputError",
    "chi2_feature_counts",
    "clustered_correlation",
    "compute_propensity",
    "covariate_balance",
    "deflated_sharpe_ratio",
    "detect_separation",
    "e_value",
    "e_value_ci",
    "expected_max_sharpe",
    "logistic_model",
    "max_consecutive_losses",
    "max_drawdown",
    "mean_pnl_test",
    "multiple_test_correction",
    "mundlak_terms",
    "point_biserial",
    "probabilistic_sharpe_ratio",
    "propensity_adjusted_effect",
    "refute_within_effect",
    "sharpe",
    "spearman",
    "summarize_pnls",
    "verdict",
    "weighted_outcome_diff",
    "win_rate",
    "within_unit_effect",
]
