"""Batch sources for the ingest pipeline: Redis Streams consumer groups and JSONL files.

Both give the pipeline the same interface: ``read(count, block_ms) -> list[Entry]`` and
``ack(entry_ids)`` (after the batch's transaction committed). Everything after the source is the
same code path, so ``ingest --from-file`` exercises the pipeline that serves Redis.

Redis (``RedisStreamSource``):

* The group is created at id ``0`` with MKSTREAM, so entries published before the group existed
  are delivered (the seed's consumers created it at ``$`` and skipped them).
* On start, the consumer first re-reads its own pending entries (id ``0``): a restarted consumer
  with the same name resumes what it had not acknowledged.
* Entries another consumer left pending for longer than ``min_idle_ms`` are taken over
  (checked every ``claim_interval_s`` seconds and whenever no new entries arrive). This is
  XAUTOCLAIM's job done as XPENDING … IDLE + XCLAIM, so that our own in-flight entries (read
  ahead, or in a transaction) are never re-claimed and their delivery counts stay honest.
* Each entry carries its delivery count (from XPENDING); the pipeline dead-letters an entry that
  has been delivered more than ``max_deliveries`` times and acknowledges it.
* Every key lives under ``settings.redis_prefix``: ``{prefix}events:canonical`` and
  ``{prefix}events:agent:motion``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from edgefinder.esports.events import is_signal_line

CANONICAL_STREAM = "events:canonical"
MOTION_STREAM = "events:agent:motion"
DEFAULT_GROUP = "edgefinder-ingest"
FIELD = b"data"


def stream_keys(prefix: str) -> dict[str, str]:
    """Logical name -> Redis key: ``{"canonical": prefix+"events:canonical", "motion": …}``."""
    return {"canonical": f"{prefix}{CANONICAL_STREAM}", "motion": f"{prefix}{MOTION_STREAM}"}


def default_consumer_name() -> str:
    """``host-pid``: unique per process, so consumers of one group never share pending lists."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Entry(NamedTuple):
    """One raw event: ``entry_id`` (Redis id or file line number), its bytes, delivery count.

    ``error`` is set when the source itself found the entry unusable (e.g. no ``data`` field).
    A NamedTuple: immutable, and cheap to create for every entry of a batch.
    """

    entry_id: str
    raw: bytes
    deliveries: int = 1
    error: str | None = None


class BatchSource(Protocol):
    """What the pipeline needs from a source."""

    name: str  # stored in dead_letters.source
    label: str  # metrics label: canonical, motion or file
    max_deliveries: int

    def read(self, count: int, block_ms: int) -> list[Entry]: ...

    def ack(self, entry_ids: Sequence[str]) -> None: ...

    def drained(self) -> bool: ...


class JsonlSource:
    """A JSONL file as a batch source; entry ids are 1-based line numbers, blank lines skipped.

    ``ack`` is a no-op (a file has no delivery state); re-running a file is safe because every
    write is an idempotent upsert.
    """

    label = "file"
    max_deliveries = 1 << 30

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._fh = self.path.open("rb")
        self._lineno = 0
        self._eof = False

    def read(self, count: int, block_ms: int = 0) -> list[Entry]:
        out: list[Entry] = []
        if self._eof:
            return out
        fh = self._fh
        while len(out) < count:
            line = fh.readline()
            if not line:
                self._eof = True
                fh.close()
                break
            self._lineno += 1
            line = line.rstrip(b"\r\n")
            if line.strip():
                out.append(Entry(str(self._lineno), line))
        return out

    def ack(self, entry_ids: Sequence[str]) -> None:
        return None

    def drained(self) -> bool:
        return self._eof

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _decode_id(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisStreamSource:
    """One stream of a consumer group as a batch source (redis-py client, bytes responses)."""

    def __init__(
        self,
        client: Any,
        stream: str,
        *,
        label: str,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        min_idle_ms: int = 60_000,
        max_deliveries: int = 5,
        claim_interval_s: float = 5.0,
    ) -> None:
        self.client = client
        self.stream = stream
        self.name = stream
        self.label = label
        self.group = group
        self.consumer = consumer or default_consumer_name()
        self.min_idle_ms = int(min_idle_ms)
        self.max_deliveries = int(max_deliveries)
        self.claim_interval_s = claim_interval_s
        self._own_pending_done = False
        self._history_cursor = "0"
        self._last_raw_id: str | None = None  # last id of the latest XREADGROUP reply, if any
        self._last_claim = 0.0
        self._last_empty = False
        # ids delivered to this consumer and not yet acknowledged (read ahead or being written);
        # a claim must not hand them to us a second time
        self.inflight: set[str] = set()
        self._lock = threading.Lock()
        self.ensure_group()

    # -- setup ---------------------------------------------------------------------------

    def ensure_group(self) -> None:
        """XGROUP CREATE … 0 MKSTREAM; an existing group is fine."""
        import redis

        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- reading -------------------------------------------------------------------------

    def read(self, count: int, block_ms: int = 1000) -> list[Entry]:
        """Own pending entries first, then due claims, then new entries (blocking ``block_ms``)."""
        if not self._own_pending_done:
            # our own history (a restart under the same name), walked with a cursor so that
            # entries read ahead but not yet acknowledged are not delivered twice
            got = self._read_group(self._history_cursor, count, None)
            if self._last_raw_id is not None:
                self._history_cursor = self._last_raw_id
                return got
            self._own_pending_done = True
        if time.monotonic() - self._last_claim >= self.claim_interval_s:
            claimed = self.claim(count)
            if claimed:
                self._last_empty = False
                return claimed
        got = self._read_group(">", count, block_ms if block_ms > 0 else None)
        if not got:
            # nothing new: before reporting "drained", take over what others left pending
            claimed = self.claim(count)
            if claimed:
                self._last_empty = False
                return claimed
        self._last_empty = not got
        return got

    def _read_group(self, start: str, count: int, block_ms: int | None) -> list[Entry]:
        import redis

        try:
            resp = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
            )
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream/group vanished (e.g. Redis restarted empty)
                self.ensure_group()
                return []
            raise
        self._last_raw_id = None
        if not resp:
            return []
        raw_entries = resp[0][1]
        if not raw_entries:
            return []
        self._last_raw_id = _decode_id(raw_entries[-1][0])
        entries, gone = self._to_entries(raw_entries)
        if gone:
            self.ack(gone)
        with self._lock:
            self.inflight.update(e.entry_id for e in entries)
        if start == ">":
            return entries  # first delivery: the count is 1 by definition
        return self._with_deliveries(entries)

    def claim(self, count: int) -> list[Entry]:
        """Take over up to ``count`` entries pending for more than ``min_idle_ms`` elsewhere.

        XPENDING (with IDLE) lists the candidates, our own in-flight entries are left out (an
        XAUTOCLAIM would re-claim them too and inflate their delivery counts), and XCLAIM takes
        the rest; XCLAIM re-checks the idle time, so two consumers never both win an entry.
        """
        self._last_claim = time.monotonic()
        with self._lock:
            skip = set(self.inflight)
        info = self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=count + len(skip) + 16, idle=self.min_idle_ms
        )
        ids = [mid for mid in (_decode_id(x["message_id"]) for x in info) if mid not in skip][:count]
        if not ids:
            return []
        raw_entries = self.client.xclaim(self.stream, self.group, self.consumer, self.min_idle_ms, ids)
        # an id XPENDING listed but XCLAIM did not return was taken by a faster consumer (or
        # deleted, and then dropped from the pending list by XCLAIM itself): nothing to do
        entries, empty = self._to_entries(raw_entries)
        if empty:
            self.ack(empty)
        with self._lock:
            self.inflight.update(e.entry_id for e in entries)
        return self._with_deliveries(entries)

    def touch(self) -> None:
        """Reset the idle time of the in-flight entries (XCLAIM … JUSTID does not count a
        delivery), so a long database outage does not let other consumers take them over."""
        with self._lock:
            ids = sorted(self.inflight)
        for i in range(0, len(ids), 1000):
            self.client.xclaim(self.stream, self.group, self.consumer, 0, ids[i : i + 1000], justid=True)

    def _to_entries(self, raw_entries: Iterable[Any]) -> tuple[list[Entry], list[str]]:
        entries: list[Entry] = []
        gone: list[str] = []
        append = entries.append
        for eid, fields in raw_entries:
            sid = eid.decode() if eid.__class__ is bytes else str(eid)
            if not fields:  # deleted from the stream while pending: nothing to process
                gone.append(sid)
                continue
            data = fields.get(FIELD)
            if data is None:
                data = fields.get(FIELD.decode())
            if data is None:
                # an entry without the `data` field breaks the contract: let the pipeline
                # dead-letter it with the fields it did have
                shown = repr({_decode_id(k): v for k, v in fields.items()}).encode()
                append(Entry(sid, shown, 1, "stream entry has no 'data' field"))
                continue
            append(Entry(sid, data if data.__class__ is bytes else str(data).encode()))
        return entries, gone

    def _with_deliveries(self, entries: list[Entry]) -> list[Entry]:
        """Attach delivery counts from XPENDING (one call for the whole id range)."""
        if not entries:
            return entries
        ids = [e.entry_id for e in entries]
        info = self.client.xpending_range(
            self.stream, self.group, min=ids[0], max=ids[-1], count=len(ids) + 1000, consumername=self.consumer
        )
        times = {_decode_id(x["message_id"]): int(x["times_delivered"]) for x in info}
        return [Entry(e.entry_id, e.raw, times.get(e.entry_id, 1), e.error) for e in entries]

    # -- acknowledging / monitoring ------------------------------------------------------

    def ack(self, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for i in range(0, len(entry_ids), 1000):
            pipe.xack(self.stream, self.group, *entry_ids[i : i + 1000])
        pipe.execute()
        with self._lock:
            self.inflight.difference_update(entry_ids)

    def drained(self) -> bool:
        """True after a read found no new entries and nothing claimable."""
        return self._own_pending_done and self._last_empty

    def lag(self) -> tuple[int | None, int]:
        """(entries not yet delivered to the group, entries pending) from XINFO GROUPS."""
        for g in self.client.xinfo_groups(self.stream):
            name = g.get("name")
            if _decode_id(name) == self.group:
                lag = g.get("lag")
                return (int(lag) if lag is not None else None, int(g.get("pending", 0)))
        return (None, 0)


def publish(path: str | Path, client: Any, prefix: str = "", *, batch: int = 5000) -> dict[str, int]:
    """Put each line of a JSONL file on its stream as one field ``data`` (pipelined in batches).

    Lines with ``signal_id`` go to ``{prefix}events:agent:motion``, all others (including lines
    that are not valid JSON, which the consumer dead-letters) to ``{prefix}events:canonical``.
    Blank lines are skipped. Returns the count per logical stream.
    """
    keys = stream_keys(prefix)
    counts = {"canonical": 0, "motion": 0}
    pipe = client.pipeline(transaction=False)
    pending = 0
    with Path(path).open("rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            kind = "motion" if b'"signal_id"' in line and is_signal_line(line) else "canonical"
            pipe.xadd(keys[kind], {FIELD: line})
            counts[kind] += 1
            pending += 1
            if pending >= batch:
                pipe.execute()
                pending = 0
    if pending:
        pipe.execute()
    return counts
