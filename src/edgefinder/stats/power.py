"""Statistical power of a one-sample mean test: what a sample of a given size can detect at all.

A test that finds nothing proves nothing unless it could have found something. For ``n``
observations with standard deviation ``sd``, :func:`minimum_detectable_mean` is the smallest true
mean that a one-sided one-sample t-test at level ``alpha`` detects with probability ``power``
(statsmodels' :class:`~statsmodels.stats.power.TTestPower`, solved for the effect size and
multiplied by ``sd``). Units are those of the data (e.g. dollars per trade).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from edgefinder.stats._common import as_float_array

__all__ = ["PowerResult", "minimum_detectable_mean", "power_of_sample"]

#: Below this many observations no conclusion is drawn either way (the t approximation and the
#: standard deviation itself are too unreliable to say what was or was not detectable).
MIN_CONCLUSIVE_N = 30


def minimum_detectable_mean(
    n: int, sd: float, alpha: float = 0.05, power: float = 0.8, alternative: str = "larger"
) -> float:
    """Smallest true mean a one-sample t-test on ``n`` observations of spread ``sd`` detects with
    probability ``power`` at one-sided level ``alpha`` (``alternative="larger"``; "two-sided" too).
    NaN for n < 2 or sd not positive."""
    if n < 2 or not (sd > 0 and math.isfinite(sd)):
        return float("nan")
    return _detectable_effect(int(n), float(alpha), float(power), alternative) * float(sd)


@functools.lru_cache(maxsize=256)
def _detectable_effect(n: int, alpha: float, power: float, alternative: str) -> float:
    # statsmodels solves for the effect by root finding (about a millisecond); the same sample
    # size recurs across a run's reports (Phase 4's out-of-sample block is Phase 5's test sample)
    from statsmodels.stats.power import TTestPower

    d = TTestPower().solve_power(
        effect_size=None, nobs=n, alpha=alpha, power=power, alternative=alternative
    )
    return float(np.asarray(d).item())


@dataclass(frozen=True)
class PowerResult:
    """Power statement of one sample: ``n`` observations, sample ``sd`` (ddof 1), ``minimum_detectable``
    mean at ``power`` and one-sided ``alpha`` (NaN when n < 2), and whether the sample is large enough
    (``n >= MIN_CONCLUSIVE_N``) to support any conclusion (``conclusive``)."""

    n: int
    sd: float
    alpha: float
    power: float
    minimum_detectable: float
    conclusive: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "n": self.n,
            "sd": self.sd,
            "alpha": self.alpha,
            "power": self.power,
            "minimum_detectable": self.minimum_detectable,
            "conclusive": self.conclusive,
        }


def power_of_sample(
    values: object, alpha: float = 0.05, power: float = 0.8, min_n: int = MIN_CONCLUSIVE_N
) -> PowerResult:
    """:class:`PowerResult` for the observations ``values`` (e.g. per-trade PnL in dollars)."""
    x = as_float_array(values, "values")
    x = x[np.isfinite(x)]
    n = int(x.size)
    sd = float(x.std(ddof=1)) if n > 1 else float("nan")
    return PowerResult(
        n=n,
        sd=sd,
        alpha=float(alpha),
        power=float(power),
        minimum_detectable=minimum_detectable_mean(n, sd, alpha, power),
        conclusive=n >= int(min_n),
    )
