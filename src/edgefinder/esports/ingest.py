"""Ingest pipeline: validate -> one transaction of idempotent upserts per batch -> acknowledge.

``consume_canonical`` and ``consume_micro`` (the seed's names) run one Redis stream each;
:func:`run_ingest` runs both in threads (or one JSONL file through the same pipeline) and is
what ``edgefinder esports ingest`` calls.

Per batch (:meth:`Pipeline.process`):

1. Every entry is validated (:func:`edgefinder.esports.events.parse_line`). Invalid entries, and
   entries delivered more than ``max_deliveries`` times, become ``dead_letters`` rows (raw text,
   reason, source, entry id) in the same transaction, and are acknowledged with the batch.
2. One transaction writes all rows with ``INSERT … ON CONFLICT`` keyed by the natural ids, so a
   redelivered batch changes nothing: ``raw_events`` (every canonical event), ``matches``,
   ``match_players``, ``rounds``, ``round_teams``, ``kills``, ``site_events``, ``micro_actions``.
   Player ids are replaced by their HMAC-SHA256 pseudonym everywhere, stored payloads included.
   Postgres: the batch is COPYed into two temporary staging tables and materialized by one SQL
   script (one round trip). SQLite: one executemany of dialect upserts per table. A test checks
   that both back ends end with identical tables.
3. In SQL, for the matches the batch touched: ``macro_outcomes`` of both teams of every finished
   round are recomputed (``round_win``; ``econ_delta`` = bank at ROUND_END - bank at ROUND_START,
   dollars; ``site_executed`` = the team planted or executed on a site), and motion signals still
   lacking ``round_no`` / ``team`` are resolved from the round windows ``[start_ts, end_ts]``
   (game seconds) and the MATCH_START roster. Events may arrive in any order: whichever batch
   completes a round or a roster resolves what was waiting for it.
4. Only after the commit are the entries acknowledged (XACK).

On Postgres a transaction first takes a transaction-scoped advisory lock per touched match (in
sorted order), so concurrent consumers never deadlock on a match and the second one to commit
sees the first one's rows when it recomputes outcomes and resolves signals.

Unreachable servers: the batch is retried with exponential backoff (capped) and nothing is
acknowledged until it commits; a stop request (SIGTERM/SIGINT) during a backoff abandons the
uncommitted batch, which stays pending and is redelivered later.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)

from edgefinder.errors import ConnectionFailed, EdgefinderError
from edgefinder.esports import metrics
from edgefinder.esports.events import (
    DEFAULT_MAX_EVENT_BYTES,
    CanonicalEvent,
    InvalidEvent,
    MotionSignal,
    parse_line,
)
from edgefinder.esports.materialize import (
    MACRO_SQL,
    MICRO_COLS,
    RESOLVE_ROUND_SQL,
    RESOLVE_TEAM_SQL,
    ROUND_MAP_SQL,
    BatchRows,
    pg_script,
)
from edgefinder.esports.pseudonym import Pseudonymizer
from edgefinder.esports.sources import (
    DEFAULT_GROUP,
    BatchSource,
    Entry,
    JsonlSource,
    RedisStreamSource,
    default_consumer_name,
    stream_keys,
)
from edgefinder.store.tables import (
    dead_letters,
    kills,
    match_players,
    matches,
    micro_actions,
    raw_events,
    round_teams,
    rounds,
    site_events,
)

log = logging.getLogger(__name__)

#: dead_letters.raw keeps at most this many characters of an entry (an oversize entry can be huge).
MAX_DEAD_LETTER_CHARS = 256 * 1024
_LOCK_CLASS = 0x45530001  # first key of the two-key advisory lock: "ES" ingest, per match


class IngestError(EdgefinderError):
    """The pipeline cannot continue (e.g. the schema is missing); nothing was acknowledged."""


class TransientError(Exception):
    """A server is unreachable or the transaction was aborted by a conflict; retry the batch."""

    def __init__(self, server: str, detail: str) -> None:
        super().__init__(f"{server} unavailable: {detail}")
        self.server = server


@dataclass(frozen=True)
class IngestConfig:
    """Knobs of the consumers (sizes in entries/bytes, times in milliseconds/seconds)."""

    batch_size: int = 1000
    block_ms: int = 1000
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_deliveries: int = 5
    min_idle_ms: int = 60_000
    claim_interval_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    group: str = DEFAULT_GROUP
    #: read and validate the next batch in a second thread while the current one is written
    prefetch: bool = True


@dataclass
class IngestCounters:
    """Running totals across consumers (thread-safe increments)."""

    entries: int = 0
    canonical: int = 0
    signals: int = 0
    dead_letters: int = 0
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


@dataclass(frozen=True)
class Prepared:
    """A validated batch: its entries, valid events, dead-letter rows and table rows."""

    entries: list[Entry]
    good: list[tuple[Entry, Any]]
    dead: list[dict[str, Any]]
    rows: BatchRows


@dataclass(frozen=True)
class BatchResult:
    entries: int
    canonical: int
    signals: int
    dead_letters: int


def _dead_raw(raw: bytes) -> str:
    text_ = raw[:MAX_DEAD_LETTER_CHARS].decode("utf-8", errors="replace")
    if len(raw) > MAX_DEAD_LETTER_CHARS:
        text_ += f"…[truncated; {len(raw)} bytes in total]"
    # Postgres text cannot hold NUL characters
    return text_.replace("\x00", "\\u0000")


def _dead_kind(reason: str) -> str:
    if reason.startswith("oversize"):
        return "oversize"
    if reason.startswith("delivery limit"):
        return "delivery_limit"
    if reason.startswith("database rejected"):
        return "rejected"
    return "invalid"


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


class Pipeline:
    """Validation and the batch transaction for one database (thread-safe; share it)."""

    def __init__(
        self,
        engine: Engine,
        pseudonym_key: str | bytes,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.engine = engine
        self.pseudo = Pseudonymizer(pseudonym_key)
        self.max_event_bytes = max_event_bytes
        self.dialect = engine.dialect.name
        if self.dialect not in ("postgresql", "sqlite"):
            raise IngestError(f"unsupported database dialect {self.dialect!r}")
        self.pg = self.dialect == "postgresql"
        self._build_statements()

    # -- statements ---------------------------------------------------------------------

    def _build_statements(self) -> None:
        """SQLite statements (dialect upserts for executemany); Postgres uses :func:`pg_script`."""
        ins = sqlite_insert

        def upsert(table: Any, keys: Sequence[str], cols: Sequence[str]) -> Any:
            stmt = ins(table)
            return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols})

        def nothing(table: Any, keys: Sequence[str]) -> Any:
            return ins(table).on_conflict_do_nothing(index_elements=list(keys))

        self.st_raw = nothing(raw_events, ["event_id"])
        self.st_match_start = upsert(matches, ["match_id"], ["map", "team_a", "team_b", "started_at"])
        self.st_match_end = upsert(matches, ["match_id"], ["winner", "score", "ended_at"])
        self.st_players = upsert(match_players, ["match_id", "player_hash"], ["team_id"])
        self.st_round_start = upsert(rounds, ["match_id", "round_no"], ["start_ts"])
        self.st_round_end = upsert(rounds, ["match_id", "round_no"], ["end_ts", "winner", "win_reason"])
        self.st_rt_start = upsert(
            round_teams, ["match_id", "round_no", "team_id"], ["side", "bank_start", "loadout_value"]
        )
        self.st_rt_end = upsert(round_teams, ["match_id", "round_no", "team_id"], ["bank_end"])
        self.st_kills = nothing(kills, ["event_id"])
        self.st_sites = nothing(site_events, ["event_id"])
        self.st_micro = nothing(micro_actions, ["signal_id"])
        self.sql_macro = text(MACRO_SQL).bindparams(bindparam("mids", expanding=True))
        self.sql_round_map = text(ROUND_MAP_SQL).bindparams(bindparam("mids", expanding=True))
        self.sql_resolve_round = text(RESOLVE_ROUND_SQL).bindparams(bindparam("mids", expanding=True))
        self.sql_resolve_team = text(RESOLVE_TEAM_SQL).bindparams(bindparam("mids", expanding=True))
        cols = tuple(c.name for c in micro_actions.columns if c.name != "created_at")
        assert cols == MICRO_COLS, "MICRO_COLS must follow the table's column order"

    def _pg_stages(self, conn: Any) -> None:
        """Create the per-connection staging tables once (ON COMMIT DELETE ROWS empties them)."""
        info = conn.connection.info
        if info.get("ef_stages"):
            return
        conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS _ef_raw (seq integer, event_id text, match_id text, "
            "event_type text, ts double precision, wall timestamptz, payload jsonb) ON COMMIT DELETE ROWS"
        )
        conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS _ef_micro ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(MICRO_COLS)} FROM micro_actions WITH NO DATA"
        )
        info["ef_stages"] = True

    def _write_tx_pg(self, conn: Any, rows: BatchRows, dead: list[dict[str, Any]]) -> None:
        """Postgres: a batch is COPYed into two temporary staging tables (canonical events with
        their normalized, pseudonymized payloads; signal rows) and materialized by one script of
        ``INSERT … SELECT … ON CONFLICT`` statements sent in a single round trip.

        psycopg's executemany sends one statement per row; this sends a few messages per batch,
        and the JSON unpacking runs in the database (which has a core to spare) instead of in
        the consumer's Python thread, which the GIL makes the bottleneck.
        """
        self._pg_stages(conn)
        cur_conn = conn.connection.dbapi_connection
        with cur_conn.cursor() as cur:
            if rows.match_ids:
                # signal-only batches take the per-match lock shared (they only insert signals,
                # resolved against committed rounds), so motion consumers run in parallel; a batch
                # with canonical events takes it exclusively. Either way the later of two
                # conflicting transactions sees the earlier one's committed rows. Sorted order:
                # no deadlock between batches that share several matches.
                fn = "pg_advisory_xact_lock_shared" if rows.signals_only else "pg_advisory_xact_lock"
                cur.execute(
                    f"SELECT count({fn}(%s, hashtext(m))) FROM "
                    "(SELECT m FROM unnest(%s::text[]) WITH ORDINALITY AS u(m, i) ORDER BY i) AS o",
                    (_LOCK_CLASS, sorted(rows.match_ids)),
                )
            if rows.raw:
                with cur.copy(
                    "COPY _ef_raw (seq, event_id, match_id, event_type, ts, wall, payload) FROM STDIN"
                ) as cp:
                    for t in rows.raw.values():
                        cp.write_row(t)
            if rows.micro:
                with cur.copy(f"COPY _ef_micro ({', '.join(MICRO_COLS)}) FROM STDIN") as cp:
                    for t in rows.micro.values():
                        if t[11] is not None:
                            t = (*t[:11], json.dumps(t[11], separators=(",", ":")), *t[12:])
                        cp.write_row(t)
            script = pg_script(rows)
            if script:
                cur.execute(script)
        if dead:
            self._insert_dead(conn, dead)

    # -- validation ---------------------------------------------------------------------

    def validate(
        self, entries: Sequence[Entry], source: BatchSource
    ) -> tuple[list[tuple[Entry, CanonicalEvent | MotionSignal]], list[dict[str, Any]]]:
        good: list[tuple[Entry, CanonicalEvent | MotionSignal]] = []
        dead: list[dict[str, Any]] = []
        limit = source.max_deliveries
        for e in entries:
            reason: str | None
            if e.error is not None:
                reason = e.error
            elif e.deliveries > limit:
                reason = f"delivery limit exceeded: delivered {e.deliveries} times (limit {limit})"
            else:
                try:
                    good.append((e, parse_line(e.raw, max_bytes=self.max_event_bytes)))
                    continue
                except InvalidEvent as exc:
                    reason = exc.reason
            dead.append(
                {
                    "source": source.name[:128],
                    "entry_id": e.entry_id[:64],
                    "raw": _dead_raw(e.raw),
                    "reason": reason,
                    "deliveries": e.deliveries,
                }
            )
        return good, dead

    # -- the batch transaction -------------------------------------------------------

    def prepare(self, entries: Sequence[Entry], source: BatchSource) -> Prepared:
        """Validate a batch and build its rows (pure Python; no database access)."""
        good, dead = self.validate(entries, source)
        rows = BatchRows(self.pseudo, full=not self.pg)
        for _, ev in good:
            rows.add(ev)
        return Prepared(list(entries), good, dead, rows)

    def process(self, entries: Sequence[Entry] | Prepared, source: BatchSource) -> BatchResult:
        """Validate (unless prepared) and write one batch in one transaction.

        Raises :class:`TransientError` when the database is unreachable (nothing written).
        """
        prep = entries if isinstance(entries, Prepared) else self.prepare(entries, source)
        good, dead = prep.good, prep.dead
        try:
            self._write_rows(prep.rows, dead)
        except (DataError, IntegrityError) as exc:
            # a row the database refuses (rare: validation mirrors the schema); isolate it
            log.warning("batch rejected by the database (%s); writing entries one by one", _first_line(exc))
            rejected, n_can, n_sig = self._write_one_by_one(good, dead, source)
            return self._account(source, len(prep.entries), n_can, n_sig, dead + rejected)
        except DBAPIError as exc:
            if _is_transient(exc):
                raise TransientError("database", _first_line(exc)) from exc
            raise IngestError(f"database error: {_first_line(exc)}") from exc
        n_sig = prep.rows.micro_events
        return self._account(source, len(prep.entries), len(good) - n_sig, n_sig, dead)

    def _account(self, source: BatchSource, n: int, n_can: int, n_sig: int, dead: list[dict[str, Any]]) -> BatchResult:
        lbl = source.label
        if n_can + n_sig:
            metrics.EVENTS_INGESTED.labels(lbl).inc(n_can + n_sig)
        for d in dead:
            metrics.DEAD_LETTERS.labels(lbl, _dead_kind(d["reason"])).inc()
        metrics.BATCHES.labels(lbl).inc()
        return BatchResult(n, n_can, n_sig, len(dead))

    def _write_one_by_one(
        self,
        good: list[tuple[Entry, CanonicalEvent | MotionSignal]],
        dead: list[dict[str, Any]],
        source: BatchSource,
    ) -> tuple[list[dict[str, Any]], int, int]:
        """One transaction per event; the ones the database refuses become dead letters."""
        rejected: list[dict[str, Any]] = []
        n_can = n_sig = 0
        for e, ev in good:
            try:
                self._write([ev], [])
            except (DataError, IntegrityError) as exc:
                rejected.append(
                    {
                        "source": source.name[:128],
                        "entry_id": e.entry_id[:64],
                        "raw": _dead_raw(e.raw),
                        "reason": f"database rejected: {_first_line(exc)}"[:2000],
                        "deliveries": e.deliveries,
                    }
                )
                continue
            if isinstance(ev, MotionSignal):
                n_sig += 1
            else:
                n_can += 1
        if dead or rejected:
            self._write([], dead + rejected)
        return rejected, n_can, n_sig

    def _write(self, events: Sequence[CanonicalEvent | MotionSignal], dead: list[dict[str, Any]]) -> None:
        rows = BatchRows(self.pseudo, full=not self.pg)
        for ev in events:
            rows.add(ev)
        self._write_rows(rows, dead)

    def _write_rows(self, rows: BatchRows, dead: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            try:
                self._write_tx(conn, rows, dead)
            except BaseException:
                # a rolled-back transaction also rolls back a CREATE TEMP TABLE
                if conn.connection.is_valid:
                    conn.connection.info.pop("ef_stages", None)
                raise

    def _write_tx(self, conn: Any, rows: BatchRows, dead: list[dict[str, Any]]) -> None:
        if self.pg:
            self._write_tx_pg(conn, rows, dead)
            return
        # SQLite: one writer at a time (database lock), row dicts through executemany
        for name, stmt, data in (
            ("raw", self.st_raw, rows.raw),
            ("match_start", self.st_match_start, rows.match_start),
            ("players", self.st_players, rows.players),
            ("round_start", self.st_round_start, rows.round_start),
            ("round_end", self.st_round_end, rows.round_end),
            ("rt_start", self.st_rt_start, rows.rt_start),
            ("rt_end", self.st_rt_end, rows.rt_end),
            ("kills", self.st_kills, rows.kills),
            ("sites", self.st_sites, rows.sites),
            ("match_end", self.st_match_end, rows.match_end),
            ("micro", self.st_micro, rows.micro),
        ):
            if not data:
                continue
            ordered = [data[k] for k in sorted(data)]
            if name == "micro":
                ordered = [dict(zip(MICRO_COLS, t)) for t in ordered]
            conn.execute(stmt, ordered)
        if dead:
            self._insert_dead(conn, dead)
        if rows.outcome_matches:
            mids = sorted(rows.outcome_matches)
            conn.execute(self.sql_macro, {"mids": mids})
        if rows.structure_matches:
            conn.execute(self.sql_round_map, {"mids": sorted(rows.structure_matches)})
        # resolve signals waiting for a round window / a roster: the ones this batch brought,
        # and the ones already stored for a match whose windows or roster this batch completed
        # (SQLite inserts the signals as sent, so this batch's signals are resolved here too)
        need_team = rows.roster_matches | rows.teamless_matches
        need_round = rows.window_matches | rows.roundless_matches
        if need_team:
            conn.execute(self.sql_resolve_team, {"mids": sorted(need_team)})
        if need_round:
            conn.execute(self.sql_resolve_round, {"mids": sorted(need_round)})

    def _insert_dead(self, conn: Any, dead: list[dict[str, Any]]) -> None:
        """Insert dead letters not already stored for (source, entry_id) (a redelivered batch)."""
        by_source: dict[str, list[dict[str, Any]]] = {}
        for d in dead:
            by_source.setdefault(d["source"], []).append(d)
        new: list[dict[str, Any]] = []
        for src, items in by_source.items():
            ids = [d["entry_id"] for d in items]
            have = {
                r[0]
                for r in conn.execute(
                    dead_letters.select()
                    .with_only_columns(dead_letters.c.entry_id)
                    .where(dead_letters.c.source == src, dead_letters.c.entry_id.in_(ids))
                )
            }
            seen: set[str] = set()
            for d in items:
                if d["entry_id"] in have or d["entry_id"] in seen:
                    continue
                seen.add(d["entry_id"])
                new.append(d)
        if new:
            conn.execute(dead_letters.insert(), new)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


# --- consumers ---------------------------------------------------------------------------

ProgressFn = Callable[[IngestCounters], None]


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


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


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

    A reader thread reads and validates the next batch while this thread writes the current
    one (Python parsing overlaps with the database's work). The read-ahead batch is delivered
    but not acknowledged: after a stop it stays pending and is redelivered.
    """
    cfg = config or IngestConfig()
    stop = stop or threading.Event()
    counters = counters or IngestCounters()
    redis_errors = _redis_errors()
    ready: queue.Queue[Prepared | BaseException | None] = queue.Queue(maxsize=1)
    done = threading.Event()  # the writer has finished: the reader must not block on put

    def put(item: Prepared | BaseException | None) -> bool:
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
                except redis_errors as exc:
                    backoff.wait("redis", _first_line(exc))
                    continue
                backoff.reset()
                if not entries:
                    if once and source.drained():
                        break
                    continue
                if not put(pipeline.prepare(entries, source)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the writer, which re-raises
            put(exc)
            return
        put(None)

    th = threading.Thread(target=reader, name=f"{threading.current_thread().name}-reader", daemon=True)
    if cfg.prefetch:
        th.start()
    backoff = _Backoff(cfg, stop, counters)
    last_lag = 0.0
    inline = _Inline(source, pipeline, cfg, stop, counters, once) if not cfg.prefetch else None
    try:
        while not stop.is_set():
            if inline is not None:
                item = inline.next()
                if item is _AGAIN:
                    continue
            else:
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
            t0 = time.perf_counter()
            result = None
            while not stop.is_set():
                try:
                    result = pipeline.process(item, source)
                    break
                except TransientError as exc:
                    backoff.wait(exc.server, str(exc))  # same batch again; nothing acknowledged
                    touch = getattr(source, "touch", None)
                    if touch is not None:
                        try:
                            touch()
                        except redis_errors:
                            pass
            if result is None:
                break  # stopped before the batch committed: leave it pending
            # committed: acknowledge (a failure here only causes an idempotent redelivery)
            while True:
                try:
                    source.ack([e.entry_id for e in item.entries])
                    break
                except redis_errors as exc:
                    if stop.is_set():
                        break
                    backoff.wait("redis", _first_line(exc))
            metrics.BATCH_SECONDS.labels(source.label).observe(time.perf_counter() - t0)
            backoff.reset()
            counters.add(result)
            if isinstance(source, RedisStreamSource) and time.monotonic() - last_lag > 1.0:
                last_lag = time.monotonic()
                try:
                    lag, pending = source.lag()
                    if lag is not None:
                        metrics.CONSUMER_LAG.labels(source.label).set(lag)
                    metrics.CONSUMER_PENDING.labels(source.label).set(pending)
                except redis_errors:
                    pass
            if on_batch is not None:
                on_batch(counters)
    finally:
        done.set()
        if th.is_alive():
            th.join(timeout=max(5.0, cfg.block_ms / 1000 + 2))
    return counters


_AGAIN = object()


class _Inline:
    """The reader's work done in the writer's thread (``IngestConfig.prefetch=False``)."""

    def __init__(self, source: BatchSource, pipeline: Pipeline, cfg: IngestConfig, stop: threading.Event,
                 counters: IngestCounters, once: bool) -> None:
        self.source, self.pipeline, self.cfg, self.once = source, pipeline, cfg, once
        self.backoff = _Backoff(cfg, stop, counters)
        self.redis_errors = _redis_errors()

    def next(self) -> Any:
        try:
            entries = self.source.read(self.cfg.batch_size, self.cfg.block_ms)
        except self.redis_errors as exc:
            self.backoff.wait("redis", _first_line(exc))
            return _AGAIN
        self.backoff.reset()
        if not entries:
            return None if self.once and self.source.drained() else _AGAIN
        return self.pipeline.prepare(entries, self.source)


def _redis_source(
    client: Any, prefix: str, which: str, consumer: str | None, cfg: IngestConfig
) -> RedisStreamSource:
    return RedisStreamSource(
        client,
        stream_keys(prefix)[which],
        label=which,
        group=cfg.group,
        consumer=consumer,
        min_idle_ms=cfg.min_idle_ms,
        max_deliveries=cfg.max_deliveries,
        claim_interval_s=cfg.claim_interval_s,
    )


def consume_canonical(
    pipeline: Pipeline,
    client: Any,
    prefix: str = "",
    *,
    consumer: str | None = None,
    config: IngestConfig | None = None,
    stop: threading.Event | None = None,
    counters: IngestCounters | None = None,
    once: bool = False,
    on_batch: ProgressFn | None = None,
) -> IngestCounters:
    """Consume ``{prefix}events:canonical`` into rounds, outcomes, kills, … (blocks)."""
    cfg = config or IngestConfig()
    src = _redis_source(client, prefix, "canonical", consumer, cfg)
    return run_consumer(src, pipeline, config=cfg, stop=stop, counters=counters, once=once, on_batch=on_batch)


def consume_micro(
    pipeline: Pipeline,
    client: Any,
    prefix: str = "",
    *,
    consumer: str | None = None,
    config: IngestConfig | None = None,
    stop: threading.Event | None = None,
    counters: IngestCounters | None = None,
    once: bool = False,
    on_batch: ProgressFn | None = None,
) -> IngestCounters:
    """Consume ``{prefix}events:agent:motion`` into micro_actions (blocks)."""
    cfg = config or IngestConfig()
    src = _redis_source(client, prefix, "motion", consumer, cfg)
    return run_consumer(src, pipeline, config=cfg, stop=stop, counters=counters, once=once, on_batch=on_batch)


def connect_redis(url: str) -> Any:
    """A redis-py client (bytes responses) after a PING; :class:`ConnectionFailed` if unreachable."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, ValueError) as exc:
        raise ConnectionFailed(f"cannot connect to Redis {_safe_url(url)}: {_first_line(exc)}") from exc
    return client


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for a message
        return url.split("@")[-1]


def make_pipeline(database_url: str, pseudonym_key: str | bytes, *, migrate: bool = True,
                  max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Pipeline:
    """Engine + (optionally) migrations + pipeline; :class:`ConnectionFailed` if unreachable."""
    from edgefinder.store.engine import check_connection, make_engine

    engine = make_engine(database_url)
    check_connection(engine)
    if migrate:
        from edgefinder.store.migrate import upgrade

        upgrade(database_url)
    return Pipeline(engine, pseudonym_key, max_event_bytes=max_event_bytes)


def run_ingest(
    pipeline: Pipeline,
    *,
    from_file: str | Path | None = None,
    redis_client: Any = None,
    prefix: str = "",
    consumer: str | None = None,
    config: IngestConfig | None = None,
    once: bool = True,
    stop: threading.Event | None = None,
    on_batch: ProgressFn | None = None,
    motion_consumers: int = 2,
) -> IngestCounters:
    """Run the file source, or the Redis consumers in threads, until done or stopped.

    One canonical consumer and ``motion_consumers`` motion consumers (the motion stream carries
    most of the traffic; its consumers write in parallel under shared per-match locks).

    ``once``: stop when the source is drained (file: end of file; Redis: no new entries and
    nothing claimable). Otherwise follow the streams until ``stop`` is set.
    """
    cfg = config or IngestConfig()
    stop = stop or threading.Event()
    counters = IngestCounters()
    if from_file is not None:
        src = JsonlSource(from_file)
        try:
            return run_consumer(src, pipeline, config=cfg, stop=stop, counters=counters, once=True, on_batch=on_batch)
        finally:
            src.close()
    if redis_client is None:
        raise IngestError("no source: give a JSONL file or a Redis URL (EDGEFINDER_REDIS_URL)")
    errors: list[BaseException] = []

    def target(fn: Callable[..., IngestCounters], name: str | None) -> None:
        try:
            fn(pipeline, redis_client, prefix, consumer=name, config=cfg, stop=stop,
               counters=counters, once=once, on_batch=on_batch)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, and the other thread stops
            errors.append(exc)
            stop.set()

    jobs: list[tuple[str, Callable[..., IngestCounters], str | None]] = [("canonical", consume_canonical, consumer)]
    for i in range(max(1, motion_consumers)):
        # several motion consumers of one process: named <consumer>/m<i> so that a restart with
        # the same --consumer resumes each one's pending entries
        name = consumer if motion_consumers <= 1 else f"{consumer or default_consumer_name()}/m{i}"
        jobs.append((f"motion{i}", consume_micro, name))
    threads = [
        threading.Thread(target=target, args=(fn, name), name=f"ingest-{label}", daemon=True)
        for label, fn, name in jobs
    ]
    for th in threads:
        th.start()
    for th in threads:
        while th.is_alive():
            th.join(0.2)
    if errors:
        raise errors[0]
    return counters


def ingest_file(
    path: str | Path,
    database_url: str,
    pseudonym_key: str | bytes,
    *,
    config: IngestConfig | None = None,
    migrate: bool = True,
) -> IngestCounters:
    """Convenience for the demo and tests: ingest a JSONL file into ``database_url``."""
    cfg = config or IngestConfig()
    pipeline = make_pipeline(database_url, pseudonym_key, migrate=migrate, max_event_bytes=cfg.max_event_bytes)
    try:
        return run_ingest(pipeline, from_file=path, config=cfg)
    finally:
        pipeline.engine.dispose()
