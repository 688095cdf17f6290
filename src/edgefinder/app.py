"""The HTTP application: the analytics routes (:mod:`edgefinder.esports.api`, :mod:`edgefinder.esports.api_winprob`),
the report (:mod:`edgefinder.report.api`), ``/metrics`` and the error contract of
:mod:`edgefinder.esports.web`.

It sits above both packages on purpose: the esports API knows nothing of the report, the report
knows nothing of the API, and only this module puts them together (``edgefinder serve`` runs it).
App-level hooks (middleware, exception handlers, validators of every request) belong here or in
:func:`~edgefinder.esports.web.install_error_contract`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import Engine

from edgefinder import DISCLAIMER, __version__
from edgefinder.esports.api import refresh_gauges, router
from edgefinder.esports.api_deps import AppState, app_state
from edgefinder.esports.api_winprob import router as winprob_router
from edgefinder.esports.web import SERVER_ERROR, install_error_contract
from edgefinder.report.api import router as report_router
from edgefinder.settings import Settings, get_settings


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """The FastAPI application: the analytics and report routers, /metrics, /docs and the error
    contract of :mod:`edgefinder.esports.web` (request ids, 4xx/500/503)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="edgefinder analytics",
        version=__version__,
        description=(
            "Esports macro-strategy correlation analytics. Purpose: research/ops. " + DISCLAIMER
        ),
        responses={500: SERVER_ERROR},
    )
    app.state.analytics = AppState(settings, engine)
    app.include_router(router)
    app.include_router(winprob_router)
    app.include_router(report_router)

    @app.get(
        "/metrics",
        include_in_schema=True,
        tags=["ops"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    def metrics(request: Request) -> Response:
        st = app_state(request)
        refresh_gauges(st)
        return Response(
            generate_latest(REGISTRY) + generate_latest(st.metrics), media_type=CONTENT_TYPE_LATEST
        )

    install_error_contract(app)
    return app
