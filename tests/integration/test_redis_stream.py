"""A message round-trips through a real Redis stream and consumer group."""

import json

import pytest


@pytest.mark.redis
def test_stream_roundtrip_through_a_consumer_group(redis_client, redis_prefix: str) -> None:
    stream = f"{redis_prefix}events:canonical"
    body = json.dumps({"event_id": "e1", "event_type": "PING"})
    entry_id = redis_client.xadd(stream, {"data": body})
    # A group created at id 0 sees entries published before it existed.
    redis_client.xgroup_create(stream, "g", id="0", mkstream=True)
    got = redis_client.xreadgroup("g", "c1", {stream: ">"}, count=10)
    assert got[0][1][0][0] == entry_id
    assert json.loads(got[0][1][0][1][b"data"]) == {"event_id": "e1", "event_type": "PING"}
    assert redis_client.xack(stream, "g", entry_id) == 1
    assert redis_client.xpending(stream, "g")["pending"] == 0
