"""Text no database can hold, in every string parameter of every route, on a Postgres-backed API.

Postgres refuses NUL in text (SQLite stores it), so ``%00`` in a path or query parameter used to
reach the database and answer 500. Every route with a string parameter (read from the OpenAPI
document, so a new route is covered the day it appears) must answer 422 with the request id,
and a schemathesis run that generates NUL and unpaired surrogates must see no 5xx.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from edgefinder.app import create_app
from edgefinder.esports.simulate import simulate
from edgefinder.esports.synthdb import load_units
from edgefinder.settings import Settings
from edgefinder.store.engine import make_engine
from tests.api_fuzz import assert_no_5xx, fuzz_schema
from tests.esports_pg import private_pg_database

pytestmark = pytest.mark.postgres

TOKEN = "s3cret-token"
#: NUL; the UTF-8-style bytes of the surrogate U+D800 (how an unpaired surrogate arrives in a URL);
#: a lone continuation byte
BAD = ("%00", "a%00b", "%ED%A0%80", "%80")


@pytest.fixture(scope="module")
def pg_app(pg_url: str):
    with private_pg_database(pg_url, "inputs") as url:
        engine = make_engine(url)
        load_units(engine, simulate(3, seed=351).units, seed=351)
        engine.dispose()
        yield create_app(Settings(database_url=url, api_token=TOKEN))


def _is_string(schema: dict) -> bool:
    return schema.get("type") == "string" or any(_is_string(s) for s in schema.get("anyOf", ()))


def _string_parameters(app) -> list[tuple[str, str, str, str]]:
    """(method, path template, parameter, in) of every string parameter of the OpenAPI document."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                if _is_string(p.get("schema", {})):
                    out.append((method.upper(), path, p["name"], p["in"]))
    return out


def _fill(path: str, value: str) -> str:
    """The path with every template parameter set (``1`` for the ones the test does not target)."""
    import re

    return re.sub(r"\{[^}]+\}", value, path)


def test_every_string_parameter_of_every_route_refuses_nul_and_broken_text_with_422(
    pg_app,
) -> None:
    client = TestClient(pg_app)
    params = _string_parameters(pg_app)
    routes = {(m, p) for m, p, _, _ in params}
    # the routes that answered 500 on Postgres, and the report's data, are among them
    assert {
        ("GET", "/api/v1/analytics/runs/{run_id}"),
        ("GET", "/api/v1/analytics/alerts"),
        ("GET", "/api/v1/report/esports"),
        ("GET", "/report"),
    } <= routes
    for method, path, name, where in params:
        for bad in BAD:
            if where == "path":
                url = _fill(path, bad)
            else:
                url = _fill(path, "1") + f"?{name}={bad}"
            r = client.request(method, url)
            assert r.status_code == 422, (method, url, r.status_code, r.text[:200])
            body = r.json()
            assert body["request_id"] == r.headers["X-Request-ID"]
            assert body["detail"][0]["type"] == "string_unsafe", body
            assert name in body["message"] or where == "path", body["message"]
    # a clean value still reaches the route (404: no such run)
    assert client.get("/api/v1/analytics/runs/no-such-run").status_code == 404
    assert client.get("/api/v1/analytics/alerts", params={"run_id": "x"}).status_code == 200


def test_a_json_body_with_nul_or_a_surrogate_is_422_before_the_route_runs(pg_app) -> None:
    client = TestClient(pg_app)
    for raw in (b'{"seed\\u0000": 1}', b'{"seed": 1, "x": ["\\ud800"]}', b'{"a": "\\u0000"}'):
        r = client.post(
            "/api/v1/analytics/run-analysis",
            content=raw,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert r.status_code == 422, (raw, r.text[:200])
        assert r.json()["detail"][0]["type"] == "string_unsafe"
        assert r.json()["request_id"] == r.headers["X-Request-ID"]


@pytest.fixture(scope="module")
def pg_schema(pg_app):
    return fuzz_schema(pg_app)


pg_schemathesis = schemathesis.from_pytest_fixture("pg_schema")


@pg_schemathesis.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_on_postgres_with_nul_and_surrogates_generated(case) -> None:
    assert_no_5xx(case)
