"""Scrape-time Prometheus metrics read from the database and Redis (served by the API's ``/metrics``).

Jobs run in Celery workers, consumers in their own processes: counters kept in those processes
would be invisible to the API and lost on restart. So what a dashboard needs is read where it is
stored, at scrape time, by :class:`AnalyticsCollector`:

From the database

* ``edgefinder_analysis_job_duration_seconds{status}`` histogram of every finished run's wall time
  (``analysis_runs.duration_s``, seconds), whichever process ran it;
* ``edgefinder_analysis_db_queries_total`` / ``edgefinder_analysis_db_seconds_total``: SQL
  statements of all runs and their time (seconds); ``edgefinder_last_run_db_queries`` /
  ``edgefinder_last_run_db_seconds`` / ``edgefinder_last_run_duration_seconds`` of the latest
  finished run; ``edgefinder_last_run_failed`` (1 when the latest finished run failed);
* ``edgefinder_dead_letters_stored_by_reason{reason}``: the text of ``dead_letters.reason`` before
  its first ``:`` (``bad JSON``, ``invalid KILL payload``, ``oversize payload``, ``delivery limit
  exceeded`` …);
* ``edgefinder_alerts_stored{kind}``, ``edgefinder_alerts_unacknowledged{kind}``;
  ``edgefinder_alert_webhook_failures_total`` (failed delivery attempts),
  ``edgefinder_alert_webhook_deliveries{state=delivered|failed}``.

From Redis (when configured; logical stream names ``canonical``, ``motion``, ``insights``)

* ``edgefinder_stream_length{stream}`` (XLEN);
* ``edgefinder_stream_group_lag{stream,group}`` (entries not yet delivered to the group),
  ``edgefinder_stream_group_pending{stream,group}`` (delivered, not acknowledged),
  ``edgefinder_stream_group_consumers{stream,group}``.

The freshness gauge ``edgefinder_last_run_age_seconds`` and the row counts stay in
:mod:`edgefinder.esports.api`. A database or Redis outage drops the affected families from the
scrape (``/health`` reports the outage) instead of failing ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, desc, func, literal, select

from edgefinder.esports.alerts import ALERT_KINDS
from edgefinder.esports.insights import insights_key
from edgefinder.store.tables import alerts, analysis_runs, dead_letters

__all__ = ["DURATION_BUCKETS", "AnalyticsCollector", "stream_groups", "stream_keys_all"]

log = logging.getLogger(__name__)
#: Upper bounds (seconds) of the job-duration histogram.
DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
_REASON_MAX = 64


def stream_keys_all(prefix: str) -> dict[str, str]:
    """Logical name -> Redis key of every stream edgefinder reads or writes."""
    from edgefinder.esports.sources import stream_keys

    return {**stream_keys(prefix), "insights": insights_key(prefix)}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def stream_groups(client: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """Per logical stream: ``{"length": XLEN, "groups": {group: {"lag", "pending", "consumers"}}}``.

    Streams that do not exist are left out. ``lag`` is that of
    :func:`~edgefinder.esports.sources.group_backlog`: 0 for a group that has read up to the
    stream's last id, None when Redis cannot tell (Redis < 7, entries deleted inside the group's
    range, counters not yet rebuilt after a restart).
    """
    from edgefinder.esports.sources import group_backlog

    out: dict[str, dict[str, Any]] = {}
    for name, key in stream_keys_all(prefix).items():
        if not client.exists(key):
            continue
        groups = group_backlog(client, key)
        out[name] = {"length": int(client.xlen(key)), "groups": groups}
    return out


class AnalyticsCollector(Collector):
    """Yields the families of the module docstring from one database (and Redis client) at each scrape."""

    def __init__(self, engine_fn: Any, redis_fn: Any, prefix: str) -> None:
        self._engine_fn, self._redis_fn, self._prefix = engine_fn, redis_fn, prefix

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._database(self._engine_fn())
        except Exception as exc:
            log.warning("metrics: database unavailable: %s", exc)
        try:
            client = self._redis_fn()
            if client is not None:
                yield from self._redis(client)
        except Exception as exc:
            log.warning("metrics: Redis unavailable: %s", exc)

    def _database(self, engine: Engine) -> Iterator[Metric]:
        r = analysis_runs.c
        finished = r.duration_s.is_not(None)
        buckets = [func.sum(case((r.duration_s <= b, 1), else_=0)) for b in DURATION_BUCKETS]
        with engine.connect() as conn:
            by_status = conn.execute(
                select(
                    r.status,
                    func.count(),
                    func.sum(r.duration_s),
                    *buckets,
                    func.coalesce(func.sum(r.db_queries), 0),
                    func.coalesce(func.sum(r.db_seconds), 0.0),
                )
                .where(finished)
                .group_by(r.status)
            ).all()
            last = conn.execute(
                select(r.status, r.duration_s, r.db_queries, r.db_seconds)
                .where(finished)
                .order_by(desc(r.finished_at))
                .limit(1)
            ).first()
            head = func.substr(dead_letters.c.reason, 1, _REASON_MAX)
            reasons = conn.execute(select(head, func.count()).group_by(head)).all()
            a = alerts.c
            kinds = conn.execute(
                select(
                    a.kind,
                    func.count(),
                    func.sum(case((a.acknowledged_at.is_(None), 1), else_=0)),
                    func.coalesce(func.sum(a.webhook_failures), 0),
                    func.sum(case((a.webhook_delivered_at.is_not(None), 1), else_=0)),
                    func.sum(case((a.webhook_error.like("%(gave up)"), 1), else_=literal(0))),
                ).group_by(a.kind)
            ).all()

        h = HistogramMetricFamily(
            "edgefinder_analysis_job_duration_seconds",
            "Wall time of correlation jobs (seconds), from analysis_runs, by status.",
            labels=["status"],
        )
        q = CounterMetricFamily(
            "edgefinder_analysis_db_queries",
            "SQL statements issued by correlation jobs.",
            labels=["status"],
        )
        qs = CounterMetricFamily(
            "edgefinder_analysis_db_seconds",
            "Seconds correlation jobs spent in SQL statements.",
            labels=["status"],
        )
        for status, n, total, *rest in by_status:
            counts, n_q, s_q = rest[: len(DURATION_BUCKETS)], rest[-2], rest[-1]
            cumulative = [
                (str(float(b)), float(c or 0))
                for b, c in zip(DURATION_BUCKETS, counts, strict=True)
            ]
            h.add_metric([status], [*cumulative, ("+Inf", float(n))], sum_value=float(total or 0.0))
            q.add_metric([status], float(n_q))
            qs.add_metric([status], float(s_q))
        yield from (h, q, qs)
        if last is not None:
            for name, doc, value in (
                (
                    "last_run_duration_seconds",
                    "Wall time of the latest finished run (seconds).",
                    last.duration_s,
                ),
                (
                    "last_run_db_queries",
                    "SQL statements of the latest finished run.",
                    last.db_queries,
                ),
                (
                    "last_run_db_seconds",
                    "Seconds the latest finished run spent in SQL.",
                    last.db_seconds,
                ),
                (
                    "last_run_failed",
                    "1 when the latest finished run failed, else 0.",
                    last.status == "failed",
                ),
            ):
                yield GaugeMetricFamily(f"edgefinder_{name}", doc, value=float(value or 0))

        dl = GaugeMetricFamily(
            "edgefinder_dead_letters_stored_by_reason",
            "Rows in dead_letters by reason (the text before its first ':').",
            labels=["reason"],
        )
        grouped: dict[str, int] = {}
        for text, n in reasons:
            label = (text or "").split(":", 1)[0].strip() or "unknown"
            grouped[label] = grouped.get(label, 0) + int(n)
        for label, n in sorted(grouped.items()):
            dl.add_metric([label], n)
        yield dl

        stored = GaugeMetricFamily(
            "edgefinder_alerts_stored", "Alerts in the alerts table, by kind.", labels=["kind"]
        )
        unacked = GaugeMetricFamily(
            "edgefinder_alerts_unacknowledged",
            "Alerts not acknowledged yet, by kind.",
            labels=["kind"],
        )
        failures = CounterMetricFamily(
            "edgefinder_alert_webhook_failures", "Failed webhook delivery attempts (all alerts)."
        )
        deliveries = GaugeMetricFamily(
            "edgefinder_alert_webhook_deliveries",
            "Alerts delivered to the webhook, or given up on.",
            labels=["state"],
        )
        seen = {k: (0, 0) for k in ALERT_KINDS}
        n_fail = n_ok = n_gave_up = 0
        for kind, n, n_unacked, fails, ok, gave_up in kinds:
            seen[kind] = (int(n), int(n_unacked or 0))
            n_fail, n_ok, n_gave_up = (
                n_fail + int(fails or 0),
                n_ok + int(ok or 0),
                n_gave_up + int(gave_up or 0),
            )
        for kind, (n, n_unacked) in seen.items():
            stored.add_metric([kind], n)
            unacked.add_metric([kind], n_unacked)
        failures.add_metric([], n_fail)
        deliveries.add_metric(["delivered"], n_ok)
        deliveries.add_metric(["failed"], n_gave_up)
        yield from (stored, unacked, failures, deliveries)

    def _redis(self, client: Any) -> Iterator[Metric]:
        info = stream_groups(client, self._prefix)
        length = GaugeMetricFamily(
            "edgefinder_stream_length", "Entries in the Redis stream (XLEN).", labels=["stream"]
        )
        lag = GaugeMetricFamily(
            "edgefinder_stream_group_lag",
            "Entries of the stream not yet delivered to the group.",
            labels=["stream", "group"],
        )
        pending = GaugeMetricFamily(
            "edgefinder_stream_group_pending",
            "Entries delivered to the group, not acknowledged.",
            labels=["stream", "group"],
        )
        consumers = GaugeMetricFamily(
            "edgefinder_stream_group_consumers",
            "Consumers of the group.",
            labels=["stream", "group"],
        )
        for stream, s in info.items():
            length.add_metric([stream], s["length"])
            for group, g in s["groups"].items():
                if g["lag"] is not None:
                    lag.add_metric([stream, group], g["lag"])
                pending.add_metric([stream, group], g["pending"])
                consumers.add_metric([stream, group], g["consumers"])
        yield from (length, lag, pending, consumers)
