"""Ingest on the real servers: Redis Streams consumer groups into Postgres (and files into SQLite).

Every test publishes under its own Redis prefix and simulates matches with its own seed, so its
match ids (``sim<seed>-…``) are private inside the shared session database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from edgefinder.esports.ingest import (
    IngestConfig,
    Pipeline,
    TransientError,
    consume_micro,
    ingest_file,
    make_pipeline,
    run_consumer,
    run_ingest,
)
from edgefinder.esports.pseudonym import pseudonymize
from edgefinder.esports.simulate import simulate, write_simulation
from edgefinder.esports.sources import (
    DEFAULT_GROUP,
    Entry,
    RedisStreamSource,
    publish,
    stream_keys,
)
from edgefinder.store.engine import make_engine
from tests.esports_pg import TABLE_KEYS, stored_table
from tests.esports_sources import NamedSource
from tests.redis_server import free_port, require_redis_server, start_redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

KEY = "test-pseudonym-key"
ROOT = Path(__file__).resolve().parents[2]


def _publish_lines(client, prefix: str, lines: list[str]) -> None:
    keys = stream_keys(prefix)
    pipe = client.pipeline(transaction=False)
    for line in lines:
        kind = "motion" if '"signal_id"' in line else "canonical"
        pipe.xadd(keys[kind], {b"data": line.encode() if isinstance(line, str) else line})
    pipe.execute()


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def _pending(client, stream: str, group: str = DEFAULT_GROUP) -> int:
    return int(client.xpending(stream, group)["pending"])


def _unique_ids(lines: list[str]) -> tuple[set[str], set[str]]:
    canon, sig = set(), set()
    for line in lines:
        obj = json.loads(line)
        (sig.add(obj["signal_id"]) if "signal_id" in obj else canon.add(obj["event_id"]))
    return canon, sig


@pytest.fixture()
def pipeline(pg_engine) -> Pipeline:
    return Pipeline(pg_engine, KEY)


# --- materialization ----------------------------------------------------------------------


def test_file_ingest_materializes_every_table_as_simulated(sqlite_url: str, tmp_path: Path) -> None:
    sim = simulate(6, seed=101)
    out, _ = write_simulation(sim, tmp_path / "events.jsonl")
    counters = ingest_file(out, sqlite_url, KEY, config=IngestConfig(batch_size=300))
    assert counters.canonical == sim.n_canonical and counters.signals == sim.n_signals
    assert counters.dead_letters == 0
    engine = make_engine(sqlite_url)
    units = sim.units
    # macro_outcomes: BOTH teams of every finished round, with the simulated values
    mo = stored_table(engine, "macro_outcomes", "sim101-")
    assert len(mo) == len(units)
    rt = stored_table(engine, "round_teams", "sim101-")
    got = mo.merge(rt, on=["match_id", "round_no", "team_id"]).sort_values(
        ["match_id", "round_no", "team_id"]
    )
    want = units.sort_values(["match_id", "round_no", "team_id"])
    for col in (
        "round_win",
        "site_executed",
        "econ_delta",
        "bank_start",
        "bank_end",
        "loadout_value",
        "side",
    ):
        assert got[col].tolist() == want[col].tolist(), col
    assert (got.econ_delta == got.bank_end - got.bank_start).all()
    # micro actions: all resolved, and per (round, team, intent) counts equal the simulation's
    ma = stored_table(engine, "micro_actions", "sim101-")
    assert len(ma) == sim.n_signals and ma.round_no.notna().all() and ma.team.notna().all()
    counts = ma.groupby(["match_id", "round_no", "team", "intent"]).size().unstack(fill_value=0)
    for intent in counts.columns:
        merged = want.set_index(["match_id", "round_no", "team_id"])[f"{intent}_count"]
        assert counts[intent].reindex(merged.index, fill_value=0).tolist() == merged.tolist(), (
            intent
        )
    # pseudonyms only: no raw player id anywhere, hashes are the keyed HMAC
    players = stored_table(engine, "match_players", "sim101-")
    roster = {
        p
        for ln in sim.lines
        if '"MATCH_START"' in ln
        for t in json.loads(ln)["payload"]["teams"]
        for p in t["players"]
    }
    assert set(players.player_hash) == {pseudonymize(p, KEY) for p in roster}
    raw_ids = {f"team{t:02d}-p{i}" for t in range(32) for i in range(5)}
    for name, cols in (
        ("match_players", ["player_hash"]),
        ("kills", ["killer_hash", "victim_hash"]),
        ("micro_actions", ["player_hash"]),
    ):
        df = stored_table(engine, name, "sim101-")
        for c in cols:
            assert not set(df[c].dropna()) & raw_ids
            assert df[c].dropna().str.fullmatch(r"[0-9a-f]{64}").all()
    # nor in the stored raw payloads (MATCH_START rosters, KILL killer/victim)
    payloads = " ".join(
        json.dumps(v) if isinstance(v, dict) else str(v)
        for v in stored_table(engine, "raw_events", "sim101-").payload
    )
    assert "-p0" not in payloads and "team00-p" not in payloads
    assert (
        pseudonymize("team00-p0", KEY) in payloads
        or pseudonymize(sorted(roster)[0], KEY) in payloads
    )
    # re-ingesting the same file changes nothing (idempotent upserts)
    before = {n: len(stored_table(engine, n, "sim101-")) for n in TABLE_KEYS}
    ingest_file(out, sqlite_url, KEY, migrate=False)
    assert {n: len(stored_table(engine, n, "sim101-")) for n in TABLE_KEYS} == before
    engine.dispose()


def test_redis_ingest_on_postgres_equals_file_ingest_on_sqlite(
    pipeline, pg_engine, redis_client, redis_prefix: str, sqlite_url: str, tmp_path: Path
) -> None:
    sim = simulate(4, seed=102)
    out, _ = write_simulation(sim, tmp_path / "events.jsonl")
    counts = publish(out, redis_client, redis_prefix)
    assert counts == {"canonical": sim.n_canonical, "motion": sim.n_signals}
    c = run_ingest(
        pipeline,
        redis_client=redis_client,
        prefix=redis_prefix,
        config=IngestConfig(batch_size=250, block_ms=50),
        once=True,
    )
    assert c.events == sim.n_canonical + sim.n_signals and c.dead_letters == 0
    for key in stream_keys(redis_prefix).values():
        assert _pending(redis_client, key) == 0
    ingest_file(out, sqlite_url, KEY, migrate=False)
    lite = make_engine(sqlite_url)
    for name in TABLE_KEYS:
        a = stored_table(pg_engine, name, "sim102-")
        b = stored_table(lite, name, "sim102-")
        assert len(a) == len(b) > 0, name
        for col in a.columns:
            va, vb = a[col].tolist(), b[col].tolist()
            if col in ("payload", "features", "score"):
                va = [v if isinstance(v, dict) or v is None else json.loads(v) for v in va]
                vb = [v if isinstance(v, dict) or v is None else json.loads(v) for v in vb]
            elif col in ("started_at", "ended_at", "occurred_at"):
                va = [
                    pd.Timestamp(v).tz_localize(None)
                    if pd.Timestamp(v).tzinfo is None
                    else pd.Timestamp(v).tz_convert(None)
                    for v in va
                ]
                vb = [
                    pd.Timestamp(v).tz_localize(None)
                    if pd.Timestamp(v).tzinfo is None
                    else pd.Timestamp(v).tz_convert(None)
                    for v in vb
                ]
            assert va == vb, (name, col)
    lite.dispose()


def test_late_signals_are_resolved_once_their_round_and_roster_exist(
    pipeline, pg_engine, redis_client, redis_prefix
) -> None:
    sim = simulate(2, seed=103)
    signals = [ln for ln in sim.lines if '"signal_id"' in ln]
    canonical = [ln for ln in sim.lines if '"signal_id"' not in ln]
    cfg = IngestConfig(batch_size=500, block_ms=50)
    # the motion stream is consumed completely before any canonical event exists
    _publish_lines(redis_client, redis_prefix, signals)
    consume_micro(pipeline, redis_client, redis_prefix, config=cfg, once=True)
    n_missing = sum('"round_no"' not in s for s in signals)
    assert n_missing > 0
    assert (
        _count(
            pg_engine,
            "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim103-%' AND round_no IS NULL",
        )
        == n_missing
    )
    _publish_lines(redis_client, redis_prefix, canonical)
    run_ingest(pipeline, redis_client=redis_client, prefix=redis_prefix, config=cfg, once=True)
    assert (
        _count(
            pg_engine,
            "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim103-%' "
            "AND (round_no IS NULL OR team IS NULL)",
        )
        == 0
    )
    got = (
        stored_table(pg_engine, "micro_actions", "sim103-")
        .groupby(["match_id", "round_no", "team"])
        .size()
    )
    want = sim.units.set_index(["match_id", "round_no", "team_id"]).total_actions
    assert got.reindex(want.index, fill_value=0).tolist() == want.tolist()


# --- consumer groups ----------------------------------------------------------------------


def test_group_created_at_zero_reads_entries_published_before_it(
    pipeline, pg_engine, redis_client, redis_prefix
) -> None:
    sim = simulate(1, seed=104)
    _publish_lines(redis_client, redis_prefix, sim.lines)
    stream = stream_keys(redis_prefix)["canonical"]
    assert not redis_client.exists(stream + ":nothing")
    assert redis_client.xinfo_stream(stream)["groups"] == 0  # no group yet
    run_ingest(
        pipeline,
        redis_client=redis_client,
        prefix=redis_prefix,
        config=IngestConfig(batch_size=1000, block_ms=50),
        once=True,
    )
    assert (
        _count(pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim104-%'")
        == sim.n_canonical
    )
    assert (
        _count(pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim104-%'")
        == sim.n_signals
    )


def test_xautoclaim_recovers_entries_a_dead_consumer_left_pending(
    pipeline, pg_engine, redis_client, redis_prefix
) -> None:
    sim = simulate(1, seed=105)
    signals = [ln for ln in sim.lines if '"signal_id"' in ln]
    _publish_lines(redis_client, redis_prefix, signals)
    stream = stream_keys(redis_prefix)["motion"]
    redis_client.xgroup_create(stream, DEFAULT_GROUP, id="0", mkstream=True)
    # a consumer reads 150 entries and dies without acknowledging them
    got = redis_client.xreadgroup(DEFAULT_GROUP, "dead-consumer", {stream: ">"}, count=150)
    assert len(got[0][1]) == 150
    time.sleep(0.05)
    src = RedisStreamSource(
        redis_client, stream, label="motion", consumer="rescuer", min_idle_ms=20
    )
    c = run_consumer(src, pipeline, config=IngestConfig(batch_size=100, block_ms=50), once=True)
    assert c.signals == len(signals)
    assert _pending(redis_client, stream) == 0
    assert _count(
        pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim105-%'"
    ) == len(signals)
    consumers = {
        x["name"].decode(): x["pending"]
        for x in redis_client.xinfo_consumers(stream, DEFAULT_GROUP)
    }
    assert consumers["dead-consumer"] == 0


def test_a_restart_under_the_same_name_resumes_its_own_pending_entries_once(
    pipeline, pg_engine, redis_client, redis_prefix
) -> None:
    sim = simulate(1, seed=114)
    signals = [ln for ln in sim.lines if '"signal_id"' in ln]
    _publish_lines(redis_client, redis_prefix, signals)
    stream = stream_keys(redis_prefix)["motion"]
    redis_client.xgroup_create(stream, DEFAULT_GROUP, id="0", mkstream=True)
    # "worker" reads 300 entries, then its process dies; it restarts under the same name
    redis_client.xreadgroup(DEFAULT_GROUP, "worker", {stream: ">"}, count=300)
    src = RedisStreamSource(
        redis_client,
        stream,
        label="motion",
        consumer="worker",
        min_idle_ms=600_000,
        max_deliveries=2,
    )
    # batches of 50 with read-ahead: the history (300 entries) spans several batches
    c = run_consumer(src, pipeline, config=IngestConfig(batch_size=50, block_ms=50), once=True)
    assert c.entries == len(signals)  # each entry delivered once more, not once per read-ahead
    assert c.dead_letters == 0 and c.signals == len(signals)
    assert _pending(redis_client, stream) == 0
    assert _count(
        pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim114-%'"
    ) == len(signals)


def test_the_delivery_limit_counts_failed_writes_alone_not_deliveries(
    pipeline, pg_engine, redis_client, redis_prefix
) -> None:
    sim = simulate(1, seed=106)
    signals = [ln for ln in sim.lines if '"signal_id"' in ln][:40]
    _publish_lines(redis_client, redis_prefix, signals)
    stream = stream_keys(redis_prefix)["motion"]
    redis_client.xgroup_create(stream, DEFAULT_GROUP, id="0", mkstream=True)
    # the first 10 entries are delivered 3 times and never acknowledged: their consumers died
    # before writing them (nothing recorded), which is no fault of theirs
    got = redis_client.xreadgroup(DEFAULT_GROUP, "crash-1", {stream: ">"}, count=10)
    ids = [i.decode() for i, _ in got[0][1]]
    for name in ("crash-2", "crash-3"):
        redis_client.xautoclaim(stream, DEFAULT_GROUP, name, 0, start_id="0-0", count=10)
    # ... but consumer crash-3 died 3 times while writing ids[0] alone, and twice ids[1]; this is
    # what a consumer records before each write of a redelivered entry and clears with its XACK
    dying = RedisStreamSource(
        redis_client, stream, label="motion", consumer="crash-3", max_deliveries=3
    )
    for _ in range(3):
        dying.begin_attempt(ids[:1], alone=True)
    for _ in range(2):
        dying.begin_attempt(ids[1:2], alone=True)
    dying.begin_attempt(ids[2:6], alone=False)  # failures in a batch of four do not count
    time.sleep(0.02)
    src = RedisStreamSource(
        redis_client, stream, label="motion", consumer="survivor", min_idle_ms=10, max_deliveries=3
    )
    c = run_consumer(src, pipeline, config=IngestConfig(batch_size=100, block_ms=50), once=True)
    assert c.dead_letters == 1 and c.signals == 39
    dl = pd.read_sql(
        text("SELECT * FROM dead_letters WHERE source = :s"), pg_engine, params={"s": stream}
    )
    assert dl.entry_id.tolist() == [ids[0]] and dl.kind.tolist() == ["delivery_limit"]
    reason = dl.reason[0]
    assert reason.startswith(
        "delivery limit exceeded: 3 consumer failures while writing it alone (limit 3), "
        "delivered 4 times; first failure: consumer crash-3 began writing it at "
    ), reason
    assert "in a batch of 1 and never finished" in reason
    assert (dl.deliveries == 4).all()
    assert _pending(redis_client, stream) == 0
    assert not redis_client.exists(src.failure_key)  # every record cleared with its entry's XACK
    stored = _count(pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim106-%'")
    assert stored == 39


def test_invalid_events_are_dead_lettered_and_the_consumer_keeps_running(
    pipeline, pg_engine, redis_client, redis_prefix
) -> None:
    sim = simulate(1, seed=107)
    valid = sim.lines[:400]
    sig = json.loads(next(ln for ln in sim.lines if '"signal_id"' in ln))
    kill = json.loads(next(ln for ln in sim.lines if '"KILL"' in ln))
    invalid = {
        "bad JSON": '{"signal_id": "x-bad", "match_id": ',
        "missing field": json.dumps(
            {k: v for k, v in {**kill, "event_id": "x-missing"}.items() if k != "match_id"}
        ),
        "mistyped field": json.dumps({**sig, "signal_id": "x-mistyped", "ts": "half-time"}),
        "unknown intent": json.dumps({**sig, "signal_id": "x-intent", "intent": "teleport"}),
        "confidence out of range": json.dumps({**sig, "signal_id": "x-conf", "confidence": 1.7}),
        "oversize payload": json.dumps(
            {**sig, "signal_id": "x-big", "features": {"blob": "z" * 70_000}}
        ),
        "mistyped payload": json.dumps(
            {**kill, "event_id": "x-kill", "payload": {**kill["payload"], "round_no": "two"}}
        ),
    }
    mixed = valid[:200] + list(invalid.values()) + valid[200:]
    from prometheus_client import REGISTRY

    def metric(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        metric("edgefinder_dead_letters_total", stream="motion", kind="oversize"),
        metric("edgefinder_dead_letters_total", stream="canonical", kind="invalid"),
        metric("edgefinder_events_ingested_total", stream="motion"),
    )
    _publish_lines(redis_client, redis_prefix, mixed)
    stop = threading.Event()
    box: dict[str, object] = {}
    th = threading.Thread(
        target=lambda: box.setdefault(
            "c",
            run_ingest(
                pipeline,
                redis_client=redis_client,
                prefix=redis_prefix,
                config=IngestConfig(batch_size=64, block_ms=50),
                once=False,
                stop=stop,
            ),
        ),
        daemon=True,
    )
    th.start()
    canon_ids, sig_ids = _unique_ids(valid)

    def stored() -> int:
        return _count(
            pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim107-%'"
        ) + _count(pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim107-%'")

    deadline = time.monotonic() + 30
    while stored() < len(canon_ids) + len(sig_ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored() == len(canon_ids) + len(sig_ids)
    keys = stream_keys(redis_prefix)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(_pending(redis_client, k) for k in keys.values()) > 0:
        time.sleep(0.05)
    dl = pd.read_sql(
        text("SELECT source, entry_id, raw, reason FROM dead_letters WHERE source IN (:a, :b)"),
        pg_engine,
        params={"a": keys["canonical"], "b": keys["motion"]},
    )
    assert len(dl) == len(invalid)
    reasons = " | ".join(dl.reason)
    for fragment in (
        "bad JSON",
        "missing field match_id",
        "ts: Input should be a valid number",
        "unknown intent 'teleport'",
        "confidence: Input should be less than or equal to 1",
        "oversize payload",
        "round_no: Input should be a valid integer",
    ):
        assert fragment in reasons, fragment
    assert any("teleport" in r for r in dl.raw) and any(
        r.startswith('{"signal_id": "x-bad"') for r in dl.raw
    )
    # Prometheus counters (served by the API's /metrics)
    assert (
        metric("edgefinder_dead_letters_total", stream="motion", kind="oversize") == before[0] + 1
    )
    # _publish_lines routes by the text "signal_id": the bad-JSON line went to the motion stream
    assert (
        metric("edgefinder_dead_letters_total", stream="canonical", kind="invalid") == before[1] + 2
    )
    assert metric("edgefinder_events_ingested_total", stream="motion") >= before[2] + len(sig_ids)
    # still running: a valid event published now is stored too
    assert th.is_alive()
    extra = json.dumps({**sig, "signal_id": "sim107-after-the-storm"})
    _publish_lines(redis_client, redis_prefix, [extra])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _count(
        pg_engine, "SELECT count(*) FROM micro_actions WHERE signal_id = 'sim107-after-the-storm'"
    ):
        time.sleep(0.05)
    assert (
        _count(
            pg_engine,
            "SELECT count(*) FROM micro_actions WHERE signal_id = 'sim107-after-the-storm'",
        )
        == 1
    )
    stop.set()
    th.join(10)
    assert not th.is_alive()
    assert sum(_pending(redis_client, k) for k in keys.values()) == 0


def test_two_consumer_processes_in_one_group_share_the_work_without_duplicates(
    pg_url, pg_engine, redis_url, redis_client, redis_prefix
) -> None:
    import re

    sim = simulate(6, seed=108)
    _publish_lines(redis_client, redis_prefix, sim.lines)
    env = _env(pg_url, redis_url, redis_prefix)
    procs = [
        subprocess.Popen(
            _ingest_cmd("--once", "--batch-size", "25", "--consumer", name),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("worker-a", "worker-b")
    ]
    done = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in done]
    per_process = []
    for out, _ in done:
        m = re.search(
            r"ingested ([\d,]+) canonical events and ([\d,]+) motion signals", " ".join(out.split())
        )
        assert m, out
        per_process.append(int(m.group(1).replace(",", "")) + int(m.group(2).replace(",", "")))
    assert all(n > 0 for n in per_process)  # both processes got work
    assert sum(per_process) == len(sim.lines)  # every entry delivered to exactly one of them
    canon_ids, sig_ids = _unique_ids(sim.lines)
    assert _count(
        pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim108-%'"
    ) == len(canon_ids)
    assert _count(
        pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim108-%'"
    ) == len(sig_ids)
    assert _count(
        pg_engine, "SELECT count(*) FROM macro_outcomes WHERE match_id LIKE 'sim108-%'"
    ) == len(sim.units)
    assert (
        _count(
            pg_engine,
            "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim108-%' "
            "AND (round_no IS NULL OR team IS NULL)",
        )
        == 0
    )
    names = {
        x["name"].decode()
        for k in stream_keys(redis_prefix).values()
        for x in redis_client.xinfo_consumers(k, DEFAULT_GROUP)
    }
    assert any(n.startswith("worker-a") for n in names) and any(
        n.startswith("worker-b") for n in names
    )


# --- processes: SIGKILL and SIGTERM --------------------------------------------------------


def _env(pg_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "EDGEFINDER_DATABASE_URL": pg_url,
        "EDGEFINDER_REDIS_URL": redis_url,
        "EDGEFINDER_REDIS_PREFIX": prefix,
        "EDGEFINDER_PSEUDONYM_KEY": KEY,
        "EDGEFINDER_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT / "src"),
    }


def _ingest_cmd(*extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "edgefinder",
        "esports",
        "ingest",
        "--no-progress",
        "--block-ms",
        "100",
        *extra,
    ]


def test_sigkill_mid_stream_then_restart_stores_every_event_exactly_once(
    pg_url, pg_engine, redis_url, redis_client, redis_prefix
) -> None:
    sim = simulate(10, seed=109)
    broken = ['{"signal_id": "sim109-broken", ', '{"event_id": "sim109-nope"}']
    _publish_lines(redis_client, redis_prefix, sim.lines[:4000] + broken + sim.lines[4000:])
    canon_ids, sig_ids = _unique_ids(sim.lines)
    env = _env(pg_url, redis_url, redis_prefix)
    proc = subprocess.Popen(
        _ingest_cmd("--follow", "--batch-size", "50"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = _count(
                pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim109-%'"
            )
            if n >= len(sig_ids) // 5:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # mid-stream: batches read, some written, none acked after
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    n_before = _count(
        pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim109-%'"
    )
    assert 0 < n_before < len(sig_ids)
    keys = stream_keys(redis_prefix)
    assert (
        sum(_pending(redis_client, k) for k in keys.values()) > 0
    )  # the dead process left entries pending
    time.sleep(0.3)
    done = subprocess.run(
        _ingest_cmd("--once", "--batch-size", "500", "--claim-idle-ms", "200"),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    for table, ids, col in (
        ("raw_events", canon_ids, "event_id"),
        ("micro_actions", sig_ids, "signal_id"),
    ):
        assert _count(
            pg_engine, f"SELECT count(*) FROM {table} WHERE match_id LIKE 'sim109-%'"
        ) == len(ids)
        assert _count(
            pg_engine, f"SELECT count(DISTINCT {col}) FROM {table} WHERE match_id LIKE 'sim109-%'"
        ) == len(ids)
    assert _count(
        pg_engine, "SELECT count(*) FROM macro_outcomes WHERE match_id LIKE 'sim109-%'"
    ) == len(sim.units)
    n_kills = sum('"KILL"' in ln for ln in sim.lines)
    assert _count(pg_engine, "SELECT count(*) FROM kills WHERE match_id LIKE 'sim109-%'") == n_kills
    # the two broken entries are dead-lettered exactly once each, even if redelivered
    dl = _count(
        pg_engine,
        "SELECT count(*) FROM dead_letters WHERE source IN (:a, :b)",
        a=keys["canonical"],
        b=keys["motion"],
    )
    assert dl == 2
    assert sum(_pending(redis_client, k) for k in keys.values()) == 0


def test_sigterm_stops_cleanly_and_leaves_nothing_half_done(
    pg_url, pg_engine, redis_url, redis_client, redis_prefix
) -> None:
    sim = simulate(4, seed=110)
    _publish_lines(redis_client, redis_prefix, sim.lines)
    env = _env(pg_url, redis_url, redis_prefix)
    proc = subprocess.Popen(
        _ingest_cmd("--follow", "--batch-size", "100"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and _count(pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim110-%'")
        == 0
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped by signal" in out
    keys = stream_keys(redis_prefix)
    # whatever was acknowledged is committed: stored rows >= acknowledged entries
    acked = sum(int(redis_client.xlen(k)) - _pending(redis_client, k) for k in keys.values())
    info = [g for k in keys.values() for g in redis_client.xinfo_groups(k)]
    undelivered = sum(int(g["lag"] or 0) for g in info)
    stored = _count(
        pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim110-%'"
    ) + _count(pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim110-%'")
    assert stored >= acked - undelivered
    # a restart finishes the job
    done = subprocess.run(
        _ingest_cmd("--once", "--claim-idle-ms", "0"),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert stored <= len(sim.lines)
    assert (
        _count(pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim110-%'")
        == sim.n_signals
    )


# --- servers going away --------------------------------------------------------------------


def test_backs_off_while_postgres_refuses_connections_and_then_completes(
    pg_url, redis_client, redis_prefix
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from tests.esports_pg import private_pg_database

    sim = simulate(1, seed=111)
    _publish_lines(redis_client, redis_prefix, sim.lines)
    with private_pg_database(pg_url, "down") as url:
        pipe = make_pipeline(url, KEY, migrate=False)
        name = make_url(url).database
        admin = create_engine(
            make_url(pg_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
        )

        def refuse(flag: bool) -> None:
            with admin.connect() as conn:
                conn.execute(
                    text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(not flag).lower()}')
                )
                if flag:
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
                        ),
                        {"d": name},
                    )

        refuse(True)
        with pytest.raises(TransientError):
            pipe.process([Entry("1", sim.lines[0].encode())], NamedSource())
        stop = threading.Event()
        box = {}
        th = threading.Thread(
            target=lambda: box.setdefault(
                "c",
                run_ingest(
                    pipe,
                    redis_client=redis_client,
                    prefix=redis_prefix,
                    config=IngestConfig(
                        batch_size=200, block_ms=50, backoff_initial_s=0.05, backoff_max_s=0.2
                    ),
                    once=True,
                    stop=stop,
                ),
            ),
            daemon=True,
        )
        th.start()
        time.sleep(1.0)
        assert th.is_alive()  # waiting, not crashed
        refuse(False)
        th.join(60)
        assert not th.is_alive()
        c = box["c"]
        assert c.retries > 0 and c.events == len(sim.lines)
        eng = make_engine(url)
        assert _count(eng, "SELECT count(*) FROM micro_actions") == sim.n_signals
        eng.dispose()
        pipe.engine.dispose()
        admin.dispose()


def test_backs_off_while_redis_is_down_and_resumes_after_restart(pg_engine, tmp_path: Path) -> None:
    """A private redis-server (AOF on) is stopped mid-stream and started again on the same port."""
    import redis

    require_redis_server()
    port = free_port()
    server = start_redis(port, tmp_path)
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # no client-side retries: redis-py's own retry loop would hide a short outage from ours
    client = redis.Redis(
        port=port, socket_timeout=5, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        sim = simulate(2, seed=112)
        half = len(sim.lines) // 2
        _publish_lines(client, "", sim.lines[:half])
        pipe = Pipeline(pg_engine, KEY)
        stop = threading.Event()
        box: dict[str, object] = {}
        th = threading.Thread(
            target=lambda: box.setdefault(
                "c",
                run_ingest(
                    pipe,
                    redis_client=client,
                    prefix="",
                    once=False,
                    stop=stop,
                    config=IngestConfig(
                        batch_size=50, block_ms=50, backoff_initial_s=0.05, backoff_max_s=0.2
                    ),
                ),
            ),
            daemon=True,
        )
        th.start()

        def stored() -> int:
            return _count(
                pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim112-%'"
            ) + _count(pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim112-%'")

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and stored() < half:
            time.sleep(0.02)
        assert stored() == half
        server.terminate()  # a clean shutdown writes the AOF; the streams and the group survive
        server.wait(10)
        time.sleep(0.8)
        assert th.is_alive()  # backing off, not crashed
        server = start_redis(port, tmp_path)
        _publish_lines(client, "", sim.lines[half:])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and stored() < len(sim.lines):
            time.sleep(0.05)
        stop.set()
        th.join(30)
        assert not th.is_alive()
        c = box["c"]
        assert c.retries > 0
        assert (
            _count(pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim112-%'")
            == sim.n_signals
        )
        assert (
            _count(pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim112-%'")
            == sim.n_canonical
        )
        assert _count(
            pg_engine, "SELECT count(*) FROM macro_outcomes WHERE match_id LIKE 'sim112-%'"
        ) == len(sim.units)
    finally:
        client.close()
        server.terminate()
        server.wait(10)


def test_cli_reports_unreachable_servers_in_one_line(tmp_path: Path) -> None:
    sim = simulate(1, seed=113)
    out, _ = write_simulation(sim, tmp_path / "events.jsonl")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "EDGEFINDER_DATA_DIR": str(tmp_path)}
    for args in (
        ["--redis-url", f"redis://127.0.0.1:{port}/0", "esports", "publish", str(out)],
        ["--redis-url", f"redis://127.0.0.1:{port}/0", "esports", "ingest", "--no-progress"],
        [
            "--database-url",
            f"postgresql://nobody@127.0.0.1:{port}/x",
            "esports",
            "ingest",
            "--from-file",
            str(out),
        ],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "edgefinder", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 1
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and "cannot connect to" in lines[0], r.stderr
        assert "Traceback" not in r.stderr
