"""Poison entries, the duplicate-id rule and isolation of what the database refuses, on real servers.

Every probe (tests/esports_probes.py) used to crash a consumer; here each one, alone and mixed into
a stream of valid events, must end as a dead letter with its reason while every valid event is
stored exactly once and nothing stays pending.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import bindparam, text

from edgefinder.esports.ingest import (
    Entry,
    IngestConfig,
    IngestError,
    Pipeline,
    consume_canonical,
    ingest_file,
    run_ingest,
)
from edgefinder.esports.simulate import simulate
from edgefinder.esports.sources import DEFAULT_GROUP, RedisStreamSource, stream_keys
from edgefinder.store.engine import make_engine
from tests.esports_pg import private_pg_database
from tests.esports_probes import probes
from tests.esports_sources import NamedSource

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

KEY = "test-pseudonym-key"
ROOT = Path(__file__).resolve().parents[2]
CFG = IngestConfig(batch_size=200, block_ms=50)


def _publish(client, prefix: str, items: list[tuple[str, bytes]]) -> None:
    keys = stream_keys(prefix)
    pipe = client.pipeline(transaction=False)
    for stream, line in items:
        pipe.xadd(keys[stream], {b"data": line})
    pipe.execute()


def _route(line: str) -> str:
    return "motion" if '"signal_id"' in line else "canonical"


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def _pending(client, prefix: str) -> int:
    return sum(
        int(client.xpending(k, DEFAULT_GROUP)["pending"]) for k in stream_keys(prefix).values()
    )


def _dead(engine, sources: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(
            text("SELECT * FROM dead_letters WHERE source IN :s").bindparams(
                bindparam("s", expanding=True)
            ),
            conn,
            params={"s": sources},
        )


def _ids(lines: list[str]) -> tuple[set[str], set[str]]:
    canon, sig = set(), set()
    for line in lines:
        obj = json.loads(line)
        (sig.add(obj["signal_id"]) if "signal_id" in obj else canon.add(obj["event_id"]))
    return canon, sig


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- probes ---------------------------------------------------------------------------------


def test_each_probe_alone_is_dead_lettered_with_its_reason(
    pg_engine, redis_client, redis_prefix
) -> None:
    sim = simulate(1, seed=301)
    pipeline = Pipeline(pg_engine, KEY)
    for i, probe in enumerate(probes(sim.lines, "p301")):
        prefix = f"{redis_prefix}{i}:"
        _publish(redis_client, prefix, [(probe.stream, probe.line)])
        c = run_ingest(pipeline, redis_client=redis_client, prefix=prefix, config=CFG, once=True)
        assert (c.entries, c.events, c.dead_letters) == (1, 0, 1), probe.name
        dl = _dead(pg_engine, list(stream_keys(prefix).values()))
        assert len(dl) == 1 and probe.reason in dl.reason[0], (probe.name, dl.reason.tolist())
        assert dl.kind[0] == "invalid" and dl.entry_id[0] is not None
        assert "\x00" not in dl.raw[0] and "\x00" not in dl.reason[0]
        assert _pending(redis_client, prefix) == 0, probe.name


def test_probes_mixed_into_valid_events_leave_every_valid_event_stored_once(
    pg_engine, redis_client, redis_prefix, sqlite_url, tmp_path: Path
) -> None:
    sim = simulate(3, seed=302)
    bad = probes(sim.lines, "p302")
    items: list[tuple[str, bytes]] = []
    step = len(sim.lines) // (len(bad) + 1)
    for i, line in enumerate(sim.lines):
        items.append((_route(line), line.encode()))
        if i % step == step - 1 and (i // step) < len(bad):
            p = bad[i // step]
            items.append((p.stream, p.line))
    assert sum(1 for s, ln in items if b"p302-" in ln) == len(bad)
    _publish(redis_client, redis_prefix, items)
    pipeline = Pipeline(pg_engine, KEY)
    c = run_ingest(pipeline, redis_client=redis_client, prefix=redis_prefix, config=CFG, once=True)
    canon, sig = _ids(sim.lines)
    assert c.events == len(sim.lines) and c.dead_letters == len(bad)
    assert _count(
        pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim302-%'"
    ) == len(canon)
    assert _count(
        pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim302-%'"
    ) == len(sig)
    assert _count(
        pg_engine, "SELECT count(*) FROM macro_outcomes WHERE match_id LIKE 'sim302-%'"
    ) == len(sim.units)
    dl = _dead(pg_engine, list(stream_keys(redis_prefix).values()))
    assert len(dl) == len(bad)
    for p in bad:
        mine = dl[dl.raw.str.contains(f'"p302-{p.name}"', regex=False)]
        assert len(mine) == 1 and p.reason in mine.reason.iloc[0], (p.name, mine.reason.tolist())
    assert _pending(redis_client, redis_prefix) == 0
    # the same mixed stream from a file into SQLite: the same dead letters, the same events
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(ln for _, ln in items) + b"\n")
    fc = ingest_file(path, sqlite_url, KEY, migrate=False, config=IngestConfig(batch_size=200))
    assert (fc.events, fc.dead_letters) == (len(sim.lines), len(bad))
    lite = make_engine(sqlite_url)
    lines_of = {i + 1 for i, (_, ln) in enumerate(items) if b"p302-" in ln}
    got = _dead(lite, [str(path)])
    assert set(got.entry_id.astype(int)) == lines_of  # dead letters name their line numbers
    lite.dispose()


def _cli(
    env_db: str, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "EDGEFINDER_PSEUDONYM_KEY": KEY,
        "EDGEFINDER_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "edgefinder", "--database-url", env_db, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cli_ingest_from_file_dead_letters_bad_lines_by_line_number_and_goes_on(
    pg_url, pg_engine, tmp_path
) -> None:
    sim = simulate(1, seed=303)
    bad = {p.name: p for p in probes(sim.lines, "p303")}
    nul = (
        b'{"signal_id":"p303-x","match_id":"m","player_id":"p","ts":1,"intent":"hold","confidence":0.5,'
        b'"model_version":"a\\u0000b"}'
    )  # the reproduction of the original crash
    lines = [ln.encode() for ln in sim.lines[:300]]
    lines[10:10] = [nul]
    lines[100:100] = [bad["deep-10000"].line]
    lines[200:200] = [bad["speed-400-digits"].line]
    path = tmp_path / "n.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for run in range(2):  # a rerun is not stuck at a bad line, and adds no second dead letter
        r = _cli(
            pg_url,
            "esports",
            "ingest",
            "--from-file",
            str(path),
            "--no-progress",
            "--batch-size",
            "64",
        )
        assert r.returncode == 0, r.stderr
        assert "3 dead letters" in " ".join(r.stdout.split()), r.stdout
        dl = _dead(pg_engine, [str(path)])
        assert sorted(dl.entry_id.astype(int)) == [11, 101, 201], run
        reasons = dl.set_index(dl.entry_id.astype(int)).reason
        assert reasons[11].endswith("model_version: text contains a NUL character (\\u0000)")
    canon, sig = _ids(sim.lines[:300])
    assert _count(
        pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim303-%'"
    ) == len(sig)
    assert _count(
        pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim303-%'"
    ) == len(canon)


def test_cli_ingest_of_a_file_without_one_valid_line_fails_with_one_line(
    pg_url, pg_engine, tmp_path
) -> None:
    sim = simulate(1, seed=305)
    path = tmp_path / "all_bad.jsonl"
    path.write_bytes(b"\n".join(b.line for b in probes(sim.lines, "p305")) + b"\nnot json\n")
    n_lines = len(path.read_bytes().splitlines())
    r = _cli(pg_url, "esports", "ingest", "--from-file", str(path), "--no-progress")
    assert r.returncode == 1, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [
        f"error: {path}: no valid event in its {n_lines:,} line(s), nothing ingested "
        f"({n_lines:,} dead letters, each with its reason)"
    ]
    assert "ingested" not in r.stdout
    assert _count(pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim305-%'") == 0
    assert len(_dead(pg_engine, [str(path)])) == n_lines  # every line kept, with its reason


def test_cli_publish_reports_bad_lines_by_number_and_publishes_the_rest(
    redis_url, redis_client, redis_prefix, tmp_path
) -> None:
    sim = simulate(1, seed=304)
    bad = probes(sim.lines, "p304")
    lines = [ln.encode() for ln in sim.lines[:50]] + [b.line for b in bad]
    path = tmp_path / "pub.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "EDGEFINDER_REDIS_PREFIX": redis_prefix}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefinder",
            "--redis-url",
            redis_url,
            "esports",
            "publish",
            str(path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    for i, p in enumerate(bad[:20]):  # the first 20 are listed, the rest counted
        assert f"{path}:{51 + i}: " in r.stderr and p.reason in r.stderr, (p.name, r.stderr[-2000:])
    assert f"… and {len(bad) - 20} more invalid lines" in r.stderr
    assert f"{len(bad)} lines are not valid events" in " ".join(r.stdout.split())
    keys = stream_keys(redis_prefix)
    assert sum(int(redis_client.xlen(k)) for k in keys.values()) == len(lines)  # nothing lost


# --- the duplicate-id rule -------------------------------------------------------------------


def _edit(line: str, **payload: object) -> str:
    obj = json.loads(line)
    obj["payload"] = {**obj["payload"], **payload}
    return json.dumps(obj)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
@pytest.mark.parametrize("together", [True, False], ids=["same-batch", "later-batch"])
def test_first_stored_copy_of_an_id_wins_in_every_table(
    backend, together, pg_engine, sqlite_url
) -> None:
    seed = 310 + 2 * together + (backend == "sqlite")
    sim = simulate(1, seed=seed)
    engine = pg_engine if backend == "postgres" else make_engine(sqlite_url)
    src = NamedSource(f"dup-test-{seed}")
    pipeline = Pipeline(engine, KEY)
    ends = [ln for ln in sim.lines if '"ROUND_END"' in ln]
    kills = [ln for ln in sim.lines if '"KILL"' in ln]
    sig = json.loads(next(ln for ln in sim.lines if '"signal_id"' in ln))
    teams = {t["team_id"] for t in json.loads(ends[0])["payload"]["teams"]}
    flipped = []
    for ln in ends[:6]:
        p = json.loads(ln)["payload"]
        other = next(t for t in teams if t != p["winner"])
        flipped.append(
            _edit(ln, winner=other, teams=[{**t, "bank": t["bank"] + 1000} for t in p["teams"]])
        )
    copies = [
        *flipped,  # late ROUND_END duplicates with the winner flipped: conflicts
        _edit(kills[0], weapon="knife"),  # conflict
        json.dumps(
            {**sig, "intent": "retreat" if sig["intent"] != "retreat" else "hold"}
        ),  # conflict
        ends[6],
        kills[1],
        json.dumps(sig),  # identical redeliveries: no-ops
        json.dumps(json.loads(ends[7]), indent=1),  # the same event, formatted otherwise: a no-op
    ]
    originals = [Entry(str(i), ln.encode()) for i, ln in enumerate(sim.lines)]
    later = [Entry(f"c{i}", ln.encode()) for i, ln in enumerate(copies)]
    before = _metric("edgefinder_duplicate_conflicts_total", stream="file")
    if together:
        results = [pipeline.process(originals + later, src)]
    else:
        results = [pipeline.process(originals, src), pipeline.process(later, src)]
    assert sum(r.conflicts for r in results) == 8
    assert _metric("edgefinder_duplicate_conflicts_total", stream="file") == before + 8
    assert sum(r.dead_letters for r in results) == 8
    # every table holds the first copies: the winners, banks, outcomes and kills as simulated
    mid = f"sim{seed}-m00000"
    with engine.connect() as conn:
        winners = dict(
            conn.execute(
                text("SELECT round_no, winner FROM rounds WHERE match_id = :m"), {"m": mid}
            ).all()
        )
        payloads = [
            r if isinstance(r, dict) else json.loads(r)
            for (r,) in conn.execute(
                text(
                    "SELECT payload FROM raw_events WHERE match_id = :m AND event_type = 'ROUND_END'"
                ),
                {"m": mid},
            )
        ]
        raw_winners = {p["round_no"]: p["winner"] for p in payloads}
        wins = {
            (rn, t): w
            for rn, t, w in conn.execute(
                text("SELECT round_no, team_id, round_win FROM macro_outcomes WHERE match_id = :m"),
                {"m": mid},
            )
        }
        weapon = conn.execute(
            text("SELECT weapon FROM kills WHERE event_id = :e"),
            {"e": json.loads(kills[0])["event_id"]},
        ).scalar_one()
        intent = conn.execute(
            text("SELECT intent FROM micro_actions WHERE signal_id = :s"), {"s": sig["signal_id"]}
        ).scalar_one()
        dl = pd.read_sql(
            text("SELECT * FROM dead_letters WHERE source = :s"), conn, params={"s": src.name}
        )
    truth = sim.units
    for rn, winner in winners.items():
        assert raw_winners[rn] == winner, rn
        for team in teams:
            want = int(truth[(truth.round_no == rn) & (truth.team_id == team)].round_win.iloc[0])
            assert wins[(rn, team)] == want == int(winner == team), (rn, team)
    assert weapon == json.loads(kills[0])["payload"]["weapon"] and intent == sig["intent"]
    assert sorted(dl.entry_id) == sorted(f"c{i}" for i in range(8)) and set(dl.kind) == {"conflict"}
    for reason in dl.reason:
        assert reason.startswith("conflict: ") and "the first stored copy is kept" in reason
        stored, copy = reason.split("stored copy ")[1].split(", this copy ")
        assert len(stored) == 16 and copy[:16] != stored and int(stored, 16) >= 0
    # a redelivery of the whole batch changes nothing and writes no second dead letter
    again = pipeline.process(later, src)
    assert again.conflicts == 8
    with engine.connect() as conn:
        assert (
            _count(engine, "SELECT count(*) FROM dead_letters WHERE source = :s", s=src.name) == 8
        )
        again_winners = conn.execute(
            text("SELECT round_no, winner FROM rounds WHERE match_id = :m"), {"m": mid}
        )
        assert dict(again_winners.all()) == winners
    if backend == "sqlite":
        engine.dispose()


# --- isolation of what the database refuses ----------------------------------------------------


def test_rows_the_database_refuses_are_isolated_and_the_rest_of_the_batch_commits(pg_url) -> None:
    sim = simulate(2, seed=320)
    lines = list(sim.lines)
    sig = json.loads(next(ln for ln in lines if '"signal_id"' in ln))
    kill = json.loads(next(ln for ln in lines if '"KILL"' in ln))
    # valid events that a constraint of this database refuses (validation cannot know it)
    refused = [
        json.dumps({**sig, "signal_id": "refuse-1", "model_version": "refuse-me"}),
        json.dumps(
            {**kill, "event_id": "refuse-2", "payload": {**kill["payload"], "weapon": "refuse-me"}}
        ),
    ]
    lines[500:500] = refused[:1]
    lines[900:900] = refused[1:]
    with private_pg_database(pg_url, "refuse") as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "ALTER TABLE micro_actions ADD CONSTRAINT no_refuse "
                    "CHECK (model_version <> 'refuse-me')"
                )
            )
            conn.execute(
                text(
                    "ALTER TABLE kills ADD CONSTRAINT no_refuse_kill CHECK (weapon <> 'refuse-me')"
                )
            )
        pipeline = Pipeline(engine, KEY)
        src = NamedSource("refuse-test")
        result = pipeline.process(
            [Entry(str(i + 1), ln.encode()) for i, ln in enumerate(lines)], src
        )
        assert (result.entries, result.dead_letters) == (len(lines), 2)
        assert result.canonical + result.signals == len(sim.lines)
        canon, sigs = _ids(sim.lines)
        assert _count(engine, "SELECT count(*) FROM raw_events") == len(canon)
        assert _count(engine, "SELECT count(*) FROM micro_actions") == len(sigs)
        assert _count(engine, "SELECT count(*) FROM macro_outcomes") == len(sim.units)
        dl = pd.read_sql(
            text("SELECT entry_id, reason, kind FROM dead_letters ORDER BY entry_id::int"), engine
        )
        assert dl.entry_id.tolist() == ["501", "901"] and set(dl.kind) == {"rejected"}
        assert dl.reason[0].startswith(
            'database rejected: new row for relation "micro_actions" violates check '
            'constraint "no_refuse"'
        )
        assert "no_refuse_kill" in dl.reason[1]
        engine.dispose()


def test_a_fault_of_the_database_stops_the_consumer_and_dead_letters_nothing(
    pg_url, redis_client, redis_prefix
) -> None:
    sim = simulate(1, seed=321)
    canonical = [ln for ln in sim.lines if '"signal_id"' not in ln]
    _publish(redis_client, redis_prefix, [("canonical", ln.encode()) for ln in canonical])
    with private_pg_database(pg_url, "fault") as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE kills"))  # a broken schema: no entry's fault
        pipeline = Pipeline(engine, KEY)
        with pytest.raises(IngestError, match='database error: relation "kills" does not exist'):
            consume_canonical(pipeline, redis_client, redis_prefix, config=CFG, once=True)
        assert _count(engine, "SELECT count(*) FROM dead_letters") == 0
        stream = stream_keys(redis_prefix)["canonical"]
        assert (
            int(redis_client.xpending(stream, DEFAULT_GROUP)["pending"]) > 0
        )  # waits for a fixed schema
        src = RedisStreamSource(redis_client, stream, label="canonical")
        assert not redis_client.exists(src.failure_key)  # no failure was blamed on an entry
        engine.dispose()


def test_consumer_keeps_running_through_a_storm_of_probes(
    pg_engine, redis_client, redis_prefix
) -> None:
    """A following consumer (not --once) stays alive and stores what comes after the probes."""
    sim = simulate(1, seed=322)
    bad = probes(sim.lines, "p322")
    pipeline = Pipeline(pg_engine, KEY)
    stop = threading.Event()
    th = threading.Thread(
        target=run_ingest,
        kwargs=dict(
            pipeline=pipeline,
            redis_client=redis_client,
            prefix=redis_prefix,
            config=CFG,
            once=False,
            stop=stop,
        ),
        daemon=True,
    )
    th.start()
    _publish(redis_client, redis_prefix, [(p.stream, p.line) for p in bad] * 3)
    _publish(redis_client, redis_prefix, [(_route(ln), ln.encode()) for ln in sim.lines])
    canon, sig = _ids(sim.lines)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _count(
        pg_engine, "SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim322-%'"
    ) < len(sig):
        assert th.is_alive()
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _pending(redis_client, redis_prefix):
        time.sleep(0.05)
    assert th.is_alive()
    stop.set()
    th.join(10)
    assert _count(
        pg_engine, "SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim322-%'"
    ) == len(canon)
    dl = _dead(pg_engine, list(stream_keys(redis_prefix).values()))
    assert len(dl) == 3 * len(bad) and not dl.duplicated(["source", "entry_id"]).any()
    assert _pending(redis_client, redis_prefix) == 0
