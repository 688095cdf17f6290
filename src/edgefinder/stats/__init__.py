"""Domain-free statistics shared by both pipelines.

association: point_biserial, spearman, chi2_feature_counts, logistic_model (+ result dataclasses)
multiple:    multiple_test_correction (Benjamini-Hochberg q-values)
causal:      compute_propensity, weighted_outcome_diff, propensity_adjusted_effect (AIPW + Hájek IPW)
performance: sharpe, max_drawdown, max_consecutive_losses, win_rate, mean_pnl_test,
             probabilistic_sharpe_ratio, deflated_sharpe_ratio, summarize_pnls
"""

from edgefinder.stats._common import StatsInputError
from edgefinder.stats.association import (
    DEFAULT_MIN_GROUP_N,
    Chi2Result,
    LogisticResult,
    PointBiserialResult,
    SpearmanResult,
    chi2_feature_counts,
    detect_separation,
    logistic_model,
    point_biserial,
    spearman,
)
from edgefinder.stats.causal import (
    PropensityResult,
    compute_propensity,
    covariate_balance,
    propensity_adjusted_effect,
    weighted_outcome_diff,
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

__all__ = [
    "DEFAULT_MIN_GROUP_N",
    "Chi2Result",
    "CorrectionResult",
    "LogisticResult",
    "PnLSummary",
    "PointBiserialResult",
    "PropensityResult",
    "SpearmanResult",
    "StatsInputError",
    "chi2_feature_counts",
    "compute_propensity",
    "covariate_balance",
    "deflated_sharpe_ratio",
    "detect_separation",
    "expected_max_sharpe",
    "logistic_model",
    "max_consecutive_losses",
    "max_drawdown",
    "mean_pnl_test",
    "multiple_test_correction",
    "point_biserial",
    "probabilistic_sharpe_ratio",
    "propensity_adjusted_effect",
    "sharpe",
    "spearman",
    "summarize_pnls",
    "weighted_outcome_diff",
    "win_rate",
]
