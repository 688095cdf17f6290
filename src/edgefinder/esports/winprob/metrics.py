"""Probability-forecast metrics and their match-bootstrap confidence intervals.

Log loss, Brier score and AUC are scikit-learn's; the expected calibration error (ECE) has no
maintained implementation there (``calibration_curve`` gives the bins but not their weights), so it
is the textbook sum over ``n_bins`` equal-width bins of |mean outcome - mean forecast| weighted by
the bin's share of rows. The CIs resample **whole matches** (rows of one round, and rounds of one
match, are dependent): each resample weights every row by how often its match was drawn, so every
metric is a weighted one, computed in closed form from per-match sums (AUC from one sort).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

METRICS: tuple[str, ...] = ("log_loss", "brier", "auc", "ece")
#: Probabilities are clipped to [EPS, 1 - EPS] for the log loss (sklearn's own clip).
EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    """One metric on held-out rows: ``estimate`` and its percentile match-bootstrap CI."""

    estimate: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ForecastMetrics:
    """``log_loss`` (nats per row), ``brier`` (mean squared error), ``auc``, ``ece`` (probability
    points), each with a CI; ``n`` rows, ``n_matches`` clusters, ``n_boot`` resamples, ``level``."""

    log_loss: Metric
    brier: Metric
    auc: Metric
    ece: Metric
    n: int
    n_matches: int
    n_boot: int
    level: float

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {m: getattr(self, m).as_dict() for m in METRICS}
        out.update(n=self.n, n_matches=self.n_matches, n_boot=self.n_boot, level=self.level)
        return out


def expected_calibration_error(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10, weights: np.ndarray | None = None
) -> float:
    """ECE over ``n_bins`` equal-width bins of ``p`` in [0, 1] (probability points)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64)
    b = _bins(p, n_bins)
    wsum = np.bincount(b, weights=w, minlength=n_bins)
    gap = np.abs(
        np.bincount(b, weights=w * y, minlength=n_bins)
        - np.bincount(b, weights=w * p, minlength=n_bins)
    )
    return float(gap.sum() / wsum.sum())


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    # bin i holds [i/n, (i+1)/n); p = 1 goes to the last bin
    return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)


def point_metrics(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, float]:
    """The four metrics without CIs (scikit-learn's log loss, Brier and AUC; ECE as above)."""
    y = np.asarray(y, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return {
        "log_loss": float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "auc": auc,
        "ece": expected_calibration_error(y, p, n_bins),
    }


def _weighted_auc(order_groups: np.ndarray, n_groups: int, pos: np.ndarray, w: np.ndarray) -> float:
    """AUC with row weights: P(score of a positive > a negative) + 1/2 P(tie), weights as counts."""
    wp = np.bincount(order_groups, weights=w * pos, minlength=n_groups)
    wn = np.bincount(order_groups, weights=w * (1.0 - pos), minlength=n_groups)
    below = np.cumsum(wn) - wn
    num = float(np.sum(wp * (below + 0.5 * wn)))
    den = float(wp.sum() * wn.sum())
    return num / den if den > 0 else float("nan")


def bootstrap_metrics(
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int = 500,
    level: float = 0.95,
    n_bins: int = 10,
    seed: int = 0,
) -> ForecastMetrics:
    """The four metrics of forecasts ``p`` for outcomes ``y`` (0/1) with percentile CIs from
    ``n_boot`` resamples of the clusters ``groups`` (match ids), drawn with replacement."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    codes, _ = _codes(groups)
    n_g = int(codes.max()) + 1 if len(codes) else 0
    point = point_metrics(y.astype(np.int64), p, n_bins)
    pc = np.clip(p, EPS, 1 - EPS)
    ll_row = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    br_row = (y - p) ** 2
    b = _bins(p, n_bins)
    # per-match sums: a resample's metric is a ratio of count-weighted sums
    cnt = np.bincount(codes, minlength=n_g).astype(np.float64)
    ll_g = np.bincount(codes, weights=ll_row, minlength=n_g)
    br_g = np.bincount(codes, weights=br_row, minlength=n_g)
    cell = codes * n_bins + b
    bin_n = np.bincount(cell, minlength=n_g * n_bins).reshape(n_g, n_bins)
    bin_y = np.bincount(cell, weights=y, minlength=n_g * n_bins).reshape(n_g, n_bins)
    bin_p = np.bincount(cell, weights=p, minlength=n_g * n_bins).reshape(n_g, n_bins)
    uniq, tie_group = np.unique(p, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_g, np.full(n_g, 1.0 / n_g), size=n_boot).astype(np.float64)
    tot = draws @ cnt
    boot = {
        "log_loss": (draws @ ll_g) / tot,
        "brier": (draws @ br_g) / tot,
        "ece": np.abs(draws @ bin_y - draws @ bin_p).sum(axis=1) / (draws @ bin_n).sum(axis=1),
        "auc": np.array(
            [_weighted_auc(tie_group, len(uniq), y, d[codes]) for d in draws], dtype=np.float64
        ),
    }
    a = (1.0 - level) / 2.0
    out = {
        m: Metric(
            point[m],
            float(np.nanquantile(boot[m], a)),
            float(np.nanquantile(boot[m], 1.0 - a)),
        )
        for m in METRICS
    }
    return ForecastMetrics(**out, n=len(y), n_matches=n_g, n_boot=n_boot, level=level)


def _codes(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    return codes.astype(np.int64), uniq
