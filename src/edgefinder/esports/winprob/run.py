"""Fit every game's model, store it, and value the actions: the step the job and the CLI share."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Engine
from threadpoolctl import threadpool_limits

from edgefinder.esports.winprob.actions import (
    VALUE_FRAME_COLUMNS,
    ActionValueParams,
    per_action_values,
    summarize_values,
)
from edgefinder.esports.winprob.model import NotEnoughData, WinProbFit, WinProbParams, fit_winprob
from edgefinder.esports.winprob.state import load_actions, load_timelines
from edgefinder.esports.winprob.store import save_fit


@dataclass(frozen=True)
class WinProbRun:
    """``fits``: game -> (model_version, fit); ``skipped``: game -> why no model; ``values``: the
    action values (columns :data:`~edgefinder.esports.winprob.actions.VALUE_FRAME_COLUMNS`)."""

    fits: dict[str, tuple[str | None, WinProbFit]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    values: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(VALUE_FRAME_COLUMNS))
    )


def fit_and_value(
    engine: Engine,
    params: WinProbParams | None = None,
    value_params: ActionValueParams | None = None,
    *,
    store: bool = True,
    values: bool = True,
) -> WinProbRun:
    """Fit (and with ``store`` save) one model per game with data, then value every action.

    A game with too little data is skipped with its reason, never an error. One BLAS/OpenMP
    thread: the job already runs its own threads, and busy-waiting pools oversubscribe the cores.
    """
    tl = load_timelines(engine)
    fits: dict[str, tuple[str | None, WinProbFit]] = {}
    skipped: dict[str, str] = {}
    per_action = []
    with threadpool_limits(limits=1):
        actions = load_actions(engine) if values else None
        for game in tl.games:
            try:
                fit = fit_winprob(tl, game, params)
            except NotEnoughData as exc:
                skipped[game] = str(exc)
                continue
            fits[game] = (save_fit(engine, fit) if store else None, fit)
            if actions is not None:
                per_action.append(per_action_values(fit.model, tl, actions, value_params))
    summary = (
        summarize_values(pd.concat(per_action, ignore_index=True), value_params)
        if any(len(p) for p in per_action)
        else pd.DataFrame(columns=list(VALUE_FRAME_COLUMNS))
    )
    return WinProbRun(fits, skipped, summary)
