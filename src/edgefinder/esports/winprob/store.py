"""Versioned win-probability models in the database (``winprob_models``).

Each fit is a new row: ``model_version`` = ``{game}-{k}`` (k counts the game's fits), its held-out
metrics, the baseline's, and the fitted model pickled with joblib. Only this process writes the
pickles and only edgefinder's own database is read back, so unpickling reads nothing foreign.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import joblib
from sqlalchemy import Engine, func, insert, select

from edgefinder.esports.winprob.model import WinProbFit, WinProbModel
from edgefinder.jsonsafe import jsonable
from edgefinder.store.tables import winprob_models


@dataclass(frozen=True)
class StoredModel:
    """A stored model's description; ``model`` is loaded only on request (``with_model=True``)."""

    model_version: str
    game: str
    created_at: datetime
    n_rounds: int
    n_matches: int
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    details: dict[str, Any]
    model: WinProbModel | None = field(default=None, repr=False)


def save_fit(engine: Engine, fit: WinProbFit) -> str:
    """Store ``fit`` as the newest version of its game; returns its ``model_version``."""
    buf = io.BytesIO()
    joblib.dump(fit.model, buf)
    details = {
        "features": list(fit.model.features),
        "baseline_features": [fit.baseline_equipment, "alive_diff"],
        "n_test_matches": fit.n_test_matches,
        "n_rows_train": fit.n_rows_train,
        "n_rows_test": fit.n_rows_test,
        "reliability": fit.reliability,
        "params": {k: getattr(fit.params, k) for k in fit.params.__dataclass_fields__},
    }
    game = fit.model.game
    with engine.begin() as tx:
        k = tx.execute(
            select(func.count()).select_from(winprob_models).where(winprob_models.c.game == game)
        ).scalar_one()
        version = f"{game}-{int(k) + 1}"
        tx.execute(
            insert(winprob_models).values(
                model_version=version,
                game=game,
                n_rounds=fit.n_rounds,
                n_matches=fit.n_matches,
                metrics=jsonable(fit.metrics.as_dict()),
                baseline_metrics=jsonable(fit.baseline_metrics.as_dict()),
                details=jsonable(details),
                model=buf.getvalue(),
            )
        )
    return version


def latest_models(engine: Engine, *, with_model: bool = False) -> dict[str, StoredModel]:
    """The newest stored model of each game (empty when none was fit); ``with_model`` unpickles it."""
    t = winprob_models
    latest: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            # SQLite keeps created_at to the second: within one, the k of "{game}-{k}" orders
            select(*(c for c in t.c if c.name != "model")).order_by(
                t.c.created_at, func.length(t.c.model_version), t.c.model_version
            )
        ).mappings()
        for r in rows:
            latest[r["game"]] = dict(r)
        blobs: dict[str, bytes] = {}
        if with_model and latest:
            versions = [r["model_version"] for r in latest.values()]
            blobs = dict(
                conn.execute(
                    select(t.c.model_version, t.c.model).where(t.c.model_version.in_(versions))
                ).tuples()
            )
    return {
        game: StoredModel(
            **rec,
            model=joblib.load(io.BytesIO(blobs[rec["model_version"]]))
            if rec["model_version"] in blobs
            else None,
        )
        for game, rec in latest.items()
    }
