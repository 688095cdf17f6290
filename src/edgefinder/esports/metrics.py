"""Prometheus metrics of the esports ingest, registered in the default registry.

The process that increments them exposes them: the stream consumers (``esports ingest``) and the
Celery worker on a ``/metrics`` port of their own (``edgefinder.esports.metrics_endpoint``), the
API on its ``/metrics`` beside what it reads from the database. Label ``stream``
is the logical stream name (``canonical``, ``motion`` or ``file``), never a prefixed key, so
the label set stays small.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_INGESTED = Counter(
    "edgefinder_events_ingested_total",
    "Valid events committed to the database (redeliveries included), by stream.",
    ["stream"],
)
DEAD_LETTERS = Counter(
    "edgefinder_dead_letters_total",
    "Entries written to dead_letters, by stream and kind (invalid, oversize, conflict, rejected, delivery_limit).",
    ["stream", "kind"],
)
DUPLICATE_CONFLICTS = Counter(
    "edgefinder_duplicate_conflicts_total",
    "Copies of an already stored event_id/signal_id with other content (dead-lettered as conflict), by stream.",
    ["stream"],
)
BATCHES = Counter("edgefinder_ingest_batches_total", "Batches committed, by stream.", ["stream"])
BATCH_SECONDS = Histogram(
    "edgefinder_ingest_batch_seconds",
    "Seconds from a batch's read to its acknowledgement, by stream.",
    ["stream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RETRIES = Counter(
    "edgefinder_ingest_retries_total",
    "Backoff retries while a server was unreachable, by server (database, redis).",
    ["server"],
)
CONSUMER_LAG = Gauge(
    "edgefinder_consumer_lag",
    "Entries of the stream not yet delivered to the consumer group (XINFO GROUPS lag), by stream.",
    ["stream"],
)
CONSUMER_PENDING = Gauge(
    "edgefinder_consumer_pending",
    "Entries delivered to the group but not yet acknowledged (XPENDING count), by stream.",
    ["stream"],
)


def set_backlog(stream: str, lag: int | None, pending: int) -> None:
    """Set the lag and pending gauges of ``stream``; an unknown lag removes the gauge's value
    (a stale figure from before a Redis restart must not stand for the present)."""
    if lag is None:
        try:
            CONSUMER_LAG.remove(stream)
        except KeyError:
            pass
    else:
        CONSUMER_LAG.labels(stream).set(lag)
    CONSUMER_PENDING.labels(stream).set(pending)
