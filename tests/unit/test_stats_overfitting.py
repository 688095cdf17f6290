"""PBO, the deflated Sharpe ratio and the minimum track record length, each against a published
example or a simulation with a planted truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgefinder.stats._common import StatsInputError
from edgefinder.stats.overfitting import (
    deflated_sharpe,
    deflated_sharpe_from_moments,
    minimum_track_record_length,
    probability_of_backtest_overfitting,
)
from edgefinder.stats.performance import probabilistic_sharpe_ratio
from tests.r_rng import r_rnorm


def test_dsr_reproduces_the_published_numerical_example() -> None:
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: the best of
    # N = 100 trials has an annualized Sharpe of 2.5 over 5 years of daily returns (T = 1250,
    # 250 a year), the trials' annualized Sharpe variance is 1/2, skewness -3, kurtosis 10. The
    # paper prints SR0 = 0.1132 (non-annualized) and DSR = 0.9004.
    d = deflated_sharpe_from_moments(
        2.5 / math.sqrt(250), 1250, 100, math.sqrt(0.5 / 250), skew=-3.0, kurtosis=10.0
    )
    assert round(d.benchmark, 4) == 0.1132
    assert round(d.estimate, 4) == 0.9004


def test_dsr_from_returns_equals_the_moment_form() -> None:
    # skfolio's returns-based DSR and the moment form (our PSR) agree on the same series.
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, 800) * 10.0 + 1.5  # dollars per trade, fat tails
    trials = rng.normal(0.0, 0.08, 400)
    from scipy import stats as sps

    a = deflated_sharpe(r, trials)
    b = deflated_sharpe_from_moments(
        float(r.mean() / r.std(ddof=1)),
        r.size,
        trials.size,
        float(trials.std(ddof=1)),
        float(sps.skew(r)),
        float(sps.kurtosis(r, fisher=False)),
    )
    assert a.n_trials == 400 and a.benchmark == pytest.approx(b.benchmark, rel=1e-12)
    assert a.estimate == pytest.approx(b.estimate, abs=1e-9)
    from skfolio.measures import deflated_sharpe_ratio

    assert a.estimate == pytest.approx(float(deflated_sharpe_ratio(r, trials)), abs=1e-12)
    # more trials run than Sharpe ratios kept: only the count grows
    c = deflated_sharpe(r, trials, n_trials=4000)
    assert c.trial_sd == a.trial_sd and c.n_trials == 4000 and c.estimate < a.estimate


def test_dsr_falls_as_the_trials_grow() -> None:
    r = np.random.default_rng(1).normal(1.0, 10.0, 500)
    few = deflated_sharpe(r, np.random.default_rng(2).normal(0, 0.05, 10)).estimate
    many = deflated_sharpe(r, np.random.default_rng(2).normal(0, 0.05, 10_000)).estimate
    assert many < few


def _noise(seed: int, t: int = 240, n: int = 20) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (t, n))


def test_pbo_split_count_is_the_papers() -> None:
    # S = 16 blocks: C(16, 8) = 12,870 in-sample / out-of-sample splits.
    res = probability_of_backtest_overfitting(_noise(0, 160, 5), 16)
    assert res.n_splits == 12_870 and len(res.logits) == 12_870


def test_pbo_of_pure_noise_is_about_one_half() -> None:
    # Planted truth: 20 configurations of i.i.d. N(0, 1) per period (no skill anywhere). The
    # in-sample winner's out-of-sample rank is uniform, so PBO averages ~0.5 (odd ranks tie at the
    # median: the exact expectation with N = 20 is 10/20 = 0.5).
    est = [probability_of_backtest_overfitting(_noise(s), 8).estimate for s in range(12)]
    assert 0.4 <= float(np.mean(est)) <= 0.6
    assert min(est) >= 0.1


def test_pbo_of_a_persistent_edge_is_near_zero() -> None:
    # Planted truth: configuration 0 earns 0.5 sd per period more than 19 noise configurations,
    # in every period: it wins in-sample and stays on top out-of-sample.
    for s in range(6):
        m = _noise(100 + s)
        m[:, 0] += 0.5
        res = probability_of_backtest_overfitting(m, 8, seed=s)
        assert res.estimate <= 0.05
        # with 8 blocks (70 splits) a world without skill gives PBO 0 about 1 % of the time
        assert res.p_value < 0.05


def test_pbo_p_value_is_calibrated_on_noise() -> None:
    # Planted truth: no skill, 12 configurations of i.i.d. N(0, 1) over 56 periods (a study's
    # 4 folds x 14 test sessions, 16 blocks). One study's PBO is one draw from a wide
    # distribution (here 0.10-0.88), so the p-value, not the estimate, says whether a low PBO is
    # evidence: it must be about uniform, rejecting at 5 % about 5 % of the time. Over 40 seeds
    # the share below 0.05 is 7.5 %; the bound allows a binomial 2.4 sd above 5 %.
    res = [probability_of_backtest_overfitting(_noise(s, 56, 12), 16, seed=s) for s in range(40)]
    p = np.array([r.p_value for r in res])
    assert (p < 0.05).mean() <= 0.13
    assert 0.3 <= float(np.median(p)) <= 0.7
    assert all(0.4 <= r.null_mean <= 0.6 and r.n_resamples == 200 for r in res)
    # the old reading of those splits as independent draws called a low noise PBO skill
    low = min(res, key=lambda r: r.estimate)
    assert low.estimate < 0.2 and low.ci_high < 0.5 and low.p_value > 0.01


def _sparse_world(seed: int, edge: float) -> np.ndarray:
    # Planted truth: 112 sessions, 8 families of N(0, 1) PnL per session; families 4-7 trade in
    # only ~5 % of the sessions (0 elsewhere), as rare context families do; family 0 earns
    # ``edge`` sd per session more.
    rng = np.random.default_rng(seed)
    m = rng.normal(0.0, 1.0, (112, 8))
    m[:, 4:] *= rng.random((112, 4)) < 0.05
    m[:, 0] += edge
    return m


def test_pbo_p_value_with_rarely_trading_configurations() -> None:
    # A session without trades stays 0 in the worlds without skill: recentring it as well turned
    # the rare families into constant small losses whose Sharpe of 0 won whole halves, so the
    # worlds often had PBO 0 and a planted edge got p up to 0.35 on these seeds.
    edge = [
        probability_of_backtest_overfitting(_sparse_world(s, 0.5), 16, seed=s) for s in range(20)
    ]
    assert all(r.estimate <= 0.05 and r.p_value <= 0.025 for r in edge)
    noise = [
        probability_of_backtest_overfitting(_sparse_world(s, 0.0), 16, seed=s) for s in range(20)
    ]
    assert sum(r.p_value < 0.05 for r in noise) <= 2
    assert 0.4 <= float(np.mean([r.estimate for r in noise])) <= 0.6


def test_pbo_p_value_is_deterministic_and_optional() -> None:
    m = _noise(3, 56, 12)
    a, b = (probability_of_backtest_overfitting(m, 16, seed=5) for _ in range(2))
    assert a == b
    off = probability_of_backtest_overfitting(m, 16, n_resamples=0)
    assert off.estimate == a.estimate and np.isnan(off.p_value) and off.n_resamples == 0


def test_pbo_of_an_in_sample_fluke_is_high() -> None:
    # Planted truth: every configuration is noise, but the first half of the periods favour
    # different configurations than the second half do (a regime that reverses): whatever wins on
    # one half loses on the other, so the in-sample choice ranks low out-of-sample.
    rng = np.random.default_rng(7)
    t, n = 160, 10
    m = rng.normal(0.0, 1.0, (t, n))
    tilt = np.linspace(-1.0, 1.0, n)
    m[: t // 2] += 0.6 * tilt
    m[t // 2 :] -= 0.6 * tilt
    assert probability_of_backtest_overfitting(m, 2).estimate == 1.0


def test_probability_of_loss_follows_the_sign_of_the_chosen_configuration() -> None:
    # Planted truths, 20 configurations of N(0, 1) per period over 6 seeds each. (a) Over 960
    # periods every configuration loses 0.5 sd a period (costs on a market without an edge) and
    # one loses 0.3: the ranking persists, so PBO is low, yet the in-sample winner loses
    # out-of-sample in every split. (b) Configuration 0 earns 0.5 sd a period: it wins and
    # earns. (c) No drift: the winner's out-of-sample mean is as often below 0 as above.
    for s in range(6):
        m = _noise(200 + s, 960) - 0.5
        m[:, 0] += 0.2
        res = probability_of_backtest_overfitting(m, 8, n_resamples=0)
        assert res.estimate <= 0.05 and res.probability_of_loss == 1.0, res
        m = _noise(300 + s)
        m[:, 0] += 0.5
        assert probability_of_backtest_overfitting(m, 8, n_resamples=0).probability_of_loss == 0
    noise = [
        probability_of_backtest_overfitting(_noise(400 + s), 8, n_resamples=0) for s in range(12)
    ]
    assert 0.3 <= float(np.mean([r.probability_of_loss for r in noise])) <= 0.7


def test_pbo_refuses_bad_input() -> None:
    with pytest.raises(StatsInputError):
        probability_of_backtest_overfitting(np.zeros((20, 1)), 4)
    with pytest.raises(StatsInputError):
        probability_of_backtest_overfitting(np.zeros((20, 3)), 5)
    with pytest.raises(StatsInputError):
        probability_of_backtest_overfitting(np.zeros((6, 3)), 8)


def test_min_track_record_is_where_psr_reaches_the_confidence() -> None:
    # MinTRL inverts the PSR: at n = MinTRL observations the PSR of the same Sharpe is 1 - alpha.
    for sr, sk, ku in ((0.1, 0.0, 3.0), (0.05, -1.0, 8.0), (0.3, 0.5, 4.0)):
        tr = minimum_track_record_length(sr, sk, ku, alpha=0.05)
        assert probabilistic_sharpe_ratio(sr, tr.estimate, sk, ku) == pytest.approx(0.95, abs=1e-9)
    assert minimum_track_record_length(-0.1).estimate == math.inf
    assert minimum_track_record_length(0.2, n=1000).enough


def test_min_track_record_by_simulation() -> None:
    # Planted truth: normal trades with a true Sharpe of 0.1. Over MinTRL(0.1) trades the observed
    # Sharpe sits at the bound on average, so about half the track records pass PSR >= 0.95; with
    # four times as many trades nearly all do.
    rng = np.random.default_rng(11)
    n = math.ceil(minimum_track_record_length(0.1).estimate)
    passed = []
    for mult in (1, 4):
        x = rng.normal(0.1, 1.0, (2000, n * mult))
        sr = x.mean(axis=1) / x.std(axis=1)
        passed.append(np.mean([probabilistic_sharpe_ratio(s, n * mult) >= 0.95 for s in sr]))
    assert 0.4 <= passed[0] <= 0.6
    assert passed[1] >= 0.95


def _pbo_by_brute_force(
    m: np.ndarray, n_blocks: int, ddof: int = 0
) -> tuple[float, np.ndarray, float, np.ndarray]:
    """The CSCV definition, one split at a time: rows of the chosen blocks in-sample, Sharpe by
    numpy's mean and sd (population sd, or R's ``sd`` with ``ddof=1``), the in-sample winner's
    out-of-sample rank by scipy; with the share of splits where the winner's out-of-sample Sharpe
    is below 0 and, per split, the winner's (in-sample, out-of-sample) Sharpe."""
    import itertools

    from scipy import stats as sps

    def sharpe(x: np.ndarray) -> np.ndarray:
        sd = x.std(axis=0, ddof=ddof)
        return np.where(sd > 0, x.mean(axis=0) / np.where(sd > 0, sd, 1.0), 0.0)

    blocks = np.array_split(np.arange(m.shape[0]), n_blocks)
    logits, losses, pairs = [], [], []
    for chosen in itertools.combinations(range(n_blocks), n_blocks // 2):
        inside = np.concatenate([blocks[i] for i in chosen])
        outside = np.concatenate([blocks[i] for i in range(n_blocks) if i not in chosen])
        sr_in = sharpe(m[inside])
        best = int(np.argmax(sr_in))
        sr_out = sharpe(m[outside])
        w = float(sps.rankdata(sr_out)[best]) / (m.shape[1] + 1)
        logits.append(math.log(w / (1.0 - w)))
        losses.append(sr_out[best] < 0)
        pairs.append((sr_in[best], sr_out[best]))
    lam = np.asarray(logits)
    return float((lam <= 0).mean()), lam, float(np.mean(losses)), np.asarray(pairs)


def test_pbo_equals_the_definition_split_by_split() -> None:
    # The vectorized CSCV against the definition evaluated split by split, on unequal blocks,
    # columns idle in most periods (a family that rarely trades), an all-zero column and two
    # identical columns (exact ties in- and out-of-sample), over several seeds and scales.
    for seed in range(8):
        rng = np.random.default_rng(seed)
        t, n = int(rng.integers(30, 90)), int(rng.integers(4, 25))
        m = rng.normal(0.0, 1.0, (t, n)) * float(rng.choice([1.0, 250.0]))
        m[:, : n // 3] *= rng.random((t, n // 3)) < 0.3
        m[:, 2], m[:, 3] = 0.0, m[:, 1]
        for blocks in (2, 8, 10):
            est, lam, loss, _ = _pbo_by_brute_force(m, blocks)
            res = probability_of_backtest_overfitting(m, blocks)
            assert res.estimate == est and res.probability_of_loss == loss
            np.testing.assert_allclose(res.logits, lam, rtol=0, atol=1e-12)


def _r_pbo_summary(m: np.ndarray, s: int) -> tuple[float, float, float, float]:
    """R package pbo's summary of ``pbo(m, s, f=sharpe)`` with the vignette's ``sharpe`` (excess
    over rf = 0.03/252, R's sd): ``p_bo`` and ``p_loss`` from our CSCV; ``slope`` and ``ar^2`` as
    the package computes them, ``lm(Rn ~ Rbn)`` over the splits' winners (its "slope" is that fit's
    first coefficient, the intercept), from the split-by-split reference."""
    import statsmodels.api as sm

    excess = m - 0.03 / 252
    res = probability_of_backtest_overfitting(excess, s, n_resamples=0)
    _, _, _, pairs = _pbo_by_brute_force(excess, s, ddof=1)
    fit = sm.OLS(pairs[:, 0], sm.add_constant(pairs[:, 1])).fit()
    return res.estimate, float(fit.params[0]), float(fit.rsquared_adj), res.probability_of_loss


def test_r_normal_generator_reproduces_rs_printed_draws() -> None:
    # what R prints for set.seed(1); rnorm(3) and set.seed(123); rnorm(3)
    np.testing.assert_allclose(r_rnorm(1, 3), [-0.6264538, 0.1836433, -0.8356286], atol=5e-8)
    np.testing.assert_allclose(r_rnorm(123, 3), [-0.56047565, -0.23017749, 1.55870831], atol=5e-9)


@pytest.mark.parametrize(
    ("s", "slope", "ar2"),
    [(8, -0.003046, 0.97), (4, -0.005909, 0.88)],
)
def test_pbo_reproduces_the_r_pbo_vignette(s: int, slope: float, ar2: float) -> None:
    # The R package pbo's vignette (Barry): set.seed(765), 100 trials x 2400 days of rnorm, each
    # trial rescaled to sd 1/sqrt(252) and recentred to mean 0 (every trial has the same
    # performance, so whatever wins in-sample loses its edge out of sample). summary() prints
    # p_bo 1.000000, slope -0.003046, ar^2 0.970000, p_loss 1.000000 for S = 8, and
    # 1.000000, -0.005909, 0.880000, 1.000000 for S = 4.
    n, t = 100, 2400
    m = r_rnorm(765, n * t).reshape(n, t).T  # R fills a matrix column by column
    m = m / np.sqrt(252) / m.std(axis=0, ddof=1)
    m = m - m.mean(axis=0)
    p_bo, r_slope, r_ar2, p_loss = _r_pbo_summary(m, s)
    assert p_bo == 1.0 and p_loss == 1.0
    # the package keeps the slope to 5 significant digits and ar^2 to 2; summary() prints the
    # vector with 6 decimals
    assert round(float(f"{r_slope:.5g}"), 6) == slope
    assert round(float(f"{r_ar2:.2g}"), 6) == ar2


def test_pbo_reproduces_the_r_pbo_unit_test() -> None:
    # The R package pbo's own test: set.seed(852), 40 trials x 200 periods of rnorm filled by
    # row, S = 4 (6 splits); it expects phi and the share below the threshold 0 in (0.49, 0.51),
    # the slope in (0.19, 0.20) and the adjusted R^2 in (-0.24, -0.22).
    m = r_rnorm(852, 40 * 200).reshape(200, 40)  # byrow=TRUE
    p_bo, r_slope, r_ar2, p_loss = _r_pbo_summary(m, 4)
    assert p_bo == 0.5 and p_loss == 0.5
    assert 0.19 < r_slope < 0.20 and -0.24 < r_ar2 < -0.22
