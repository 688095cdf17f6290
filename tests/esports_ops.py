"""Real processes and servers for the operations tests: Celery worker/beat subprocesses, a webhook receiver.

Subprocesses get their settings through ``EDGEFINDER_*`` variables (database, Redis URL and the
test's key prefix, so Celery's queue and keys are private to the test), log to a file and are
stopped with SIGTERM (Celery's warm shutdown), SIGKILL only if that hangs.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from tests.cli_runs import clean_env

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]


def ops_env(
    database_url: str, redis_url: str, prefix: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    return clean_env(
        EDGEFINDER_DATABASE_URL=database_url,
        EDGEFINDER_REDIS_URL=redis_url,
        EDGEFINDER_REDIS_PREFIX=prefix,
        EDGEFINDER_DATA_DIR=str(data_dir),
        EDGEFINDER_LOG_LEVEL="INFO",
        **extra,
    )


def wait_until(fn: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call ``fn`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Proc:
    """A subprocess with its log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.p = subprocess.Popen(
            args,
            env=env,
            cwd=str(REPO),
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int:
        return self.p.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        def seen() -> bool:
            if self.p.poll() is not None:
                raise AssertionError(
                    f"process exited with {self.p.returncode}:\n{self.text()[-3000:]}"
                )
            return needle in self.text()

        wait_until(seen, timeout, f"{needle!r} in {self.log.name}")

    def stop(self, timeout: float = 60.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self._fh.close()
        return self.p.returncode

    def kill(self) -> None:
        self.p.kill()
        self.p.wait(10)
        self._fh.close()


def worker(env: dict[str, str], log: Path, *extra: str) -> Proc:
    """``edgefinder esports worker`` (Celery's worker) in a subprocess, ready to take tasks."""
    proc = Proc(
        [
            sys.executable,
            "-m",
            "edgefinder",
            "esports",
            "worker",
            "--without-gossip",
            "--without-mingle",
            *extra,
        ],
        env,
        log,
    )
    proc.wait_for(" ready.")
    return proc


def beat(env: dict[str, str], log: Path) -> Proc:
    proc = Proc([sys.executable, "-m", "edgefinder", "esports", "beat"], env, log)
    proc.wait_for("beat: Starting")
    return proc


class WebhookReceiver:
    """A local HTTP server that records the JSON bodies POSTed to it.

    The port is bound at once but only starts accepting when :meth:`start` is called: until then a
    connection is refused, exactly like a receiver that is down, and no other process can take the port.
    """

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        received, times = self.bodies, self.times

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                times.append(time.monotonic())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.server_bind()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    rx = WebhookReceiver()
    try:
        yield rx
    finally:
        rx.close()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve a FastAPI app with uvicorn on an ephemeral port of 127.0.0.1; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    wait_until(lambda: server.started, 30, "uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        th.join(10)
