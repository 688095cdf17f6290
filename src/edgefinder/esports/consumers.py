"""Run the stream consumers in this process: what the Celery task and the compatibility layer call.

``edgefinder esports ingest`` is the command-line service; :func:`consume` is the same pipeline for
code that runs the consumers itself: the Celery task ``start_analytics_consumers`` and
``edgefinder.analytics.stream_ingest`` / ``.canonical_ingest`` (the original system's
``consume_micro(pool)``, ``consume_canonical(pool)``, docs/decisions.md §D13). Redis and the prefix
come from the settings (``EDGEFINDER_REDIS_URL``, ``EDGEFINDER_REDIS_PREFIX``), players are
pseudonymized with ``EDGEFINDER_PSEUDONYM_KEY``.

:func:`stop_all` asks every consumer running in this process to stop after its current batch
(a Celery worker's warm shutdown calls it), so the last batch is committed and acknowledged.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from edgefinder.errors import ConfigError
from edgefinder.settings import Settings, get_settings

__all__ = ["Which", "consume", "counters_dict", "stop_all"]

Which = Literal["canonical", "motion", "both"]

_running: set[threading.Event] = set()
_migrated: set[str] = set()
_lock = threading.Lock()


def stop_all() -> int:
    """Set the stop event of every consumer running in this process; returns how many."""
    with _lock:
        events = list(_running)
    for ev in events:
        ev.set()
    return len(events)


def _pipeline(database_url: str, settings: Settings) -> Any:
    from edgefinder.esports.ingest import make_pipeline

    # Migrate once per database and process: two consumers started together (asyncio.gather of
    # both) must not race each other through the first upgrade of a fresh database.
    with _lock:
        migrate = database_url not in _migrated
        pipeline = make_pipeline(
            database_url,
            settings.pseudonym_key.get_secret_value(),
            migrate=migrate,
            max_event_bytes=settings.max_event_bytes,
        )
        _migrated.add(database_url)
    return pipeline


def consume(
    which: Which,
    database_url: str,
    *,
    settings: Settings | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
    consumer: str | None = None,
    motion_consumers: int = 2,
) -> Any:
    """Run the canonical consumer, the motion consumer or both until stopped (or drained, with ``once``).

    Blocks; returns the ingest counters. Raises :class:`ConfigError` without a Redis URL and
    ``ConnectionFailed`` when a server is unreachable at start.
    """
    from edgefinder.esports import ingest

    settings = settings or get_settings()
    if not settings.redis_url:
        raise ConfigError("the stream consumers need Redis: set EDGEFINDER_REDIS_URL")
    stop = stop or threading.Event()
    pipeline = _pipeline(database_url, settings)
    client = ingest.connect_redis(settings.redis_url)
    with _lock:
        _running.add(stop)
    try:
        if which == "both":
            return ingest.run_ingest(
                pipeline,
                redis_client=client,
                prefix=settings.redis_prefix,
                consumer=consumer,
                once=once,
                stop=stop,
                motion_consumers=motion_consumers,
            )
        fn = ingest.consume_canonical if which == "canonical" else ingest.consume_micro
        return fn(pipeline, client, settings.redis_prefix, consumer=consumer, stop=stop, once=once)
    finally:
        with _lock:
            _running.discard(stop)
        client.close()
        pipeline.engine.dispose()


def counters_dict(counters: Any) -> dict[str, Any]:
    """The ingest counters as JSON-friendly numbers (events, seconds)."""
    return {
        "canonical": counters.canonical,
        "signals": counters.signals,
        "dead_letters": counters.dead_letters,
        "retries": counters.retries,
        "elapsed_s": round(counters.elapsed_s, 3),
    }
