"""The analytics API on real databases: 202/401/404/409/422/500/503, request ids, ordering, and a
schemathesis run.

A module-scoped SQLite database holds a few simulated matches and one finished run; the Postgres
cases use a private database on the real server. 503 points the app at a closed port; 500 comes
from a route dependency that raises and from databases without the schema.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.app import create_app
from edgefinder.esports.api import _check_token
from edgefinder.esports.jobs import JobAlreadyRunning, JobParams, acquire_run, run_correlation_job
from edgefinder.esports.simulate import simulate
from edgefinder.esports.synthdb import load_units
from edgefinder.settings import Settings
from edgefinder.store.engine import make_engine, temporary_database
from edgefinder.store.migrate import upgrade
from tests.api_fuzz import assert_no_5xx, fuzz_schema
from tests.esports_pg import private_pg_database

API = "/api/v1/analytics"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    return port


@pytest.fixture(scope="module")
def loaded_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("api") / "api.sqlite3"
    url = f"sqlite:///{path.as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    load_units(engine, simulate(15, seed=31).units, seed=31)
    run_correlation_job(engine, params=JobParams(seed=1))
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def app(loaded_url: str):
    return create_app(Settings(database_url=loaded_url, api_token=TOKEN))


@pytest.fixture()
def client(app) -> TestClient:
    return TestClient(app)


def _tagged(body: dict) -> None:
    assert body["purpose"] == PURPOSE and body["disclaimer"] == DISCLAIMER


# --------------------------------------------------------------------------- happy paths


def test_top_correlations_ordered_by_q_then_abs_effect(client: TestClient) -> None:
    r = client.get(f"{API}/top-correlations", params={"limit": 1000})
    assert r.status_code == 200
    body = r.json()
    _tagged(body)
    rows = body["results"]
    assert body["count"] == len(rows) > 100
    keys = [
        (row["q_value"] if row["q_value"] is not None else 2.0, -abs(row["estimate"] or 0.0))
        for row in rows
    ]
    assert keys == sorted(keys)
    assert all(row["purpose"] == PURPOSE and row["disclaimer"] == DISCLAIMER for row in rows)
    assert all(
        row["significant"] == (row["q_value"] is not None and row["q_value"] < 0.05) for row in rows
    )
    # outcome mechanisms (kills, plant -> site executed, defuse) are never ranked, only listed apart
    apart = body["outcome_mechanisms"]
    assert not any(row["outcome_mechanism"] for row in rows)
    assert apart and all(row["outcome_mechanism"] for row in apart)
    assert {"kills", "plant_count", "defuse_count"} <= {row["feature"] for row in apart}


def test_top_correlations_filters(client: TestClient) -> None:
    params = {"limit": 5, "significant_only": True, "outcome": "round_win", "method": "aipw_within"}
    r = client.get(f"{API}/top-correlations", params=params)
    assert r.status_code == 200
    rows = r.json()["results"]
    assert 1 <= len(rows) <= 5
    assert all(
        x["significant"] and x["outcome"] == "round_win" and x["method"] == "aipw_within"
        for x in rows
    )
    assert all("naive" in x["details"] and "ipw" in x["details"] for x in rows)
    assert all(x["verdict"] in ("robust", "fragile") for x in rows)
    assert client.get(f"{API}/top-correlations", params={"method": "aipw"}).status_code == 422
    assert len(client.get(f"{API}/top-correlations", params={"limit": 3}).json()["results"]) == 3


def test_by_feature_and_404(client: TestClient) -> None:
    r = client.get(f"{API}/correlations/by-feature/trade_count")
    assert r.status_code == 200
    rows = r.json()["results"]
    # point-biserial x2, spearman, chi2 x2, logistic x2, aipw_within, aipw_naive
    assert len(rows) == 9 and {x["feature"] for x in rows} == {"trade_count"}
    r = client.get(f"{API}/correlations/by-feature/player_id")
    assert r.status_code == 404
    assert "unknown feature 'player_id'" in r.json()["message"]


def test_causal_effects_serve_verdicts_and_refutation_figures(client: TestClient) -> None:
    body = client.get(f"{API}/causal-effects").json()
    _tagged(body)
    effects = body["results"]
    assert body["count"] == len(effects) == 9 and {e["method"] for e in effects} == {"aipw_within"}
    for e in effects:
        assert (
            e["ci_low"] <= e["estimate"] <= e["ci_high"]
            and e["between_team"]["method"] == "aipw_naive"
        )
        assert e["verdict"] in ("robust", "fragile", "not significant") and e["balance"]
        assert (e["verdict"] == "not significant") == (not e["significant"])
        if e["significant"]:
            assert {"placebo", "random_common_cause", "subset", "e_value"} <= set(e["refutations"])
            assert e["e_value"] >= e["e_value_ci"] > 1.0
    some = effects[0]["verdict"]
    filtered = client.get(f"{API}/causal-effects", params={"verdict": some}).json()["results"]
    assert filtered and all(e["verdict"] == some for e in filtered)
    assert client.get(f"{API}/causal-effects", params={"verdict": "maybe"}).status_code == 422


def test_runs_and_summary(client: TestClient) -> None:
    summary = client.get(f"{API}/stats/summary").json()
    _tagged(summary)
    assert summary["matches"] == 15 and summary["team_rounds"] == 2 * summary["finished_rounds"] > 0
    run_id = summary["last_run"]["run_id"]
    run = client.get(f"{API}/runs/{run_id}").json()
    _tagged(run)
    assert (
        run["status"] == "succeeded"
        and run["n_tests"] > 100
        and run["n_rows"] == summary["team_rounds"]
    )
    assert sum(summary["significant_by_method"].values()) == run["summary"]["n_significant"]
    r = client.get(f"{API}/runs/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and "no analysis run" in r.json()["message"]


def test_health_and_metrics(client: TestClient) -> None:
    h = client.get(f"{API}/health")
    assert h.status_code == 200
    body = h.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["redis"] == "not configured"
    assert body["last_run_status"] == "succeeded" and 0 <= body["last_run_age_s"] < 3600
    m = client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    for name in (
        "edgefinder_events_ingested_total",
        "edgefinder_dead_letters_total",
        "edgefinder_consumer_lag",
        "edgefinder_analysis_job_duration_seconds",
        "edgefinder_dead_letters_stored 0.0",
    ):
        assert name in m.text
    # what has landed in the database, read at scrape time (the ingest counters live in the consumers)
    summary = client.get(f"{API}/stats/summary").json()
    assert (
        f'edgefinder_events_stored{{stream="canonical"}} {float(summary["raw_events"])}' in m.text
    )
    assert (
        f'edgefinder_events_stored{{stream="motion"}} {float(summary["micro_actions"])}' in m.text
    )
    assert summary["micro_actions"] > 0
    assert client.get("/docs").status_code == 200
    assert "/api/v1/analytics/top-correlations" in client.get("/openapi.json").json()["paths"]


# --------------------------------------------------------------------------- 401 / 202 / 409


def test_run_analysis_needs_the_token(client: TestClient, loaded_url: str) -> None:
    r = client.post(f"{API}/run-analysis")
    assert r.status_code == 401 and r.json()["message"] == "missing bearer token"
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.post(f"{API}/run-analysis", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["message"] == "wrong bearer token"
    r = client.post(f"{API}/run-analysis", headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401
    # no token configured: the endpoint is closed, not open
    closed = TestClient(create_app(Settings(database_url=loaded_url)))
    r = closed.post(f"{API}/run-analysis", headers=AUTH)
    assert r.status_code == 401 and "no EDGEFINDER_API_TOKEN" in r.json()["message"]


def _wait(client: TestClient, run_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"{API}/runs/{run_id}").json()
        if run["status"] != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def test_run_analysis_202_then_409_while_running(client: TestClient, loaded_url: str) -> None:
    engine = make_engine(loaded_url)
    lock = acquire_run(engine)  # another job (here: this test) holds the lock
    try:
        r = client.post(f"{API}/run-analysis", headers=AUTH)
        assert r.status_code == 409 and "already running" in r.json()["message"]
        assert client.get(f"{API}/runs/{lock.run_id}").json()["status"] == "running"
    finally:
        # finish the held run the way the job would, so the lock row is released
        from sqlalchemy import update

        from edgefinder.store.tables import analysis_runs

        with engine.begin() as conn:
            conn.execute(
                update(analysis_runs)
                .where(analysis_runs.c.run_id == lock.run_id)
                .values(status="failed", error="test")
            )
        lock.release()
    r = client.post(f"{API}/run-analysis", headers=AUTH, json={"seed": 3})
    assert r.status_code == 202, r.text
    body = r.json()
    _tagged(body)
    assert body["location"] == f"{API}/runs/{body['run_id']}"
    run = _wait(client, body["run_id"])
    assert run["status"] == "succeeded" and run["params"]["seed"] == 3
    engine.dispose()


# --------------------------------------------------------------------------- 422


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/top-correlations", {"limit": 0}, "limit"),
        ("/top-correlations", {"limit": 1001}, "limit"),
        ("/top-correlations", {"limit": "ten"}, "limit"),
        ("/top-correlations", {"outcome": "match_win"}, "outcome"),
        ("/top-correlations", {"method": "pearson"}, "method"),
        ("/top-correlations", {"significant_only": "maybe"}, "significant_only"),
    ],
)
def test_invalid_parameters_422(client: TestClient, path: str, params: dict, needle: str) -> None:
    r = client.get(API + path, params=params)
    assert r.status_code == 422
    assert r.json()["message"].startswith("invalid request: ") and needle in r.json()["message"]


def test_invalid_body_422(client: TestClient) -> None:
    for body in ({"seed": -1}, {"alpha": 0.9}, {"seed": 1, "bet": True}):
        r = client.post(f"{API}/run-analysis", headers=AUTH, json=body)
        assert r.status_code == 422, body
    r = client.post(
        f"{API}/run-analysis",
        headers={**AUTH, "content-type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 422


# --------------------------------------------------------------------------- 503


def test_database_down_answers_503_everywhere() -> None:
    down = TestClient(
        create_app(
            Settings(
                database_url=f"postgresql://nobody@127.0.0.1:{_closed_port()}/none", api_token=TOKEN
            )
        )
    )
    for path in (
        "/top-correlations",
        "/correlations/by-feature/trade_count",
        "/runs/abc",
        "/stats/summary",
    ):
        r = down.get(API + path)
        assert r.status_code == 503, path
        assert r.json()["message"].startswith("database unavailable: ")
        assert r.json()["request_id"] == r.headers["X-Request-ID"]
    r = down.post(f"{API}/run-analysis", headers=AUTH)
    assert r.status_code == 503
    h = down.get(f"{API}/health")
    assert h.status_code == 503
    assert h.json()["status"] == "unavailable" and h.json()["database"].startswith("unavailable")
    assert down.get("/metrics").status_code == 200  # metrics stay up while the database is down


def test_redis_down_is_degraded_not_503(loaded_url: str) -> None:
    c = TestClient(
        create_app(
            Settings(database_url=loaded_url, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
        )
    )
    h = c.get(f"{API}/health")
    assert (
        h.status_code == 200
        and h.json()["status"] == "degraded"
        and h.json()["redis"].startswith("unavailable")
    )


# --------------------------------------------------------------------------- 500 and request ids


def test_an_unexpected_exception_answers_500_with_the_logged_request_id(
    loaded_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(database_url=loaded_url, api_token=TOKEN))

    def broken_token_check() -> None:
        return {}["token"]  # a bug in a dependency: KeyError

    app.dependency_overrides[_check_token] = broken_token_check
    with caplog.at_level(logging.ERROR, logger="edgefinder.esports.web"):
        r = TestClient(app).post(f"{API}/alerts/1/ack", headers=AUTH)
    assert r.status_code == 500
    rid = r.headers["X-Request-ID"]
    assert len(rid) == 32 and r.json()["request_id"] == rid
    assert r.json()["message"] == f"internal error (KeyError); see the server log, request id {rid}"
    [record] = [rec for rec in caplog.records if rid in rec.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[0] is KeyError and "/alerts/1/ack" in record.getMessage()


def test_the_callers_request_id_is_kept_when_it_is_usable(client: TestClient) -> None:
    r = client.get(f"{API}/runs/nope", headers={"X-Request-ID": "trace-42.a_b"})
    assert r.status_code == 404 and r.headers["X-Request-ID"] == "trace-42.a_b"
    assert r.json()["request_id"] == "trace-42.a_b"
    for bad in ("has space", "x" * 65, "semi;colon", ""):
        r = client.get(f"{API}/health", headers={"X-Request-ID": bad})
        assert r.status_code == 200 and r.headers["X-Request-ID"] != bad
        assert len(r.headers["X-Request-ID"]) == 32


def test_a_database_without_the_schema_is_a_500_not_a_503(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite says "no such table" with an OperationalError: still not an outage
    c = TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}")))
    with caplog.at_level(logging.ERROR, logger="edgefinder.esports.web"):
        for path in ("/top-correlations", "/stats/summary", "/health"):
            r = c.get(API + path)
            assert r.status_code == 500, path
            assert "no such table" in r.json()["message"]
            assert r.json()["request_id"] in caplog.text


@pytest.mark.postgres
def test_a_programming_error_on_postgres_is_a_500(pg_url: str) -> None:
    name = f"{make_url(pg_url).database}_noschema_{uuid.uuid4().hex[:6]}"
    with temporary_database(pg_url, name) as url:
        c = TestClient(create_app(Settings(database_url=url)))
        r = c.get(f"{API}/top-correlations")
        assert r.status_code == 500
        assert r.json()["message"].startswith("database error (ProgrammingError): ")
        assert 'relation "analysis_runs" does not exist' in r.json()["message"]


# --------------------------------------------------------------------------- jobs: empty DB, locks


def test_empty_database_gives_a_clear_message(sqlite_url: str) -> None:
    res = run_correlation_job(sqlite_url)
    assert res.status == "succeeded" and res.n_tests == 0 and res.n_rows == 0
    assert "no finished rounds" in res.message
    c = TestClient(create_app(Settings(database_url=sqlite_url)))
    body = c.get(f"{API}/top-correlations").json()
    assert body["count"] == 0 and body["results"] == []

    from typer.testing import CliRunner

    from edgefinder.esports.cli import esports_app

    out = CliRunner().invoke(esports_app, ["analyze", "--database-url", sqlite_url])
    assert out.exit_code == 0, out.output
    assert "no finished rounds" in out.output


def test_sqlite_lock_is_shared_between_engines_and_stale_runs_expire(sqlite_url: str) -> None:
    a, b = make_engine(sqlite_url), make_engine(sqlite_url)
    first = acquire_run(a)
    with pytest.raises(JobAlreadyRunning):
        acquire_run(b)
    with pytest.raises(JobAlreadyRunning):
        run_correlation_job(b)
    # a 'running' row older than stale_after_s belongs to a dead process: it is marked failed
    second = acquire_run(b, JobParams(stale_after_s=0.0))
    from sqlalchemy import select

    from edgefinder.store.tables import analysis_runs

    with a.connect() as conn:
        rows = dict(conn.execute(select(analysis_runs.c.run_id, analysis_runs.c.status)).all())
        err = conn.execute(
            select(analysis_runs.c.error).where(analysis_runs.c.run_id == first.run_id)
        ).scalar_one()
    assert rows == {first.run_id: "failed", second.run_id: "running"} and err.startswith(
        "abandoned"
    )
    first.release()
    second.release()
    a.dispose()
    b.dispose()


@pytest.mark.postgres
def test_postgres_advisory_lock_and_api_on_postgres(pg_url: str) -> None:
    with private_pg_database(pg_url, "api") as url:
        engine = make_engine(url)
        load_units(engine, simulate(6, seed=41).units, seed=41)
        other = make_engine(url)
        held = acquire_run(engine)
        with pytest.raises(JobAlreadyRunning, match="advisory lock"):
            acquire_run(other)
        client = TestClient(create_app(Settings(database_url=url, api_token=TOKEN)))
        assert client.post(f"{API}/run-analysis", headers=AUTH).status_code == 409
        held.release()  # the held run's process "died": its row stays 'running' until the next job
        r = client.post(f"{API}/run-analysis", headers=AUTH)
        assert r.status_code == 202
        run = _wait(client, r.json()["run_id"])
        assert run["status"] == "succeeded"
        stale = client.get(f"{API}/runs/{held.run_id}").json()
        assert stale["status"] == "failed" and stale["error"].startswith("abandoned")
        top = client.get(f"{API}/top-correlations", params={"limit": 1000}).json()
        assert len(top["results"]) + len(top["outcome_mechanisms"]) == run["n_tests"]
        engine.dispose()
        other.dispose()


# --------------------------------------------------------------------------- property-based


@pytest.fixture(scope="module")
def st_schema(app):
    return fuzz_schema(app)


schema = schemathesis.from_pytest_fixture("st_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_anywhere(case) -> None:
    assert_no_5xx(case)
