"""The ``/metrics`` endpoint of a process that counts: the stream consumers and the Celery worker.

prometheus_client's HTTP server on a port setting of its own per kind of process
(``EDGEFINDER_INGEST_METRICS_PORT``, ``EDGEFINDER_WORKER_METRICS_PORT``), serving the default
registry, where :mod:`edgefinder.esports.metrics` registers the ingest counters.
"""

from __future__ import annotations

from prometheus_client import start_http_server

from edgefinder.errors import EdgefinderError
from edgefinder.esports.metrics import BATCHES, EVENTS_INGESTED

__all__ = ["serve_metrics"]


def serve_metrics(port: int, setting: str) -> None:
    """Serve this process's metrics at ``http://0.0.0.0:PORT/metrics`` from a daemon thread
    (prometheus_client's HTTP server); ``port`` 0 serves nothing. ``setting`` names the variable
    that chose the port, for the one-line error when it is taken."""
    if not port:
        return
    # The series exist at 0 before the first batch, so rate() and increase() count that batch too
    # (a series first seen at its batch's value would look like it had always been there).
    for stream in ("canonical", "motion"):
        EVENTS_INGESTED.labels(stream)
        BATCHES.labels(stream)
    try:
        start_http_server(port)
    except OSError as exc:
        raise EdgefinderError(
            f"cannot serve /metrics on port {port} ({exc.strerror or exc}): "
            f"set {setting} (or --metrics-port) to a free port, 0 for none"
        ) from exc
