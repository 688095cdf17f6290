"""The exposure-aware round-level effect of each intent: opening-phase counts, within a team's match.

**Why per-round counts mislead.** Every living player emits signals, so a team's per-round count of
any intent grows with its player-seconds alive, and a team that wins the round's fights stays alive
longer: the count is partly a *consequence* of winning. Some intents also follow the state (players
retreat once their team is down), so even their rate per alive player-second is shaped by the
fights already lost. Comparing a team with itself inside a match (``aipw_within``) removes team
strength, not this.

**The question this design answers.** "When a team shows one more signal of this intent in the
opening phase of a round — before the round's first kill, while all ten players live — does it win
the round more often than in its other rounds of the same match with an opening of the same
length?" Before the first kill nobody is dead, so the outcome cannot have inflated the count yet.

**Estimator** (:func:`edgefinder.stats.causal.within_linear_effect`): a linear probability model of
``round_win`` on ``{intent}_open_count``, demeaned inside each team-match (fixed effects), adjusted
for the pre-round covariates and the opening's exposure (``open_seconds``, its logarithm, and both
times ``side``: a longer opening holds more signals of every intent, non-linearly, and differently
per side), cluster-robust by match (t on G - 1 df). The effect is in probability points per
opening signal. A feature that cannot be estimated (no variation inside any team-match, too few
rows) gives a row with ``details.reason`` "not estimable: …", never an error.

**Limits.** The opening's length is itself measured after the round started: if an intent made
the first kill come sooner or later, adjusting for the length would hide part of its effect (it
would bias towards zero, never invent one). Signals after the first kill are not used by this
design at all; their value is the action value's job (win probability added per action).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from edgefinder.esports.aggregate import OPEN_COUNT_FEATURES
from edgefinder.esports.resultrows import (
    MATCH_CODE,
    OPENING_METHOD,
    UNIT_COL,
    JobParams,
    _row,
    _sign,
)
from edgefinder.stats.causal import within_linear_effect

#: Exposure terms of the opening (computed from ``open_seconds`` and ``side``).
EXPOSURE_TERMS: tuple[str, ...] = (
    "open_seconds",
    "log_open_seconds",
    "side_x_open_seconds",
    "side_x_log_open_seconds",
)
QUESTION = (
    "does one more signal of this intent before the round's first kill win the round more often, "
    "for the same team in the same match and an opening of the same length?"
)


def exposure_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the exposure terms of :data:`EXPOSURE_TERMS` (seconds; log of 1 + seconds)."""
    seconds = pd.to_numeric(df["open_seconds"], errors="coerce").clip(lower=0.0)
    log_s = np.log1p(seconds)
    side = pd.to_numeric(df["side"], errors="coerce").fillna(0.0)
    return df.assign(
        open_seconds=seconds,
        log_open_seconds=log_s,
        side_x_open_seconds=side * seconds,
        side_x_log_open_seconds=side * log_s,
    )


def opening_rows(
    df: pd.DataFrame, covariates: list[str], params: JobParams, outcome: str = "round_win"
) -> list[dict[str, Any]]:
    """One ``opening_within`` result row per intent's opening-phase count (see the module docstring).

    ``df`` is the run's feature frame with its ``MATCH_CODE`` column; ``covariates`` the pre-round
    adjustment set of the outcome's population.
    """
    if "open_seconds" not in df.columns or not df["open_seconds"].notna().any():
        return []
    frame = exposure_frame(df)
    frame[UNIT_COL] = frame.groupby(["match_id", "team_id"], sort=False).ngroup().to_numpy()
    covs = [*covariates, *EXPOSURE_TERMS]
    rows = []
    for feat in OPEN_COUNT_FEATURES:
        if feat not in frame.columns:
            continue
        res = within_linear_effect(
            frame,
            feat,
            outcome,
            covs,
            unit_col=UNIT_COL,
            cluster_col=MATCH_CODE,
            min_clusters=params.min_clusters,
            min_group_n=params.min_group_n,
        )
        details = {
            "reason": res.reason,
            "question": QUESTION,
            "estimand": "change in P(round win) per opening-phase signal, probability points",
            "design": "within team-match linear probability model (fixed effects)",
            "unit": "team in a match",
            "cluster": "match",
            "n_clusters": res.n_clusters,
            "n_units": res.n_units,
            "adjusted_for": list(res.covariates),
            "not_adjusted_for": list(res.dropped),
            "se": res.se,
            "exposure": "open_seconds (round start to the first kill, or the round's end)",
            "inference": "cluster-robust by match (t on G - 1 df)",
        }
        ok = res.reason is None
        rows.append(
            _row(
                feat,
                outcome,
                OPENING_METHOD,
                res.n,
                res.estimate / res.se if ok else None,
                res.estimate,
                res.ci,
                res.p_value,
                res.exploratory,
                _sign(res.estimate) if ok else "none",
                details,
            )
        )
    return rows
