"""What every router of the HTTP service shares: the tagged response base and the error contract.

The error contract (:func:`install_error_contract`):

* Every response carries ``X-Request-ID``: the caller's own when it sent a usable one (1 to 64 of
  ``A-Z a-z 0-9 . _ -``), otherwise a new uuid4 hex. Every error body (:class:`ErrorOut`) carries
  a one-line ``message`` and the same id as ``request_id``.
* 4xx: the caller's mistake, from a route (401, 404, 409) or from validation (422, with FastAPI's
  ``detail`` list). Text no database column can hold is refused before any route runs
  (:func:`unsafe_text`): a path, a query parameter or a string of a JSON body that holds NUL, an
  unpaired surrogate or bytes that are not UTF-8 answers 422 on every route, with the same
  ``detail`` shape (type ``string_unsafe``).
* 503: a server is out of reach, and the same request can succeed later (see :func:`unreachable`):
  the database (refused or lost connection, shutdown, locked, out of resources, a serialization
  conflict), Redis or the broker (connection refused or timed out), or
  :class:`~edgefinder.errors.ConnectionFailed`.
* 500: anything else, a bug or a broken deployment (a missing table, a malformed statement, an
  unreadable file, an exception no route expected). It is logged with its traceback and the request
  id, so the id in the answer finds the log line. An :class:`~edgefinder.errors.EdgefinderError`
  keeps its one-line message, a database error shows its first line (e.g. ``no such table: …``),
  any other exception only its class name.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

import kombu.exceptions
import redis.exceptions
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import ConnectionFailed, EdgefinderError, first_line
from edgefinder.esports.pipeline import failure_kind
from edgefinder.jsonsafe import jsonable

__all__ = [
    "REQUEST_ID_HEADER",
    "SERVER_ERROR",
    "ErrorOut",
    "Tagged",
    "install_error_contract",
    "request_id",
    "unreachable",
    "unsafe_text",
]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_CALLER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Tagged(BaseModel):
    """Every response says what it is for."""

    purpose: str = Field(default=PURPOSE, description="Always 'research/ops'.")
    disclaimer: str = Field(
        default=DISCLAIMER, description="Not for gambling or real-money betting."
    )


class ErrorOut(BaseModel):
    """The body of every error answer."""

    detail: Any = Field(description="The message, or FastAPI's list of validation errors (422).")
    message: str = Field(description="One line for a person.")
    request_id: str = Field(
        description="Also in the X-Request-ID header and in the server's log line of a 500."
    )


#: The OpenAPI entry of the 500 every route can answer.
SERVER_ERROR: dict[str, Any] = {
    "model": ErrorOut,
    "description": "a bug or a broken deployment; logged with the request id of the answer",
}


def request_id(request: Request) -> str:
    """The id of ``request`` (given by the contract's middleware; "-" for an app without it)."""
    return getattr(request.state, "request_id", None) or "-"


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says a server is out of reach (answer 503), not that the code is wrong.

    The database errors are those the ingest pipeline retries
    (:func:`edgefinder.esports.pipeline.failure_kind` "transient") plus the pool's own disconnect and
    checkout timeout; a statement the database refuses (undefined table, syntax, a bad value) is not.
    """
    if isinstance(exc, (ConnectionFailed, kombu.exceptions.OperationalError, *_REDIS_DOWN)):
        return True
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    return isinstance(exc, sa_exc.SQLAlchemyError) and failure_kind(exc) == "transient"


def error_response(
    request: Request,
    status: int,
    message: str,
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An :class:`ErrorOut` answer carrying the request's id."""
    body = {
        "detail": detail if detail is not None else message,
        "message": message,
        "request_id": request_id(request),
    }
    return JSONResponse(status_code=status, content=body, headers=headers)


def _unavailable(request: Request, exc: BaseException) -> JSONResponse:
    if isinstance(exc, sa_exc.SQLAlchemyError):
        message = f"database unavailable: {first_line(exc)}"
    elif isinstance(exc, _REDIS_DOWN):
        message = f"Redis unavailable: {first_line(exc)}"
    elif isinstance(exc, kombu.exceptions.OperationalError):
        message = f"broker unavailable: {first_line(exc)}"
    else:
        message = first_line(exc)
    log.warning(
        "%s %s answered 503 (request %s): %s",
        request.method,
        request.url.path,
        request_id(request),
        message,
    )
    return error_response(request, 503, message)


def _server_error(request: Request, exc: BaseException) -> JSONResponse:
    rid = request_id(request)
    log.error(
        "%s %s failed (request %s): %s: %s",
        request.method,
        request.url.path,
        rid,
        type(exc).__name__,
        first_line(exc),
        exc_info=exc,
    )
    if isinstance(exc, EdgefinderError):
        message = first_line(exc)
    elif isinstance(exc, sa_exc.SQLAlchemyError):  # its first line names what is broken
        message = f"database error ({type(exc).__name__}): {first_line(exc)}; request id {rid}"
    else:
        message = f"internal error ({type(exc).__name__}); see the server log, request id {rid}"
    return error_response(request, 500, message)


def _why_unsafe(text: str) -> str | None:
    if "\x00" in text:
        return "contains NUL (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate"
    return None


def _url_parts(request: Request) -> Iterator[tuple[list[str | int], bytes]]:
    """(location, percent-decoded bytes) of the path and of every query parameter's name and value."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode("utf-8", "surrogatepass")
    yield ["path"], unquote_to_bytes(raw_path)
    for pair in request.scope.get("query_string", b"").split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        name_b = unquote_to_bytes(name.replace(b"+", b" "))
        shown = name_b.decode("utf-8", "backslashreplace")
        yield ["query", shown], name_b
        yield ["query", shown], unquote_to_bytes(value.replace(b"+", b" "))


def _json_strings(value: Any, loc: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_strings(v, [*loc, i])
    elif isinstance(value, dict):
        for k, v in value.items():
            yield [*loc, k], k
            yield from _json_strings(v, [*loc, k])


async def unsafe_text(request: Request) -> list[dict[str, Any]]:
    """FastAPI-shaped validation errors for every string of the request no database can store.

    Checked: the path, every query parameter (name and value, percent-decoded: bytes that are not
    UTF-8 count, which is how an unpaired surrogate arrives in a URL) and every string of a JSON
    body (keys included). Empty when the request is clean. One guard for every route, present and
    future: a route's own validation would let ``\x00`` through to the database, where Postgres
    refuses it (and SQLite stores it).
    """
    errors: list[dict[str, Any]] = []
    for loc, raw in _url_parts(request):
        try:
            why = _why_unsafe(raw.decode("utf-8"))
        except UnicodeDecodeError:
            why = "is not UTF-8 (an unpaired surrogate or broken percent-encoding)"
        if why:
            errors.append({"type": "string_unsafe", "loc": loc, "msg": f"text {why}"})
    if request.method in ("POST", "PUT", "PATCH") and "json" in request.headers.get(
        "content-type", ""
    ):
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None  # not JSON: the route's own validation answers
        for loc, text in _json_strings(body, ["body"]):
            why = _why_unsafe(text)
            if why:
                errors.append({"type": "string_unsafe", "loc": loc, "msg": f"text {why}"})
    return errors


def install_error_contract(app: FastAPI) -> None:
    """Install the request ids and the error handlers of the module docstring on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        parts = []
        for e in errors[:3]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path", "body"))
            parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
        message = "invalid request: " + "; ".join(parts)
        return error_response(request, 422, message, detail=jsonable(errors, other=str))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(request, exc.status_code, str(exc.detail), headers=exc.headers)

    @app.middleware("http")
    async def _request_id(request: Request, call_next: Any) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER)
        rid = incoming if incoming and _CALLER_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.state.request_id = rid
        try:
            unsafe = await unsafe_text(request)
            if unsafe:
                where = ".".join(str(p) for p in unsafe[0]["loc"] if p not in ("query", "body"))
                response = error_response(
                    request, 422, f"invalid request: {where}: {unsafe[0]['msg']}", detail=unsafe
                )
            else:
                response = await call_next(request)
        except Exception as exc:  # every exception no route turned into an answer
            if unreachable(exc):
                response = _unavailable(request, exc)
            else:
                response = _server_error(request, exc)
        response.headers[REQUEST_ID_HEADER] = rid
        return response
