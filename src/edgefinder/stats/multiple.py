"""Multiple-testing correction (Benjamini-Hochberg false discovery rate by default)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from statsmodels.stats.multitest import multipletests

from edgefinder.stats._common import StatsInputError, as_float_array

__all__ = ["CorrectionResult", "multiple_test_correction"]


class CorrectionResult(NamedTuple):
    """``reject`` (bool array) and ``q_values`` (adjusted p-values), aligned with the input.

    A NamedTuple so ``reject, q = multiple_test_correction(p)`` works as in the original system.
    """

    reject: np.ndarray
    q_values: np.ndarray


def multiple_test_correction(
    p_values: object, alpha: float = 0.05, method: str = "fdr_bh"
) -> CorrectionResult:
    """Adjust raw p-values for multiple testing with :func:`statsmodels.stats.multitest.multipletests`.

    ``method`` is any multipletests method ('fdr_bh' = Benjamini-Hochberg, the default). NaN
    p-values (tests that could not be run) come back as NaN q and not rejected, and do not count
    toward the number of tests m. A p-value of exactly 0 is a legitimate (underflowed) p and keeps
    q = 0 (the original system mapped it to 1; docs/decisions.md §D6). p-values outside [0, 1] raise
    a one-line error.
    """
    p = as_float_array(p_values, "p_values")
    if not 0.0 < alpha < 1.0:
        raise StatsInputError(f"alpha must be in (0, 1), got {alpha}")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0.0) | (p[finite] > 1.0)):
        raise StatsInputError("p-values must lie in [0, 1] (or be NaN for tests not run)")
    reject = np.zeros(p.shape, dtype=bool)
    q = np.full(p.shape, np.nan)
    if finite.any():
        rej, q_fin, _, _ = multipletests(p[finite], alpha=alpha, method=method)
        reject[finite] = rej
        q[finite] = q_fin
    return CorrectionResult(reject, q)
