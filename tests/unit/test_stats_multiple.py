"""multiple_test_correction against statsmodels' multipletests (fdr_bh), with zeros, ties and NaN."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from edgefinder.stats import StatsInputError, multiple_test_correction


def test_matches_multipletests_on_random_pvalues() -> None:
    rng = np.random.default_rng(7)
    p = np.concatenate([rng.uniform(0, 1, 80), rng.uniform(0, 0.002, 20)])
    reject, q = multiple_test_correction(p)
    ref_reject, ref_q, _, _ = multipletests(p, alpha=0.05, method="fdr_bh")
    np.testing.assert_allclose(q, ref_q, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(reject, ref_reject)
    assert reject.sum() >= 20


def test_zero_pvalue_stays_zero_and_ties_share_q() -> None:
    p = np.array([0.0, 0.0, 0.01, 0.03, 0.03, 0.03, 0.2, 1.0])
    reject, q = multiple_test_correction(p)
    assert q[0] == 0.0 and q[1] == 0.0 and reject[0] and reject[1]
    assert q[3] == q[4] == q[5]
    # Hand-computed BH: m = 8; the tie at 0.03 (ranks 4-6) gets min_k>=6 of p_k*m/k = 0.03*8/6 = 0.04.
    np.testing.assert_allclose(
        q, [0.0, 0.0, 0.01 * 8 / 3, 0.04, 0.04, 0.04, 0.2 * 8 / 7, 1.0], rtol=1e-12
    )
    np.testing.assert_allclose(q, multipletests(p, method="fdr_bh")[1], rtol=1e-12)


def test_nan_pvalues_pass_through_and_do_not_count_toward_m() -> None:
    p = np.array([0.01, np.nan, 0.02, 0.04, np.nan, 0.5])
    reject, q = multiple_test_correction(p, alpha=0.05)
    finite = ~np.isnan(p)
    ref_reject, ref_q, _, _ = multipletests(p[finite], alpha=0.05, method="fdr_bh")
    assert np.isnan(q[1]) and np.isnan(q[4]) and not reject[1] and not reject[4]
    np.testing.assert_allclose(q[finite], ref_q, rtol=1e-12)
    np.testing.assert_array_equal(reject[finite], ref_reject)
    # m = 4 finite tests, not 6: q of the smallest p is min over ranks k >= 1 of p_(k) * 4 / k.
    assert q[0] == pytest.approx(min(0.01 * 4, 0.02 * 4 / 2, 0.04 * 4 / 3, 0.5 * 4 / 4), rel=1e-12)


def test_all_nan_empty_and_other_methods() -> None:
    reject, q = multiple_test_correction([np.nan, np.nan])
    assert np.isnan(q).all() and not reject.any()
    reject, q = multiple_test_correction([])
    assert reject.size == 0 and q.size == 0
    p = np.array([0.01, 0.02, 0.3])
    np.testing.assert_allclose(
        multiple_test_correction(p, method="bonferroni").q_values, [0.03, 0.06, 0.9]
    )


def test_out_of_range_pvalues_raise() -> None:
    with pytest.raises(StatsInputError, match=r"\[0, 1\]"):
        multiple_test_correction([0.1, 1.2])
    with pytest.raises(StatsInputError, match=r"\[0, 1\]"):
        multiple_test_correction([-0.1, 0.2])
