"""The job's second design: fit the win-probability models, value the actions, and combine both
designs into one verdict per intent (:func:`~edgefinder.esports.verdict.combine_verdicts`).
The verdict reads the opening-phase action values (actions before the round's first kill,
:data:`~edgefinder.esports.winprob.actions.VERDICT_STRATUM`): the signals whose round-level effect
the exposure-aware design estimates. Every phase's values are stored and served.

Kept apart from the job so the job calls one function and stores what it returns. A game without
enough data for a model is skipped with its reason; an unexpected failure of this step leaves the
run's own results intact and the verdicts say "action value: not computed".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, insert

from edgefinder.errors import first_line
from edgefinder.esports.verdict import combine_verdicts
from edgefinder.esports.winprob.actions import (
    VALUE_FRAME_COLUMNS,
    VERDICT_STRATUM,
    ActionValueParams,
    verdict_input,
)
from edgefinder.esports.winprob.model import WinProbParams
from edgefinder.esports.winprob.run import fit_and_value
from edgefinder.jsonsafe import finite_or_none, jsonable
from edgefinder.store.tables import action_values

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesignVerdicts:
    """``values``: action values (every stratum); ``verdicts``: one row per intent; ``models``:
    game -> stored model version; ``skipped``: game -> why no model; ``error``: why the step
    did not run (None when it did)."""

    values: pd.DataFrame
    verdicts: pd.DataFrame
    models: dict[str, str | None] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """What the run's ``summary`` keeps of it (JSON-safe)."""
        return jsonable(
            {
                "winprob_models": self.models,
                "winprob_skipped": self.skipped,
                "action_values_error": self.error,
                "verdicts": self.verdicts.to_dict(orient="records"),
            }
        )


def value_and_combine(
    engine: Engine, results: pd.DataFrame, *, seed: int = 0, alpha: float = 0.05
) -> DesignVerdicts:
    """Fit and store the models, value the actions, and combine the run's ``results`` with them."""
    try:
        run = fit_and_value(
            engine, WinProbParams(seed=seed), ActionValueParams(seed=seed, alpha=alpha)
        )
    except Exception as exc:  # the run's own results must survive a failure here
        log.exception("win probability step failed")
        error = f"{type(exc).__name__}: {first_line(exc)}"
        return DesignVerdicts(
            pd.DataFrame(columns=list(VALUE_FRAME_COLUMNS)),
            combine_verdicts(results, None, alpha=alpha),
            error=error,
        )
    # the opening phase's values: the signals the round-level design counts
    av = verdict_input(run.values, VERDICT_STRATUM) if len(run.values) else None
    return DesignVerdicts(
        run.values,
        combine_verdicts(results, av, alpha=alpha),
        {g: v for g, (v, _) in run.fits.items()},
        run.skipped,
    )


def store_values(tx: Connection, run_id: str, values: pd.DataFrame) -> None:
    """Insert a run's action values (in the caller's transaction)."""
    if values.empty:
        return
    recs = [
        {str(k): (finite_or_none(v) if isinstance(v, float) else v) for k, v in r.items()}
        for r in values.assign(run_id=run_id).to_dict(orient="records")
    ]
    tx.execute(insert(action_values), recs)
