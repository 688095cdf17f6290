"""One correlation job at a time: the run lock, the queue of requested runs, abandoned runs.

On Postgres a session advisory lock held by a dedicated connection for the whole job (released by
the server if the process dies); on SQLite an atomic conditional INSERT (or UPDATE of the queued
row) of the ``running`` row. See :mod:`edgefinder.esports.jobs` for the run lifecycle.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import EdgefinderError
from edgefinder.esports.resultrows import JobParams
from edgefinder.store.tables import analysis_runs

# "edgefind" in ASCII: the Postgres advisory-lock key of the correlation job.
_PG_LOCK_KEY = 0x6564676566696E64


class JobAlreadyRunning(EdgefinderError):
    """Another correlation job holds the job lock."""


#: A ``queued`` run that no worker started within this many seconds is failed (lost message, no worker).
QUEUED_EXPIRES_S = 3600.0
# Second advisory key: serializes "is anything queued or running? then queue" on Postgres.
_PG_QUEUE_KEY = _PG_LOCK_KEY + 1
ABANDONED = "abandoned: the process running it stopped"


@dataclass
class RunLock:
    """The job lock plus the ``running`` row it guards; release it exactly once."""

    engine: Engine
    run_id: str
    started: float
    params: JobParams
    _conn: Connection | None = None
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self._conn is not None:
            try:
                self._conn.execute(select(func.pg_advisory_unlock(literal(_PG_LOCK_KEY))))
                self._conn.commit()
            finally:
                self._conn.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _params_json(params: JobParams) -> dict[str, Any]:
    d = asdict(params)
    d["causal_outcomes"] = list(params.causal_outcomes)
    return d


def worker_id() -> str:
    """``host:pid`` of this process, stored in ``analysis_runs.worker`` while it runs a job."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(worker: str | None) -> bool:
    """True when ``worker`` (host:pid) names a process of this host that no longer exists."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def _pg_job_lock_held(conn: Connection) -> bool:
    """Whether any session of this database holds the job's advisory lock (without taking it)."""
    hi, lo = _PG_LOCK_KEY >> 32, _PG_LOCK_KEY & 0xFFFFFFFF
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid::bigint = :hi AND objid::bigint = :lo)"
            ),
            {"hi": hi, "lo": lo},
        ).scalar()
    )


def reap_abandoned(
    engine: Engine, *, stale_after_s: float = 600.0, queued_expires_s: float = QUEUED_EXPIRES_S
) -> int:
    """Mark failed the runs nobody will finish; returns how many rows changed.

    * ``running`` on Postgres while no session holds the job's advisory lock: the server drops the
      lock with the connection of a process that died, so the row's process is gone.
    * ``running`` on SQLite whose process (``worker``, same host) no longer exists, or that started
      more than ``stale_after_s`` seconds ago.
    * ``queued`` for more than ``queued_expires_s`` seconds: no worker took it.

    Every update is conditional on the status it read, so a run that finishes meanwhile is left alone.
    The API calls this before it answers about runs, workers when they start: a killed job never
    stays ``running``.
    """
    now = _now()
    c = analysis_runs.c
    changed = 0
    with (
        engine.connect() as conn
    ):  # the common case, nothing queued or running, stays a single read
        rows = conn.execute(
            select(c.run_id, c.status, c.worker).where(c.status.in_(("queued", "running")))
        ).all()
    if not rows:
        return 0
    with engine.begin() as tx:
        running = [r for r in rows if r.status == "running"]
        if engine.dialect.name == "postgresql":
            gone = [r.run_id for r in running] if running and not _pg_job_lock_held(tx) else []
        else:
            gone = [r.run_id for r in running if _process_gone(r.worker)]
            cutoff = now - timedelta(seconds=stale_after_s)
            changed += tx.execute(
                update(analysis_runs)
                .where(c.status == "running", c.started_at < cutoff)
                .values(
                    status="failed",
                    finished_at=now,
                    error=f"abandoned: running for more than {stale_after_s:g} s",
                )
            ).rowcount
        if gone:
            changed += tx.execute(
                update(analysis_runs)
                .where(c.run_id.in_(gone), c.status == "running")
                .values(status="failed", finished_at=now, error=ABANDONED)
            ).rowcount
        if any(r.status == "queued" for r in rows):
            changed += tx.execute(
                update(analysis_runs)
                .where(
                    c.status == "queued", c.queued_at < now - timedelta(seconds=queued_expires_s)
                )
                .values(
                    status="failed",
                    finished_at=now,
                    error=f"not started within {queued_expires_s:g} s of being queued: is a worker running?",
                )
            ).rowcount
    return changed


def _active(*statuses: str) -> Any:
    """EXISTS (a run with one of ``statuses``), over an alias so an UPDATE of the table does not correlate it."""
    other = analysis_runs.alias("other_run")
    return exists().where(other.c.status.in_(statuses))


def queue_run(engine: Engine, params: JobParams | None = None, *, trigger: str = "api") -> str:
    """Insert a ``queued`` run for a worker to start and return its id.

    Raises :class:`JobAlreadyRunning` when a run is already queued or running (one job at a time,
    whoever starts it). The check and the insert are one statement; on Postgres a transaction-scoped
    advisory lock also serializes concurrent callers (READ COMMITTED would let two both insert).
    """
    params = params or JobParams()
    reap_abandoned(engine, stale_after_s=params.stale_after_s)
    now = _now()
    values = {
        "run_id": str(uuid.uuid4()),
        "status": "queued",
        "started_at": now,
        "queued_at": now,
        "trigger": trigger,
        "params": _params_json(params),
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
    }
    cols = list(values)
    src = select(*[literal(values[k], type_=analysis_runs.c[k].type).label(k) for k in cols]).where(
        ~_active("queued", "running")
    )
    c = analysis_runs.c
    with engine.begin() as tx:
        if engine.dialect.name == "postgresql":
            tx.execute(select(func.pg_advisory_xact_lock(literal(_PG_QUEUE_KEY))))
        tx.execute(insert(analysis_runs).from_select(cols, src))
        # (psycopg reports no rowcount for INSERT ... SELECT: look for the row instead)
        if tx.execute(select(c.run_id).where(c.run_id == values["run_id"])).first() is None:
            busy = tx.execute(
                select(c.run_id, c.status).where(c.status.in_(("queued", "running"))).limit(1)
            ).first()
            what = (
                f"run {busy.run_id} is {busy.status}"
                if busy is not None
                else "another run is active"
            )
            raise JobAlreadyRunning(f"a correlation job is already queued or running ({what})")
    return str(values["run_id"])


def fail_queued(engine: Engine, run_id: str, error: str) -> bool:
    """Mark a still-``queued`` run failed with ``error`` (broker down, job refused); False if it was not queued."""
    c = analysis_runs.c
    with engine.begin() as tx:
        return bool(
            tx.execute(
                update(analysis_runs)
                .where(c.run_id == run_id, c.status == "queued")
                .values(status="failed", finished_at=_now(), error=error)
            ).rowcount
        )


def acquire_run(
    engine: Engine,
    params: JobParams | None = None,
    run_id: str | None = None,
    *,
    trigger: str = "python",
) -> RunLock:
    """Take the job lock and mark the run ``running``; raise JobAlreadyRunning if another job holds it.

    ``run_id`` of a ``queued`` run (POST /run-analysis on a broker) starts that run; otherwise a new
    ``running`` row is inserted. ``trigger`` (api, schedule, cli, python) is stored with the run.
    """
    params = params or JobParams()
    run_id = run_id or str(uuid.uuid4())
    now = _now()
    values = {
        "run_id": run_id,
        "status": "running",
        "started_at": now,
        "params": _params_json(params),
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
        "trigger": trigger,
        "worker": worker_id(),
    }
    c = analysis_runs.c
    start_queued = (
        update(analysis_runs)
        .where(c.run_id == run_id, c.status == "queued")
        .values(status="running", started_at=now, worker=values["worker"])
    )
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        try:
            got = conn.execute(select(func.pg_try_advisory_lock(literal(_PG_LOCK_KEY)))).scalar()
            conn.commit()
            if not got:
                raise JobAlreadyRunning(
                    "a correlation job is already running (Postgres advisory lock is held)"
                )
            with engine.begin() as tx:
                # We hold the lock, so a 'running' row belongs to a process that died mid-job.
                tx.execute(
                    update(analysis_runs)
                    .where(c.status == "running")
                    .values(status="failed", finished_at=now, error=ABANDONED)
                )
                if tx.execute(start_queued).rowcount != 1:
                    tx.execute(insert(analysis_runs).values(**values))
        except BaseException:
            try:
                conn.execute(select(func.pg_advisory_unlock(literal(_PG_LOCK_KEY))))
                conn.commit()
            finally:
                conn.close()
            raise
        return RunLock(engine, run_id, time.perf_counter(), params, conn)

    reap_abandoned(engine, stale_after_s=params.stale_after_s)
    running = _active("running")
    cols = list(values)
    # One statement each (UPDATE ... WHERE NOT EXISTS, INSERT ... SELECT ... WHERE NOT EXISTS): SQLite
    # takes the write lock at the start of the first, so two processes cannot both see "nothing running".
    src = select(*[literal(values[k], type_=c[k].type).label(k) for k in cols]).where(~running)
    with engine.begin() as tx:
        n = tx.execute(start_queued.where(~running)).rowcount
        if n == 0 and tx.execute(select(c.run_id).where(c.run_id == run_id)).first() is None:
            tx.execute(insert(analysis_runs).from_select(cols, src))
            n = int(
                tx.execute(
                    select(c.run_id).where(c.run_id == run_id, c.status == "running")
                ).first()
                is not None
            )
    if n != 1:
        raise JobAlreadyRunning(
            "a correlation job is already running (see analysis_runs with status 'running')"
        )
    return RunLock(engine, run_id, time.perf_counter(), params)
