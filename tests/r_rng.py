"""R's default normal generator, so an example published with R code can be rebuilt exactly.

R (since 1.7.0) draws ``rnorm`` from the Mersenne-Twister with normals by inversion:
``set.seed(s)`` scrambles ``s`` with 50 steps of the congruential generator ``69069 * s + 1``
(32-bit), fills the twister's 624 words with the next steps and starts at position 624; every
normal takes two uniforms, ``u = (floor(2^27 * u1) + u2) / 2^27``, and returns ``qnorm(u)``.
numpy's ``MT19937`` takes that state and yields the same 32-bit words; scipy's ``ndtri`` is the
normal quantile. No maintained Python package reproduces R's streams without R itself, so it is
written here, for the tests only.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

_TWO_POW_27 = 134217728.0
_TO_UNIT = 2.3283064365386963e-10  # 2^-32, R's MT_genrand scale


def r_rnorm(seed: int, n: int) -> np.ndarray:
    """``set.seed(seed); rnorm(n)`` as R computes it (default kinds), float64."""
    s = np.uint32(seed % 2**32)
    words = np.empty(625, np.uint32)
    with np.errstate(over="ignore"):  # the congruential steps wrap at 2^32 by design
        for _ in range(50):
            s = np.uint32(69069) * s + np.uint32(1)
        for j in range(625):
            s = np.uint32(69069) * s + np.uint32(1)
            words[j] = s
    bits = np.random.MT19937()
    # words[0] is R's position slot, reset to 624 (the table is regenerated before first use)
    bits.state = {"bit_generator": "MT19937", "state": {"key": words[1:], "pos": 624}}
    u = bits.random_raw(2 * n).astype(np.float64) * _TO_UNIT
    u[u <= 0.0] = 0.5 / (2**32 - 1)  # R's fixup: a uniform is never exactly 0
    return ndtri((np.floor(_TWO_POW_27 * u[0::2]) + u[1::2]) / _TWO_POW_27)
