"""The alert webhook's retry rules, against a real local HTTP server and a real SQLite database.

The server answers each POST with the next status of a script; the sender's ``sleep`` records the
delays instead of waiting them (the schedule is checked, not timed): the first retry waits the
configured backoff, each later one twice the previous, capped at 60 s; 408, 429, 5xx and a refused
connection are retried; any other 4xx is final; every attempt is recorded on the alert's row.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from edgefinder import DISCLAIMER
from edgefinder.esports.webhook import MAX_BACKOFF_S, WebhookSender
from edgefinder.store.engine import make_engine
from edgefinder.store.migrate import upgrade
from edgefinder.store.tables import alerts, analysis_runs


class ScriptedServer:
    """Answers the n-th POST with ``statuses[n]`` (the last one from then on); records the bodies."""

    def __init__(self, statuses: list[int]) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies, script = self.bodies, list(statuses)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(script[min(len(bodies), len(script)) - 1])
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{(tmp_path / 'hook.sqlite3').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as tx:
        tx.execute(
            insert(analysis_runs).values(run_id="r2", status="succeeded", disclaimer=DISCLAIMER)
        )
        tx.execute(
            insert(alerts).values(
                id=1,
                run_id="r2",
                previous_run_id="r1",
                feature="trade_count",
                outcome="round_win",
                method="aipw_within",
                kind="sign_flip",
                message="m",
            )
        )
    engine.dispose()
    yield url


def _deliver(db: str, url: str, attempts: int, backoff_s: float) -> tuple[list[float], Any]:
    delays: list[float] = []
    sender = WebhookSender(db, url, attempts=attempts, backoff_s=backoff_s, sleep=delays.append)
    sender.submit([{"id": 1, "kind": "sign_flip"}])
    assert sender.flush(60)
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == 1)).one()
    finally:
        engine.dispose()
    return delays, row


def test_retried_until_delivered_with_doubling_delays(db: str) -> None:
    srv = ScriptedServer([503, 429, 408, 204])
    try:
        delays, row = _deliver(db, srv.url, attempts=8, backoff_s=0.5)
    finally:
        srv.close()
    assert delays == [0.5, 1.0, 2.0] and len(srv.bodies) == 4
    assert (row.webhook_attempts, row.webhook_failures) == (4, 3)
    assert row.webhook_delivered_at is not None and row.webhook_error is None


def test_gives_up_after_the_configured_attempts_and_caps_the_delay(db: str) -> None:
    srv = ScriptedServer([500])
    try:
        delays, row = _deliver(db, srv.url, attempts=4, backoff_s=25.0)
    finally:
        srv.close()
    assert delays == [25.0, 50.0, MAX_BACKOFF_S] and len(srv.bodies) == 4
    assert (row.webhook_attempts, row.webhook_failures) == (4, 4)
    assert row.webhook_delivered_at is None
    assert row.webhook_error == "HTTP 500 Internal Server Error (gave up)"


def test_a_client_error_is_final_at_once(db: str) -> None:
    srv = ScriptedServer([404, 204])
    try:
        delays, row = _deliver(db, srv.url, attempts=8, backoff_s=0.5)
    finally:
        srv.close()
    assert delays == [] and len(srv.bodies) == 1
    assert (row.webhook_attempts, row.webhook_failures) == (1, 1)
    assert row.webhook_error == "HTTP 404 Not Found (gave up)"


def test_a_refused_connection_is_retried(db: str) -> None:
    srv = ScriptedServer([204])
    url = srv.url
    srv.close()  # nothing listens on the port any more
    delays, row = _deliver(db, url, attempts=3, backoff_s=0.25)
    assert delays == [0.25, 0.5]
    assert (row.webhook_attempts, row.webhook_failures) == (3, 3)
    assert row.webhook_error.endswith("(gave up)") and "URLError" in row.webhook_error
