"""Fit and evaluate the round win-probability model of one game.

Splits are by match and by time: matches are ranked by start time; the last ``test_frac`` of them
are held out and never touched until the metrics are computed. On the earlier matches,
scikit-learn's ``CalibratedClassifierCV`` fits ``HistGradientBoostingClassifier`` (P(attackers win
| state)) on ``n_folds - 1`` folds of whole matches and Platt-scales it on the remaining fold, for
each fold; the model averages the calibrated boosters. Platt (sigmoid) rather than isotonic: with a
few dozen matches isotonic steps give held-out rows probabilities of exactly 0 or 1 and blow up the
log loss (measured on the 42 Valorant maps: 0.51-0.56 against 0.48). The baseline is a logistic
regression on the equipment difference and the alive difference, fit on the same matches. Both are
scored on the held-out matches with the same metrics and match-bootstrap CIs; the stored model is
the one that was scored.

The model's inputs (:data:`MODEL_FEATURES`) are the part of the state that improved held-out log
loss on the real maps: time into the round, alive players per side, the equipment difference
(dollars, or buy tiers when the source has no money: :func:`baseline_equipment`), the plant and
the time since it. The bank, buy tiers beside money, and the score are in the state frame too but
made held-out log loss worse on 42 maps (0.489 with all of them, 0.477 without): a few hundred
rounds cannot pay for their splits. ``WinProbParams.features`` changes the set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from edgefinder.errors import EdgefinderError
from edgefinder.esports.winprob.cells import predict_by_cell, split_points
from edgefinder.esports.winprob.metrics import ForecastMetrics, bootstrap_metrics
from edgefinder.esports.winprob.state import (
    SNAPSHOT_GRID_S,
    STATE_FEATURES,
    RoundTimelines,
    snapshots,
)

#: Fewest matches a game needs for a model (train, calibrate and hold out whole matches).
MIN_MATCHES = 4
#: The alive counts can only help the side that has more players: monotone constraints.
_MONOTONE = {"att_alive": 1, "def_alive": -1, "alive_diff": 1}
#: The model's inputs; ``equip`` stands for the game's equipment column (:func:`baseline_equipment`).
MODEL_FEATURES: tuple[str, ...] = (
    "time_in_round",
    "att_alive",
    "def_alive",
    "alive_diff",
    "equip",
    "planted",
    "since_plant",
)


class NotEnoughData(EdgefinderError):
    """Too few matches or rounds of one outcome to fit and evaluate a model."""


@dataclass(frozen=True)
class WinProbParams:
    """``seed``: every random step; ``test_frac``: share of matches held out (the latest);
    ``n_folds``: calibration folds (whole matches); ``grid_s``: seconds between regular snapshots;
    ``n_boot``: bootstrap resamples of the CIs; ``features``: the model's inputs; booster knobs
    ``max_iter``, ``learning_rate``, ``max_leaf_nodes``, ``min_samples_leaf``,
    ``l2_regularization``."""

    seed: int = 0
    test_frac: float = 0.3
    n_folds: int = 4
    grid_s: float = SNAPSHOT_GRID_S
    n_boot: int = 500
    features: tuple[str, ...] = MODEL_FEATURES
    max_iter: int = 75
    learning_rate: float = 0.1
    max_leaf_nodes: int = 4
    min_samples_leaf: int = 300
    l2_regularization: float = 1.0


@dataclass(frozen=True)
class WinProbModel:
    """A fitted model of one game: ``predict(states)`` -> P(attackers win the round)."""

    game: str
    classifier: CalibratedClassifierCV = field(repr=False)
    features: tuple[str, ...] = STATE_FEATURES

    def predict(self, states: pd.DataFrame) -> np.ndarray:
        """P(attackers win) for each row of ``states`` (the state frame of
        :func:`~edgefinder.esports.winprob.state.state_at`)."""
        if states.empty:
            return np.zeros(0)
        x = states.loc[:, list(self.features)].to_numpy(dtype=np.float64)
        # exact: one prediction per cell of the trees' thresholds (edgefinder.esports.winprob.cells)
        return predict_by_cell(
            lambda rows: self.classifier.predict_proba(rows)[:, 1],
            x,
            split_points(self.classifier, len(self.features)),
        )


@dataclass(frozen=True)
class WinProbFit:
    """A fitted model with its held-out evaluation and the baseline's.

    ``reliability``: the held-out reliability diagram (per bin of the forecast: ``forecast`` mean,
    ``observed`` win share, ``n`` rows); ``baseline_equipment``: the equipment column the baseline
    used (``equip_diff`` in dollars, or ``tier_diff`` when the source has no money).
    """

    model: WinProbModel
    metrics: ForecastMetrics
    baseline_metrics: ForecastMetrics
    n_rounds: int
    n_matches: int
    n_test_matches: int
    n_rows_train: int
    n_rows_test: int
    baseline_equipment: str
    reliability: list[dict[str, float]]
    params: WinProbParams


def _split(rounds: pd.DataFrame, params: WinProbParams) -> tuple[set[str], set[str]]:
    order = (
        rounds[["match_id", "match_order"]]
        .drop_duplicates("match_id")
        .sort_values(["match_order", "match_id"])["match_id"]
        .tolist()
    )
    m = len(order)
    n_test = max(1, round(params.test_frac * m))
    return set(order[: m - n_test]), set(order[m - n_test :])


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Reliability diagram rows: per non-empty equal-width bin the mean forecast, the observed
    share and the row count."""
    b = np.minimum((np.asarray(p) * n_bins).astype(np.int64), n_bins - 1)
    out = []
    for i in range(n_bins):
        sel = b == i
        if sel.any():
            out.append(
                {
                    "bin_low": i / n_bins,
                    "bin_high": (i + 1) / n_bins,
                    "forecast": float(np.mean(p[sel])),
                    "observed": float(np.mean(y[sel])),
                    "n": int(sel.sum()),
                }
            )
    return out


def baseline_equipment(states: pd.DataFrame) -> str:
    """``equip_diff`` when most rows carry money, else ``tier_diff`` (buy tiers only)."""
    return "equip_diff" if states["equip_diff"].notna().mean() >= 0.5 else "tier_diff"


def fit_winprob(tl: RoundTimelines, game: str, params: WinProbParams | None = None) -> WinProbFit:
    """Fit and evaluate the model of ``game`` on its rounds (see the module docstring).

    Raises :class:`NotEnoughData` with fewer than :data:`MIN_MATCHES` matches or when a split
    holds one outcome only.
    """
    params = params or WinProbParams()
    tl = tl.for_game(game)
    n_matches = tl.rounds["match_id"].nunique()
    if n_matches < MIN_MATCHES:
        raise NotEnoughData(
            f"{game}: {n_matches} matches, a win-probability model needs at least {MIN_MATCHES}"
        )
    train, test = _split(tl.rounds, params)
    rows = snapshots(tl, params.grid_s)
    eq = baseline_equipment(rows)
    feats = [eq if f == "equip" else f for f in params.features]
    tr, te = rows[rows["match_id"].isin(train)], rows[rows["match_id"].isin(test)]
    for name, d in (("training", tr), ("held-out", te)):
        if d["att_win"].nunique() < 2:
            raise NotEnoughData(f"{game}: the {name} matches hold rounds of one outcome only")
    booster = HistGradientBoostingClassifier(
        max_iter=params.max_iter,
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization,
        monotonic_cst=[_MONOTONE.get(f, 0) for f in feats],
        early_stopping=False,
        random_state=params.seed,
    )
    x, y_tr = tr[feats].to_numpy(dtype=np.float64), tr["att_win"].to_numpy()
    n_folds = min(params.n_folds, len(train))
    folds = list(GroupKFold(n_folds).split(x, y_tr, tr["match_id"].to_numpy()))
    calibrated = CalibratedClassifierCV(booster, method="sigmoid", cv=folds)
    calibrated.fit(x, y_tr)
    model = WinProbModel(game, calibrated, tuple(feats))

    base = make_pipeline(StandardScaler(), LogisticRegression())
    base.fit(tr[[eq, "alive_diff"]].fillna(0.0).to_numpy(), y_tr)

    y = te["att_win"].to_numpy(dtype=np.int64)
    p_model = model.predict(te)
    p_base = base.predict_proba(te[[eq, "alive_diff"]].fillna(0.0).to_numpy())[:, 1]
    groups = te["match_id"].to_numpy()
    kw = {"n_boot": params.n_boot, "seed": params.seed}
    return WinProbFit(
        model=model,
        metrics=bootstrap_metrics(y, p_model, groups, **kw),
        baseline_metrics=bootstrap_metrics(y, p_base, groups, **kw),
        n_rounds=len(tl.rounds),
        n_matches=n_matches,
        n_test_matches=len(test),
        n_rows_train=len(tr),
        n_rows_test=len(te),
        baseline_equipment=eq,
        reliability=reliability_table(y, p_model),
        params=params,
    )
