"""What every route of the analytics API depends on: the app's lazily created engine, Redis and
Celery clients (:class:`AppState`, one per app and process) and how a route reaches them."""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import Request
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from edgefinder.esports.monitoring import AnalyticsCollector
from edgefinder.esports.runs import reap_abandoned
from edgefinder.settings import Settings
from edgefinder.store.engine import as_utc, make_engine

log = logging.getLogger("edgefinder.esports.api")


class AppState:
    """Lazily created engine and Redis client of one app (one per process)."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self._engine = engine
        self._redis: Any = None
        self._celery: Any = None
        self._lock = threading.Lock()
        self.metrics = CollectorRegistry(auto_describe=False)
        self.metrics.register(
            AnalyticsCollector(lambda: self.engine, self.redis, settings.redis_prefix)
        )

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = make_engine(self.settings.effective_database_url)
            return self._engine

    def redis(self) -> Any:
        if not self.settings.redis_url:
            return None
        with self._lock:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(
                    self.settings.redis_url, socket_connect_timeout=2, socket_timeout=2
                )
            return self._redis

    def celery(self) -> Any:
        """The Celery app of these settings (only with a broker), to enqueue runs."""
        with self._lock:
            if self._celery is None:
                from edgefinder.esports.tasks import make_celery

                self._celery = make_celery(self.settings)
                # the API only sends tasks (the run's row is the result): no result-store connection,
                # which would otherwise retry for 20 s when Redis is down
                self._celery.conf.result_backend = "disabled://"
            return self._celery

    def reap(self) -> None:
        """Mark failed the runs whose process is gone, so no answer shows a dead run as running."""
        try:
            reap_abandoned(self.engine)
        except SQLAlchemyError:
            log.warning("could not check for abandoned runs", exc_info=True)


def app_state(request: Request) -> AppState:
    return request.app.state.analytics


aware = as_utc  # SQLite returns naive datetimes; every stored time is UTC
