"""Benchmark: events/s from Redis Streams into Postgres with ONE consumer process.

Simulates matches until there are at least ``--events`` events (default 200,000), publishes them
to both streams under a private key prefix, then runs ``edgefinder esports ingest --once`` as one
subprocess (two consumer threads, canonical + motion) and prints events/s measured from the
subprocess start to its exit (includes interpreter start-up, so it slightly understates).

By default it uses the servers at 127.0.0.1 and a fresh database it creates and drops; the
private Redis prefix is deleted afterwards. Not a test: it prints figures, asserts nothing on time.

    .venv/bin/python bench/esports_ingest.py [--events 200000] [--batch-size 2000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import redis
from sqlalchemy import text


def _cpu_times() -> list[int]:
    with open("/proc/stat") as fh:
        return [int(x) for x in fh.readline().split()[1:]]


def _steal_share(before: list[int]) -> float:
    """Share of CPU time the hypervisor stole since ``before`` (field 8 of /proc/stat)."""
    after = _cpu_times()
    delta = [a - b for a, b in zip(after, before)]
    total = sum(delta[:8])
    return delta[7] / total if total else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=2000)
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
        help="motion-stream consumer threads in the process",
    )
    args = ap.parse_args()

    from edgefinder.esports.simulate import simulate, write_simulation
    from edgefinder.esports.sources import publish
    from edgefinder.store.engine import make_engine, temporary_database

    tag = f"ef_bench_{uuid.uuid4().hex[:8]}"
    prefix = f"{tag}:"
    matches = max(1, int(args.events / 1000) + 1)  # about 1,050 events per simulated match
    t0 = time.perf_counter()
    sim = simulate(matches, args.seed)
    while len(sim.lines) < args.events:
        matches = int(matches * args.events / len(sim.lines)) + 2
        sim = simulate(matches, args.seed)
    t_sim = time.perf_counter() - t0
    n_events = len(sim.lines)

    database = ExitStack()
    db_url = database.enter_context(temporary_database(args.pg_admin, tag))
    client = redis.Redis.from_url(args.redis_url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "events.jsonl"
            write_simulation(sim, out)
            t0 = time.perf_counter()
            counts = publish(out, client, prefix)
            t_pub = time.perf_counter() - t0

        from edgefinder.store.migrate import upgrade

        upgrade(db_url)
        env = {
            **os.environ,
            "EDGEFINDER_DATABASE_URL": db_url,
            "EDGEFINDER_REDIS_URL": args.redis_url,
            "EDGEFINDER_REDIS_PREFIX": prefix,
            "EDGEFINDER_LOG_LEVEL": "WARNING",
        }
        cmd = [
            sys.executable,
            "-m",
            "edgefinder",
            "esports",
            "ingest",
            "--once",
            "--no-progress",
            "--batch-size",
            str(args.batch_size),
            "--block-ms",
            "200",
            "--motion-consumers",
            str(args.motion_consumers),
        ]
        import resource

        steal0 = _cpu_times()
        load0 = os.getloadavg()[0]

        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        t_ing = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"ingest failed with exit code {proc.returncode}")
        eng = make_engine(db_url)
        with eng.connect() as conn:
            n_raw = conn.execute(text("SELECT count(*) FROM raw_events")).scalar_one()
            n_micro = conn.execute(text("SELECT count(*) FROM micro_actions")).scalar_one()
            n_out = conn.execute(text("SELECT count(*) FROM macro_outcomes")).scalar_one()
        eng.dispose()
        print(f"simulated {n_events:,} events ({matches} matches) in {t_sim:.1f} s")
        print(
            f"published {counts['canonical']:,} canonical + {counts['motion']:,} motion entries in {t_pub:.1f} s "
            f"({n_events / t_pub:,.0f} entries/s)"
        )
        print(f"stored raw_events={n_raw:,} micro_actions={n_micro:,} macro_outcomes={n_out:,}")
        assert n_raw + n_micro == n_events, "every published event must be stored exactly once"
        print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "")
        print(
            f"ingest: {n_events:,} events from Redis into Postgres in {t_ing:.2f} s with one consumer process "
            f"(batch {args.batch_size}, {args.motion_consumers} motion consumer threads) = {n_events / t_ing:,.0f} events/s"
        )
        print(
            f"consumer process CPU: {cpu_s:.2f} s ({n_events / cpu_s:,.0f} events per CPU-second); "
            f"CPU steal on this machine during the run: {_steal_share(steal0):.0%}; "
            f"load average before the run {load0:.1f} (other processes share the 2 cores)"
        )
    finally:
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()
        database.close()


if __name__ == "__main__":
    main()
