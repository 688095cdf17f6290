"""Faults of the servers while the consumers run, on real Postgres and Redis processes.

* a statement timeout set on the database under load (sessions cut so that the new setting
  reaches them), then reset: the consumers catch up without a restart, nothing lost, nothing
  dead-lettered;
* an entry that alone exceeds the statement timeout (a trigger makes its insert slow): the rest
  of its batch is written, it is dead-lettered after the delivery limit with the timeout named;
* the consumer group deleted between claims: recreated, nothing lost;
* a private Redis (AOF ``everysec``) SIGKILLed mid-run and restarted: every event stored and the
  lag the API reports back to 0.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from edgefinder.app import create_app
from edgefinder.esports.ingest import IngestConfig, Pipeline, make_pipeline, run_ingest
from edgefinder.esports.monitoring import stream_groups
from edgefinder.esports.simulate import simulate
from edgefinder.esports.sources import DEFAULT_GROUP, RedisStreamSource, stream_keys
from edgefinder.settings import Settings
from edgefinder.store.engine import make_engine
from tests.esports_pg import private_pg_database
from tests.esports_sources import publish_lines
from tests.redis_server import free_port, require_redis_server, start_redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

KEY = "test-pseudonym-key"


def _stored(engine, match_prefix: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM raw_events WHERE match_id LIKE :p)"
                    " + (SELECT count(*) FROM micro_actions WHERE match_id LIKE :p)"
                ),
                {"p": match_prefix + "%"},
            ).scalar_one()
        )


def _dead_letters(engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(text("SELECT entry_id, kind, reason FROM dead_letters"))
        ]


def _pending(client, prefix: str) -> int:
    return sum(
        int(client.xpending(k, DEFAULT_GROUP)["pending"]) for k in stream_keys(prefix).values()
    )


def _until(what: Callable[[], bool], limit_s: float, message: str) -> None:
    """Wait for a condition the code under test must reach (the limit only bounds a hang)."""
    deadline = time.monotonic() + limit_s
    while not what():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def _database_retries() -> float:
    return REGISTRY.get_sample_value("edgefinder_ingest_retries_total", {"server": "database"}) or 0


class _Consumers:
    """``run_ingest`` following the streams in a thread until :meth:`stop`."""

    def __init__(self, pipeline: Pipeline, client, prefix: str, config: IngestConfig) -> None:
        self.stop_event = threading.Event()
        self.box: dict[str, object] = {}

        def run() -> None:
            try:
                self.box["counters"] = run_ingest(
                    pipeline,
                    redis_client=client,
                    prefix=prefix,
                    config=config,
                    once=False,
                    stop=self.stop_event,
                )
            except BaseException as exc:
                self.box["error"] = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self):
        self.stop_event.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert "error" not in self.box, self.box.get("error")
        return self.box["counters"]


def _observer(url: str):
    """An engine whose sessions are exempt from the database's statement timeout (the test's own
    queries must not time out)."""
    return create_engine(
        make_url(url).set(drivername="postgresql+psycopg"),
        connect_args={"options": "-c statement_timeout=0"},
        pool_pre_ping=True,
    )


def _admin(pg_url: str):
    return create_engine(
        make_url(pg_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )


def test_statement_timeout_set_then_reset_under_load_is_caught_up_without_a_restart(
    pg_url, redis_client, redis_prefix
) -> None:
    sim = simulate(6, seed=331)
    half = len(sim.lines) // 2
    config = IngestConfig(batch_size=200, block_ms=50, backoff_initial_s=0.2, backoff_max_s=1.0)
    with private_pg_database(pg_url, "timeout") as url:
        name = make_url(url).database
        admin = _admin(pg_url)
        pipeline = make_pipeline(url, KEY, migrate=False)
        engine = _observer(url)
        consumers = _Consumers(pipeline, redis_client, redis_prefix, config)
        try:
            publish_lines(redis_client, redis_prefix, sim.lines[:half])
            _until(lambda: _stored(engine, "sim331-") == half, 120, "first half not stored")
            before = _database_retries()
            with admin.connect() as conn:
                conn.execute(text(f"ALTER DATABASE \"{name}\" SET statement_timeout = '1ms'"))
                # the pooled sessions keep the setting they started with: cut them (a dropped
                # session) so that the consumers' next sessions run under the timeout
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": name},
                )
            publish_lines(redis_client, redis_prefix, sim.lines[half:])
            _until(lambda: _database_retries() >= before + 4, 120, "no retries under the timeout")
            assert _stored(engine, "sim331-") < len(sim.lines)
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" RESET statement_timeout'))
            _until(
                lambda: _stored(engine, "sim331-") == len(sim.lines),
                180,
                "the consumers did not catch up after the reset",
            )
            _until(lambda: _pending(redis_client, redis_prefix) == 0, 60, "entries left pending")
            assert consumers.alive()
        finally:
            c = consumers.stop()
            pipeline.engine.dispose()
            admin.dispose()
        assert c.retries >= 4 and c.dead_letters == 0
        assert _dead_letters(engine) == []
        with engine.connect() as conn:
            outcomes = conn.execute(text("SELECT count(*) FROM macro_outcomes")).scalar_one()
            unresolved = conn.execute(
                text("SELECT count(*) FROM micro_actions WHERE round_no IS NULL OR team IS NULL")
            ).scalar_one()
        assert outcomes == len(sim.units) and unresolved == 0
        engine.dispose()


def test_an_entry_that_alone_exceeds_the_statement_timeout_is_dead_lettered_after_the_limit(
    pg_url, redis_client, redis_prefix
) -> None:
    sim = simulate(2, seed=332)
    signals = [ln for ln in sim.lines if '"signal_id"' in ln]
    slow = signals[len(signals) // 2]
    slow_id = json.loads(slow)["signal_id"]
    config = IngestConfig(
        batch_size=64, block_ms=50, backoff_initial_s=0.05, backoff_max_s=0.2, max_deliveries=3
    )
    with private_pg_database(pg_url, "slow") as url:
        name = make_url(url).database
        engine = _observer(url)
        with engine.begin() as conn:
            # a real slow insert: the row of this one signal sleeps past the timeout
            conn.execute(
                text(
                    "CREATE FUNCTION slow_signal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                    f" IF NEW.signal_id = '{slow_id}' THEN PERFORM pg_sleep(5); END IF;"
                    " RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER slow_signal BEFORE INSERT ON micro_actions"
                    " FOR EACH ROW EXECUTE FUNCTION slow_signal()"
                )
            )
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET statement_timeout = '1s'"))
        publish_lines(redis_client, redis_prefix, sim.lines)
        pipeline = make_pipeline(url, KEY, migrate=False)
        try:
            c = run_ingest(pipeline, redis_client=redis_client, prefix=redis_prefix, config=config)
        finally:
            pipeline.engine.dispose()
        assert c.events == len(sim.lines) - 1 and c.dead_letters == 1
        assert _stored(engine, "sim332-") == len(sim.lines) - 1
        ((entry_id, kind, reason),) = _dead_letters(engine)
        assert kind == "delivery_limit" and "statement timeout" in reason, reason
        assert "3 consumer failures while writing it alone" in reason
        assert _pending(redis_client, redis_prefix) == 0
        engine.dispose()


def test_a_consumer_group_deleted_between_claims_is_recreated_and_nothing_is_lost(
    pg_engine, redis_client, redis_prefix
) -> None:
    sim = simulate(2, seed=333)
    publish_lines(redis_client, redis_prefix, sim.lines)
    key = stream_keys(redis_prefix)["motion"]
    source = RedisStreamSource(redis_client, key, label="motion", min_idle_ms=0, consumer="a")
    taken = source.read(100, 0)
    assert len(taken) == 100 and redis_client.xpending(key, DEFAULT_GROUP)["pending"] == 100
    # every call that names the group, with the group gone before each (XACK of a missing group
    # is no error: it acknowledges nothing, and the next call recreates the group)
    for call, recreates in (
        (source.keep_alive, True),  # first: the recreated group has nothing in flight
        (lambda: source.claim(50), True),
        (lambda: source.ack([e.entry_id for e in taken]), False),
        (source.backlog, True),
        (lambda: source.read(10, 0), True),
    ):
        redis_client.xgroup_destroy(key, DEFAULT_GROUP)
        call()
        groups = {g["name"] for g in redis_client.xinfo_groups(key)}
        assert groups == ({DEFAULT_GROUP.encode()} if recreates else set())
    redis_client.xgroup_destroy(key, DEFAULT_GROUP)
    c = run_ingest(
        Pipeline(pg_engine, KEY),
        redis_client=redis_client,
        prefix=redis_prefix,
        config=IngestConfig(batch_size=200, block_ms=50, claim_interval_s=0.0),
    )
    assert c.dead_letters == 0
    assert _stored(pg_engine, "sim333-") == len(sim.lines)
    assert _pending(redis_client, redis_prefix) == 0


def test_redis_killed_and_restarted_from_its_aof_leaves_every_event_stored_and_lag_zero(
    pg_url, tmp_path: Path
) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    require_redis_server()
    port = free_port()
    server = start_redis(port, tmp_path, appendfsync="everysec")
    client = redis.Redis(
        port=port, socket_timeout=5, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    sim = simulate(8, seed=334)
    # acknowledgements lost with the last second of the AOF leave entries pending: taken over again
    config = IngestConfig(
        batch_size=100,
        block_ms=50,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        min_idle_ms=500,
        claim_interval_s=0.2,
    )
    with private_pg_database(pg_url, "aof") as url:
        engine = make_engine(url)
        pipeline = make_pipeline(url, KEY, migrate=False)
        try:
            publish_lines(client, "", sim.lines)
            # what was published is on disk before the crash: an AOF rewrite writes (and fsyncs)
            # the whole data set, whatever the appendfsync policy
            client.bgrewriteaof()
            _until(
                lambda: (
                    not any(
                        int(client.info("persistence")[k])
                        for k in ("aof_rewrite_in_progress", "aof_rewrite_scheduled")
                    )
                ),
                60,
                "the AOF rewrite did not finish",
            )
            consumers = _Consumers(pipeline, client, "", config)
            _until(lambda: _stored(engine, "sim334-") > len(sim.lines) // 4, 120, "no progress")
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            server = start_redis(port, tmp_path, appendfsync="everysec")
            _until(
                lambda: _stored(engine, "sim334-") == len(sim.lines),
                180,
                "events lost or not stored after the restart",
            )
            _until(lambda: _pending(client, "") == 0, 60, "entries left pending")
            # killed again while the consumers are idle: Redis's own lag counter is invalid after
            # the restart and no read of an idle consumer rebuilds it
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            server = start_redis(port, tmp_path, appendfsync="everysec")
            _until(lambda: _pending(client, "") == 0, 60, "entries left pending")
            # what /metrics and /health report (read from Redis at each scrape) ...
            groups = stream_groups(client, "")
            for name in ("canonical", "motion"):
                assert groups[name]["groups"][DEFAULT_GROUP]["lag"] == 0, groups
            # ... and the consumers' own gauges, refreshed while they are idle
            _until(
                lambda: all(
                    REGISTRY.get_sample_value("edgefinder_consumer_lag", {"stream": name}) == 0
                    for name in ("canonical", "motion")
                ),
                30,
                "the consumers' lag gauges did not return to 0",
            )
            c = consumers.stop()
            assert c.retries > 0 and c.dead_letters == 0
        finally:
            client.close()
            server.terminate()
            server.wait(10)
            pipeline.engine.dispose()
            engine.dispose()


def _api_lag(client: TestClient, stream: str) -> float | None:
    """``edgefinder_consumer_lag{stream}`` as the API's /metrics serves it (None: no value)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "edgefinder_consumer_lag" and sample.labels["stream"] == stream:
                return sample.value
    return None


def test_the_lag_the_api_reports_is_never_a_stale_figure_from_before_a_redis_restart(
    sqlite_url: str, tmp_path: Path
) -> None:
    import redis

    require_redis_server()
    port = free_port()
    server = start_redis(port, tmp_path)
    client = redis.Redis(port=port)
    api = TestClient(
        create_app(Settings(database_url=sqlite_url, redis_url=f"redis://127.0.0.1:{port}/0"))
    )
    try:
        key = stream_keys("")["motion"]
        for i in range(100):
            client.xadd(key, {b"data": b"%d" % i})
        source = RedisStreamSource(client, key, label="motion")
        source.ack([e.entry_id for e in source.read(40, 0)])
        assert _api_lag(api, "motion") == 60
        source.ack([e.entry_id for e in source.read(30, 0)])  # 30 behind now; not scraped
        server.send_signal(signal.SIGKILL)  # every write is on disk (appendfsync always)
        server.wait(10)
        # replaying the AOF's commands (no rewrite since) leaves the group's read counter invalid
        server = start_redis(port, tmp_path)
        # Redis cannot tell the lag until the group reads again: no value (or the true 30), never
        # the 60 of the last scrape before the restart
        assert _api_lag(api, "motion") in (None, 30.0)
        source.ack([e.entry_id for e in source.read(100, 0)])
        assert _api_lag(api, "motion") == 0
        source.read(100, 0)  # idle: nothing new
        assert _api_lag(api, "motion") == 0
    finally:
        client.close()
        server.terminate()
        server.wait(10)
