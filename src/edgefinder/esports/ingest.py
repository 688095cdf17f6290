"""Ingest process wiring: the stream consumers, both streams in threads, files, connections.

``consume_canonical`` and ``consume_micro`` (the original system's names) run one Redis stream each;
:func:`run_ingest` runs both in threads (or one JSONL file through the same pipeline) and is
what ``edgefinder esports ingest`` calls. The layers below:

* :mod:`edgefinder.esports.pipeline`: the batch write path (validation, dead letters, the
  duplicate-id rule, the Postgres staging and SQLite upserts, isolation of what the database
  refuses);
* :mod:`edgefinder.esports.consumer`: the consumer loop (read, plan, backoff, ack, the delivery
  limit), which uses only the :class:`~edgefinder.esports.sources.BatchSource` protocol;
* :mod:`edgefinder.esports.sources`: Redis Streams consumer groups and JSONL files.

The names of those layers that callers use are importable from here as well.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgefinder.errors import ConnectionFailed, first_line
from edgefinder.esports.consumer import IngestConfig, IngestCounters, ProgressFn, run_consumer
from edgefinder.esports.events import (
    DEFAULT_MAX_EVENT_BYTES,
    CanonicalEvent,
    InvalidEvent,
    MotionSignal,
    parse_line,
)
from edgefinder.esports.pipeline import (
    MAX_DEAD_LETTER_CHARS,
    BatchResult,
    IngestError,
    Pipeline,
    Prepared,
    TransientError,
)
from edgefinder.esports.sources import (
    DEFAULT_GROUP,
    BatchSource,
    Entry,
    JsonlSource,
    RedisStreamSource,
    default_consumer_name,
    stream_keys,
)

__all__ = [
    "DEFAULT_GROUP",
    "MAX_DEAD_LETTER_CHARS",
    "BatchResult",
    "BatchSource",
    "CanonicalEvent",
    "Entry",
    "IngestConfig",
    "IngestCounters",
    "IngestError",
    "InvalidEvent",
    "JsonlSource",
    "MotionSignal",
    "Pipeline",
    "Prepared",
    "ProgressFn",
    "RedisStreamSource",
    "TransientError",
    "connect_redis",
    "consume_canonical",
    "consume_micro",
    "tune_gc_for_ingest",
    "ingest_file",
    "make_pipeline",
    "default_consumer_name",
    "parse_line",
    "run_consumer",
    "run_ingest",
    "stream_keys",
]


def _redis_source(
    client: Any, prefix: str, which: str, consumer: str | None, cfg: IngestConfig
) -> RedisStreamSource:
    return RedisStreamSource(
        client,
        stream_keys(prefix)[which],
        label=which,
        group=cfg.group,
        consumer=consumer,
        min_idle_ms=cfg.min_idle_ms,
        max_deliveries=cfg.max_deliveries,
        claim_interval_s=cfg.claim_interval_s,
    )


def consume_canonical(
    pipeline: Pipeline,
    client: Any,
    prefix: str = "",
    *,
    consumer: str | None = None,
    config: IngestConfig | None = None,
    stop: threading.Event | None = None,
    counters: IngestCounters | None = None,
    once: bool = False,
    on_batch: ProgressFn | None = None,
) -> IngestCounters:
    """Consume ``{prefix}events:canonical`` into rounds, outcomes, kills, … (blocks)."""
    cfg = config or IngestConfig()
    src = _redis_source(client, prefix, "canonical", consumer, cfg)
    return run_consumer(
        src, pipeline, config=cfg, stop=stop, counters=counters, once=once, on_batch=on_batch
    )


def consume_micro(
    pipeline: Pipeline,
    client: Any,
    prefix: str = "",
    *,
    consumer: str | None = None,
    config: IngestConfig | None = None,
    stop: threading.Event | None = None,
    counters: IngestCounters | None = None,
    once: bool = False,
    on_batch: ProgressFn | None = None,
) -> IngestCounters:
    """Consume ``{prefix}events:agent:motion`` into micro_actions (blocks)."""
    cfg = config or IngestConfig()
    src = _redis_source(client, prefix, "motion", consumer, cfg)
    return run_consumer(
        src, pipeline, config=cfg, stop=stop, counters=counters, once=once, on_batch=on_batch
    )


def connect_redis(url: str) -> Any:
    """A redis-py client (bytes responses) after a PING; :class:`ConnectionFailed` if unreachable."""
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
        )
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, ValueError) as exc:
        raise ConnectionFailed(
            f"cannot connect to Redis {_safe_url(url)}: {first_line(exc)}"
        ) from exc
    return client


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def make_pipeline(
    database_url: str,
    pseudonym_key: str | bytes,
    *,
    migrate: bool = True,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> Pipeline:
    """Engine + (optionally) migrations + pipeline; :class:`ConnectionFailed` if unreachable."""
    from edgefinder.store.engine import check_connection, make_engine

    # no pre-ping: a batch that meets a dead pooled connection is retried like any outage
    engine = make_engine(database_url, pre_ping=False)
    check_connection(engine)
    if migrate:
        from edgefinder.store.migrate import upgrade

        upgrade(database_url)
    return Pipeline(engine, pseudonym_key, max_event_bytes=max_event_bytes)


def tune_gc_for_ingest() -> None:
    """Exempt every object alive now (modules, engines, clients) from garbage collection, and
    leave the rest to reference counting plus a full collection every 30 s.

    For a process about to ingest: the cyclic collector runs every 700 new objects, and a batch
    creates hundreds of thousands of objects that hold no cycles (models, row tuples, bytes),
    each run rescanning the live ones and the older generations with the whole import graph.
    Freezing the start-up objects (``gc.freeze``) and collecting on a timer instead (the consumer
    loop does, see :mod:`edgefinder.esports.consumer`) saves about 40% of the consumer's CPU;
    the few cycles a batch leaves (driver and transaction objects) wait at most 30 s.
    Call it once, after start-up, in a process that mostly ingests.
    """
    gc.collect()
    gc.freeze()
    gc.disable()


def run_ingest(
    pipeline: Pipeline,
    *,
    from_file: str | Path | None = None,
    redis_client: Any = None,
    prefix: str = "",
    consumer: str | None = None,
    config: IngestConfig | None = None,
    once: bool = True,
    stop: threading.Event | None = None,
    on_batch: ProgressFn | None = None,
    motion_consumers: int = 2,
) -> IngestCounters:
    """Run the file source, or the Redis consumers in threads, until done or stopped.

    One canonical consumer and ``motion_consumers`` motion consumers (the motion stream carries
    most of the traffic; its consumers write in parallel under shared per-match locks).

    ``once``: stop when the source is drained (file: end of file; Redis: no new entries and
    nothing claimable). Otherwise follow the streams until ``stop`` is set.
    """
    cfg = config or IngestConfig()
    stop = stop or threading.Event()
    counters = IngestCounters()
    if from_file is not None:
        src = JsonlSource(from_file, max_bytes=cfg.max_event_bytes)
        try:
            return run_consumer(
                src,
                pipeline,
                config=cfg,
                stop=stop,
                counters=counters,
                once=True,
                on_batch=on_batch,
            )
        finally:
            src.close()
    if redis_client is None:
        raise IngestError("no source: give a JSONL file or a Redis URL (EDGEFINDER_REDIS_URL)")
    errors: list[BaseException] = []

    def target(fn: Callable[..., IngestCounters], name: str | None) -> None:
        try:
            fn(
                pipeline,
                redis_client,
                prefix,
                consumer=name,
                config=cfg,
                stop=stop,
                counters=counters,
                once=once,
                on_batch=on_batch,
            )
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    jobs: list[tuple[str, Callable[..., IngestCounters], str | None]] = [
        ("canonical", consume_canonical, consumer)
    ]
    for i in range(max(1, motion_consumers)):
        # several motion consumers of one process: named <consumer>/m<i> so that a restart with
        # the same --consumer resumes each one's pending entries
        name = consumer if motion_consumers <= 1 else f"{consumer or default_consumer_name()}/m{i}"
        jobs.append((f"motion{i}", consume_micro, name))
    threads = [
        threading.Thread(target=target, args=(fn, name), name=f"ingest-{label}", daemon=True)
        for label, fn, name in jobs
    ]
    for th in threads:
        th.start()
    for th in threads:
        while th.is_alive():
            th.join(0.2)
    if errors:
        raise errors[0]
    return counters


def ingest_file(
    path: str | Path,
    database_url: str,
    pseudonym_key: str | bytes,
    *,
    config: IngestConfig | None = None,
    migrate: bool = True,
) -> IngestCounters:
    """Convenience for the demo and tests: ingest a JSONL file into ``database_url``."""
    cfg = config or IngestConfig()
    pipeline = make_pipeline(
        database_url, pseudonym_key, migrate=migrate, max_event_bytes=cfg.max_event_bytes
    )
    try:
        return run_ingest(pipeline, from_file=path, config=cfg)
    finally:
        pipeline.engine.dispose()
