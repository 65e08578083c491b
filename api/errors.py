"""The one place where errors become HTTP responses: ``{"error": {"code", "message", "field"}}``.

Store errors map by class (not found 404, exists 409, stale version 412, too large 413, bad
input 422, Redis unreachable 503 with ``Retry-After``); request validation errors name the
field; anything unexpected is a 500 with a generic message (logged, no traceback sent).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Route

from agent_memory.errors import (
    AgentMemoryError,
    ConversationExists,
    ConversationNotFound,
    InvalidInput,
    ServerUnsupported,
    StoreUnavailable,
    TooLarge,
    UnreadableRecord,
    VersionConflict,
)

log = logging.getLogger("agent_memory.api")

RETRY_AFTER_SECONDS = "1"

# Most specific first: the first matching class wins.
_STATUS: tuple[tuple[type[AgentMemoryError], int, str], ...] = (
    (ConversationNotFound, 404, "not_found"),
    (ConversationExists, 409, "conflict"),
    (VersionConflict, 412, "version_conflict"),
    (TooLarge, 413, "too_large"),  # MessageTooLarge too
    (InvalidInput, 422, "invalid_input"),
    (StoreUnavailable, 503, "store_unavailable"),
    (ServerUnsupported, 501, "server_unsupported"),
    (UnreadableRecord, 500, "unreadable_record"),  # another program wrote the key
)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    412: "version_conflict",
    413: "too_large",
    422: "invalid_input",
}


class ApiError(Exception):
    """An error raised by the API layer itself (auth, headers, limits)."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _HTTP_CODES.get(status, "error")
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


def _store_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentMemoryError)
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
            return error_response(status, code, str(exc), getattr(exc, "field", None), headers)
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(502, "store_error", "the store failed; see the server log")


def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, str(exc), exc.field, headers)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, code, str(exc.detail), None, headers)


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
    """Register every handler on ``app``."""
    app.add_exception_handler(AgentMemoryError, _store_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
