"""The batch write path of the ingest: validate -> one transaction per batch -> isolate what fails.

Per batch (:meth:`Pipeline.process`):

1. Every entry is validated (:func:`edgefinder.esports.events.parse_lines`, which also bounds what
   the database and the analysis must hold: nesting, numbers, text, size). Invalid entries, and
   entries the source marked unusable (no ``data`` field, over the size limit, over the delivery
   limit), become ``dead_letters`` rows (raw text, reason, kind, source, entry id, deliveries)
   in the same transaction.
2. One transaction writes the valid events: ``raw_events`` (every canonical event), ``matches``,
   ``match_players``, ``rounds``, ``round_teams``, ``kills``, ``site_events``,
   ``micro_actions``. Player ids are replaced by their HMAC-SHA256 pseudonym everywhere, stored
   payloads included. Postgres: the batch is COPYed into temporary staging tables and
   materialized by one SQL script (one round trip). SQLite: one executemany of dialect upserts
   per table. A test checks that both back ends end with identical tables.
3. The duplicate-id rule (:mod:`edgefinder.esports.materialize`): the first stored copy of an
   ``event_id`` / ``signal_id`` wins in every table, whether the copies share a batch or not; a
   copy with the same content is a silent no-op (a redelivered batch changes nothing); a copy
   with other content is dead-lettered as ``conflict`` with both copies' content hashes, and
   counted (``edgefinder_duplicate_conflicts_total``).
4. In SQL, for the matches the batch touched: ``macro_outcomes`` of both teams of every finished
   round are recomputed, and motion signals still lacking ``round_no`` / ``team`` are resolved
   from the round windows and the MATCH_START roster. Events may arrive in any order.
5. Isolation: when the transaction fails with anything but an unreachable database (connection
   lost, server restarting: :class:`TransientError`, the batch is retried unchanged) or a fault
   of the database itself (missing table, no permission: :class:`IngestError`), the batch is split
   in halves, recursively, each half in its own transaction, down to the entries that fail alone.
   Those are dead-lettered as ``rejected`` with the database's first error line, and the rest of
   the batch commits. Every step is idempotent, so a retry after a lost connection repeats it
   safely.

On Postgres, transaction-scoped advisory locks per touched match (see :func:`pg_script`) let
concurrent consumers never deadlock on a match and make the later of two conflicting
transactions see the earlier one's rows when it recomputes outcomes and resolves signals.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from psycopg.types.json import set_json_dumps
from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError

from edgefinder.errors import EdgefinderError, first_line
from edgefinder.esports import metrics
from edgefinder.esports.events import (
    DEFAULT_MAX_EVENT_BYTES,
    CanonicalEvent,
    InvalidEvent,
    MotionSignal,
    parse_lines,
)
from edgefinder.esports.materialize import (
    MACRO_SQL,
    MICRO_COLS,
    PG_STAGE_TYPES,
    PG_STAGES,
    RAW_COLS,
    RESOLVE_ROUND_SQL,
    RESOLVE_TEAM_SQL,
    ROUND_MAP_SQL,
    BatchRows,
    content_hash,
    micro_row,
    pg_script,
    raw_row,
    same_content,
)
from edgefinder.esports.pseudonym import Pseudonymizer
from edgefinder.esports.sources import BatchSource, Entry
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
_IN_CHUNK = 500  # ids per IN (…) list on SQLite

Event = CanonicalEvent | MotionSignal
Failure = Literal["transient", "systemic", "entry"]


class IngestError(EdgefinderError):
    """The pipeline cannot continue (e.g. the schema is missing); nothing was acknowledged."""


class TransientError(Exception):
    """A server is unreachable, the session was lost, or the transaction was aborted (a conflict,
    a statement timeout); retry the batch (smaller, unless ``unreachable``). ``timeout``: the
    statement ran out of time (``statement_timeout``), the one transient failure an entry itself
    can cause. ``unreachable``: no connection could be opened, so the batch played no part."""

    def __init__(
        self, server: str, detail: str, *, timeout: bool = False, unreachable: bool = False
    ) -> None:
        super().__init__(f"{server} unavailable: {detail}")
        self.server = server
        self.timeout = timeout
        self.unreachable = unreachable


@dataclass(frozen=True)
class Prepared:
    """A validated batch: its entries, valid events, dead-letter rows and (Postgres) staging rows."""

    entries: list[Entry]
    good: list[tuple[Entry, Event]]
    dead: list[dict[str, Any]]
    rows: BatchRows | None


@dataclass(frozen=True)
class BatchResult:
    """What one committed batch did (counts of entries)."""

    entries: int
    canonical: int  # valid canonical events stored or found already stored unchanged
    signals: int  # the same for motion signals
    dead_letters: int  # dead letters written, conflicts included
    conflicts: int = 0  # copies of a stored id with other content


# --- dead letters ---------------------------------------------------------------------------


def clean_text(value: str) -> str:
    """Text any database column holds: NUL and unpaired surrogates spelled as escapes."""
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def dead_kind(reason: str) -> str:
    """The ``kind`` of a dead letter from its reason's first words."""
    for prefix, kind in (
        ("oversize", "oversize"),
        ("delivery limit", "delivery_limit"),
        ("database rejected", "rejected"),
        ("conflict", "conflict"),
    ):
        if reason.startswith(prefix):
            return kind
    return "invalid"


def dead_letter(source: BatchSource, entry: Entry, reason: str) -> dict[str, Any]:
    """The dead_letters row of ``entry``: its text as received (cut at MAX_DEAD_LETTER_CHARS), bytes
    that are not UTF-8 spelled ``\\xNN`` so that the raw bytes can be recovered."""
    raw = entry.raw[:MAX_DEAD_LETTER_CHARS].decode("utf-8", errors="backslashreplace")
    if len(entry.raw) > MAX_DEAD_LETTER_CHARS:
        raw += f"…[truncated; {len(entry.raw)} bytes in total]"
    return {
        "source": clean_text(source.name[:128]),
        "entry_id": clean_text(entry.entry_id[:64]),
        "raw": clean_text(raw),
        "reason": clean_text(reason[:4000]),
        "deliveries": entry.deliveries,
        "kind": dead_kind(reason),
    }


# --- what a failure means ---------------------------------------------------------------------

# SQLSTATE classes: 08 connection, 40 rollback (serialization, deadlock), 53 resources, 57P0x
# shutdown/restart, 57014 cancelled: retry (smaller, on a fresh connection). 21 cardinality, 22 data, 23 integrity,
# 2F/38/39 routine, 54 program limit (e.g. stack depth): an entry's content. Anything else (42
# undefined table or column, no permission, 58 I/O, XX internal, …) is the database's own fault.
_PG_TRANSIENT_CLASSES = frozenset({"08", "40", "53"})
_PG_TRANSIENT_STATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05", "57014", "55P03"})
_PG_ENTRY_CLASSES = frozenset({"21", "22", "23", "2F", "38", "39", "54"})
_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open", "disk is full")
_SQLITE_SYSTEMIC = (
    "no such table",
    "no such column",
    "syntax error",
    "readonly",
    "not authorized",
    "no such function",
)


def _sqlstate(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    return getattr(orig, "sqlstate", None)


def failure_kind(exc: BaseException) -> Failure:
    """Is ``exc`` (raised while writing a batch) transient, the database's fault, or an entry's?"""
    import psycopg

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "transient"
    orig = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    if isinstance(orig, psycopg.Error):
        state = orig.sqlstate
        if state is None:  # raised by the client: a lost connection, or a value it cannot send
            return (
                "transient"
                if isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError))
                else "entry"
            )
        if state[:2] in _PG_TRANSIENT_CLASSES or state in _PG_TRANSIENT_STATES:
            return "transient"
        return "entry" if state[:2] in _PG_ENTRY_CLASSES else "systemic"
    if isinstance(orig, sqlite3.Error):
        msg = str(orig).lower()
        if isinstance(orig, sqlite3.OperationalError) and any(m in msg for m in _SQLITE_TRANSIENT):
            return "transient"
        if any(m in msg for m in _SQLITE_SYSTEMIC):
            return "systemic"
        return "entry"
    if isinstance(exc, (OperationalError, InterfaceError)):
        return "transient"
    return "entry"  # a value no driver could adapt, or a bug that one entry triggers


def _json_dumps(value: Any) -> bytes:
    """JSON for the staging tables' jsonb columns: orjson (about a tenth of ``json.dumps``'s CPU,
    once per signal's features and per event's payload), ``json.dumps`` for anything orjson
    refuses (validation leaves nothing such, but a refusal must not become a failed batch)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


# --- the pipeline -------------------------------------------------------------------------------


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
            return stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols}
            )

        def nothing(table: Any, keys: Sequence[str]) -> Any:
            return ins(table).on_conflict_do_nothing(index_elements=list(keys))

        self.st_raw = nothing(raw_events, ["event_id"])
        self.st_match_start = upsert(
            matches, ["match_id"], ["map", "team_a", "team_b", "started_at"]
        )
        self.st_match_end = upsert(matches, ["match_id"], ["winner", "score", "ended_at"])
        self.st_players = upsert(match_players, ["match_id", "player_hash"], ["team_id"])
        self.st_round_start = upsert(rounds, ["match_id", "round_no"], ["start_ts"])
        self.st_round_end = upsert(
            rounds, ["match_id", "round_no"], ["end_ts", "winner", "win_reason"]
        )
        self.st_rt_start = upsert(
            round_teams,
            ["match_id", "round_no", "team_id"],
            ["side", "bank_start", "loadout_value"],
        )
        self.st_rt_end = upsert(round_teams, ["match_id", "round_no", "team_id"], ["bank_end"])
        self.st_kills = nothing(kills, ["event_id"])
        self.st_sites = nothing(site_events, ["event_id"])
        self.st_micro = nothing(micro_actions, ["signal_id"])
        dl_insert = pg_insert if self.pg else sqlite_insert
        self.st_dead = dl_insert(dead_letters).on_conflict_do_nothing(
            index_elements=["source", "entry_id"]
        )
        # the first statement of a SQLite batch takes the write lock (a write that changes nothing
        # does), so the duplicate check reads what the last writer committed
        self.sql_write_lock = text("UPDATE dead_letters SET id = id WHERE 0 = 1")
        self.sql_macro = text(MACRO_SQL).bindparams(bindparam("mids", expanding=True))
        self.sql_round_map = text(ROUND_MAP_SQL).bindparams(bindparam("mids", expanding=True))
        self.sql_resolve_round = text(RESOLVE_ROUND_SQL).bindparams(
            bindparam("mids", expanding=True)
        )
        self.sql_resolve_team = text(RESOLVE_TEAM_SQL).bindparams(bindparam("mids", expanding=True))
        cols = tuple(c.name for c in micro_actions.columns if c.name != "created_at")
        assert cols == MICRO_COLS, "MICRO_COLS must follow the table's column order"
        assert set(RAW_COLS) <= {c.name for c in raw_events.columns}, (
            "RAW_COLS must be raw_events columns"
        )

    # -- validation ---------------------------------------------------------------------

    def validate(
        self, entries: Sequence[Entry], source: BatchSource
    ) -> tuple[list[tuple[Entry, Event]], list[dict[str, Any]]]:
        """Split a batch into valid events and dead-letter rows (nothing an entry holds escapes)."""
        good: list[tuple[Entry, Event]] = []
        dead: list[dict[str, Any]] = []
        parsed = iter(
            parse_lines([e.raw for e in entries if e.error is None], max_bytes=self.max_event_bytes)
        )
        for e in entries:
            if e.error is not None:
                dead.append(dead_letter(source, e, e.error))
                continue
            ev = next(parsed)
            if not isinstance(ev, Exception):
                good.append((e, ev))
            elif isinstance(ev, InvalidEvent):
                dead.append(dead_letter(source, e, ev.reason))
            else:
                reason = f"invalid: {type(ev).__name__}: {first_line(ev)}"
                dead.append(dead_letter(source, e, reason))
        return good, dead

    def prepare(self, entries: Sequence[Entry], source: BatchSource) -> Prepared:
        """Validate a batch and (Postgres) build its staging rows; no database access."""
        good, dead = self.validate(entries, source)
        rows = None
        if self.pg:
            rows, good = self._stage(good, source, dead)
        return Prepared(list(entries), good, dead, rows)

    def _stage(
        self, good: list[tuple[Entry, Event]], source: BatchSource, dead: list[dict[str, Any]]
    ) -> tuple[BatchRows, list[tuple[Entry, Event]]]:
        rows = BatchRows(self.pseudo, full=False)
        kept: list[tuple[Entry, Event]] = []
        for item in good:
            try:
                rows.add(item[1], len(kept))
            except Exception as exc:
                dead.append(
                    dead_letter(source, item[0], f"invalid: cannot be stored: {first_line(exc)}")
                )
                continue
            kept.append(item)
        return rows, kept

    # -- the batch transaction -------------------------------------------------------

    def process(self, entries: Sequence[Entry] | Prepared, source: BatchSource) -> BatchResult:
        """Validate (unless prepared) and write one batch; isolate the entries the database refuses.

        Raises :class:`TransientError` when the database is unreachable (the batch is to be
        retried; nothing of it needs undoing) and :class:`IngestError` for a fault of the database
        itself. Nothing an entry contains makes it raise.
        """
        prep = entries if isinstance(entries, Prepared) else self.prepare(entries, source)
        rejected: list[dict[str, Any]] = []
        try:
            conflicts = self._write(prep.good, prep.dead, source, prep.rows)
        except Exception as exc:
            self._raise_unless_entry(exc)
            log.warning(
                "batch of %d rejected by the database (%s); isolating the entries that cause it",
                len(prep.entries),
                first_line(exc),
            )
            conflicts, rejected = self._isolate(prep.good, source, exc)
            self._write_dead(prep.dead + rejected)
        return self._account(source, prep, conflicts, rejected)

    @staticmethod
    def _raise_unless_entry(exc: BaseException) -> None:
        if isinstance(exc, TransientError):
            raise exc
        kind = failure_kind(exc)
        if kind == "transient":
            timeout = _sqlstate(exc) == "57014" and "statement timeout" in str(exc)
            raise TransientError("database", first_line(exc), timeout=timeout) from exc
        if kind == "systemic":
            raise IngestError(f"database error: {first_line(exc)}") from exc

    def _isolate(
        self, good: list[tuple[Entry, Event]], source: BatchSource, exc: BaseException
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Bisect ``good`` (which failed with ``exc``) into committed halves and rejected entries."""
        conflicts: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []

        def attempt(items: list[tuple[Entry, Event]], failed: BaseException | None) -> None:
            if not items:
                return
            if failed is None:
                try:
                    conflicts.extend(self._write(items, [], source))
                    return
                except Exception as err:
                    self._raise_unless_entry(err)
                    failed = err
            if len(items) == 1:
                rejected.append(
                    dead_letter(source, items[0][0], f"database rejected: {first_line(failed)}")
                )
                return
            mid = len(items) // 2
            attempt(items[:mid], None)
            attempt(items[mid:], None)

        attempt(good, exc)
        return conflicts, rejected

    def _account(
        self,
        source: BatchSource,
        prep: Prepared,
        conflicts: list[dict[str, Any]],
        rejected: list[dict[str, Any]],
    ) -> BatchResult:
        lost = {d["entry_id"] for d in conflicts} | {d["entry_id"] for d in rejected}
        n_sig = n_can = 0
        for e, ev in prep.good:
            if lost and e.entry_id[:64] in lost:
                continue
            if ev.__class__ is MotionSignal:
                n_sig += 1
            else:
                n_can += 1
        lbl = source.label
        if n_can + n_sig:
            metrics.EVENTS_INGESTED.labels(lbl).inc(n_can + n_sig)
        dead = len(prep.dead) + len(conflicts) + len(rejected)
        if dead:
            for d in (*prep.dead, *conflicts, *rejected):
                metrics.DEAD_LETTERS.labels(lbl, d["kind"]).inc()
        if conflicts:
            metrics.DUPLICATE_CONFLICTS.labels(lbl).inc(len(conflicts))
        metrics.BATCHES.labels(lbl).inc()
        return BatchResult(len(prep.entries), n_can, n_sig, dead, len(conflicts))

    def _write(
        self,
        good: list[tuple[Entry, Event]],
        dead: list[dict[str, Any]],
        source: BatchSource,
        rows: BatchRows | None = None,
    ) -> list[dict[str, Any]]:
        """One transaction: the events of ``good`` and the ``dead`` letters. Returns the conflicts."""
        with self._transaction() as conn:
            if self.pg:
                if rows is None:
                    rows, good = self._stage(good, source, dead)
                return self._write_tx_pg(conn, rows, good, dead, source)
            return self._write_tx_sqlite(conn, good, dead, source)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """``engine.begin()``; after a transient failure the connection is discarded, not pooled
        again: a session that timed out, lost a serialization conflict or was cut keeps the
        settings it started with (``ALTER DATABASE … SET statement_timeout`` reaches only new
        sessions), so the retry runs on a fresh one."""
        try:
            conn = self.engine.connect()
        except Exception as exc:
            if failure_kind(exc) == "transient":
                raise TransientError("database", first_line(exc), unreachable=True) from exc
            raise
        with conn, conn.begin():
            try:
                yield conn
            except BaseException as exc:
                if not conn.invalidated and conn.connection.is_valid:
                    # a rolled-back transaction also rolls back a CREATE TEMP TABLE
                    conn.connection.info.pop("ef_stages", None)
                    if isinstance(exc, Exception) and failure_kind(exc) == "transient":
                        conn.invalidate(exc)
                raise

    def _write_dead(self, dead: list[dict[str, Any]]) -> None:
        """Dead letters in their own transaction; one that still fails is written without its text."""
        if not dead:
            return
        try:
            with self._transaction() as conn:
                conn.execute(self.st_dead, dead)
            return
        except Exception as exc:
            self._raise_unless_entry(exc)
        for d in dead:
            for row in (
                d,
                {**d, "raw": f"[the entry's text could not be stored; {len(d['raw'])} characters]"},
            ):
                try:
                    with self._transaction() as conn:
                        conn.execute(self.st_dead, [row])
                    break
                except Exception as exc:
                    self._raise_unless_entry(exc)
                    log.error(
                        "dead letter of %s %s not stored: %s",
                        d["source"],
                        d["entry_id"],
                        first_line(exc),
                    )

    # -- Postgres ------------------------------------------------------------------------

    def _pg_stages(self, conn: Any) -> None:
        """Create the per-connection staging tables once (ON COMMIT DELETE ROWS empties them), and
        have the connection's COPY write its jsonb columns with :func:`_json_dumps`."""
        info = conn.connection.info
        if info.get("ef_stages"):
            return
        for ddl in PG_STAGES.values():
            conn.exec_driver_sql(ddl)
        set_json_dumps(_json_dumps, context=conn.connection.dbapi_connection)
        info["ef_stages"] = True

    def _write_tx_pg(
        self,
        conn: Any,
        rows: BatchRows,
        good: list[tuple[Entry, Event]],
        dead: list[dict[str, Any]],
        source: BatchSource,
    ) -> list[dict[str, Any]]:
        """Postgres: the batch is COPYed (binary) into temporary staging tables (canonical events with
        their normalized, pseudonymized payloads; signal rows; copies of ids already staged) and
        materialized by one script of ``INSERT … SELECT … ON CONFLICT`` statements sent in a
        single round trip, whose last statement returns the conflicts.

        psycopg's executemany sends one statement per row; this sends a few messages per batch,
        and the JSON unpacking runs in the database (which has a core to spare) instead of in
        the consumer's Python thread, which the GIL makes the bottleneck.
        """
        self._pg_stages(conn)
        cur_conn = conn.connection.dbapi_connection
        found: list[tuple[str, int, dict[str, Any]]] = []
        with cur_conn.cursor() as cur:
            for kind, cols, stages in (
                ("raw", RAW_COLS, (("_ef_raw", rows.raw.values()), ("_ef_rawdup", rows.raw_dups))),
                (
                    "micro",
                    MICRO_COLS,
                    (("_ef_micro", rows.micro.values()), ("_ef_microdup", rows.micro_dups)),
                ),
            ):
                for table, staged in stages:
                    if staged:
                        with cur.copy(
                            f"COPY {table} (seq, {', '.join(cols)}) FROM STDIN (FORMAT BINARY)"
                        ) as cp:
                            cp.set_types(PG_STAGE_TYPES[kind])
                            for t in staged:
                                cp.write_row(t)
            script = pg_script(rows)
            if script:
                cur.execute(script)
                while True:
                    if cur.description is not None:
                        found = cur.fetchall()
                    if not cur.nextset():
                        break
        conflicts = self._pg_conflicts(source, rows, good, found) if found else []
        if dead or conflicts:
            conn.execute(self.st_dead, dead + conflicts)
        return conflicts

    def _pg_conflicts(
        self,
        source: BatchSource,
        rows: BatchRows,
        good: list[tuple[Entry, Event]],
        found: list[tuple[str, int, dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        staged = {
            t[0]: t
            for t in (*rows.raw.values(), *rows.raw_dups, *rows.micro.values(), *rows.micro_dups)
        }
        out = []
        for kind, seq, stored in found:
            copy = staged[seq][1:]
            cols = RAW_COLS if kind == "raw" else MICRO_COLS
            row = [stored.get(c) for c in cols]
            if kind == "raw" and isinstance(row[4], str):
                row[4] = datetime.fromisoformat(row[4])
            out.append(self._conflict(source, good[seq][0], kind, row, copy))
        return out

    @staticmethod
    def _conflict(
        source: BatchSource, entry: Entry, kind: str, stored: Sequence[Any], copy: Sequence[Any]
    ) -> dict[str, Any]:
        what = "event_id" if kind == "raw" else "signal_id"
        return dead_letter(
            source,
            entry,
            f"conflict: {what} {stored[0]!r} is already stored with other content (stored copy "
            f"{content_hash(stored)}, this copy {content_hash(copy)}); the first stored copy is kept",
        )

    # -- SQLite --------------------------------------------------------------------------

    def _stored(
        self, conn: Any, table: Any, key: str, cols: Sequence[str], ids: list[str]
    ) -> dict[str, tuple[Any, ...]]:
        out: dict[str, tuple[Any, ...]] = {}
        columns = [table.c[c] for c in cols]
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            for r in conn.execute(
                table.select().with_only_columns(*columns).where(table.c[key].in_(chunk))
            ):
                out[r[0]] = tuple(r)
        return out

    def _write_tx_sqlite(
        self,
        conn: Any,
        good: list[tuple[Entry, Event]],
        dead: list[dict[str, Any]],
        source: BatchSource,
    ) -> list[dict[str, Any]]:
        """SQLite: one writer at a time (the database lock); row dicts through executemany.

        The duplicate-id rule in Python: the stored copies of the batch's ids are read first, and
        only events whose id is new are materialized.
        """
        conn.execute(self.sql_write_lock)
        canon = [ev.event_id for _, ev in good if not isinstance(ev, MotionSignal)]
        sigs = [ev.signal_id for _, ev in good if isinstance(ev, MotionSignal)]
        known = {
            "raw": self._stored(conn, raw_events, "event_id", RAW_COLS, canon) if canon else {},
            "micro": self._stored(conn, micro_actions, "signal_id", MICRO_COLS, sigs)
            if sigs
            else {},
        }
        rows = BatchRows(self.pseudo, full=True)
        conflicts: list[dict[str, Any]] = []
        for seq, (e, ev) in enumerate(good):
            if isinstance(ev, MotionSignal):
                kind, key, row = "micro", ev.signal_id, micro_row(ev, self.pseudo)
            else:
                kind, key, row = "raw", ev.event_id, raw_row(ev, self.pseudo)
            prev = known[kind].get(key)
            if prev is None:
                known[kind][key] = row
                rows.add(ev, seq, row)
            elif not same_content(kind, row, prev):
                conflicts.append(self._conflict(source, e, kind, prev, row))
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
            ordered: list[Any] = [data[k] for k in sorted(data)]  # row dicts; tuples for micro
            if name == "micro":
                ordered = [dict(zip(MICRO_COLS, t[1:])) for t in ordered]
            conn.execute(stmt, ordered)
        if dead or conflicts:
            conn.execute(self.st_dead, dead + conflicts)
        if rows.outcome_matches:
            conn.execute(self.sql_macro, {"mids": sorted(rows.outcome_matches)})
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
        return conflicts
