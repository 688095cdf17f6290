"""The meta-label gate: purged, embargoed session folds; a context-only edge planted in a trade table is
found and earns on trades the model never saw; noise gives no model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from edgefinder.markets.metalabel import (
    EMBARGO_SESSIONS,
    FOLDS,
    fit_meta_model,
    purged_session_folds,
)


def test_folds_are_whole_sessions_purged_and_embargoed() -> None:
    sessions = np.repeat(np.array([f"2024-02-{d:02d}" for d in range(1, 26)]), 7)
    folds = purged_session_folds(sessions)
    assert len(folds) == FOLDS
    tested = np.concatenate([t for _, t in folds])
    assert np.array_equal(np.sort(tested), np.arange(sessions.size))  # each trade tested once
    labels = np.unique(sessions)
    for train, test in folds:
        ts = set(sessions[test])
        assert not ts & set(sessions[train])
        last = max(np.searchsorted(labels, list(ts)))
        embargoed = set(labels[last + 1 : last + 1 + EMBARGO_SESSIONS])
        assert not embargoed & set(sessions[train])


def _trades(seed: int, n: int, edge: float) -> pd.DataFrame:
    """Trades over 60 sessions losing $4 on average; a trade earns ``edge`` dollars more when the hour's last pattern fired
    at most 2 bars ago (about a fifth of them), everything else is noise around the costs."""
    rng = np.random.default_rng(seed)
    age = rng.exponential(6.0, n)
    side = rng.choice([-1, 1], n)
    df = pd.DataFrame(
        {
            "session": np.sort(rng.integers(0, 60, n)).astype(str),
            "side": side,
            "depth": rng.integers(0, 4, n),
            "pattern_type": "ROCHE_SNAP",
            "ctx_1h_age": age,
            "ctx_1h_z": rng.normal(0, 1.5, n),
            "ctx_1h_stretch": rng.integers(-1, 2, n),
            "ctx_15m_age": rng.exponential(6.0, n),
            "ctx_vol_regime": rng.lognormal(0, 0.4, n),
        }
    )
    df["pnl"] = rng.normal(-4.0, 10.0, n) + edge * (age <= 2.0)
    return df


def test_a_planted_context_is_found_and_earns_out_of_sample() -> None:
    for seed in range(3):
        model = fit_meta_model(_trades(seed, 5000, 8.0), seed)
        assert model is not None and model.cv["auc"] > 0.55
        fresh = _trades(100 + seed, 4000, 8.0)
        gate = model.gate({c: fresh[c].to_numpy() for c in fresh.columns})
        assert fresh["pnl"][gate].mean() > max(0.0, fresh["pnl"][~gate].mean() + 3.0)
        assert (fresh["ctx_1h_age"][gate] <= 2.0).mean() > 0.6


def test_noise_gives_no_model() -> None:
    none = sum(fit_meta_model(_trades(seed, 5000, 0.0), seed) is None for seed in range(5))
    assert none >= 4
