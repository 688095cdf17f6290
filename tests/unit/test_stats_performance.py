"""Per-trade performance statistics against hand-computed values and closed forms."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats as sps

from edgefinder.stats import (
    StatsInputError,
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

PNLS = [100.0, -50.0, -50.0, -50.0, 200.0, -30.0]  # dollars per trade
EULER = 0.5772156649015329
N01 = NormalDist()


def test_hand_computed_figures_on_fixed_trades() -> None:
    # mean = 120/6 = 20; squared deviations 6400+4900*3+32400+2500 = 56000; population var = 56000/6.
    assert sharpe(PNLS) == pytest.approx(20.0 / math.sqrt(56000.0 / 6.0), rel=1e-12)
    # equity 0, 100, 50, 0, -50, 150, 120: peak 100 -> trough -50.
    assert max_drawdown(PNLS) == -150.0
    assert max_consecutive_losses(PNLS) == 3
    assert win_rate(PNLS) == pytest.approx(2.0 / 6.0)
    # One-sided t: t = 20 / (sqrt(56000/5) / sqrt(6)), 5 degrees of freedom.
    t_stat = 20.0 / (math.sqrt(56000.0 / 5.0) / math.sqrt(6.0))
    assert mean_pnl_test(PNLS) == pytest.approx(sps.t.sf(t_stat, 5), rel=1e-10)
    s = summarize_pnls(PNLS)
    assert (s.n, s.total_pnl, s.mean_pnl, s.avg_win, s.avg_loss) == (6, 120.0, 20.0, 150.0, -45.0)
    assert s.max_drawdown == -150.0 and s.max_consecutive_losses == 3
    m2 = 56000.0 / 6.0
    m3 = (80.0**3 + 3 * (-70.0) ** 3 + 180.0**3 + (-50.0) ** 3) / 6.0
    m4 = (80.0**4 + 3 * 70.0**4 + 180.0**4 + 50.0**4) / 6.0
    assert s.skew == pytest.approx(m3 / m2**1.5, rel=1e-12)
    assert s.kurtosis == pytest.approx(m4 / m2**2, rel=1e-12)


def test_drawdown_counts_from_the_starting_zero_and_streaks() -> None:
    assert max_drawdown([-10.0, 5.0]) == -10.0
    assert max_drawdown([5.0, 10.0]) == 0.0
    assert max_drawdown([]) == 0.0
    assert max_consecutive_losses([-1.0, -1.0, 0.0, -1.0, 2.0, -1.0, -1.0, -1.0, -1.0]) == 4
    assert max_consecutive_losses([-1.0, -2.0]) == 2
    assert max_consecutive_losses([1.0, 0.0]) == 0


def test_degenerate_inputs() -> None:
    assert sharpe([]) == 0.0 and sharpe([50.0]) == 0.0 and sharpe([10.0, 10.0]) == 0.0
    assert mean_pnl_test([50.0]) == 1.0 and mean_pnl_test([10.0, 10.0]) == 1.0
    assert win_rate([]) == 0.0
    assert summarize_pnls([]).n == 0
    with pytest.raises(StatsInputError, match="finite"):
        sharpe([1.0, float("nan")])


def test_psr_closed_form() -> None:
    sr, n, skew, kurt = 0.2, 100, -0.5, 4.0
    expected = N01.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert probabilistic_sharpe_ratio(sr, n, skew, kurt) == pytest.approx(expected, rel=1e-12)
    assert probabilistic_sharpe_ratio(0.0, 50) == pytest.approx(0.5)
    assert math.isnan(probabilistic_sharpe_ratio(0.2, 1))


def test_dsr_closed_form() -> None:
    sr, n, trials, skew, kurt, var = 0.3, 250, 50, -0.3, 5.0, 0.01
    sr0 = math.sqrt(var) * (
        (1 - EULER) * N01.inv_cdf(1 - 1 / trials) + EULER * N01.inv_cdf(1 - 1 / (trials * math.e))
    )
    assert expected_max_sharpe(trials, var) == pytest.approx(sr0, rel=1e-12)
    expected = N01.cdf(
        (sr - sr0) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    )
    dsr = deflated_sharpe_ratio(sr, n, trials, skew, kurt, var)
    assert dsr == pytest.approx(expected, rel=1e-12)
    assert 0.0 < dsr < 1.0


def test_dsr_penalizes_more_trials_and_reduces_to_psr_for_one() -> None:
    args = dict(sharpe=0.15, n_obs=120, skew=0.0, kurtosis=3.0, sr_variance_across_trials=0.02)
    one = deflated_sharpe_ratio(n_trials=1, **args)
    assert one == pytest.approx(probabilistic_sharpe_ratio(0.15, 120))
    values = [deflated_sharpe_ratio(n_trials=k, **args) for k in (1, 10, 100, 1000)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(StatsInputError):
        expected_max_sharpe(0, 0.01)


def test_positive_edge_is_significant_and_noise_is_not() -> None:
    rng = np.random.default_rng(3)
    assert mean_pnl_test(rng.normal(25.0, 100.0, 400)) < 1e-3
    assert mean_pnl_test(rng.normal(-5.0, 100.0, 400)) > 0.5
