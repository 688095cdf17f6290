"""Backtest overfitting: PBO by CSCV, the deflated Sharpe ratio over a trial ledger, MinTRL.

* :func:`probability_of_backtest_overfitting` — Bailey, Borwein, López de Prado and Zhu (2015),
  "The probability of backtest overfitting", combinatorially symmetric cross-validation (CSCV):
  the ``T x N`` performance matrix of ``N`` configurations over ``T`` periods is cut into ``S``
  row blocks; for every one of the ``C(S, S/2)`` ways to call half of them in-sample, the
  configuration with the best in-sample Sharpe is ranked out-of-sample among all ``N``
  (relative rank ``w`` in (0, 1)), ``lambda = log(w / (1 - w))``; PBO is the share of splits with
  ``lambda <= 0`` (the in-sample winner at or below the out-of-sample median). Pure noise gives
  about 0.5; a configuration with a persistent edge drives it towards 0. Its p-value compares it
  with recentered block-bootstrap worlds in which no configuration is better than another. The
  paper's probability of loss comes with it: how often the in-sample winner loses out-of-sample
  (a persistent loser ranks consistently too, so a low PBO alone is no evidence of profit).
* :func:`deflated_sharpe` — Bailey and López de Prado (2014): the probabilistic Sharpe ratio of
  the selected returns against the expected maximum Sharpe of every trial the search evaluated
  (skfolio's ``deflated_sharpe_ratio``: the trials' count and dispersion set the benchmark).
* :func:`minimum_track_record_length` — Bailey and López de Prado (2012), "The Sharpe ratio
  efficient frontier": the observations needed before the observed Sharpe is above a benchmark
  Sharpe with confidence ``1 - alpha``.

All Sharpe ratios are per observation (per trade or per session), never annualized. skfolio has
the DSR and PSR but neither PBO nor MinTRL, so those two are written here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from edgefinder.stats._common import StatsInputError

__all__ = [
    "DeflatedSharpe",
    "deflated_sharpe_from_moments",
    "PBOResult",
    "TrackRecord",
    "deflated_sharpe",
    "minimum_track_record_length",
    "probability_of_backtest_overfitting",
]


@dataclass(frozen=True)
class PBOResult:
    """PBO ``estimate`` over ``n_splits`` CSCV splits of ``n`` periods into ``n_blocks`` blocks,
    ``n_configs`` configurations; ``logits`` per split; ``ci_low``/``ci_high`` a 95 % Wilson
    interval treating the splits as draws (they overlap, so it is optimistic); ``p_value``: how
    often a world where no configuration is better than another gives a PBO at or below this one
    (``n_resamples`` recentered block-bootstrap worlds, ``(1 + k) / (1 + n_resamples)``; NaN with
    none), so a small p is evidence that choosing the in-sample best has skill; ``null_mean`` the
    mean PBO of those worlds; ``degradation``: the slope of out-of-sample on in-sample Sharpe of
    the selected configuration across splits; ``probability_of_loss``: the share of splits in
    which the selected configuration's out-of-sample performance is below 0 (the paper's
    "probability of loss": a low PBO says the ranking persists, this says whether the choice
    earns)."""

    n: int
    n_configs: int
    n_blocks: int
    n_splits: int
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    degradation: float
    logits: tuple[float, ...]
    n_resamples: int = 0
    null_mean: float = float("nan")
    probability_of_loss: float = float("nan")


def _split_sharpes(
    sel: np.ndarray, cnt: np.ndarray, mean_b: np.ndarray, ss_b: np.ndarray
) -> np.ndarray:
    """Per split (rows of ``sel``, the blocks it takes) and configuration: mean / population sd of
    the periods of the chosen blocks (0 where the sd is 0), from the blocks' counts, means and sums
    of squared deviations."""
    w = sel.astype(np.float64)
    n_s = w @ cnt
    mean = (w @ (cnt[:, None] * mean_b)) / n_s[:, None]
    dev = mean_b[None, :, :] - mean[:, None, :]
    ss = w @ ss_b + np.einsum("sb,sbn->sn", w * cnt[None, :], dev * dev)
    sd = np.sqrt(ss / n_s[:, None])
    return np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), 0.0)


def _cscv(m: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per split (rows of ``chosen``: which of the contiguous row blocks are in-sample) the logit
    of the in-sample best configuration's out-of-sample rank, its in-sample and its out-of-sample
    Sharpe."""
    t, n = m.shape
    n_blocks = chosen.shape[1]
    # Every split's Sharpe ratios at once from per-block statistics (count, mean, sum of squared
    # deviations) merged with Chan et al.'s pairwise update: the combinations are many (12,870 for
    # 16 blocks) and a Python loop over them cost seconds of serial time at the end of a study.
    bounds = np.cumsum([0, *(len(b) for b in np.array_split(np.arange(t), n_blocks))])
    cnt = np.diff(bounds).astype(np.float64)
    mean_b = np.add.reduceat(m, bounds[:-1], axis=0) / cnt[:, None]
    ss_b = np.array(
        [
            ((m[lo:hi] - mean_b[j]) ** 2).sum(axis=0)
            for j, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]
    )
    logits_l, is_l, oos_l = [], [], []
    step = max(1, 4_000_000 // max(1, n_blocks * n))  # bounds the (splits x blocks x N) temporaries
    for lo in range(0, len(chosen), step):
        sel = chosen[lo : lo + step]
        sr_in = _split_sharpes(sel, cnt, mean_b, ss_b)
        sr_out = _split_sharpes(~sel, cnt, mean_b, ss_b)
        rows = np.arange(len(sel))
        best = np.argmax(sr_in, axis=1)
        v = sr_out[rows, best][:, None]
        # rank 1..N out-of-sample, ties at their mean rank (scipy's rankdata "average"); w in
        # (0, 1) as in the paper (rank / (N + 1))
        rank = (sr_out < v).sum(axis=1) + ((sr_out == v).sum(axis=1) + 1) / 2.0
        w = rank / (n + 1)
        logits_l.append(np.log(w / (1.0 - w)))
        is_l.append(sr_in[rows, best])
        oos_l.append(v[:, 0])
    return np.concatenate(logits_l), np.concatenate(is_l), np.concatenate(oos_l)


def _block_bootstrap_rows(t: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of one circular block bootstrap of ``t`` periods in blocks of ``length``."""
    starts = rng.integers(0, t, size=-(-t // length))
    return ((starts[:, None] + np.arange(length)[None, :]) % t).ravel()[:t]


def probability_of_backtest_overfitting(
    performance: object,
    n_blocks: int = 16,
    n_resamples: int = 200,
    seed: int = 0,
    null_splits: int = 250,
) -> PBOResult:
    """PBO of choosing the best-Sharpe column of ``performance`` (``T x N``, one row per period,
    one column per configuration; e.g. PnL per session in dollars) by CSCV with ``n_blocks`` (even)
    row blocks; see the module doc. Blocks are contiguous and as equal as possible (the first
    ``T mod S`` get one row more), so serial dependence stays inside a block.

    The p-value compares the estimate with ``n_resamples`` worlds without skill: every column
    recentered to mean 0 over its non-zero periods (no configuration better than another, as in
    White's reality check; a 0 is a period without trades and stays one), its periods drawn
    jointly by a circular block bootstrap in blocks of ``T // n_blocks`` periods (so the
    configurations keep their correlation and spread), each world's PBO over the same
    ``null_splits`` splits drawn at random (with ``seed``) when there are more. A study's PBO over
    a dozen configurations of noise is one draw from a wide distribution (about 0.5 ± 0.2); the
    splits overlap, so counting them as draws (the Wilson CI) says nothing about that spread."""
    m = np.asarray(performance, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise StatsInputError("performance must be a T x N matrix with N >= 2 configurations")
    if not np.all(np.isfinite(m)):
        raise StatsInputError("performance must be finite")
    if n_blocks < 2 or n_blocks % 2:
        raise StatsInputError(f"n_blocks must be an even number >= 2, got {n_blocks}")
    if n_resamples < 0 or null_splits < 1:
        raise StatsInputError("n_resamples must be >= 0 and null_splits >= 1")
    t, n = m.shape
    if t < n_blocks:
        raise StatsInputError(f"{t} periods are fewer than the {n_blocks} blocks CSCV needs")
    combos = np.array(list(itertools.combinations(range(n_blocks), n_blocks // 2)), dtype=np.int64)
    chosen = np.zeros((len(combos), n_blocks), dtype=bool)
    chosen[np.arange(len(combos))[:, None], combos] = True
    lam, x, y = _cscv(m, chosen)
    k, s = int((lam <= 0).sum()), int(lam.size)
    estimate = k / s
    ci = sps.binomtest(k, s).proportion_ci(0.95, method="wilson")
    slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else float("nan")
    p_value, null_mean = float("nan"), float("nan")
    if n_resamples:
        rng = np.random.default_rng(seed)
        sub = chosen
        if len(chosen) > null_splits:
            sub = chosen[np.sort(rng.choice(len(chosen), null_splits, replace=False))]
        # a period where a configuration did not trade stays exactly 0 in every world: recentring
        # it too would give a rarely trading configuration a constant loss with no spread, whose
        # Sharpe of 0 wins whole halves (PBO 0 in a tenth of the worlds of one real study)
        active = m != 0
        centred = m - active * (m.sum(axis=0) / np.maximum(active.sum(axis=0), 1))
        length = max(1, t // n_blocks)
        null = np.array(
            [
                float((_cscv(centred[_block_bootstrap_rows(t, length, rng)], sub)[0] <= 0).mean())
                for _ in range(n_resamples)
            ]
        )
        p_value = float((1 + (null <= estimate).sum()) / (1 + n_resamples))
        null_mean = float(null.mean())
    return PBOResult(
        n=t,
        n_configs=n,
        n_blocks=n_blocks,
        n_splits=s,
        estimate=estimate,
        ci_low=float(ci.low),
        ci_high=float(ci.high),
        p_value=p_value,
        degradation=slope,
        logits=tuple(float(v) for v in lam),
        n_resamples=int(n_resamples),
        null_mean=null_mean,
        probability_of_loss=float((y < 0).mean()),
    )


@dataclass(frozen=True)
class DeflatedSharpe:
    """``estimate``: the DSR (probability the selected returns' true Sharpe exceeds zero after the
    selection over ``n_trials`` trials); ``sharpe`` the observed per-observation Sharpe over ``n``
    observations; ``benchmark`` the expected maximum Sharpe of ``n_trials`` zero-skill trials with
    the trials' dispersion ``trial_sd``. NaN when fewer than 3 observations or no dispersion.
    skfolio's conventions: sample standard deviations (ddof 1), biased skew and kurtosis."""

    n: int
    n_trials: int
    sharpe: float
    benchmark: float
    trial_sd: float
    estimate: float


def deflated_sharpe(
    returns: object, trial_sharpes: object, n_trials: int | None = None
) -> DeflatedSharpe:
    """DSR of ``returns`` (per observation, e.g. dollars per trade) selected among ``trial_sharpes``
    (the trials' Sharpe ratios, same units; NaNs dropped): skfolio's expected maximum Sharpe and
    PSR. ``n_trials``: how many trials were run, when more than the Sharpe ratios given (e.g. the
    dispersion is estimated only from trials with enough trades); default their count, which is
    skfolio's ``deflated_sharpe_ratio``."""
    from skfolio.measures import (
        expected_max_sharpe_ratio,
        probabilistic_sharpe_ratio,
        standard_deviation,
    )

    r = np.asarray(returns, dtype=np.float64)
    tr = np.asarray(trial_sharpes, dtype=np.float64)
    tr = tr[np.isfinite(tr)]
    if tr.size == 0:
        raise StatsInputError("deflated_sharpe needs at least one trial Sharpe ratio")
    n = int(tr.size if n_trials is None else max(int(n_trials), tr.size))
    sd = float(tr.std(ddof=1)) if tr.size > 1 else 0.0
    bench = float(expected_max_sharpe_ratio(n_trials=n, trial_sharpe_ratio_std=sd))
    rsd = float(standard_deviation(r)) if r.size > 1 else 0.0
    sr = float(r.mean() / rsd) if rsd > 0 else float("nan")
    est = (
        float(probabilistic_sharpe_ratio(r, benchmark_sharpe_ratio=bench))
        if r.size >= 3 and rsd > 0
        else float("nan")
    )
    return DeflatedSharpe(int(r.size), n, sr, bench, sd, est)


def deflated_sharpe_from_moments(
    sharpe: float,
    n: int,
    n_trials: int,
    trial_sd: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> DeflatedSharpe:
    """The same DSR from summary figures (a published example gives no return series): the PSR
    of ``sharpe`` over ``n`` observations with ``skew`` and non-excess ``kurtosis`` against
    skfolio's expected maximum Sharpe of ``n_trials`` trials of dispersion ``trial_sd``."""
    from skfolio.measures import expected_max_sharpe_ratio

    from edgefinder.stats.performance import probabilistic_sharpe_ratio

    bench = float(expected_max_sharpe_ratio(n_trials=n_trials, trial_sharpe_ratio_std=trial_sd))
    est = probabilistic_sharpe_ratio(sharpe, n, skew, kurtosis, sr_benchmark=bench)
    return DeflatedSharpe(int(n), int(n_trials), float(sharpe), bench, float(trial_sd), est)


@dataclass(frozen=True)
class TrackRecord:
    """Minimum track record length ``estimate`` (observations; ``inf`` when the Sharpe is not above
    the benchmark) for ``sharpe`` observed over ``n`` observations with ``skew`` and non-excess
    ``kurtosis``, against ``benchmark`` at confidence ``1 - alpha``; ``enough``: n >= estimate."""

    n: int
    sharpe: float
    benchmark: float
    skew: float
    kurtosis: float
    alpha: float
    estimate: float
    enough: bool


def minimum_track_record_length(
    sharpe: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
    benchmark: float = 0.0,
    alpha: float = 0.05,
    n: int = 0,
) -> TrackRecord:
    """MinTRL = 1 + (1 - skew SR + (kurtosis - 1)/4 SR^2) (z_{1-alpha} / (SR - SR*))^2 observations
    (Bailey and López de Prado 2012, eq. 11; ``kurtosis`` non-excess, 3 for a normal)."""
    if not 0 < alpha < 1:
        raise StatsInputError(f"alpha must be in (0, 1), got {alpha}")
    var = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not sharpe > benchmark or not var > 0:
        est = math.inf
    else:
        est = 1.0 + var * (float(sps.norm.ppf(1.0 - alpha)) / (sharpe - benchmark)) ** 2
    return TrackRecord(
        int(n), float(sharpe), float(benchmark), float(skew), float(kurtosis), alpha, est, n >= est
    )
