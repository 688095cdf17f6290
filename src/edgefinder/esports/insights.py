"""Real-time insights for the agent system: the Redis stream ``{prefix}events:analytics:insights``.

Every entry has one field ``data`` holding a JSON object (the same framing as the input streams).
Two types, told apart by ``"type"``:

* ``run_summary``: ``run_id, status (succeeded | failed), trigger, n_rows, n_tests, n_significant,
  duration_s, finished_at, error, alerts (count per kind), top (up to 5 strongest findings)``;
* ``alert``: :func:`edgefinder.esports.alerts.alert_payload` (id, run ids, kind, feature, outcome,
  method, before/after figures, message, created_at).

Both carry ``purpose`` and ``disclaimer``. The stream is capped near :data:`MAX_LEN` entries
(``XADD MAXLEN ~``). Readers use ``XREAD`` (or their own consumer group): reading does not consume,
so any number of agents can follow it. ``edgefinder esports insights [--follow]`` prints it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

INSIGHTS_STREAM = "events:analytics:insights"
FIELD = b"data"
MAX_LEN = 100_000

__all__ = ["FIELD", "INSIGHTS_STREAM", "MAX_LEN", "insights_key", "publish", "read_insights"]


def insights_key(prefix: str) -> str:
    """The stream key under the Redis prefix (``EDGEFINDER_REDIS_PREFIX``)."""
    return f"{prefix}{INSIGHTS_STREAM}"


def publish(client: Any, prefix: str, payloads: list[dict[str, Any]]) -> list[str]:
    """XADD each payload as one entry (field ``data``, JSON) in one pipeline; returns the entry ids."""
    if not payloads:
        return []
    pipe = client.pipeline(transaction=False)
    for p in payloads:
        pipe.xadd(
            insights_key(prefix),
            {FIELD: json.dumps(p, allow_nan=False)},
            maxlen=MAX_LEN,
            approximate=True,
        )
    return [i.decode() if isinstance(i, bytes) else str(i) for i in pipe.execute()]


def _decode(entry_id: Any, fields: dict[Any, Any]) -> tuple[str, dict[str, Any]]:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    raw = fields.get(FIELD, fields.get("data"))
    try:
        return eid, json.loads(raw or b"")
    except (TypeError, ValueError):
        return eid, {
            "type": "unreadable",
            "raw": raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw,
        }


def read_insights(
    client: Any,
    prefix: str,
    *,
    last: int = 20,
    follow: bool = False,
    block_ms: int = 1000,
    stop: Any = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The ``last`` newest entries (oldest first), then with ``follow`` every new one until ``stop`` is set.

    Yields ``(entry_id, payload)``. ``stop``: an object with ``is_set()`` (a threading.Event).
    """
    key = insights_key(prefix)
    newest = client.xrevrange(key, count=last) if last > 0 else []
    cursor = "$"
    for eid, fields in reversed(newest):
        cursor = eid
        yield _decode(eid, fields)
    if not follow:
        return
    if cursor == "$":
        info = client.xinfo_stream(key) if client.exists(key) else None
        cursor = (info or {}).get("last-generated-id") or "0-0"
    while stop is None or not stop.is_set():
        for _, entries in client.xread({key: cursor}, block=block_ms) or []:
            for eid, fields in entries:
                cursor = eid
                yield _decode(eid, fields)
