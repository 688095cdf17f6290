"""The consumer loop: read -> plan -> write -> acknowledge, with backoff and the delivery limit.

:func:`run_consumer` drives one :class:`~edgefinder.esports.sources.BatchSource` (a Redis stream
or a JSONL file) through a :class:`~edgefinder.esports.pipeline.Pipeline`, using nothing but the
source protocol. A reader thread reads and validates the next batch while this thread writes the
current one (Python parsing overlaps with the database's work). A read-ahead batch is delivered
but not acknowledged: after a stop it stays pending and is redelivered.

**Redelivered entries and the delivery limit.** An entry delivered again (its consumer died,
stopped or gave up before acknowledging it) is usually innocent: it only shared a batch with
whatever went wrong. Rarely it is what kills the consumer. Redelivered entries are therefore
written carefully: in smaller batches, each write recorded in the source's failure journal
before it starts (``begin_attempt``) and cleared with the acknowledgement, so an entry's record
counts the write attempts of it that never finished. Entries without such a failure are written
in batches of ``batch_size // 16``, entries with one in batches of ``batch_size // 256``, entries
with two or more alone; those with the fewest failures first, so that kills from outside at
random moments spread over many entries instead of piling up on one. Only failures while an
entry was written *alone* count for the limit: after ``max_deliveries`` of them the entry is
dead-lettered as ``delivery_limit``, its reason naming the first failure. Being delivered again
(a kill during a read, a stop, a claim) counts for nothing, so a valid entry is never
dead-lettered for sharing a batch with a bad one or for its consumer having been killed; an entry
that crashes the process each time it is written is isolated after at most 3 + ``max_deliveries``
crashes. (Entry contents that make the database fail never get that far: the pipeline isolates
and dead-letters them within the batch.)

Unreachable servers: the batch is retried with exponential backoff (capped) and nothing is
acknowledged until it commits; a stop request (SIGTERM/SIGINT) during a backoff abandons the
uncommitted batch, which stays pending and is redelivered later, and undoes its attempt record
(an outage is no entry's fault).
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from edgefinder.errors import first_line
from edgefinder.esports import metrics
from edgefinder.esports.events import DEFAULT_MAX_EVENT_BYTES
from edgefinder.esports.pipeline import BatchResult, IngestError, Pipeline, Prepared, TransientError
from edgefinder.esports.sources import DEFAULT_GROUP, BatchSource, Entry

log = logging.getLogger(__name__)

#: seconds between full garbage collections when the process turned automatic collection off
#: (``edgefinder.esports.ingest.tune_gc_for_ingest``)
GC_INTERVAL_S = 30.0


@dataclass(frozen=True)
class IngestConfig:
    """Knobs of the consumers (sizes in entries/bytes, times in milliseconds/seconds)."""

    batch_size: int = 1000
    block_ms: int = 1000
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    #: consumer failures while writing an entry alone after which it is dead-lettered
    max_deliveries: int = 5
    min_idle_ms: int = 60_000
    claim_interval_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    group: str = DEFAULT_GROUP


@dataclass
class IngestCounters:
    """Running totals across consumers (thread-safe increments)."""

    entries: int = 0
    canonical: int = 0
    signals: int = 0
    dead_letters: int = 0
    conflicts: int = 0
    batches: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, result: BatchResult) -> None:
        with self._lock:
            self.entries += result.entries
            self.canonical += result.canonical
            self.signals += result.signals
            self.dead_letters += result.dead_letters
            self.conflicts += result.conflicts
            self.batches += 1

    def retry(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def events(self) -> int:
        return self.canonical + self.signals

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


ProgressFn = Callable[[IngestCounters], None]


# --- the plan of one read ---------------------------------------------------------------------


def careful_batch_size(failures: int, batch_size: int) -> int:
    """Batch size for redelivered entries with ``failures`` unfinished write attempts."""
    if failures >= 2:
        return 1
    return max(1, batch_size // (16 if failures == 0 else 256))


def limit_reason(entry: Entry, limit: int) -> str:
    """The dead-letter reason of an entry over the delivery limit (names its first failure)."""
    return (
        f"delivery limit exceeded: {entry.alone_failures} consumer failures while writing it alone "
        f"(limit {limit}), delivered {entry.deliveries} times; first failure: "
        f"{entry.first_failure or 'not recorded'}"
    )


def plan_batches(
    entries: Sequence[Entry], batch_size: int, limit: int
) -> list[tuple[list[Entry], bool]]:
    """Split one read into the batches to write, as ``(entries, careful)`` in writing order.

    First delivery: one batch. Entries over the limit: marked with their dead-letter reason (a
    batch that writes only their dead letters). Other redelivered entries: careful batches by
    failure count, fewest failures first, stream order within a count (see the module docstring).
    """
    first: list[Entry] = []
    again: list[Entry] = []
    for e in entries:
        if e.deliveries <= 1 and not e.failures:
            first.append(e)
        elif e.alone_failures >= limit:
            first.append(e._replace(error=limit_reason(e, limit)))
        else:
            again.append(e)
    out: list[tuple[list[Entry], bool]] = [(first, False)] if first else []
    again.sort(key=lambda e: e.failures)
    i = 0
    while i < len(again):
        level = min(again[i].failures, 2)
        size = careful_batch_size(level, batch_size)
        chunk = [again[i]]
        i += 1
        while i < len(again) and len(chunk) < size and min(again[i].failures, 2) == level:
            chunk.append(again[i])
            i += 1
        out.append((chunk, True))
    return out


# --- the loop --------------------------------------------------------------------------------


class _Backoff:
    def __init__(self, cfg: IngestConfig, stop: threading.Event, counters: IngestCounters) -> None:
        self.cfg, self.stop, self.counters = cfg, stop, counters
        self.delay = cfg.backoff_initial_s

    def wait(self, server: str, detail: str) -> None:
        """Sleep (interruptible by ``stop``) and double the delay up to the cap."""
        metrics.RETRIES.labels(server).inc()
        self.counters.retry()
        log.warning("%s unavailable (%s); retrying in %.1f s", server, detail, self.delay)
        self.stop.wait(self.delay)
        self.delay = min(self.delay * 2, self.cfg.backoff_max_s)

    def reset(self) -> None:
        self.delay = self.cfg.backoff_initial_s


@dataclass(frozen=True)
class _Batch:
    prep: Prepared
    careful: bool


def run_consumer(
    source: BatchSource,
    pipeline: Pipeline,
    *,
    config: IngestConfig | None = None,
    stop: threading.Event | None = None,
    counters: IngestCounters | None = None,
    once: bool = False,
    on_batch: ProgressFn | None = None,
) -> IngestCounters:
    """Read -> validate -> write -> ack until ``stop`` is set (or, with ``once``, drained).

    Raises :class:`IngestError` for a fault of the database itself (nothing of the batch was
    acknowledged); nothing an entry contains makes it raise.
    """
    cfg = config or IngestConfig()
    stop = stop or threading.Event()
    counters = counters or IngestCounters()
    unavailable = source.unavailable
    server = source.server
    ready: queue.Queue[_Batch | BaseException | None] = queue.Queue(maxsize=1)
    done = threading.Event()  # the writer has finished: the reader must not block on put

    def put(item: _Batch | BaseException | None) -> bool:
        while not done.is_set():
            try:
                ready.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        backoff = _Backoff(cfg, stop, counters)
        try:
            while not stop.is_set() and not done.is_set():
                try:
                    entries = source.read(cfg.batch_size, cfg.block_ms)
                except unavailable as exc:
                    backoff.wait(server, first_line(exc))
                    continue
                backoff.reset()
                if not entries:
                    if once and source.drained():
                        break
                    continue
                for chunk, careful in plan_batches(entries, cfg.batch_size, source.max_deliveries):
                    if not put(_Batch(pipeline.prepare(chunk, source), careful)):
                        return
        except BaseException as exc:
            put(exc)
            return
        put(None)

    def retrying(what: Callable[[], Any], backoff: _Backoff) -> bool:
        """Run a source call until it succeeds (True) or a stop ends the backoff (False)."""
        while True:
            try:
                what()
                return True
            except unavailable as exc:
                if stop.is_set():
                    return False
                backoff.wait(server, first_line(exc))

    def quietly(what: Callable[[], Any]) -> None:
        try:
            what()
        except unavailable as exc:
            log.warning("%s unavailable (%s); failure record not updated", server, first_line(exc))

    th = threading.Thread(
        target=reader, name=f"{threading.current_thread().name}-reader", daemon=True
    )
    th.start()
    backoff = _Backoff(cfg, stop, counters)
    last_backlog, last_gc = 0.0, time.monotonic()
    try:
        while not stop.is_set():
            try:
                item = ready.get(timeout=0.2)
            except queue.Empty:
                if not th.is_alive() and ready.empty():
                    break
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            prep = item.prep
            ids = [e[0] for e in prep.entries]  # entry_id (an index: this runs per entry)
            t0 = time.perf_counter()
            if item.careful and not retrying(
                partial(source.begin_attempt, ids, alone=len(ids) == 1), backoff
            ):
                break  # stopped before the write began: the batch stays pending, nothing recorded
            result = None
            try:
                while not stop.is_set():
                    try:
                        result = pipeline.process(prep, source)
                        break
                    except TransientError as exc:
                        backoff.wait(exc.server, str(exc))  # same batch again; nothing acknowledged
                        try:
                            source.keep_alive()
                        except unavailable:
                            pass
            except IngestError:
                if item.careful:
                    quietly(partial(source.abandon, ids))  # the database's fault, not the entries'
                raise
            except Exception as exc:
                quietly(
                    partial(source.record_failure, ids, f"{type(exc).__name__}: {first_line(exc)}")
                )
                raise
            if result is None:
                if item.careful:
                    quietly(partial(source.abandon, ids))
                break  # stopped before the batch committed: leave it pending
            # committed: acknowledge (a failure here only causes an idempotent redelivery)
            retrying(partial(source.ack, ids), backoff)
            metrics.BATCH_SECONDS.labels(source.label).observe(time.perf_counter() - t0)
            backoff.reset()
            counters.add(result)
            if time.monotonic() - last_backlog > 1.0:
                last_backlog = time.monotonic()
                try:
                    backlog = source.backlog()
                except unavailable:
                    backlog = None
                if backlog is not None:
                    lag, pending = backlog
                    if lag is not None:
                        metrics.CONSUMER_LAG.labels(source.label).set(lag)
                    metrics.CONSUMER_PENDING.labels(source.label).set(pending)
            if not gc.isenabled() and time.monotonic() - last_gc > GC_INTERVAL_S:
                gc.collect()
                last_gc = time.monotonic()
            if on_batch is not None:
                on_batch(counters)
    finally:
        done.set()
        if th.is_alive():
            th.join(timeout=max(5.0, cfg.block_ms / 1000 + 2))
    return counters
