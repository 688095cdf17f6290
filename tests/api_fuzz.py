"""Schemathesis over the API: strings with NUL and any code point, and no answer may be a 5xx."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import GenerationConfig


def fuzz_schema(app: Any) -> Any:
    """The app's OpenAPI schema for schemathesis, every string free to hold NUL and surrogates."""
    # FastAPI emits OpenAPI 3.1; schemathesis 3.x supports it behind its experimental switch.
    schemathesis.experimental.OPEN_API_3_1.enable()
    return schemathesis.from_asgi(
        "/openapi.json", app, generation_config=GenerationConfig(allow_x00=True, codec=None)
    )


def assert_no_5xx(case: Any) -> None:
    """Call ``case``; bad input is a 4xx, a 5xx with the database up is a bug."""
    response = case.call()
    assert response.status_code < 500, (
        case.method,
        case.path,
        response.status_code,
        response.text[:300],
    )
