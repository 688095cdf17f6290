"""Property-based checks (hypothesis) of the stats package against plain references."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from edgefinder.stats import max_consecutive_losses, max_drawdown, multiple_test_correction

pnl = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)
# Uniform p-values plus the cases the original system got wrong or that are easy to get wrong: 0, NaN
# and ties (docs/decisions.md §D6).
pval = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.just(0.0),
    st.just(float("nan")),
    st.sampled_from([0.01, 0.05]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(pval, max_size=40))
def test_bh_equals_multipletests_on_the_finite_subset(ps: list[float]) -> None:
    p = np.asarray(ps, dtype=float)
    reject, q = multiple_test_correction(p)
    finite = ~np.isnan(p)
    assert np.isnan(q[~finite]).all() and not reject[~finite].any()
    if finite.any():
        ref_reject, ref_q, _, _ = multipletests(p[finite], method="fdr_bh")
        np.testing.assert_allclose(q[finite], ref_q, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(reject[finite], ref_reject)
        assert (q[finite] >= p[finite]).all() and (q[finite][p[finite] == 0] == 0).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(pnl, max_size=60))
def test_drawdown_and_streaks_match_brute_force(trades: list[float]) -> None:
    equity = np.concatenate(([0.0], np.cumsum(trades)))
    worst = min(
        (equity[j] - equity[i] for i in range(len(equity)) for j in range(i, len(equity))),
        default=0.0,
    )
    assert max_drawdown(trades) == worst and max_drawdown(trades) <= 0.0
    runs = [len(list(g)) for losing, g in itertools.groupby(t < 0 for t in trades) if losing]
    assert max_consecutive_losses(trades) == max(runs, default=0)
