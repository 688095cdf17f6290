"""Per-trade performance statistics: Sharpe, drawdown, streaks, win rate, mean-PnL test, PSR/DSR.

Inputs are sequences of per-trade PnL in dollars (net of costs), in trade order. Sharpe ratios here
are **per trade** (mean / standard deviation of trade PnL), not annualized: trades are irregular in
time, and the original strategy selection computes ``np.mean(pnls) / np.std(pnls)`` this way.
The probabilistic and deflated Sharpe ratios (Bailey & López de Prado, 2012 and 2014) take that
same per-trade Sharpe with the number of trades as ``n_obs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from edgefinder.stats._common import StatsInputError, as_float_array

__all__ = [
    "MeanDifference",
    "PnLSummary",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "mean_difference",
    "max_consecutive_losses",
    "max_drawdown",
    "mean_pnl_test",
    "probabilistic_sharpe_ratio",
    "sharpe",
    "summarize_pnls",
    "win_rate",
]


def _pnls(pnls: object) -> np.ndarray:
    arr = as_float_array(pnls, "pnls")
    if not np.all(np.isfinite(arr)):
        raise StatsInputError("pnls must be finite numbers (dollars per trade)")
    return arr


def sharpe(pnls: object) -> float:
    """Per-trade Sharpe ratio mean / std (population std, ddof=0, as ``np.std``).

    Dimensionless. 0.0 when there are fewer than 2 trades or every trade has the same PnL.
    """
    arr = _pnls(pnls)
    if arr.size < 2:
        return 0.0
    sd = float(np.std(arr))
    return float(np.mean(arr) / sd) if sd > 0 else 0.0


def max_drawdown(pnls: object) -> float:
    """Largest peak-to-trough fall of cumulative PnL, in dollars, as a number <= 0.

    The equity curve starts at 0 before the first trade, so a first losing trade is a drawdown.
    0.0 for no trades.
    """
    arr = _pnls(pnls)
    equity = np.concatenate(([0.0], np.cumsum(arr)))
    return float(np.min(equity - np.maximum.accumulate(equity)))


def max_consecutive_losses(pnls: object) -> int:
    """Longest run of consecutive losing trades (PnL < 0; a zero-PnL trade breaks the run)."""
    losing = _pnls(pnls) < 0
    if not losing.any():
        return 0
    # Run boundaries from the diff of the 0/1 series padded with zeros at both ends.
    edges = np.diff(np.concatenate(([0], losing.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return int((ends - starts).max())


def win_rate(pnls: object) -> float:
    """Fraction of trades with PnL > 0 (0.0 for no trades)."""
    arr = _pnls(pnls)
    return float(np.mean(arr > 0)) if arr.size else 0.0


def mean_pnl_test(pnls: object) -> float:
    """One-sided p-value for H1: mean trade PnL > 0 (:func:`scipy.stats.ttest_1samp`, alternative='greater').

    1.0 when there are fewer than 2 trades or every trade has the same PnL (no variance estimate:
    we refuse to call a constant series significant).
    """
    arr = _pnls(pnls)
    if arr.size < 2 or _constant(arr):
        return 1.0
    return float(sps.ttest_1samp(arr, 0.0, alternative="greater").pvalue)


def _constant(arr: np.ndarray) -> bool:
    """All values equal up to float rounding (trade PnL is a multiple of half a cent): no spread to test."""
    return arr.size == 0 or float(np.ptp(arr)) <= 1e-9 * max(1.0, float(np.max(np.abs(arr))))


def probabilistic_sharpe_ratio(
    sharpe_ratio: float,
    n_obs: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
    sr_benchmark: float = 0.0,
) -> float:
    """PSR: probability that the true per-trade Sharpe exceeds ``sr_benchmark`` (Bailey & López de Prado 2012).

    PSR = Φ((SR − SR*) · sqrt(n − 1) / sqrt(1 − γ3·SR + (γ4 − 1)/4 · SR²)), with γ3 the skewness and
    γ4 the **non-excess** kurtosis of trade PnL (3 for a normal; ``scipy.stats.kurtosis(x,
    fisher=False)``). NaN when n_obs < 2 or the variance term is not positive.
    """
    if n_obs < 2:
        return float("nan")
    var_term = 1.0 - skew * sharpe_ratio + (kurtosis - 1.0) / 4.0 * sharpe_ratio**2
    if not var_term > 0:
        return float("nan")
    z = (sharpe_ratio - sr_benchmark) * np.sqrt(n_obs - 1.0) / np.sqrt(var_term)
    return float(sps.norm.cdf(z))


def expected_max_sharpe(n_trials: int, sr_variance_across_trials: float) -> float:
    """Expected maximum Sharpe of ``n_trials`` independent zero-skill trials (Bailey & López de Prado 2014).

    E[max SR] ≈ sqrt(V) · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), γ the Euler-Mascheroni
    constant, V the variance of the trials' Sharpe ratios. 0 for a single trial (nothing selected).
    """
    if n_trials < 1:
        raise StatsInputError(f"n_trials must be >= 1, got {n_trials}")
    if sr_variance_across_trials < 0:
        raise StatsInputError("sr_variance_across_trials must be >= 0")
    if n_trials == 1:
        return 0.0
    g = np.euler_gamma
    return float(
        np.sqrt(sr_variance_across_trials)
        * (
            (1.0 - g) * sps.norm.ppf(1.0 - 1.0 / n_trials)
            + g * sps.norm.ppf(1.0 - 1.0 / (n_trials * np.e))
        )
    )


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    n_trials: int,
    skew: float,
    kurtosis: float,
    sr_variance_across_trials: float,
) -> float:
    """DSR: the PSR of ``sharpe`` against the expected maximum Sharpe of ``n_trials`` zero-skill trials.

    A probability in [0, 1] (NaN when undefined, see :func:`probabilistic_sharpe_ratio`);
    ``kurtosis`` is non-excess. Selecting the best of many templates inflates its Sharpe; DSR
    discounts that. Convention: DSR > 0.95 is "significant" at 5%.
    """
    sr0 = expected_max_sharpe(n_trials, sr_variance_across_trials)
    return probabilistic_sharpe_ratio(sharpe, n_obs, skew, kurtosis, sr_benchmark=sr0)


@dataclass(frozen=True)
class MeanDifference:
    """Difference of two groups' mean PnL (``a`` minus ``b``, dollars per trade) by Welch's t-test:
    ``n_a``, ``n_b``, the group means, ``estimate`` with its ``confidence``-level CI (``ci_low``,
    ``ci_high``) and the two-sided ``p_value``. NaN figures when a group has fewer than 2 trades."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float = 0.95


def mean_difference(a: object, b: object, confidence: float = 0.95) -> MeanDifference:
    """Welch's unequal-variance t-test of mean(a) − mean(b) (:func:`scipy.stats.ttest_ind`) with its CI."""
    x, y = _pnls(a), _pnls(b)
    nan = float("nan")
    mean_a = float(x.mean()) if x.size else nan
    mean_b = float(y.mean()) if y.size else nan
    if x.size < 2 or y.size < 2 or (_constant(x) and _constant(y)):
        return MeanDifference(
            int(x.size), int(y.size), mean_a, mean_b, mean_a - mean_b, nan, nan, nan, confidence
        )
    res = sps.ttest_ind(x, y, equal_var=False)
    ci = res.confidence_interval(confidence_level=confidence)
    return MeanDifference(
        int(x.size),
        int(y.size),
        mean_a,
        mean_b,
        mean_a - mean_b,
        float(ci.low),
        float(ci.high),
        float(res.pvalue),
        confidence,
    )


@dataclass(frozen=True)
class PnLSummary:
    """Summary of a trade list (dollars unless stated): ``n`` trades, ``total_pnl``, ``mean_pnl``,
    ``sharpe`` (per trade), ``max_drawdown`` (<= 0), ``max_consecutive_losses``, ``win_rate``
    (fraction), ``avg_win`` (mean of PnL > 0, 0 if none), ``avg_loss`` (mean of PnL < 0, <= 0, 0 if
    none), ``p_value`` (mean > 0, one-sided), ``skew`` and ``kurtosis`` (non-excess; 0 and 3 when
    fewer than 3 trades or constant PnL)."""

    n: int
    total_pnl: float
    mean_pnl: float
    sharpe: float
    max_drawdown: float
    max_consecutive_losses: int
    win_rate: float
    avg_win: float
    avg_loss: float
    p_value: float
    skew: float
    kurtosis: float


def summarize_pnls(pnls: object) -> PnLSummary:
    """All of this module's per-trade statistics for one trade list."""
    arr = _pnls(pnls)
    wins, losses = arr[arr > 0], arr[arr < 0]
    if arr.size >= 3 and np.ptp(arr) > 0:
        skew = float(sps.skew(arr))
        kurt = float(sps.kurtosis(arr, fisher=False))
    else:
        skew, kurt = 0.0, 3.0
    return PnLSummary(
        n=int(arr.size),
        total_pnl=float(arr.sum()),
        mean_pnl=float(arr.mean()) if arr.size else 0.0,
        sharpe=sharpe(arr),
        max_drawdown=max_drawdown(arr),
        max_consecutive_losses=max_consecutive_losses(arr),
        win_rate=win_rate(arr),
        avg_win=float(wins.mean()) if wins.size else 0.0,
        avg_loss=float(losses.mean()) if losses.size else 0.0,
        p_value=mean_pnl_test(arr),
        skew=skew,
        kurtosis=kurt,
    )
