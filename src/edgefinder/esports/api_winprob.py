"""Routes of the round win-probability model and the action values (win probability added per
action), under ``/api/v1/analytics``. Response vocabulary as everywhere in the API: a list answer
holds ``results``; a point estimate is ``estimate`` with ``ci_low``/``ci_high``."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from edgefinder.esports.api_deps import app_state, aware
from edgefinder.esports.queries import latest_succeeded_run, run_action_values
from edgefinder.esports.web import ErrorOut
from edgefinder.esports.winprob.metrics import METRICS
from edgefinder.esports.winprob.store import latest_models

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no model yet"},
    422: {"model": ErrorOut, "description": "invalid parameters"},
    503: {"model": ErrorOut, "description": "database unreachable: try again later"},
}
Game = Literal["valorant", "cs", "other"]


class Interval(BaseModel):
    low: float | None
    high: float | None


class ForecastMetricsOut(BaseModel):
    """Held-out metrics: the four figures, their match-bootstrap CIs and the sample they come from."""

    log_loss: float | None = Field(description="mean negative log likelihood per state (nats)")
    brier: float | None = Field(description="mean squared error of the probability")
    auc: float | None
    ece: float | None = Field(description="expected calibration error, 10 equal-width bins")
    ci: dict[str, Interval] = Field(description="per metric, the match-bootstrap CI")
    n: int = Field(description="held-out states")
    n_matches: int = Field(description="held-out matches (the bootstrap's clusters)")
    n_boot: int
    level: float


class WinProbModelOut(BaseModel):
    model_version: str
    game: str
    created_at: datetime | None
    n_rounds: int
    n_matches: int
    metrics: ForecastMetricsOut
    baseline_metrics: ForecastMetricsOut = Field(
        description="logistic regression on the equipment and alive differences, same held-out rows"
    )
    features: list[str]
    reliability: list[dict[str, float]] = Field(
        description="held-out reliability diagram: mean forecast, observed win share, n per bin"
    )
    games_available: list[str]


class ActionValueOut(BaseModel):
    intent: str
    stratum: str = Field(
        description="all, phase=opening|later (opening: before the round's first kill, the "
        "verdict's stratum), side=attack|defense, map=…, game=…"
    )
    game: str
    estimate: float | None = Field(description="mean win probability added, probability points")
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    q_value: float | None = Field(description="Benjamini-Hochberg q within the stratum family")
    n: int = Field(description="actions")
    n_matches: int


class ActionValueList(BaseModel):
    run_id: str | None
    run_finished_at: datetime | None
    count: int
    message: str | None = None
    results: list[ActionValueOut]


def _num(v: Any) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _metrics_out(m: dict[str, Any]) -> ForecastMetricsOut:
    return ForecastMetricsOut(
        **{k: _num(m[k]["estimate"]) for k in METRICS},
        ci={k: Interval(low=_num(m[k]["ci_low"]), high=_num(m[k]["ci_high"])) for k in METRICS},
        n=m["n"],
        n_matches=m["n_matches"],
        n_boot=m["n_boot"],
        level=m["level"],
    )


@router.get(
    "/win-probability/model",
    response_model=WinProbModelOut,
    responses={k: _ERRORS[k] for k in (404, 422, 503)},
    summary="The latest round win-probability model: held-out metrics beside the baseline's",
)
def win_probability_model(
    request: Request,
    game: Game | None = Query(None, description="valorant, cs or other (default: the newest)"),
) -> WinProbModelOut:
    models = latest_models(app_state(request).engine)
    if game is not None and game not in models:
        raise HTTPException(404, f"no win-probability model for {game!r} yet")
    if not models:
        raise HTTPException(
            404, "no win-probability model yet: run `edgefinder esports winprob fit` or an analysis"
        )
    m = models[game] if game is not None else max(models.values(), key=lambda x: x.created_at)
    d = m.details or {}
    return WinProbModelOut(
        model_version=m.model_version,
        game=m.game,
        created_at=aware(m.created_at),
        n_rounds=m.n_rounds,
        n_matches=m.n_matches,
        metrics=_metrics_out(m.metrics),
        baseline_metrics=_metrics_out(m.baseline_metrics),
        features=list(d.get("features") or []),
        reliability=list(d.get("reliability") or []),
        games_available=sorted(models),
    )


@router.get(
    "/action-values",
    response_model=ActionValueList,
    responses={k: _ERRORS[k] for k in (422, 503)},
    summary="Win probability added per action, per intent, of the latest succeeded run",
)
def action_values(
    request: Request,
    stratum: str = Query(
        "all",
        min_length=1,
        max_length=128,
        description="all (per intent), phase=opening, side=attack, map=Haven…, or * for every stratum",
    ),
) -> ActionValueList:
    with app_state(request).engine.connect() as conn:
        run = latest_succeeded_run(conn)
        if run is None:
            return ActionValueList(
                run_id=None,
                run_finished_at=None,
                count=0,
                message="no analysis run yet: POST /api/v1/analytics/run-analysis",
                results=[],
            )
        df = run_action_values(conn, run.run_id)
    if stratum != "*":
        df = df[df["stratum"] == stratum]
    rows = [
        ActionValueOut(
            intent=str(r["intent"]),
            stratum=str(r["stratum"]),
            game=str(r["game"]),
            n=int(r["n"]),
            n_matches=int(r["n_matches"]),
            estimate=_num(r["estimate"]),
            ci_low=_num(r["ci_low"]),
            ci_high=_num(r["ci_high"]),
            p_value=_num(r["p_value"]),
            q_value=_num(r["q_value"]),
        )
        for r in df.to_dict(orient="records")
    ]
    return ActionValueList(
        run_id=run.run_id,
        run_finished_at=aware(run.finished_at),
        count=len(rows),
        message=None if rows else "this run has no action values (no model could be fit)",
        results=rows,
    )
