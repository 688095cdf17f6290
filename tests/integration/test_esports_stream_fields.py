"""Stream entries whose field names or values are not UTF-8, on real Redis and Postgres.

A field name redis-py cannot decode used to end the consumer process on every delivery (the
delivery limit never applied, and whatever was read with it stayed pending). Each shape here,
alone and mixed into a stream of valid events, must end as a dead letter that keeps every byte
(escaped) while every valid event is stored and nothing stays pending.
"""

from __future__ import annotations

import ast
import json

import pytest
from sqlalchemy import text

from edgefinder.esports.ingest import IngestConfig, Pipeline, run_ingest
from edgefinder.esports.simulate import simulate
from edgefinder.esports.sources import DEFAULT_GROUP, stream_keys

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

KEY = "test-pseudonym-key"
CFG = IngestConfig(batch_size=200, block_ms=50)


def _shapes(tag: str) -> list[tuple[str, dict[bytes, bytes], str]]:
    """(name, fields, a fragment of the dead letter's reason) of every entry shape that is not UTF-8."""
    valid_json = json.dumps({"event_id": f"{tag}-x", "bad": "\xff"}).encode()
    return [
        ("binary-name", {b"\xff\xfekey": b"\xc3\x28"}, "no 'data' field"),
        ("binary-name-only", {b"\x80\x81\x82": b""}, "no 'data' field"),
        ("binary-names", {b"\xff": b"\xfe", b"\xc0\xaf": b"\xed\xa0\x80"}, "no 'data' field"),
        ("near-data", {b"data\xff": valid_json}, "no 'data' field"),
        (
            "data-not-utf8",
            {b"data": b'{"event_id": "' + tag.encode() + b'-y\xc3\x28"}'},
            "bad JSON",
        ),
        (
            "data-surrogate",
            {b"data": b'{"event_id": "' + tag.encode() + b'-z\xed\xa0\x80"}'},
            "bad JSON",
        ),
    ]


def _dead(engine, prefix: str):
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT entry_id, raw, reason, kind FROM dead_letters WHERE source = ANY(:s)"),
            {"s": list(stream_keys(prefix).values())},
        ).all()


def _pending(client, prefix: str) -> int:
    return sum(
        int(client.xpending(k, DEFAULT_GROUP)["pending"]) for k in stream_keys(prefix).values()
    )


def test_each_binary_field_shape_alone_is_a_dead_letter_that_keeps_its_bytes(
    pg_engine, redis_client, redis_prefix
) -> None:
    pipeline = Pipeline(pg_engine, KEY)
    for i, (name, fields, reason) in enumerate(_shapes("bf1")):
        for stream in ("canonical", "motion"):
            prefix = f"{redis_prefix}{i}{stream}:"
            redis_client.xadd(stream_keys(prefix)[stream], fields)
            c = run_ingest(
                pipeline, redis_client=redis_client, prefix=prefix, config=CFG, once=True
            )
            assert (c.entries, c.events, c.dead_letters) == (1, 0, 1), name
            ((_, raw, why, kind),) = _dead(pg_engine, prefix)
            assert reason in why and kind == "invalid", (name, why)
            assert "\x00" not in raw and _pending(redis_client, prefix) == 0, name
            if reason == "no 'data' field":  # every byte of every field is in the dead letter
                assert ast.literal_eval(raw) == fields, (name, raw)
            else:  # the bytes that are not UTF-8 are escaped, not replaced
                assert "\\x" in raw and "\ufffd" not in raw, (name, raw)


def test_binary_field_entries_mixed_into_valid_events_leave_every_valid_event_stored(
    pg_engine, redis_client, redis_prefix
) -> None:
    sim = simulate(2, seed=362)
    shapes = _shapes("bf2")
    keys = stream_keys(redis_prefix)
    pipe = redis_client.pipeline(transaction=False)
    bad = 0
    step = len(sim.lines) // 40
    for i, line in enumerate(sim.lines):
        stream = "motion" if '"signal_id"' in line else "canonical"
        extra = {b"\xff\xfeextra": b"\xc3\x28"} if i % 97 == 0 else {}  # ignored beside `data`
        pipe.xadd(keys[stream], {b"data": line.encode(), **extra})
        if i % step == 0:  # every shape on both streams, many times over
            _, fields, _ = shapes[(i // step) % len(shapes)]
            pipe.xadd(keys[stream], fields)
            bad += 1
    pipe.execute()
    c = run_ingest(
        Pipeline(pg_engine, KEY), redis_client=redis_client, prefix=redis_prefix, config=CFG
    )
    assert c.events == len(sim.lines) and c.dead_letters == bad
    with pg_engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM raw_events WHERE match_id LIKE 'sim362-%')"
                " + (SELECT count(*) FROM micro_actions WHERE match_id LIKE 'sim362-%')"
            )
        ).scalar_one()
    assert stored == len(sim.lines)
    assert len(_dead(pg_engine, redis_prefix)) == bad
    assert _pending(redis_client, redis_prefix) == 0
