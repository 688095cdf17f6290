"""The original ``stats``: the statistical tests of :mod:`edgefinder.stats` under the original names."""

from edgefinder.stats.association import (
    chi2_feature_counts,
    logistic_model,
    point_biserial,
    spearman,
)
from edgefinder.stats.multiple import multiple_test_correction

__all__ = [
    "chi2_feature_counts",
    "logistic_model",
    "multiple_test_correction",
    "point_biserial",
    "spearman",
]
