"""Consumers that die: SIGKILL while re-reading pending entries, and an entry that kills its consumer.

Real consumer processes on the real Redis and Postgres. The delivery limit must count a consumer's
failures while writing an entry alone, never redeliveries: kills from outside lose and
dead-letter no valid event, and an entry that crashes the process every time is isolated and
dead-lettered with its first failure while every other entry is stored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from edgefinder.esports.ingest import ingest_file
from edgefinder.esports.simulate import simulate, write_simulation
from edgefinder.esports.sources import DEFAULT_GROUP, stream_keys
from edgefinder.store.engine import make_engine
from tests.esports_pg import TABLE_KEYS, private_pg_database, stored_table, waiting_on_lock
from tests.esports_sources import publish_lines

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

KEY = "test-pseudonym-key"
ROOT = Path(__file__).resolve().parents[2]


def _env(pg_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "EDGEFINDER_DATABASE_URL": pg_url,
        "EDGEFINDER_REDIS_URL": redis_url,
        "EDGEFINDER_REDIS_PREFIX": prefix,
        "EDGEFINDER_PSEUDONYM_KEY": KEY,
        "EDGEFINDER_LOG_LEVEL": "ERROR",
        "PYTHONPATH": str(ROOT),
    }


def _count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _pending(client, prefix: str) -> int:
    return sum(
        int(client.xpending(k, DEFAULT_GROUP)["pending"]) for k in stream_keys(prefix).values()
    )


def _attempts(client, prefix: str) -> dict[tuple[str, bytes], int]:
    """Unfinished write attempts per entry, from the failure journals of both streams."""
    out = {}
    for k in stream_keys(prefix).values():
        for field, value in client.hgetall(f"{k}:failures:{DEFAULT_GROUP}").items():
            if b":" not in field:
                out[(k, field)] = int(value)
    return out


def _began(now: dict[tuple[str, bytes], int], before: dict[tuple[str, bytes], int]) -> bool:
    """Has a write attempt begun since ``before`` (a count went up; finished ones vanish)?"""
    return any(v > before.get(k, 0) for k, v in now.items())


def test_sigkill_again_and_again_while_re_reading_pending_entries_loses_nothing(
    pg_url, redis_url, redis_client, redis_prefix, tmp_path: Path
) -> None:
    sim = simulate(8, seed=401)
    publish_lines(redis_client, redis_prefix, sim.lines)
    cmd = [
        sys.executable,
        "-m",
        "edgefinder",
        "esports",
        "ingest",
        "--no-progress",
        "--block-ms",
        "50",
        "--batch-size",
        "500",
        "--consumer",
        "crashy",
        "--motion-consumers",
        "1",
        "--claim-idle-ms",
        "600000",
    ]
    with private_pg_database(pg_url, "kills") as url:
        env = _env(url, redis_url, redis_prefix)
        engine = make_engine(url)
        # first kill mid-stream: batches written, some read ahead, none acknowledged after it
        proc = subprocess.Popen(
            [*cmd, "--follow"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 90
        while _count(engine, "SELECT count(*) FROM micro_actions") < 1500:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills = {"while writing pending entries": 0, "while re-reading them": 0}
        hold = engine.connect()  # holds the tables every write inserts into, one restart at a time
        for _ in range(8):
            pending = _pending(redis_client, redis_prefix)
            assert pending > 0
            before = _attempts(redis_client, redis_prefix)
            tx = hold.begin()
            hold.execute(text("LOCK TABLE raw_events, micro_actions IN SHARE MODE"))
            proc = subprocess.Popen(
                [*cmd, "--follow"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            # kill when the restarted consumer has begun writing its pending entries (its attempt
            # is recorded) and its transaction waits for the held tables: the moment a poison
            # entry would kill it, reached by the consumer's own steps, not by a race
            deadline = time.monotonic() + 60
            while not (
                _began(_attempts(redis_client, redis_prefix), before) and waiting_on_lock(engine)
            ):
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the restarted consumer never began a write"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            tx.rollback()  # the killed client's transaction never commits: it sent no COMMIT
            kills[
                "while writing pending entries"
                if _began(_attempts(redis_client, redis_prefix), before)
                else "while re-reading them"
            ] += 1
        hold.close()
        assert kills["while writing pending entries"] >= 7, kills
        done = subprocess.run(
            [*cmd, "--once"], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        assert "0 dead letters" in " ".join(done.stdout.split()), done.stdout
        assert _count(engine, "SELECT count(*) FROM dead_letters") == 0
        assert _pending(redis_client, redis_prefix) == 0
        for k in stream_keys(redis_prefix).values():
            assert not redis_client.exists(f"{k}:failures:{DEFAULT_GROUP}")
        # every table is identical to a clean run of the same events
        out, _ = write_simulation(sim, tmp_path / "events.jsonl")
        with private_pg_database(pg_url, "clean") as clean:
            ingest_file(out, clean, KEY, migrate=False)
            ref = make_engine(clean)
            for name in TABLE_KEYS:
                got, want = stored_table(engine, name), stored_table(ref, name)
                assert len(got) == len(want) > 0, name
                pd.testing.assert_frame_equal(got, want, obj=name)
            ref.dispose()
        engine.dispose()
    print(
        f"SIGKILL campaign: 1 kill mid-stream, then {kills}; "
        f"{len(sim.lines):,} events, all stored once, 0 dead letters"
    )


def test_an_entry_that_kills_its_consumer_is_isolated_and_dead_lettered_alone(
    pg_url, redis_url, redis_client, redis_prefix
) -> None:
    sim = simulate(2, seed=402)
    signals = [ln for ln in sim.lines if '"signal_id"' in ln]
    poison = json.dumps(
        {**json.loads(signals[0]), "signal_id": "sim402-poison", "model_version": "CRASH-ME"}
    )
    lines = signals[:700] + [poison] + signals[700:]
    publish_lines(redis_client, redis_prefix, lines)
    with private_pg_database(pg_url, "poison") as url:
        env = _env(url, redis_url, redis_prefix)
        crashes = 0
        for _ in range(20):  # a supervisor that restarts the consumer whenever it dies
            r = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "tests" / "integration" / "crash_consumer.py"),
                    url,
                    redis_url,
                    redis_prefix,
                    "CRASH-ME",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if r.returncode == 0:
                break
            assert r.returncode == -signal.SIGKILL, r.stderr
            crashes += 1
        # max_deliveries=3: a crash in its first batch (200 entries), one in a careful batch of
        # 200 // 16 = 12, then the careful batches have one entry (200 // 256 rounds down) and the
        # limit counts: 3 crashes alone, after which it is dead-lettered instead of written
        assert crashes == 1 + 1 + 3, crashes
        engine = make_engine(url)
        dl = pd.read_sql(text("SELECT * FROM dead_letters"), engine)
        assert dl.raw.str.contains("sim402-poison").tolist() == [True] and dl.kind.tolist() == [
            "delivery_limit"
        ]
        reason = dl.reason[0]
        assert reason.startswith(
            "delivery limit exceeded: 3 consumer failures while writing it alone (limit 3)"
        )
        assert "first failure: consumer crashy began writing it at" in reason
        assert "in a batch of 12 and never finished (the process was killed or crashed)" in reason
        assert _count(engine, "SELECT count(*) FROM micro_actions") == len(
            signals
        )  # every valid one
        assert _count(engine, "SELECT count(DISTINCT signal_id) FROM micro_actions") == len(signals)
        assert (
            int(
                redis_client.xpending(stream_keys(redis_prefix)["motion"], DEFAULT_GROUP)["pending"]
            )
            == 0
        )
        assert not redis_client.exists(
            f"{stream_keys(redis_prefix)['motion']}:failures:{DEFAULT_GROUP}"
        )
        engine.dispose()
    print(
        f"poison entry: {crashes} crashes, then dead-lettered; {len(signals):,} valid signals stored"
    )
