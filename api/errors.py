"""The one place where errors become HTTP responses: ``{"error": {"code", "message", "field"}}``.

Each error status has one entry in :data:`STATUSES` (its stable code and the description the
OpenAPI document gives it). Store errors map by class, one exception handler each (Starlette
picks the handler of the nearest base class): not found 404, exists 409, stale version 412,
too large 413, bad input 422, Redis unreachable 503 with ``Retry-After``, unsupported server
501, a record another program wrote 502 naming it, any other store error 502; request
validation errors name the field; anything unexpected is a 500 with a generic message
(logged, no traceback sent).
No answer carries internal error text (addresses, Redis errors): a 503 or 501 says what
happened in plain words, the details go to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from agent_memory.errors import (
    AgentMemoryError,
    ConversationExists,
    ConversationNotFound,
    IdempotencyKeyReused,
    InvalidInput,
    ServerUnsupported,
    StoreUnavailable,
    TooLarge,
    UnreadableRecord,
    VersionConflict,
)
from api.schemas import ErrorBody

log = logging.getLogger("agent_memory.api")

RETRY_AFTER_SECONDS = "1"

# status -> (stable error code, OpenAPI description); a description of None: not documented.
STATUSES: dict[int, tuple[str, str | None]] = {
    400: ("bad_request", "The request body cannot be decoded"),
    401: ("unauthorized", "Missing or invalid API key"),
    403: ("forbidden", "This key may not use this route"),
    404: (
        "not_found",
        "No such conversation (or another tenant's); or no such path: an id containing `/` "
        "cannot be addressed in a path",
    ),
    405: ("method_not_allowed", None),
    409: ("conflict", "The conversation id is taken"),
    412: ("version_conflict", "Stale version (If-Match / version)"),
    413: ("too_large", "The request body or a message is larger than the configured limit"),
    422: (
        "invalid_input",
        "Invalid input; `error.field` names the field or header (`idempotency-key`: an "
        "`Idempotency-Key` already used with another body)",
    ),
    501: ("server_unsupported", None),
    502: ("store_error", None),
    503: (
        "store_unavailable",
        "Redis is unreachable or did not answer in time (see Retry-After). On a write the "
        "outcome is unknown (it may have been stored): retrying with the same message ids or "
        "Idempotency-Key is always safe",
    ),
}
UNAVAILABLE_MESSAGE = (
    "the store is unreachable or did not answer in time; retry after Retry-After seconds "
    "(a write's outcome is unknown: retrying it with the same message ids or Idempotency-Key "
    "is safe)"
)

# The status of each store error class; a subclass gets its nearest listed base's status.
_STORE_STATUS: dict[type[AgentMemoryError], int] = {
    ConversationNotFound: 404,
    ConversationExists: 409,
    VersionConflict: 412,
    TooLarge: 413,  # MessageTooLarge too
    InvalidInput: 422,
    StoreUnavailable: 503,
    ServerUnsupported: 501,
    UnreadableRecord: 502,  # another program wrote the key: named, never a bare 500
}

Handler = Callable[[Request, Exception], JSONResponse]


def code_of(status: int) -> str:
    return STATUSES[status][0] if status in STATUSES else "error"


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries of a route's error statuses (400, 422 and 503 always apply)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 400, 422, 503}):
        description = STATUSES[status][1]
        if description is None:
            raise ValueError(f"status {status} has no description in api.errors.STATUSES")
        out[status] = {"model": ErrorBody, "description": description}
    return out


class ApiError(Exception):
    """An error raised by the API layer itself (auth, headers, limits)."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or code_of(status)
        self.field = field


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def _store_error(status: int) -> Handler:
    """The handler of one store error class: its status, the error's own code and field."""
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None

    def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AgentMemoryError)
        return error_response(status, exc.code, str(exc), exc.field, headers)

    return handle


def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503: the library's message names the server and its error: logged, not sent."""
    log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    headers = {"Retry-After": RETRY_AFTER_SECONDS}
    return error_response(503, code_of(503), UNAVAILABLE_MESSAGE, None, headers)


def _unsupported(request: Request, exc: Exception) -> JSONResponse:
    log.error("server unsupported on %s %s: %s", request.method, request.url.path, exc)
    message = "the Redis server lacks a feature this store's configuration needs; see the log"
    return error_response(501, code_of(501), message)


def _key_reused(request: Request, exc: Exception) -> JSONResponse:
    """422 naming the header as every other error about it does (``idempotency-key``, the
    way request validation names headers; the library's error names its ``idempotency_key``
    argument)."""
    assert isinstance(exc, IdempotencyKeyReused)
    message = str(exc).replace("this idempotency_key", "this Idempotency-Key header", 1)
    return error_response(422, exc.code, message, "idempotency-key")


def _other_store_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(502, code_of(502), "the store failed; see the server log")


def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, str(exc), exc.field, headers)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and (redirect := _without_trailing_slash(request)) is not None:
        return redirect
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    field = "body" if exc.status_code == 413 else None
    return error_response(
        exc.status_code, code_of(exc.status_code), str(exc.detail), field, headers
    )


def _without_trailing_slash(request: Request) -> Response | None:
    """307 to the path without its trailing ``/`` when the client wrote that ``/`` (not an
    encoded ``%2F`` of an id, which decodes into the path too) and a route matches without it:
    the redirect Starlette makes, minus the one that sent ``/conversations/a%2F`` to ``a``."""
    raw: bytes = request.scope.get("raw_path") or b""
    path: str = request.scope["path"]
    if not (raw.endswith(b"/") and path.endswith("/") and len(raw) > 1):
        return None
    scope = {**request.scope, "path": path[:-1]}
    if not any(route.matches(scope)[0] != Match.NONE for route in request.app.router.routes):
        return None
    query = request.scope.get("query_string") or b""
    location = raw[:-1] + (b"?" + query if query else b"")
    return Response(status_code=307, headers={"Location": location.decode("latin-1")})


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path (Starlette lists only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.path_regex.match(request.scope["path"]):
            methods |= set(route.methods or ())
    return ", ".join(sorted(methods))


def _field_of(loc: tuple[int | str, ...]) -> str:
    """``("body", "messages", 0, "role")`` -> ``messages[0].role``; ``("query", "limit")`` ->
    ``limit``. A key that cannot be written as UTF-8 (a lone surrogate) is shown escaped."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out.encode("utf-8", "backslashreplace").decode() or "body"


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    field = _field_of(tuple(first.get("loc", ())))
    return error_response(422, "invalid_input", f"{field}: {first.get('msg', 'invalid')}", field)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; see the server log")


def install(app: FastAPI) -> None:
    """Register every handler on ``app``: one per error class."""
    own: dict[type[AgentMemoryError], Handler] = {
        StoreUnavailable: _unavailable,
        ServerUnsupported: _unsupported,
    }
    for cls, status in _STORE_STATUS.items():
        app.add_exception_handler(cls, own.get(cls) or _store_error(status))
    app.add_exception_handler(IdempotencyKeyReused, _key_reused)  # an InvalidInput: 422
    app.add_exception_handler(AgentMemoryError, _other_store_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
