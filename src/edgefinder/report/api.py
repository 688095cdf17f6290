"""The report on the API: ``GET /report`` (the HTML page) and its data under ``/api/v1/report``.

Read-only and open (no token): the page and its data carry only aggregates, the same privacy rules
as the rest of the API. The esports section reads the app's database (the latest succeeded run, or
``?run_id=``; 404 for an id that is not a succeeded run), the futures section the checkpoint
directory of the settings (``EDGEFINDER_CHECKPOINT_DIR``). A damaged checkpoint file answers 500
with its name (a retry cannot help); an unreachable database 503 (:mod:`edgefinder.esports.web`).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field

from edgefinder.esports.web import ErrorOut, Tagged
from edgefinder.jsonsafe import jsonable
from edgefinder.report.build import build_report
from edgefinder.report.esports import RunNotFound, esports_data
from edgefinder.report.futures import futures_data, trade_context

__all__ = ["router"]

router = APIRouter(tags=["report"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no succeeded analysis run with that id"},
    422: {"model": ErrorOut, "description": "invalid parameters"},
    500: {"model": ErrorOut, "description": "a checkpoint file is unreadable (named), or a bug"},
    503: {"model": ErrorOut, "description": "database unreachable: try again later"},
}
_RUN_ID = Query(
    None, min_length=1, max_length=36, description="A succeeded run (default: the latest)"
)


class EsportsReportOut(Tagged):
    """The esports section's data (see edgefinder.report.esports for every field)."""

    available: bool = Field(description="False until a correlation run has succeeded")
    message: str | None
    run: dict[str, Any] | None
    data: dict[str, Any] = Field(description="rows in the database now, dead letters, freshness")
    effects: list[dict[str, Any]] = Field(
        description="forest plot: each intent's effect on each outcome, 95% CI"
    )
    causal: list[dict[str, Any]] = Field(
        description="causal effects with verdicts and refutation checks"
    )
    balance: list[dict[str, Any]] = Field(
        description="standardized mean differences before/after weighting"
    )
    alerts: list[dict[str, Any]]


class FuturesReportOut(Tagged):
    """The futures section's data (see edgefinder.report.futures for every field)."""

    available: bool = Field(
        description="False until a forward pass wrote its report in the checkpoint directory"
    )
    message: str | None
    checkpoint_dir: str
    samples: list[dict[str, Any]] = Field(
        default_factory=list, description="in-sample, out-of-sample, paper trade"
    )
    equity: list[dict[str, Any]] = Field(
        default_factory=list, description="cumulative PnL per session, $ per contract"
    )
    tiers: dict[str, Any] | None = None
    families: list[dict[str, Any]] | None = None
    families_traded: int | None = None
    ancestry: list[dict[str, Any]] | None = None
    regret: dict[str, Any] | None = None
    top_templates: list[dict[str, Any]] = Field(default_factory=list)
    trades: dict[str, Any] | None = Field(
        default=None,
        description="context at entry of the latest out-of-sample and paper trades (all: "
        "/api/v1/report/futures/trades)",
    )
    production: dict[str, Any] | None = None
    config: dict[str, Any] | None = None


def _analytics(request: Request) -> Any:
    return request.app.state.analytics  # the esports API's state: engine and settings


@router.get(
    "/report",
    response_class=HTMLResponse,
    summary="The HTML report of both pipelines (latest results)",
    responses={
        200: {"content": {"text/html": {}}, "description": "a self-contained page"},
        **_ERRORS,
    },
)
def report_page(request: Request, run_id: str | None = _RUN_ID) -> HTMLResponse:
    st = _analytics(request)
    s = st.settings
    try:
        report = build_report(
            st.engine,
            s.effective_database_url,
            s.checkpoint_dir,
            run_id=run_id,
            stale_after_s=s.results_stale_after_s,
        )
    except RunNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return HTMLResponse(report.html)


@router.get(
    "/api/v1/report/esports",
    response_model=EsportsReportOut,
    responses=_ERRORS,
    summary="Data of the report's esports figures",
)
def report_esports(request: Request, run_id: str | None = _RUN_ID) -> EsportsReportOut:
    st = _analytics(request)
    try:
        return EsportsReportOut(
            **esports_data(st.engine, run_id, stale_after_s=st.settings.results_stale_after_s)
        )
    except RunNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get(
    "/api/v1/report/futures",
    response_model=FuturesReportOut,
    responses={k: _ERRORS[k] for k in (500, 503)},
    summary="Data of the report's futures figures (checkpoint directory of the settings)",
)
def report_futures(request: Request) -> FuturesReportOut:
    return FuturesReportOut(**futures_data(_analytics(request).settings.checkpoint_dir))


class TradeContextOut(Tagged):
    """One page of the out-of-sample and paper trades with their context at entry."""

    timeframes: list[str] = Field(description="the coarser timeframes, coarsest first")
    total: int = Field(description="trades in every page")
    offset: int
    rows: list[dict[str, Any]] = Field(
        description="sample, session, entry_time, template_id, side, family, pnl ($/contract), "
        "per timeframe {tf}_state (with/against/calm), {tf}_z, {tf}_bars_since_pattern; vol_regime"
    )


@router.get(
    "/api/v1/report/futures/trades",
    response_model=None,
    responses={
        200: {
            "model": TradeContextOut,
            "content": {"text/csv": {}},
            "description": "a page as JSON, or every trade as CSV",
        },
        **{k: _ERRORS[k] for k in (422, 500, 503)},
    },
    summary="The out-of-sample and paper trades with the context at entry of each",
)
def report_futures_trades(
    request: Request,
    format: Literal["json", "csv"] = "json",
    offset: int = Query(0, ge=0),
    limit: int = Query(500, ge=1, le=10_000),
) -> Any:
    tfs, rows = trade_context(_analytics(request).settings.checkpoint_dir)
    if format == "csv":
        return Response(rows.to_csv(index=False), media_type="text/csv")
    page = rows.iloc[offset : offset + limit]
    return TradeContextOut(
        timeframes=tfs,
        total=len(rows),
        offset=offset,
        rows=jsonable(page.to_dict(orient="records")),
    )
