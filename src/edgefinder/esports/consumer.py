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

**Faults of the servers.** A call that fails because a server is unreachable is retried with
exponential backoff (capped; tenacity). A batch whose transaction failed for a reason that is no
single entry's (connection or session lost, serialization failure, deadlock, statement timeout)
is retried on a fresh connection (the pipeline discards the failed one, so a changed setting such
as ``statement_timeout`` takes effect) and in halves, recursively, down to single entries, so
that a batch too large for a statement timeout still gets written (a batch that failed because no
connection could be opened at all is retried whole). Only then is an entry judged:
an entry that alone exceeds the statement timeout counts one failure alone for each try (in the
failure journal), and after ``max_deliveries`` of them it is dead-lettered as ``delivery_limit``
with the timeout as its first failure; other failures of a single entry (an outage) are no
entry's fault and are retried until they pass. Nothing is acknowledged until it commits; a stop
request (SIGTERM/SIGINT) during a backoff abandons what is not committed, which stays pending
and is redelivered later, and undoes its attempt record.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

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


class _Stopped(Exception):
    """A stop request ended a backoff."""


def _retrying(
    cfg: IngestConfig,
    stop: threading.Event,
    counters: IngestCounters,
    errors: tuple[type[BaseException], ...],
    server: Callable[[BaseException], str],
    on_retry: Callable[[], None] | None = None,
) -> Retrying:
    """Call a function until it does not raise one of ``errors``: exponential backoff from
    ``backoff_initial_s`` doubling up to ``backoff_max_s``, every retry logged and counted
    (``edgefinder_ingest_retries_total{server}``); a stop during a backoff raises :class:`_Stopped`.
    Each call starts again at the initial delay."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise _Stopped

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        name = server(exc) if exc is not None else "?"
        metrics.RETRIES.labels(name).inc()
        counters.retry()
        log.warning(
            "%s unavailable (%s); retrying in %.1f s",
            name,
            first_line(exc) if exc is not None else "",
            state.upcoming_sleep,
        )
        if on_retry is not None:
            on_retry()

    return Retrying(
        retry=retry_if_exception_type(errors),
        wait=wait_exponential(multiplier=cfg.backoff_initial_s, max=cfg.backoff_max_s),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


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
    limit = source.max_deliveries
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

    def on_source(exc: BaseException) -> str:
        return source.server

    def keep_alive() -> None:
        quietly(source.keep_alive)

    source_call = _retrying(cfg, stop, counters, unavailable, on_source)
    database_call = _retrying(
        cfg,
        stop,
        counters,
        (TransientError,),
        lambda e: getattr(e, "server", "database"),
        keep_alive,
    )

    def reader() -> None:
        try:
            while not stop.is_set() and not done.is_set():
                try:
                    entries = source_call(source.read, cfg.batch_size, cfg.block_ms)
                except _Stopped:
                    break
                if not entries:
                    if once and source.drained():
                        break
                    continue
                for chunk, careful in plan_batches(entries, cfg.batch_size, limit):
                    if not put(_Batch(pipeline.prepare(chunk, source), careful)):
                        return
        except BaseException as exc:
            put(exc)
            return
        put(None)

    def quietly(what: Callable[[], Any]) -> None:
        try:
            what()
        except unavailable as exc:
            log.warning(
                "%s unavailable (%s); failure record not updated", source.server, first_line(exc)
            )

    def smaller(prep: Prepared, careful: bool, exc: TransientError) -> list[tuple[Prepared, bool]]:
        """What to write after ``prep`` failed with ``exc``: its halves (single entries are
        written carefully), or the entry again, judged when it alone ran out of time."""
        entries = prep.entries
        if exc.unreachable:  # no connection: the batch played no part
            return [(prep, careful)]
        if len(entries) > 1:
            mid = len(entries) // 2
            return [
                (pipeline.prepare(half, source), careful or len(half) == 1)
                for half in (entries[:mid], entries[mid:])
            ]
        if not exc.timeout:
            return [(prep, careful)]
        e = entries[0]
        e = e._replace(
            failures=e.failures + 1,
            alone_failures=e.alone_failures + 1,
            first_failure=e.first_failure or str(exc),
        )
        if e.alone_failures >= limit:
            e = e._replace(error=limit_reason(e, limit))
        return [(pipeline.prepare([e], source), True)]

    def write_first(parts: deque[tuple[Prepared, bool]]) -> None:
        """Write and acknowledge the first part; on a transient failure, replace it (see ``smaller``)."""
        prep, careful = parts[0]
        ids = [e[0] for e in prep.entries]  # entry_id (an index: this runs per entry)
        t0 = time.perf_counter()
        if careful:
            source_call(partial(source.begin_attempt, ids, alone=len(ids) == 1))
        try:
            result = pipeline.process(prep, source)
        except TransientError as exc:
            if careful:
                if exc.timeout and len(ids) == 1:  # counts: it ran out of time alone
                    quietly(partial(source.record_failure, ids, str(exc)))
                else:
                    quietly(partial(source.abandon, ids))  # an outage is no entry's fault
            parts.popleft()
            parts.extendleft(reversed(smaller(prep, careful, exc)))
            raise
        except IngestError:
            if careful:
                quietly(partial(source.abandon, ids))  # the database's fault, not the entries'
            raise
        except Exception as exc:
            quietly(partial(source.record_failure, ids, f"{type(exc).__name__}: {first_line(exc)}"))
            raise
        parts.popleft()
        # committed: acknowledge (a failure here only causes an idempotent redelivery)
        source_call(partial(source.ack, ids))
        metrics.BATCH_SECONDS.labels(source.label).observe(time.perf_counter() - t0)
        counters.add(result)

    def write(batch: _Batch) -> bool:
        """Write one planned batch (in parts after transient failures); False when a stop came first
        (what is not committed stays pending)."""
        parts = deque([(batch.prep, batch.careful)])
        while parts:
            try:
                database_call(write_first, parts)
            except _Stopped:
                return False
        return True

    th = threading.Thread(
        target=reader, name=f"{threading.current_thread().name}-reader", daemon=True
    )
    th.start()
    last_backlog, last_gc = 0.0, time.monotonic()

    def report_backlog() -> None:
        """The lag and pending gauges, at most once a second (idle or not: an idle consumer's
        figures must not stay those of its last batch)."""
        nonlocal last_backlog
        if time.monotonic() - last_backlog <= 1.0:
            return
        last_backlog = time.monotonic()
        try:
            backlog = source.backlog()
        except unavailable:
            return
        if backlog is not None:
            metrics.set_backlog(source.label, *backlog)

    try:
        while not stop.is_set():
            try:
                item = ready.get(timeout=0.2)
            except queue.Empty:
                if not th.is_alive() and ready.empty():
                    break
                report_backlog()
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            if not write(item):
                break
            report_backlog()
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
