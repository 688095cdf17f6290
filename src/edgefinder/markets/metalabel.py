"""Meta-labeling on the context at entry: which candidate trades earn net of costs, and where.

The primary model is the playbook (templates, their direction and exits). The secondary model
(López de Prado, *Advances in Financial Machine Learning*, ch. 3) learns from the **in-sample**
forward-pass trades only — the sessions Phases 2–3 learned from — whether a trade earns money net
of costs (label ``pnl > 0``), from what was known at its entry: the trade's direction, pattern type
and depth, and every coarser timeframe's state (:mod:`edgefinder.markets.context`), expressed
relative to the trade (z, velocity and momentum times the side). The model is scikit-learn's
``HistGradientBoostingClassifier`` (seeded; it takes the NaN of a timeframe without a closed bar).

**Purged, embargoed cross-validation.** The in-sample sessions are cut into :data:`FOLDS`
contiguous blocks; each block is predicted by a model fit on the other sessions minus the
:data:`EMBARGO_SESSIONS` sessions right after the block (trades never outlive their session, so
no training trade overlaps a test trade's holding period, and the embargo keeps the volatility
clusters that straddle a block's end out of its training set). scikit-learn has no purged
splitter, so this one is written here; the folds are whole sessions, which is all it needs.

**The gate.** On the out-of-fold probabilities, :data:`QUANTILES` thresholds are tried (all on
in-sample sessions); the one whose gated trades have the best mean PnL (at least
:data:`MIN_GATED` trades) is kept if that mean is positive, else the model is not used. The final
model is refit on every in-sample trade. Phase 5 then judges the gated **out-of-sample** trades as
one family per pattern type and entry timeframe (``"ROCHE_SNAP 15s | meta-label"``), tested with
the other families under the same BH correction and deflated Sharpe (the trial count includes
them); nothing out-of-sample chose the model or its threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgefinder.markets._io import atomic_pickle, read_pickle
from edgefinder.markets.context import context_splits

__all__ = [
    "EMBARGO_SESSIONS",
    "FOLDS",
    "META_TAG",
    "MetaModel",
    "fit_meta_model",
    "load_meta_model",
    "meta_family_key",
    "meta_features",
]

FOLDS = 5
EMBARGO_SESSIONS = 1
QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9)
MIN_GATED = 100
MIN_TRADES = 300
META_TAG = "meta-label"
META_FILE = "meta_model.pkl"


def meta_family_key(pattern_type: str, timeframe: str) -> str:
    """The family of a pattern type's gated trades on one entry timeframe (both directions)."""
    return f"{pattern_type} {timeframe} | {META_TAG}"


def meta_features(
    cols: Mapping[str, Any], names: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """(matrix, column names) of the secondary model's inputs from trade or candidate columns.

    ``cols`` needs ``side`` (+1/-1), ``depth``, ``is_roche`` (or ``pattern_type``) and the
    ``ctx_*`` columns; signed context values are multiplied by the side so "stretched the way the
    trade bets" looks the same for longs and shorts. ``names``: the model's columns (a timeframe
    missing from ``cols`` becomes NaN).
    """
    side = np.asarray(cols["side"], dtype=np.float64)
    if "is_roche" in cols:
        roche = np.asarray(cols["is_roche"], dtype=np.float64)
    else:
        roche = (np.asarray(cols["pattern_type"]) == "ROCHE_SNAP").astype(np.float64)
    feats: dict[str, np.ndarray] = {
        "side": side,
        "is_roche": roche,
        "depth": np.asarray(cols["depth"], dtype=np.float64),
    }
    for c in sorted(k for k in cols if str(k).startswith("ctx_")):
        v = np.asarray(cols[c], dtype=np.float64)
        signed = c.endswith(("_z", "_velocity", "_momentum"))
        feats[c] = v * side if signed else v
    names = names or list(feats)
    n = side.size
    x = np.column_stack([feats.get(k, np.full(n, np.nan)) for k in names]) if names else None
    return (x if x is not None else np.zeros((n, 0))), names


@dataclass
class MetaModel:
    """A fitted secondary model and how it was chosen (all on in-sample sessions).

    ``threshold``: probability at or above which a candidate trades; ``cv``: the cross-validation
    record (folds, embargo, AUC, thresholds tried with their gated trades and mean PnL).
    """

    model: Any
    names: list[str]
    threshold: float
    cv: dict[str, Any] = field(default_factory=dict)

    def probability(self, cols: Mapping[str, Any]) -> np.ndarray:
        """P(trade earns net of costs) of each row of ``cols`` (see :func:`meta_features`)."""
        from threadpoolctl import threadpool_limits

        x, _ = meta_features(cols, self.names)
        if x.shape[0] == 0:
            return np.zeros(0)
        with threadpool_limits(1):
            return self.model.predict_proba(x)[:, 1]

    def gate(self, cols: Mapping[str, Any]) -> np.ndarray:
        """Whether each row passes the gate."""
        return self.probability(cols) >= self.threshold

    def save(self, ckpt: Path) -> Path:
        return atomic_pickle(self, Path(ckpt) / META_FILE)


def load_meta_model(ckpt: Path, error: type[Exception]) -> MetaModel | None:
    """The meta model Phase 5 saved in ``ckpt`` (None when it fitted none); ``error`` for a bad file."""
    path = Path(ckpt) / META_FILE
    return read_pickle(path, error, "no meta model") if path.exists() else None


def _classifier(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=60,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=60,
        l2_regularization=1.0,
        random_state=seed,
    )


def purged_session_folds(
    sessions: np.ndarray, folds: int = FOLDS, embargo: int = EMBARGO_SESSIONS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row positions: contiguous session blocks, each embargoed ``embargo`` sessions."""
    labels = np.unique(sessions)
    code = np.searchsorted(labels, sessions)
    blocks = np.array_split(np.arange(labels.size), folds)
    out = []
    for b in blocks:
        if not b.size:
            continue
        lo, hi = int(b[0]), int(b[-1])
        test = (code >= lo) & (code <= hi)
        train = ~test & ~((code > hi) & (code <= hi + embargo))
        out.append((np.flatnonzero(train), np.flatnonzero(test)))
    return out


def fit_meta_model(trades: pd.DataFrame, seed: int = 0) -> MetaModel | None:
    """Fit the secondary model on ``trades`` (the in-sample ones; module doc). None when there are
    too few trades, no context columns, one class only, or no threshold earns out of fold.

    Runs on one thread: a few thousand rows are far too few for OpenMP's threads to pay for
    themselves, and on a shared machine they cost several times the CPU.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _fit(trades, seed)


def _fit(trades: pd.DataFrame, seed: int) -> MetaModel | None:
    if len(trades) < MIN_TRADES or not any(c.startswith("ctx_") for c in trades.columns):
        return None
    cols = {c: trades[c].to_numpy() for c in trades.columns}
    x, names = meta_features(cols)
    y = trades["pnl"].to_numpy(np.float64) > 0
    pnl = trades["pnl"].to_numpy(np.float64)
    if y.all() or not y.any():
        return None
    from sklearn.metrics import roc_auc_score

    oof = np.full(y.size, np.nan)
    for train, test in purged_session_folds(trades["session"].astype(str).to_numpy()):
        if np.unique(y[train]).size < 2:
            continue
        oof[test] = _classifier(seed).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    ok = ~np.isnan(oof)
    if ok.sum() < MIN_TRADES or np.unique(y[ok]).size < 2:
        return None
    tried = []
    for q in QUANTILES:
        thr = float(np.quantile(oof[ok], q))
        sel = ok & (oof >= thr)
        tried.append(
            {
                "quantile": q,
                "threshold": thr,
                "trades": int(sel.sum()),
                "mean_pnl": float(pnl[sel].mean()),
            }
        )
    usable = [t for t in tried if t["trades"] >= MIN_GATED]
    best = max(usable, key=lambda t: t["mean_pnl"]) if usable else None
    cv = {
        "folds": FOLDS,
        "embargo_sessions": EMBARGO_SESSIONS,
        "trades": int(y.size),
        "auc": float(roc_auc_score(y[ok], oof[ok])),
        "base_mean_pnl": float(pnl[ok].mean()),
        "thresholds_tried": tried,
        "chosen": best,
    }
    if best is None or best["mean_pnl"] <= 0:
        return None
    model = _classifier(seed).fit(x, y)
    return MetaModel(model=model, names=names, threshold=best["threshold"], cv=cv)


def context_profile(gated: pd.DataFrame, rest: pd.DataFrame, top: int = 3) -> list[dict[str, Any]]:
    """The context states most over-represented in ``gated`` against ``rest``: what the gate selects
    (state, share among gated, share among the rest), largest difference first."""
    if gated.empty:
        return []
    a, b = context_splits(gated), context_splits(rest) if len(rest) else {}
    rows: list[dict[str, Any]] = [
        {
            "state": k,
            "gated_share": float(np.mean(a[k])),
            "rest_share": float(np.mean(b[k])) if k in b and len(b[k]) else float("nan"),
        }
        for k in a
    ]
    rows.sort(key=lambda r: -(r["gated_share"] - np.nan_to_num(r["rest_share"])))
    return rows[:top]
