"""Benchmark: events/s and CPU per event, Redis Streams into Postgres, with 1, 2 and 3 consumer processes.

Simulates matches until there are at least ``--events`` events (default 200,000). For each number of
consumer processes in ``--processes`` (default 1,2,3) it publishes them to both streams under a
fresh private key prefix, into a fresh database, runs that many ``edgefinder esports ingest --once``
subprocesses in one consumer group (each with two consumer threads, canonical + motion) and
prints, beside the wall-clock events/s (from the start of the subprocesses to the exit of the
last, interpreter start-up included):

* consumer CPU per event: user + system time of the subprocesses (``RUSAGE_CHILDREN``), and the
  same net of each process's start-up (interpreter, imports, connections: measured by one ingest
  of empty streams before the runs);
* Postgres CPU per event: user + system time of the server backends serving the bench database,
  read from ``/proc/<pid>/stat`` every 0.1 s while they live (pg_stat_statements measures time
  in statements, not CPU, and needs a server restart to load; the background writer, WAL writer
  and checkpointer are not counted, nor the last 0.1 s of each backend);
* the machine's load average and CPU steal before and during the run: on a shared machine the
  wall-clock figure says as much about the neighbours as about the consumer, the CPU figures
  much less.

By default it uses the servers at 127.0.0.1 and fresh databases it creates and drops; the private
Redis prefixes are deleted afterwards. Not a test: it prints figures, asserts nothing on time.

    .venv/bin/python bench/esports_ingest.py [--events 200000] [--batch-size 2000] [--processes 1,2,3]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_times() -> list[int]:
    with open("/proc/stat") as fh:
        return [int(x) for x in fh.readline().split()[1:]]


def _steal_share(before: list[int]) -> float:
    """Share of CPU time the hypervisor stole since ``before`` (field 8 of /proc/stat)."""
    after = _cpu_times()
    delta = [a - b for a, b in zip(after, before)]
    total = sum(delta[:8])
    return delta[7] / total if total else 0.0


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


@dataclass(frozen=True)
class Run:
    processes: int
    events: int
    wall_s: float
    consumer_cpu_s: float
    postgres_cpu_s: float
    load_before: float
    steal: float


def _ingest(
    processes: int,
    db_url: str,
    admin_url: str,
    redis_url: str,
    prefix: str,
    args: argparse.Namespace,
) -> tuple[float, float, float, float, float]:
    """Run ``processes`` consumer processes to the end of the streams: (wall s, consumer CPU s,
    Postgres backends' CPU s, load average before, steal share)."""
    env = {
        **os.environ,
        "EDGEFINDER_DATABASE_URL": db_url,
        "EDGEFINDER_REDIS_URL": redis_url,
        "EDGEFINDER_REDIS_PREFIX": prefix,
        "EDGEFINDER_LOG_LEVEL": "WARNING",
    }
    base = [sys.executable, "-m", "edgefinder", "esports", "ingest", "--once", "--no-progress"]
    opts = ["--batch-size", str(args.batch_size), "--block-ms", "200"]
    opts += ["--motion-consumers", str(args.motion_consumers)]
    database = make_url(db_url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    backends: dict[int, float] = {}
    load0 = os.getloadavg()[0]
    steal0 = _cpu_times()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*base, *opts, "--consumer", f"bench-{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    with admin.connect() as conn:
        while any(p.poll() is None for p in procs):
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": database}
            ).scalars()
            for pid in pids:
                cpu = _process_cpu_s(pid)
                if cpu is not None:
                    backends[pid] = cpu
            time.sleep(0.1)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    admin.dispose()
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            sys.stderr.write(out + err)
            raise SystemExit(f"ingest failed with exit code {p.returncode}")
    consumer = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return wall, consumer, sum(backends.values()), load0, _steal_share(steal0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument(
        "--processes", default="1,2,3", help="consumer process counts to run, comma-separated"
    )
    ap.add_argument(
        "--pg-admin",
        default=os.environ.get(
            "EDGEFINDER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    ap.add_argument(
        "--redis-url", default=os.environ.get("EDGEFINDER_TEST_REDIS", "redis://127.0.0.1:6379/0")
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--motion-consumers",
        type=int,
        default=2,
        help="motion-stream consumer threads in each process",
    )
    args = ap.parse_args()

    from edgefinder.esports.simulate import simulate, write_simulation
    from edgefinder.esports.sources import publish
    from edgefinder.store.engine import make_engine, normalize_url, temporary_database
    from edgefinder.store.migrate import upgrade

    matches = max(1, int(args.events / 1000) + 1)  # about 1,050 events per simulated match
    t0 = time.perf_counter()
    sim = simulate(matches, args.seed)
    while len(sim.lines) < args.events:
        matches = int(matches * args.events / len(sim.lines)) + 2
        sim = simulate(matches, args.seed)
    n_events = len(sim.lines)
    print(f"simulated {n_events:,} events ({matches} matches) in {time.perf_counter() - t0:.1f} s")
    print(
        f"machine: {os.cpu_count()} cores, load average before the runs "
        + " / ".join(f"{x:.1f}" for x in os.getloadavg())
        + " (1 / 5 / 15 min)"
    )
    runs: list[Run] = []
    client = redis.Redis.from_url(args.redis_url)
    tag = f"ef_bench_{uuid.uuid4().hex[:8]}"
    with temporary_database(args.pg_admin, tag) as db_url:
        upgrade(db_url)
        _, startup, _, _, _ = _ingest(
            1, db_url, normalize_url(args.pg_admin), args.redis_url, f"{tag}:", args
        )
    for key in client.scan_iter(match=f"{tag}:*", count=1000):
        client.delete(key)
    print(f"start-up of one consumer process (empty streams): {startup:.2f} s CPU")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.jsonl"
        write_simulation(sim, out)
        for processes in (int(x) for x in args.processes.split(",")):
            tag = f"ef_bench_{uuid.uuid4().hex[:8]}"
            prefix = f"{tag}:"
            try:
                with temporary_database(args.pg_admin, tag) as db_url:
                    t0 = time.perf_counter()
                    counts = publish(out, client, prefix)
                    t_pub = time.perf_counter() - t0
                    upgrade(db_url)
                    wall, cpu, pg_cpu, load0, steal = _ingest(
                        processes,
                        db_url,
                        normalize_url(args.pg_admin),
                        args.redis_url,
                        prefix,
                        args,
                    )
                    eng = make_engine(db_url)
                    with eng.connect() as conn:
                        n_raw = conn.execute(text("SELECT count(*) FROM raw_events")).scalar_one()
                        n_micro = conn.execute(
                            text("SELECT count(*) FROM micro_actions")
                        ).scalar_one()
                    eng.dispose()
                    assert n_raw + n_micro == n_events, "every published event is stored once"
            finally:
                for key in client.scan_iter(match=prefix + "*", count=1000):
                    client.delete(key)
            run = Run(processes, n_events, wall, cpu, pg_cpu, load0, steal)
            runs.append(run)
            print(
                f"{processes} consumer process(es): published {counts['canonical']:,} canonical + "
                f"{counts['motion']:,} motion entries in {t_pub:.1f} s; stored all "
                f"{n_events:,} in {wall:.2f} s = {n_events / wall:,.0f} events/s "
                f"(load average {load0:.1f} before, CPU steal {steal:.0%} during); "
                f"consumer CPU {cpu:.2f} s = {cpu / n_events * 1e6:.1f} us/event "
                f"({n_events / cpu:,.0f} events per consumer CPU-second; net of start-up "
                f"{(cpu - processes * startup) / n_events * 1e6:.1f} us/event = "
                f"{n_events / (cpu - processes * startup):,.0f}); Postgres backends CPU "
                f"{pg_cpu:.2f} s = {pg_cpu / n_events * 1e6:.1f} us/event"
            )
    client.close()
    print()
    print(
        "| consumer processes | events/s (wall) | consumer µs/event | events per consumer CPU-s "
        "| same, net of start-up | Postgres µs/event | load before |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        net = r.consumer_cpu_s - r.processes * startup
        print(
            f"| {r.processes} | {r.events / r.wall_s:,.0f} | {r.consumer_cpu_s / r.events * 1e6:.1f} | "
            f"{r.events / r.consumer_cpu_s:,.0f} | {r.events / net:,.0f} | "
            f"{r.postgres_cpu_s / r.events * 1e6:.1f} | {r.load_before:.1f} |"
        )


if __name__ == "__main__":
    main()
