"""Routes of the esports analytics (``/api/v1/analytics/...``) and the scrape-time gauges of ``/metrics``.

:func:`edgefinder.app.create_app` joins this router with the win-probability routes, the report and
the error contract into the application ``edgefinder serve`` runs; OpenAPI docs are at ``/docs``
(schema at ``/openapi.json``). App state and dependencies: :mod:`edgefinder.esports.api_deps`;
the shared read queries: :mod:`edgefinder.esports.queries`. Every response model carries ``purpose``
("research/ops") and the no-betting ``disclaimer``. Player identifiers never appear: results are per
(round, team) aggregates and the summary only counts rows.

Errors follow the contract of :mod:`edgefinder.esports.web`: every answer carries ``X-Request-ID``
and every error body a one-line ``message`` and that ``request_id``; invalid parameters answer 422
(plus FastAPI's ``detail`` list), an unreachable database, Redis or broker 503, and anything else,
a bug, 500 (logged with the request id). ``POST /run-analysis`` needs
``Authorization: Bearer <EDGEFINDER_API_TOKEN>`` (401 otherwise; also 401 while no token is
configured, so the endpoint is never open) and answers 202 with the run id at once: with a broker
(``EDGEFINDER_REDIS_URL``) the run is ``queued`` and a Celery worker runs it, without one it runs in a
background thread of this process. A second request while a run is queued or running gets 409.

Alerts (``GET /alerts``, ``POST /alerts/{id}/ack``), the latest run's feature frame as Parquet
(``GET /export/features.parquet``) and the scrape-time metrics of
:mod:`edgefinder.esports.monitoring` are served here too; the HTML report of both pipelines
(``GET /report``, its data under ``/api/v1/report``) is :mod:`edgefinder.report.api`.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import (
    Gauge,
)
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, desc, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from edgefinder import DISCLAIMER, PURPOSE, __version__
from edgefinder.errors import first_line
from edgefinder.esports import metrics as ingest_metrics
from edgefinder.esports.aggregate import FEATURE_COLUMNS
from edgefinder.esports.alerts import ALERT_KINDS, alert_payload
from edgefinder.esports.api_deps import AppState as _State
from edgefinder.esports.api_deps import app_state as _state
from edgefinder.esports.api_deps import aware as _aware
from edgefinder.esports.contract import RESULT_COLUMNS, ResultRow, details_of
from edgefinder.esports.jobs import (
    COVARIATE_EFFECTS,
    QUEUED_EXPIRES_S,
    JobAlreadyRunning,
    JobParams,
    acquire_run,
    fail_queued,
    queue_run,
    run_correlation_job,
)
from edgefinder.esports.monitoring import stream_groups
from edgefinder.esports.queries import latest_succeeded_run
from edgefinder.esports.web import (
    ErrorOut,
    Tagged,
    unreachable,
)
from edgefinder.jsonsafe import finite_or_none
from edgefinder.settings import Settings
from edgefinder.store.engine import as_utc
from edgefinder.store.tables import (
    alerts,
    analysis_runs,
    correlation_results,
    dead_letters,
    macro_outcomes,
    matches,
    micro_actions,
    raw_events,
    rounds,
    run_features,
)

__all__ = ["refresh_gauges", "router"]

PARQUET = "application/vnd.apache.parquet"

log = logging.getLogger(__name__)

Outcome = Literal["round_win", "econ_delta", "site_executed"]
Method = Literal["point_biserial", "spearman", "chi2", "logistic", "aipw_within", "aipw_naive"]
Verdict = Literal["robust", "fragile", "not significant"]

STORED_DEAD_LETTERS = Gauge(
    "edgefinder_dead_letters_stored", "Rows in the dead_letters table (read at scrape time)."
)
STORED_RUNS = Gauge(
    "edgefinder_analysis_runs_stored",
    "Rows in analysis_runs, by status (read at scrape time).",
    ["status"],
)
LAST_RUN_AGE = Gauge(
    "edgefinder_last_run_age_seconds", "Seconds since the last succeeded analysis run finished."
)
# The ingest counters (edgefinder_events_ingested_total) live in the consumer processes, which serve
# their own /metrics; the API process reports what has landed in the database, read at scrape time.
STORED_EVENTS = Gauge(
    "edgefinder_events_stored",
    "Events in the database by stream (read at scrape time).",
    ["stream"],
)


# --------------------------------------------------------------------------------- models


class CorrelationOut(Tagged):
    """One stored test result (see edgefinder.esports.jobs for the effect of each method)."""

    id: int
    run_id: str
    feature: str
    outcome: str
    method: str
    n: int
    statistic: float | None
    estimate: float | None = Field(
        description="the estimate: r, rho, Cramér's V, log odds ratio per SD, or ATE (probability points)"
    )
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    q_value: float | None = Field(description="Benjamini-Hochberg q over all tests of the run")
    significant: bool = Field(description="q < 0.05")
    verdict: str | None = Field(
        default=None,
        description="within-match causal effects (aipw_within): robust, fragile (significant, a refutation check "
        "failed) or not significant; None for other tests",
    )
    exploratory: bool = Field(description="small sample: treat as a hypothesis, not a finding")
    direction: str | None
    details: dict[str, Any] | None
    outcome_mechanism: bool = Field(
        default=False,
        description="the feature is the outcome by the rules of the game: never ranked as a finding",
    )


class CausalEffectOut(Tagged):
    """One intent's within-match causal effect with its verdict, the checks' figures and the naive estimate."""

    feature: str
    outcome: str
    method: str
    n: int
    estimate: float | None = Field(description="ATE of T = count > threshold, probability points")
    ci_low: float | None = Field(description="95% CI, clustered by match")
    ci_high: float | None
    p_value: float | None
    q_value: float | None
    significant: bool
    verdict: str | None
    exploratory: bool
    between_team: dict[str, Any] | None = Field(
        description="the naive between-team estimate (comparison only)"
    )
    e_value: float | None = Field(description="E-value of the estimate (risk-ratio scale)")
    e_value_ci: float | None = Field(description="E-value of the CI bound nearer to the null")
    refutations: dict[str, Any] | None = Field(
        description="placebo, random_common_cause, subset (None: not run)"
    )
    balance: list[dict[str, Any]] | None = Field(
        description="standardized mean differences before/after weighting"
    )


class CausalEffectList(Tagged):
    run_id: str | None
    run_finished_at: datetime | None
    count: int
    message: str | None = None
    results: list[CausalEffectOut]


class CorrelationList(Tagged):
    run_id: str | None = Field(
        description="The run the results come from (the latest succeeded run)"
    )
    run_finished_at: datetime | None
    count: int
    message: str | None = None
    results: list[CorrelationOut]
    outcome_mechanisms: list[CorrelationOut] = Field(
        default_factory=list,
        description="/top-correlations only: rows that passed the filters but are outcome mechanisms "
        "(kills, plant -> site executed, defuse -> round win, kill-derived signals), reported apart",
    )


class RunRequest(BaseModel):
    """Optional body of POST /run-analysis."""

    model_config = ConfigDict(extra="forbid")
    seed: int = Field(
        default=0, ge=0, le=2**31 - 1, description="Seed of every random step of the run"
    )
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5, description="FDR level of the BH correction")


class RunAccepted(Tagged):
    run_id: str
    status: Literal["queued", "running"] = Field(
        description="queued: a Celery worker will run it; running: this process runs it"
    )
    location: str


class RunOut(Tagged):
    run_id: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    n_rows: int | None
    n_tests: int | None
    params: dict[str, Any] | None
    summary: dict[str, Any] | None
    error: str | None
    queued_at: datetime | None = None
    trigger: str | None = Field(default=None, description="api, schedule, cli or python")
    worker: str | None = Field(default=None, description="host:pid of the process that ran the job")
    db_queries: int | None = Field(default=None, description="SQL statements the job issued")
    db_seconds: float | None = Field(default=None, description="seconds spent in them")


AlertKind = Literal["sign_flip", "newly_significant", "significance_lost", "outside_previous_ci"]


class AlertFigures(BaseModel):
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    q_value: float | None
    significant: bool | None


class AlertOut(Tagged):
    """A surprising change between two runs (see edgefinder.esports.alerts for the rules)."""

    id: int
    run_id: str
    previous_run_id: str
    kind: AlertKind
    feature: str
    outcome: str
    method: str
    before: AlertFigures
    after: AlertFigures
    message: str
    created_at: datetime | None
    acknowledged_at: datetime | None


class AlertList(Tagged):
    count: int
    alerts: list[AlertOut]


class SummaryOut(Tagged):
    matches: int
    finished_rounds: int
    team_rounds: int
    micro_actions: int
    raw_events: int
    dead_letters: int
    runs: dict[str, int]
    last_run: RunOut | None
    significant_by_outcome: dict[str, int]
    significant_by_method: dict[str, int]


class HealthOut(Tagged):
    status: Literal["ok", "degraded", "unavailable"]
    version: str
    database: str
    redis: str
    last_run_age_s: float | None
    last_run_status: str | None
    results_stale: bool | None = Field(
        default=None,
        description="last succeeded run older than EDGEFINDER_RESULTS_STALE_AFTER_S (None: no run yet)",
    )
    streams: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per stream: length and, per consumer group, lag, pending, consumers",
    )
    queued_not_picked_up: list[str] = Field(
        default_factory=list,
        description="runs queued longer than EDGEFINDER_QUEUED_STALE_AFTER_S that no worker has "
        "started (is a worker running?)",
    )


# --------------------------------------------------------------------------------- state


def _run_out(row: Any) -> RunOut:
    m = row._mapping
    return RunOut(
        run_id=m["run_id"],
        status=m["status"],
        started_at=_aware(m["started_at"]),
        finished_at=_aware(m["finished_at"]),
        duration_s=m["duration_s"],
        n_rows=m["n_rows"],
        n_tests=m["n_tests"],
        params=m["params"],
        summary=m["summary"],
        error=m["error"],
        purpose=m["purpose"] or PURPOSE,
        disclaimer=m["disclaimer"] or DISCLAIMER,
        queued_at=_aware(m["queued_at"]),
        trigger=m["trigger"],
        worker=m["worker"],
        db_queries=m["db_queries"],
        db_seconds=m["db_seconds"],
    )


_latest_run = latest_succeeded_run


def _corr_out(row: Any) -> CorrelationOut:
    m = dict(row._mapping)
    for k in ("statistic", "effect", "ci_low", "ci_high", "p_value", "q_value"):
        m[k] = finite_or_none(m.get(k))  # rows written before NaN was mapped to NULL
    r = ResultRow.model_validate(
        {**{k: m.get(k) for k in RESULT_COLUMNS}, "details": m.get("details") or {}}
    )
    # the stored column is `effect`; every answer of the API calls a point estimate `estimate`
    return CorrelationOut(
        id=m["id"],
        run_id=m["run_id"],
        purpose=m.get("purpose") or PURPOSE,
        estimate=r.effect,
        details=m.get("details"),
        **r.model_dump(exclude={"effect", "details"}),
    )


def _ordered(stmt: Any) -> Any:
    c = correlation_results.c
    return stmt.order_by(c.q_value.asc().nulls_last(), func.abs(c.effect).desc().nulls_last(), c.id)


def _latest_results(st: _State, where: list[Any], limit: int | None = None) -> CorrelationList:
    """Rows of the latest succeeded run matching ``where``, by q then |effect| (or a 'no run yet' list)."""
    with st.engine.connect() as conn:
        run = _latest_run(conn)
        if run is None:
            return CorrelationList(
                run_id=None,
                run_finished_at=None,
                count=0,
                results=[],
                message="no analysis run yet: POST /api/v1/analytics/run-analysis",
            )
        stmt = _ordered(
            select(correlation_results).where(correlation_results.c.run_id == run.run_id, *where)
        )
        rows = conn.execute(stmt if limit is None else stmt.limit(limit)).fetchall()
    results = [_corr_out(r) for r in rows]
    return CorrelationList(
        run_id=run.run_id,
        run_finished_at=_aware(run.finished_at),
        count=len(results),
        results=results,
    )


# --------------------------------------------------------------------------------- routes

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
_bearer = HTTPBearer(auto_error=False, description="EDGEFINDER_API_TOKEN")
_ERRORS = {
    401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "not found"},
    409: {"model": ErrorOut, "description": "a job is already running"},
    422: {"model": ErrorOut, "description": "invalid parameters"},
    503: {"model": ErrorOut, "description": "database or Redis unreachable: try again later"},
}


@router.get(
    "/top-correlations",
    response_model=CorrelationList,
    responses={k: _ERRORS[k] for k in (422, 503)},
    summary="Strongest results of the latest run, by q then |estimate|; outcome mechanisms apart",
)
def top_correlations(
    request: Request,
    limit: int = Query(20, ge=1, le=1000, description="Rows to return (1..1000)"),
    significant_only: bool = Query(False, description="Only q < 0.05"),
    outcome: Outcome | None = Query(None, description="round_win, econ_delta or site_executed"),
    method: Method | None = Query(
        None, description="point_biserial, spearman, chi2, logistic, aipw_within or aipw_naive"
    ),
) -> CorrelationList:
    c = correlation_results.c
    where: list[ColumnElement[bool]] = [c.significant.is_(True)] if significant_only else []
    where += [c.outcome == outcome] if outcome else []
    where += [c.method == method] if method else []
    st = _state(request)
    ranked = _latest_results(st, [*where, c.outcome_mechanism.is_(False)], limit)
    apart = _latest_results(st, [*where, c.outcome_mechanism.is_(True)], limit)
    return ranked.model_copy(update={"outcome_mechanisms": apart.results})


@router.get(
    "/causal-effects",
    response_model=CausalEffectList,
    responses={k: _ERRORS[k] for k in (422, 503)},
    summary="Within-match causal effect of each intent: clustered CI, verdict, refutation figures",
)
def causal_effects(
    request: Request,
    outcome: Outcome | None = Query(
        None, description="round_win (the causal step's default outcome)"
    ),
    verdict: Verdict | None = Query(None, description="robust, fragile or not significant"),
) -> CausalEffectList:
    c = correlation_results.c
    where = [c.method == "aipw_within"]
    where += [c.outcome == outcome] if outcome else []
    where += [c.verdict == verdict] if verdict else []
    res = _latest_results(_state(request), where)
    effects: list[CausalEffectOut] = []
    for r in res.results:
        d = details_of(r.details)
        effects.append(
            CausalEffectOut(
                feature=r.feature,
                outcome=r.outcome,
                method=r.method,
                n=r.n,
                estimate=r.estimate,
                ci_low=r.ci_low,
                ci_high=r.ci_high,
                p_value=r.p_value,
                q_value=r.q_value,
                significant=r.significant,
                verdict=r.verdict,
                exploratory=r.exploratory,
                between_team=d.between_team,
                e_value=d.e_value,
                e_value_ci=d.e_value_ci,
                refutations=d.refutations,
                balance=d.balance if isinstance(d.balance, list) else None,
            )
        )
    return CausalEffectList(
        run_id=res.run_id,
        run_finished_at=res.run_finished_at,
        count=len(effects),
        message=res.message,
        results=effects,
    )


@router.get(
    "/correlations/by-feature/{feature_name}",
    response_model=CorrelationList,
    responses={k: _ERRORS[k] for k in (404, 422, 503)},
    summary="Every result of the latest run for one feature",
)
def correlations_by_feature(
    request: Request,
    feature_name: str = Path(..., min_length=1, max_length=128, description="e.g. trade_count"),
) -> CorrelationList:
    if feature_name not in FEATURE_COLUMNS + COVARIATE_EFFECTS:
        known = ", ".join(FEATURE_COLUMNS + COVARIATE_EFFECTS)
        raise HTTPException(404, f"unknown feature {feature_name!r}; known features: {known}")
    return _latest_results(_state(request), [correlation_results.c.feature == feature_name])


def _check_token(
    request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    token = _state(request).settings.api_token
    if token is None:
        raise HTTPException(
            401,
            "run-analysis is disabled: no EDGEFINDER_API_TOKEN is configured",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not secrets.compare_digest(creds.credentials.encode(), token.get_secret_value().encode()):
        raise HTTPException(401, "wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def _background(lock: Any, settings: Settings) -> None:
    try:
        run_correlation_job(lock=lock, settings=settings)
    except Exception:
        log.exception("correlation job %s failed", lock.run_id)


@router.post(
    "/run-analysis",
    status_code=202,
    response_model=RunAccepted,
    responses={k: _ERRORS[k] for k in (401, 409, 422, 503)},
    summary="Start a correlation job (bearer token): queued on the broker, or run here; poll GET /runs/{run_id}",
)
def run_analysis(
    request: Request,
    body: RunRequest | None = Body(None),
    _: None = Depends(_check_token),
) -> RunAccepted:
    st = _state(request)
    req = body or RunRequest()
    params = JobParams(seed=req.seed, alpha=req.alpha)
    if st.settings.redis_url:
        from edgefinder.esports.tasks import RUN_TASK

        try:
            run_id = queue_run(st.engine, params, trigger="api")
        except JobAlreadyRunning as exc:
            raise HTTPException(409, str(exc)) from exc
        try:
            kwargs = {"run_id": run_id, "seed": req.seed, "alpha": req.alpha, "trigger": "api"}
            # a request must not hang on a broker that is down: two quick retries, then 503
            st.celery().send_task(
                RUN_TASK,
                kwargs=kwargs,
                task_id=run_id,
                expires=QUEUED_EXPIRES_S,
                retry=True,
                retry_policy={
                    "max_retries": 2,
                    "interval_start": 0.2,
                    "interval_step": 0.5,
                    "interval_max": 1.0,
                },
            )
        except Exception as exc:
            down = unreachable(exc)
            why = "broker unavailable" if down else f"not queued: {type(exc).__name__}"
            fail_queued(st.engine, run_id, f"{why}: {first_line(exc)}")
            if not down:
                raise  # a bug: 500
            raise HTTPException(
                503, f"broker unavailable, run {run_id} not queued: {first_line(exc)}"
            ) from exc
        return RunAccepted(
            run_id=run_id, status="queued", location=f"{router.prefix}/runs/{run_id}"
        )
    st.reap()
    try:
        lock = acquire_run(st.engine, params, trigger="api")
    except JobAlreadyRunning as exc:
        raise HTTPException(409, str(exc)) from exc
    name = f"analysis-{lock.run_id[:8]}"
    threading.Thread(target=_background, args=(lock, st.settings), name=name, daemon=True).start()
    return RunAccepted(
        run_id=lock.run_id, status="running", location=f"{router.prefix}/runs/{lock.run_id}"
    )


@router.get(
    "/runs/{run_id}",
    response_model=RunOut,
    responses={k: _ERRORS[k] for k in (404, 422, 503)},
    summary="One analysis run: status, timing, summary",
)
def get_run(request: Request, run_id: str = Path(..., min_length=1, max_length=36)) -> RunOut:
    st = _state(request)
    st.reap()
    with st.engine.connect() as conn:
        row = conn.execute(select(analysis_runs).where(analysis_runs.c.run_id == run_id)).first()
    if row is None:
        raise HTTPException(404, f"no analysis run {run_id!r}")
    return _run_out(row)


@router.get(
    "/alerts",
    response_model=AlertList,
    responses={k: _ERRORS[k] for k in (422, 503)},
    summary="Alerts on surprising changes between runs, newest first",
)
def list_alerts(
    request: Request,
    since: datetime | None = Query(
        None, description="Only alerts created at or after this time (ISO 8601)"
    ),
    kind: AlertKind | None = Query(None, description=", ".join(ALERT_KINDS)),
    unacknowledged: bool = Query(False, description="Only alerts nobody acknowledged yet"),
    run_id: str | None = Query(None, max_length=36, description="Only the alerts of this run"),
    limit: int = Query(100, ge=1, le=1000, description="Rows to return (1..1000)"),
) -> AlertList:
    a = alerts.c
    stmt = select(alerts).order_by(desc(a.created_at), desc(a.id)).limit(limit)
    if since is not None:
        stmt = stmt.where(a.created_at >= as_utc(since))
    if kind is not None:
        stmt = stmt.where(a.kind == kind)
    if unacknowledged:
        stmt = stmt.where(a.acknowledged_at.is_(None))
    if run_id is not None:
        stmt = stmt.where(a.run_id == run_id)
    with _state(request).engine.connect() as conn:
        rows = [AlertOut(**alert_payload(r)) for r in conn.execute(stmt)]
    return AlertList(count=len(rows), alerts=rows)


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=AlertOut,
    responses={k: _ERRORS[k] for k in (401, 404, 422, 503)},
    summary="Acknowledge an alert (bearer token); acknowledging again keeps the first time",
)
def ack_alert(
    request: Request,
    alert_id: int = Path(..., ge=1, le=2**31 - 1),
    by: str | None = Query(
        None, max_length=128, description="Who acknowledges (stored with the alert)"
    ),
    _: None = Depends(_check_token),
) -> AlertOut:
    a = alerts.c
    with _state(request).engine.begin() as tx:
        tx.execute(
            update(alerts)
            .where(a.id == alert_id, a.acknowledged_at.is_(None))
            .values(acknowledged_at=datetime.now(UTC), acknowledged_by=by)
        )
        row = tx.execute(select(alerts).where(a.id == alert_id)).first()
    if row is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return AlertOut(**alert_payload(row))


@router.get(
    "/export/features.parquet",
    response_class=Response,
    responses={
        200: {"content": {PARQUET: {}}, "description": "Parquet file"},
        **{k: _ERRORS[k] for k in (404, 503)},
    },
    summary="The feature frame (one row per round and team) the latest succeeded run analysed, as Parquet",
)
def export_features(request: Request) -> Response:
    f = run_features.c
    with _state(request).engine.connect() as conn:
        run = latest_succeeded_run(conn)
        row = (
            None
            if run is None
            else conn.execute(
                select(f.run_id, f.n_rows, f.parquet).where(f.run_id == run.run_id)
            ).first()
        )
    if row is None:
        raise HTTPException(
            404, "no feature snapshot yet: run the analysis first (POST /run-analysis)"
        )
    return Response(
        bytes(row.parquet),
        media_type=PARQUET,
        headers={
            "Content-Disposition": f'attachment; filename="features-{row.run_id}.parquet"',
            "X-Edgefinder-Run-Id": row.run_id,
            "X-Edgefinder-Rows": str(row.n_rows),
        },
    )


@router.get(
    "/stats/summary",
    response_model=SummaryOut,
    responses={503: _ERRORS[503]},
    summary="Row counts, runs and significant results of the latest run",
)
def stats_summary(request: Request) -> SummaryOut:
    with _state(request).engine.connect() as conn:

        def count(table: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

        runs = {
            s: int(n)
            for s, n in conn.execute(
                select(analysis_runs.c.status, func.count()).group_by(analysis_runs.c.status)
            )
        }
        last = _latest_run(conn)
        by_outcome: dict[str, int] = {}
        by_method: dict[str, int] = {}
        if last is not None:
            c = correlation_results.c
            for o, n in conn.execute(
                select(c.outcome, func.count())
                .where(c.run_id == last.run_id, c.significant.is_(True))
                .group_by(c.outcome)
            ):
                by_outcome[o] = int(n)
            for mth, n in conn.execute(
                select(c.method, func.count())
                .where(c.run_id == last.run_id, c.significant.is_(True))
                .group_by(c.method)
            ):
                by_method[mth] = int(n)
        finished = int(
            conn.execute(
                select(func.count()).select_from(rounds).where(rounds.c.end_ts.is_not(None))
            ).scalar_one()
        )
        return SummaryOut(
            matches=count(matches),
            finished_rounds=finished,
            team_rounds=count(macro_outcomes),
            micro_actions=count(micro_actions),
            raw_events=count(raw_events),
            dead_letters=count(dead_letters),
            runs=runs,
            last_run=_run_out(last) if last is not None else None,
            significant_by_outcome=by_outcome,
            significant_by_method=by_method,
        )


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut}},
    summary="Database, Redis, freshness",
)
def health(request: Request) -> Any:
    st = _state(request)
    db = "ok"
    age: float | None = None
    fresh_age: float | None = None
    good: Any = None
    last_status: str | None = None
    waiting: Sequence[Any] = ()
    try:
        st.reap()
        with st.engine.connect() as conn:
            last = conn.execute(
                select(analysis_runs.c.status, analysis_runs.c.finished_at)
                .where(analysis_runs.c.finished_at.is_not(None))
                .order_by(desc(analysis_runs.c.finished_at))
                .limit(1)
            ).first()
            good = _latest_run(conn)
            waiting = conn.execute(
                select(analysis_runs.c.run_id).where(
                    analysis_runs.c.status == "queued",
                    analysis_runs.c.queued_at
                    < datetime.now(UTC) - timedelta(seconds=st.settings.queued_stale_after_s),
                )
            ).all()
        if last is not None:
            last_status = last.status
            age = (datetime.now(UTC) - _aware(last.finished_at)).total_seconds()  # type: ignore[operator]
        if good is not None:
            fresh_age = (datetime.now(UTC) - _aware(good.finished_at)).total_seconds()  # type: ignore[operator]
    except SQLAlchemyError as exc:
        if not unreachable(exc):
            raise  # a statement the database refuses is a bug: 500
        db = f"unavailable: {first_line(exc)}"
    redis_state = "not configured"
    streams: dict[str, dict[str, Any]] = {}
    try:
        client = st.redis()
        if client is not None:
            client.ping()
            redis_state = "ok"
            streams = stream_groups(client, st.settings.redis_prefix)
    except Exception as exc:
        redis_state = f"unavailable: {first_line(exc)}"
    stale = None if fresh_age is None else fresh_age > st.settings.results_stale_after_s
    degraded = redis_state.startswith("unavailable") or bool(stale) or bool(waiting)
    status: Literal["ok", "degraded", "unavailable"] = (
        "unavailable" if db != "ok" else ("degraded" if degraded else "ok")
    )
    body = HealthOut(
        status=status,
        version=__version__,
        database=db,
        redis=redis_state,
        last_run_age_s=age,
        last_run_status=last_status,
        results_stale=stale,
        streams=streams,
        queued_not_picked_up=[r.run_id for r in waiting],
    )
    if db != "ok":
        return JSONResponse(status_code=503, content=body.model_dump(mode="json"))
    return body


def refresh_gauges(st: _State) -> None:
    """Scrape-time values: stored dead letters and runs, last-run age, consumer lag of the streams."""
    try:
        with st.engine.connect() as conn:
            STORED_DEAD_LETTERS.set(
                conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
            )
            for stream, table in (("canonical", raw_events), ("motion", micro_actions)):
                STORED_EVENTS.labels(stream=stream).set(
                    conn.execute(select(func.count()).select_from(table)).scalar_one()
                )
            for s, n in conn.execute(
                select(analysis_runs.c.status, func.count()).group_by(analysis_runs.c.status)
            ):
                STORED_RUNS.labels(status=s).set(n)
            last = _latest_run(conn)
            if last is not None and last.finished_at is not None:
                LAST_RUN_AGE.set((datetime.now(UTC) - _aware(last.finished_at)).total_seconds())  # type: ignore[operator]
    except SQLAlchemyError:
        pass  # /metrics stays up while the database is down; /health reports it
    try:
        client = st.redis()
        if client is not None:
            from edgefinder.esports.sources import DEFAULT_GROUP

            for name, info in stream_groups(client, st.settings.redis_prefix).items():
                g = info["groups"].get(DEFAULT_GROUP)
                if g is None:
                    continue
                ingest_metrics.set_backlog(name, g["lag"], g["pending"])
    except Exception:
        pass
