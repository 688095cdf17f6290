"""Alert webhook: POST each alert as JSON to ``EDGEFINDER_ALERT_WEBHOOK_URL``, off the job's thread.

One delivery thread per process and URL takes alerts from a queue, in order. An attempt succeeds on
a 2xx answer. A connection error, a timeout, 408, 429 or a 5xx answer is retried after a delay that
starts at ``EDGEFINDER_ALERT_WEBHOOK_BACKOFF_S`` and doubles (capped at 60 s), up to
``EDGEFINDER_ALERT_WEBHOOK_ATTEMPTS`` attempts (tenacity's ``Retrying``); any other 4xx answer is
final. Every attempt is
recorded on the alert's row (``webhook_attempts``, ``webhook_failures``, ``webhook_delivered_at``,
``webhook_error``), which is what ``/metrics`` counts (``edgefinder_alert_webhook_failures_total``):
the count survives the process and covers workers the API cannot see.

The body is :func:`edgefinder.esports.alerts.alert_payload` (``id`` lets a receiver drop a repeat).
The job never waits for a delivery; :func:`flush` lets a short-lived process (``esports analyze``)
give pending deliveries a bounded time before it exits.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, update
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from edgefinder import __version__
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import alerts

__all__ = ["WebhookSender", "flush", "sender_for"]

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 60.0
TIMEOUT_S = 5.0
_RETRY_STATUS = frozenset({408, 429})


class WebhookSender:
    """A daemon thread that delivers queued alert payloads to one URL, recording attempts in ``alerts``."""

    def __init__(
        self,
        database_url: str,
        url: str,
        *,
        attempts: int,
        backoff_s: float,
        timeout_s: float = TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``sleep`` waits between attempts (seconds); a test passes one that records the delays."""
        self._sleep = sleep
        self.url, self.attempts, self.backoff_s, self.timeout_s = (
            url,
            attempts,
            backoff_s,
            timeout_s,
        )
        self._database_url = database_url
        self._engine: Engine | None = None
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="edgefinder-webhook", daemon=True)
        self._thread.start()

    def submit(self, payloads: list[dict[str, Any]]) -> None:
        """Queue payloads for delivery (returns at once)."""
        for p in payloads:
            self._queue.put(p)

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the queue to drain; True if everything was handled."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.05)
        return self._queue.unfinished_tasks == 0

    # -- delivery thread

    def _record(self, alert_id: int, **values: Any) -> None:
        if self._engine is None:
            self._engine = make_engine(self._database_url)
        try:
            with self._engine.begin() as tx:
                tx.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))
        except Exception:
            log.exception("could not record the webhook attempt of alert %s", alert_id)

    def _post(self, body: bytes) -> tuple[bool, bool, str]:
        """One attempt: (delivered, retry, error)."""
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"edgefinder/{__version__}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return True, False, f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return (
                False,
                exc.code in _RETRY_STATUS or exc.code >= 500,
                f"HTTP {exc.code} {exc.reason}",
            )
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return False, True, f"{type(exc).__name__}: {reason}"

    def _deliver(self, payload: dict[str, Any]) -> None:
        """Attempts with tenacity's exponential backoff (``backoff_s``, doubling, capped at
        :data:`MAX_BACKOFF_S`), each recorded on the alert's row; a final answer stops at once."""
        body = json.dumps(payload, allow_nan=False).encode()
        numbers = itertools.count(1)

        def attempt() -> bool:
            """One POST, recorded; True when it failed and may be retried."""
            n = next(numbers)
            ok, retry, detail = self._post(body)
            if ok:
                self._record(
                    payload["id"],
                    webhook_attempts=n,
                    webhook_failures=n - 1,
                    webhook_delivered_at=datetime.now(UTC),
                    webhook_error=None,
                )
                return False
            last = n == self.attempts or not retry
            self._record(
                payload["id"],
                webhook_attempts=n,
                webhook_failures=n,
                webhook_error=f"{detail}{' (gave up)' if last else ''}",
            )
            if last:
                log.warning(
                    "alert %s: webhook %s failed %d times, giving up: %s",
                    payload["id"],
                    self.url,
                    n,
                    detail,
                )
            return not last

        Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=MAX_BACKOFF_S),
            retry=retry_if_result(bool),
            retry_error_callback=lambda _state: None,  # every attempt is on the row already
            sleep=self._sleep,
        )(attempt)

    def _loop(self) -> None:
        while True:
            payload = self._queue.get()
            try:
                self._deliver(payload)
            except Exception:
                log.exception("webhook delivery of alert %s failed", payload.get("id"))
            finally:
                self._queue.task_done()


_senders: dict[tuple[str, str], WebhookSender] = {}
_lock = threading.Lock()


def sender_for(database_url: str, url: str, *, attempts: int, backoff_s: float) -> WebhookSender:
    """The process's sender for (database, webhook URL), started on first use."""
    with _lock:
        key = (database_url, url)
        if key not in _senders or not _senders[key]._thread.is_alive():
            _senders[key] = WebhookSender(database_url, url, attempts=attempts, backoff_s=backoff_s)
        return _senders[key]


def flush(timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` (in total) for every sender of this process; True if all drained."""
    deadline = time.monotonic() + timeout_s
    with _lock:
        senders = list(_senders.values())
    return all(s.flush(max(0.0, deadline - time.monotonic())) for s in senders)
