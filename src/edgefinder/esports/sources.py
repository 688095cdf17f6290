"""Batch sources for the ingest pipeline: Redis Streams consumer groups and JSONL files.

Both give the consumer loop the same interface, :class:`BatchSource`: ``read(count, block_ms)
-> list[Entry]``, ``ack(entry_ids)`` (after the batch's transaction committed), and the failure
journal of the delivery limit (``begin_attempt`` / ``abandon`` / ``record_failure``). Everything
after the source is the same code path, so ``ingest --from-file`` exercises the pipeline that
serves Redis.

Redis (``RedisStreamSource``):

* The group is created at id ``0`` with MKSTREAM, so entries published before the group existed
  are delivered (the original consumers created it at ``$`` and skipped them; docs/decisions.md §D1).
* On start, the consumer first re-reads its own pending entries (id ``0``): a restarted consumer
  with the same name resumes what it had not acknowledged.
* Entries another consumer left pending for longer than ``min_idle_ms`` are taken over
  (checked every ``claim_interval_s`` seconds and whenever no new entries arrive). This is
  XAUTOCLAIM's job done as XPENDING … IDLE + XCLAIM, so that our own in-flight entries (read
  ahead, or in a transaction) are never re-claimed and their delivery counts stay honest.
* Each redelivered entry carries its delivery count (from XPENDING) and its failure record: how
  many write attempts of it never finished (the consumer died or gave up), how many of those
  wrote it alone, and what happened the first time. The records live in one hash per stream and
  group, ``{stream}:failures:{group}`` (fields ``<id>``, ``<id>:alone``, ``<id>:first``); an
  attempt is recorded before a careful write starts and cleared with the entry's XACK. The
  consumer loop uses them to isolate an entry that kills its consumer (see
  :mod:`edgefinder.esports.consumer`); being redelivered alone counts for nothing.
* Every key lives under ``settings.redis_prefix``: ``{prefix}events:canonical`` and
  ``{prefix}events:agent:motion``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from edgefinder.esports.events import (
    DEFAULT_MAX_EVENT_BYTES,
    InvalidEvent,
    MotionSignal,
    is_signal_line,
    parse_line,
)

log = logging.getLogger(__name__)

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

    ``error`` is set when the source itself found the entry unusable (e.g. no ``data`` field,
    an oversize line); the pipeline dead-letters it with that reason. ``failures``,
    ``alone_failures`` and ``first_failure`` are the entry's failure record (write attempts that
    never finished; those of them that wrote it alone; what happened the first time).
    A NamedTuple: immutable, and cheap to create for every entry of a batch.
    """

    entry_id: str
    raw: bytes
    deliveries: int = 1
    error: str | None = None
    failures: int = 0
    alone_failures: int = 0
    first_failure: str | None = None


class BatchSource(Protocol):
    """What the consumer loop and the pipeline need from a source."""

    name: str  # stored in dead_letters.source
    label: str  # metrics label: canonical, motion or file
    server: str  # what ``unavailable`` means is down (metrics label of the retries): redis, file
    #: consumer failures while writing an entry alone after which it is dead-lettered
    max_deliveries: int
    #: what ``read``/``ack``/… raise while the server is unreachable (the loop backs off and retries)
    unavailable: tuple[type[BaseException], ...]

    def read(self, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` entries (waiting up to ``block_ms``); redelivered ones carry their record."""

    def ack(self, entry_ids: Sequence[str]) -> None:
        """The entries' batch committed: never deliver them again, and drop their failure records."""

    def drained(self) -> bool:
        """Nothing is left to read (``--once`` stops)."""

    def begin_attempt(self, entry_ids: Sequence[str], *, alone: bool) -> None:
        """Record durably, before writing them, that a write of these entries starts."""

    def abandon(self, entry_ids: Sequence[str]) -> None:
        """A write begun with :meth:`begin_attempt` was given up cleanly (a stop, an outage): undo it."""

    def record_failure(self, entry_ids: Sequence[str], reason: str) -> None:
        """The consumer gives up on these entries with an error: keep ``reason`` as their first failure."""

    def keep_alive(self) -> None:
        """During a long retry: keep the in-flight entries from being taken over by other consumers."""

    def backlog(self) -> tuple[int | None, int] | None:
        """``(entries not yet delivered, entries pending)``, or None where the source has no such notion."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StatelessSource:
    """A source without delivery state (a file, an importer's events): every entry is delivered once,
    ``ack`` and the failure journal are no-ops, and reading it again is safe because every write is
    idempotent. Subclasses provide ``name``, ``read`` and ``drained``."""

    label = "file"
    server = "file"
    max_deliveries = 1 << 30
    unavailable: tuple[type[BaseException], ...] = ()

    def ack(self, entry_ids: Sequence[str]) -> None:
        return None

    def begin_attempt(self, entry_ids: Sequence[str], *, alone: bool) -> None:
        return None

    def abandon(self, entry_ids: Sequence[str]) -> None:
        return None

    def record_failure(self, entry_ids: Sequence[str], reason: str) -> None:
        return None

    def keep_alive(self) -> None:
        return None

    def backlog(self) -> tuple[int | None, int] | None:
        return None


class JsonlSource(StatelessSource):
    """A JSONL file as a batch source; entry ids are 1-based line numbers, blank lines skipped.

    A file has no delivery state (:class:`StatelessSource`). A line longer than ``max_bytes`` is
    not read into memory: it becomes an entry with the error ``oversize`` (its first ``max_bytes``
    bytes kept for the dead letter).
    """

    def __init__(self, path: str | Path, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.max_bytes = max_bytes
        self._fh = self.path.open("rb")
        self._lineno = 0
        self._eof = False

    def read(self, count: int, block_ms: int = 0) -> list[Entry]:
        out: list[Entry] = []
        if self._eof:
            return out
        fh = self._fh
        cap = self.max_bytes + 2  # room for the line's own \r\n
        while len(out) < count:
            line = fh.readline(cap + 1)
            if not line:
                self._eof = True
                fh.close()
                break
            self._lineno += 1
            if len(line) > cap and not line.endswith(b"\n"):
                out.append(self._oversize(line))
                continue
            line = line.rstrip(b"\r\n")
            if line.strip():
                out.append(Entry(str(self._lineno), line))
        return out

    def _oversize(self, head: bytes) -> Entry:
        """Skip the rest of an over-long line in chunks; the entry keeps its head and its size."""
        size, chunk = len(head), head
        while not chunk.endswith(b"\n"):
            chunk = self._fh.readline(1 << 20)
            if not chunk:
                break
            size += len(chunk)
        size -= len(chunk) - len(chunk.rstrip(b"\r\n"))
        return Entry(
            str(self._lineno),
            head[: self.max_bytes],
            1,
            f"oversize payload: {size} bytes > limit {self.max_bytes}",
        )

    def drained(self) -> bool:
        return self._eof

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _decode_id(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _stream_id(v: Any) -> tuple[int, int]:
    ms, _, seq = _decode_id(v).partition("-")
    return int(ms), int(seq or 0)


def group_backlog(client: Any, key: str) -> dict[str, dict[str, int | None]]:
    """Per consumer group of stream ``key``: ``{"lag", "pending", "consumers"}`` (XINFO GROUPS).

    ``lag`` (entries not yet delivered to the group) is Redis's own only while the group has not
    read up to the stream's last id: a group that has is 0 behind, whatever Redis's counters say
    (after a restart from the AOF they are invalid, and Redis answers no lag at all until the
    next read, which an idle consumer never makes). None where Redis cannot tell. A missing
    stream has no groups.
    """
    import redis

    pipe = client.pipeline(transaction=False)
    pipe.xinfo_groups(key)
    pipe.xinfo_stream(key)
    try:
        groups, stream = pipe.execute()
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return {}
        raise
    last = _stream_id(stream.get("last-generated-id", b"0-0"))
    out: dict[str, dict[str, int | None]] = {}
    for g in groups:
        g = {_decode_id(k): v for k, v in g.items()}
        lag = g.get("lag")
        if _stream_id(g.get("last-delivered-id", b"0-0")) >= last:
            lag = 0
        out[_decode_id(g["name"])] = {
            "lag": None if lag is None else int(lag),
            "pending": int(g.get("pending", 0)),
            "consumers": int(g.get("consumers", 0)),
        }
    return out


def _as_sent(response: Any, **options: Any) -> Any:
    return response


def _field_error(fields: dict[Any, Any]) -> str:
    names = ", ".join(repr(k) for k in list(fields)[:8])
    return f"stream entry has no 'data' field (fields: {names})"


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
        self.server = "redis"
        self.failure_key = f"{stream}:failures:{group}"
        import redis

        # XREADGROUP through a client on the same connections whose reply is left as Redis sent
        # it: redis-py would turn every entry's field list into a dict first (about a tenth of
        # the consumer's CPU per entry); :meth:`_to_entries` reads the pairs itself
        self._reader = redis.Redis(connection_pool=client.connection_pool)
        self._reader.set_response_callback("XREADGROUP", _as_sent)

        self.unavailable: tuple[type[BaseException], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
            redis.BusyLoadingError,
        )
        # ids that may have a failure record (read as redelivered, or attempted carefully):
        # their fields are deleted with their XACK; how each attempt began (alone or not)
        self._recorded: set[str] = set()
        self._alone: dict[str, bool] = {}
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

    def _grouped(self, call: Callable[[], Any], empty: Any) -> Any:
        """``call()``; when Redis answers NOGROUP (the stream or group was deleted, or Redis restarted
        without them), recreate the group at id 0 and return ``empty``. Entries the old group had
        delivered are delivered again (every write is idempotent); nothing stops the consumer."""
        import redis

        try:
            return call()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("%s: consumer group %s is gone; recreated at id 0", self.stream, self.group)
            self.ensure_group()
            with self._lock:
                self.inflight.clear()  # the new group has no pending entries
            return empty

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
        self._last_raw_id = None
        resp = self._grouped(
            lambda: self._reader.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
            ),
            None,
        )
        if not resp:
            return []
        # RESP2: [[stream, entries]]; RESP3: {stream: entries}
        raw_entries = next(iter(resp.values())) if resp.__class__ is dict else resp[0][1]
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
        info = self._grouped(
            lambda: self.client.xpending_range(
                self.stream,
                self.group,
                min="-",
                max="+",
                count=count + len(skip) + 16,
                idle=self.min_idle_ms,
            ),
            [],
        )
        ids = [mid for mid in (_decode_id(x["message_id"]) for x in info) if mid not in skip][
            :count
        ]
        if not ids:
            return []
        raw_entries = self._grouped(
            lambda: self.client.xclaim(
                self.stream, self.group, self.consumer, self.min_idle_ms, ids
            ),
            [],
        )
        # an id XPENDING listed but XCLAIM did not return was taken by a faster consumer (or
        # deleted, and then dropped from the pending list by XCLAIM itself): nothing to do
        entries, empty = self._to_entries(raw_entries)
        if empty:
            self.ack(empty)
        with self._lock:
            self.inflight.update(e.entry_id for e in entries)
        return self._with_deliveries(entries)

    def keep_alive(self) -> None:
        """Reset the idle time of the in-flight entries (XCLAIM … JUSTID does not count a
        delivery), so a long database outage does not let other consumers take them over."""
        with self._lock:
            ids = sorted(self.inflight)
        for i in range(0, len(ids), 1000):
            claim = partial(
                self.client.xclaim,
                self.stream,
                self.group,
                self.consumer,
                0,
                ids[i : i + 1000],
                justid=True,
            )
            self._grouped(claim, None)

    def _to_entries(self, raw_entries: Iterable[Any]) -> tuple[list[Entry], list[str]]:
        entries: list[Entry] = []
        gone: list[str] = []
        append = entries.append
        new = tuple.__new__  # a NamedTuple's own __new__ is a Python function: 3x slower per entry
        for eid, fields in raw_entries:
            sid = eid.decode() if eid.__class__ is bytes else str(eid)
            if not fields:  # deleted from the stream while pending: nothing to process
                gone.append(sid)
                continue
            data = None
            if fields.__class__ is list:  # as sent (XREADGROUP): [name, value, name, value, …]
                if len(fields) == 2 and fields[0] == FIELD:
                    data = fields[1]
                else:
                    fields = dict(zip(fields[::2], fields[1::2]))
            if fields.__class__ is dict:  # parsed by redis-py (XCLAIM), or several fields
                data = fields.get(FIELD)
                if data is None:
                    data = fields.get(FIELD.decode())
            if data is None:
                # an entry without the `data` field breaks the contract: the pipeline dead-letters
                # it with the fields it did have, as Python bytes literals (names that are not
                # UTF-8 included: nothing is decoded here, every byte is kept)
                append(Entry(sid, repr(dict(fields)).encode(), 1, _field_error(fields)))
                continue
            append(
                new(
                    Entry,
                    (
                        sid,
                        data if data.__class__ is bytes else str(data).encode(),
                        1,
                        None,
                        0,
                        0,
                        None,
                    ),
                )
            )
        return entries, gone

    def _with_deliveries(self, entries: list[Entry]) -> list[Entry]:
        """Attach delivery counts (XPENDING, one call for the id range) and failure records."""
        if not entries:
            return entries
        ids = [e.entry_id for e in entries]
        pipe = self.client.pipeline(transaction=False)
        pipe.xpending_range(
            self.stream,
            self.group,
            min=ids[0],
            max=ids[-1],
            count=len(ids) + 1000,
            consumername=self.consumer,
        )
        pipe.hmget(self.failure_key, [f for i in ids for f in (i, f"{i}:alone", f"{i}:first")])
        info, rec = self._grouped(pipe.execute, ([], [None] * (3 * len(ids))))
        times = {_decode_id(x["message_id"]): int(x["times_delivered"]) for x in info}
        out = []
        for k, e in enumerate(entries):
            n, alone, first = rec[3 * k : 3 * k + 3]
            if n is not None or first is not None:
                with self._lock:
                    self._recorded.add(e.entry_id)
            out.append(
                Entry(
                    e.entry_id,
                    e.raw,
                    times.get(e.entry_id, 1),
                    e.error,
                    int(n or 0),
                    int(alone or 0),
                    first.decode("utf-8", "replace") if first is not None else None,
                )
            )
        return out

    # -- the failure journal (see the module docstring) ------------------------------------

    def begin_attempt(self, entry_ids: Sequence[str], *, alone: bool) -> None:
        note = (
            f"consumer {self.consumer} began writing it at {_now()} in a batch of {len(entry_ids)} "
            "and never finished (the process was killed or crashed)"
        )
        pipe = self.client.pipeline(transaction=True)
        for i in entry_ids:
            pipe.hincrby(self.failure_key, i, 1)
            if alone:
                pipe.hincrby(self.failure_key, f"{i}:alone", 1)
            pipe.hsetnx(self.failure_key, f"{i}:first", note)
        pipe.execute()
        with self._lock:
            self._recorded.update(entry_ids)
            for i in entry_ids:
                self._alone[i] = alone

    def abandon(self, entry_ids: Sequence[str]) -> None:
        pipe = self.client.pipeline(transaction=True)
        alone = [self._alone.pop(i, False) for i in entry_ids]
        for i, a in zip(entry_ids, alone):
            pipe.hincrby(self.failure_key, i, -1)
            if a:
                pipe.hincrby(self.failure_key, f"{i}:alone", -1)
        counts = pipe.execute()
        k, gone = 0, []
        for i, a in zip(entry_ids, alone):
            if int(counts[k]) <= 0:
                gone += [i, f"{i}:alone", f"{i}:first"]
            k += 2 if a else 1
        if gone:
            self.client.hdel(self.failure_key, *gone)

    def record_failure(self, entry_ids: Sequence[str], reason: str) -> None:
        counts = self.client.hmget(self.failure_key, list(entry_ids)) if entry_ids else []
        note = f"consumer {self.consumer} gave up writing it at {_now()} in a batch of {len(entry_ids)}: {reason}"
        first = {f"{i}:first": note for i, n in zip(entry_ids, counts) if int(n or 0) <= 1}
        if first:
            self.client.hset(self.failure_key, mapping=first)
        with self._lock:
            self._recorded.update(entry_ids)

    # -- acknowledging / monitoring ------------------------------------------------------

    def ack(self, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        with self._lock:
            recorded = [i for i in entry_ids if i in self._recorded] if self._recorded else []
        # XACK and the deletion of the failure records in one MULTI: both happen or neither
        pipe = self.client.pipeline(transaction=bool(recorded))
        for start in range(0, len(entry_ids), 1000):
            pipe.xack(self.stream, self.group, *entry_ids[start : start + 1000])
        if recorded:
            pipe.hdel(
                self.failure_key, *[f for i in recorded for f in (i, f"{i}:alone", f"{i}:first")]
            )
        pipe.execute()
        with self._lock:
            self.inflight.difference_update(entry_ids)
            self._recorded.difference_update(recorded)
            for i in recorded:
                self._alone.pop(i, None)

    def drained(self) -> bool:
        """True after a read found no new entries and nothing claimable."""
        return self._own_pending_done and self._last_empty

    def backlog(self) -> tuple[int | None, int] | None:
        """(entries not yet delivered to the group, entries pending) from XINFO GROUPS (see
        :func:`group_backlog`); a stream or group that is gone is recreated."""
        got = group_backlog(self.client, self.stream).get(self.group)
        if got is None:
            self.ensure_group()
            return (None, 0)
        return got["lag"], int(got["pending"] or 0)


def publish(
    path: str | Path,
    client: Any,
    prefix: str = "",
    *,
    batch: int = 5000,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    on_invalid: Callable[[int, str], None] | None = None,
) -> dict[str, int]:
    """Put each line of a JSONL file on its stream as one field ``data`` (pipelined in batches).

    Every line is validated like the consumer does (:func:`parse_line`): a valid motion signal
    goes to ``{prefix}events:agent:motion``, a valid canonical event to ``{prefix}events:canonical``.
    A line that is not a valid event is reported through ``on_invalid(line_number, reason)`` and
    published all the same (a JSON object with a top-level ``signal_id`` to the motion stream,
    anything else to the canonical one), where the consumer dead-letters it: nothing is lost and
    the run goes on. The exception is a line over ``max_bytes``: it is reported and not published
    (it is never read into memory whole). Blank lines are skipped. Returns the count of
    published lines per logical stream.
    """
    keys = stream_keys(prefix)
    counts = {"canonical": 0, "motion": 0}
    pipe = client.pipeline(transaction=False)
    pending = 0
    src = JsonlSource(path, max_bytes=max_bytes)
    try:
        while entries := src.read(batch):
            for e in entries:
                kind = "canonical"
                reason = e.error
                if reason is None:
                    try:
                        kind = (
                            "motion"
                            if isinstance(parse_line(e.raw, max_bytes=max_bytes), MotionSignal)
                            else kind
                        )
                    except InvalidEvent as exc:
                        reason = exc.reason
                if reason is not None:
                    if on_invalid is not None:
                        on_invalid(
                            int(e.entry_id), reason + (" (not published)" if e.error else "")
                        )
                    if e.error is not None:
                        continue
                    if is_signal_line(e.raw):
                        kind = "motion"
                pipe.xadd(keys[kind], {FIELD: e.raw})
                counts[kind] += 1
                pending += 1
            if pending >= batch:
                pipe.execute()
                pending = 0
    finally:
        src.close()
    if pending:
        pipe.execute()
    return counts
