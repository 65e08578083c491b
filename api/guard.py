"""Authenticate, then bound the body, before any route reads it (pure ASGI middleware).

FastAPI reads and parses a request's body before it resolves the route's dependencies, so a
dependency alone would answer invalid JSON with 422 before it looked at the key, and would
buffer a body of any size first. :class:`RequestGuard` runs before the routes:

1. Without a known key (when keys are configured), any path but ``/health`` (and the docs,
   if ``AGENT_MEMORY_DOCS_PUBLIC``) is answered 401 without reading a byte of the body.
2. A ``Content-Length`` over the body limit (``Settings.body_limit``) is answered 413 without
   reading the body.
3. A body without a length (chunked) is counted as it is received: the read that passes the
   limit raises :class:`BodyTooLarge`, which the error handlers answer with 413.

An answer given before the body was read carries ``Connection: close``, so the server does
not go on receiving (and discarding) the rest. Starlette's ``BaseHTTPMiddleware`` is not used:
it runs every request in a task group with memory streams, at a measurable cost.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ApiState, caller_of
from api.errors import ApiError, code_of, error_response

ALWAYS_PUBLIC = frozenset({"/health"})


class BodyTooLarge(HTTPException):
    """The body passed the limit while it was received (FastAPI re-raises an HTTPException
    from a body read, so the error handlers answer it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes (AGENT_MEMORY_MAX_BODY_BYTES)",
            headers={"Connection": "close"},
        )


class RequestGuard:
    """Add with ``app.add_middleware(RequestGuard)``; reads the app's ``ApiState``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: ApiState | None = getattr(scope["app"].state, "api", None)
        if scope["type"] != "http" or state is None:  # no lifespan ran: no route can serve
            await self.app(scope, receive, send)
            return
        limit = state.settings.body_limit
        try:
            if scope["path"] not in public_paths(scope):
                caller_of(scope)
            length = _content_length(Headers(scope=scope))
            if length is not None and length > limit:
                raise ApiError(413, str(BodyTooLarge(limit).detail), field="body")
        except ApiError as exc:
            headers = {"Connection": "close"}
            if exc.status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            response = error_response(exc.status, exc.code, str(exc), exc.field, headers)
            await response(scope, receive, send)
            return
        await self.app(scope, _bounded(receive, limit), send)


def public_paths(scope: Scope) -> frozenset[str]:
    """The paths served without a key: ``/health``, plus the docs and the schema when
    ``AGENT_MEMORY_DOCS_PUBLIC`` is set."""
    app = scope["app"]
    state: ApiState = app.state.api
    if not state.settings.docs_public:
        return ALWAYS_PUBLIC
    docs = (app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url)
    return ALWAYS_PUBLIC | {path for path in docs if path}


def _content_length(headers: Headers) -> int | None:
    raw = headers.get("content-length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise ApiError(400, "Content-Length must be a number of bytes", code=code_of(400))
    return int(raw)


def _bounded(receive: Receive, limit: int) -> Receive:
    """``receive`` that counts the body's bytes and raises BodyTooLarge past ``limit``."""
    received = 0

    async def bounded() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return bounded
