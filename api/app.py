"""The app factory: ``create_app(settings=None, store=None)``.

Nothing happens at import or in the factory besides building the app: the settings (from the
environment unless given) and the store are made in the lifespan, and the store's client is
closed on shutdown (unless the caller passed its own ``store``, which the caller closes).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from agent_memory import __version__
from agent_memory.aio import AsyncConversationStore
from agent_memory.settings import Settings
from api import errors, mcp, openapi
from api.deps import ApiState
from api.guard import RequestGuard
from api.routes import cache, conversations, health, messages, metrics
from api.telemetry import Metrics, MetricsMiddleware

log = logging.getLogger("agent_memory.api")

DESCRIPTION = """Durable conversation memory for AI agents, on plain Redis.

Errors are `{"error": {"code", "message", "field"}}`. With API keys configured, every path but
`/health` needs `Authorization: Bearer <key>`, checked before the body is read (this document
and `/docs` too, unless `AGENT_MEMORY_DOCS_PUBLIC` is set); `/metrics` needs an admin or
metrics key. Request bodies are bounded (`AGENT_MEMORY_MAX_BODY_BYTES`, 413 beyond).

A 503 on a write means **outcome unknown**: the write may have been stored. Retrying it with
the same message ids or the same `Idempotency-Key` is always safe: it never stores twice.

MCP (streamable HTTP) is served at `/mcp` with the same keys and tenants."""


def create_app(
    settings: Settings | None = None, store: AsyncConversationStore | None = None
) -> FastAPI:
    """The REST API. ``store`` (optional) is used as given, e.g. on a test's client."""
    telemetry = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings if settings is not None else store.settings if store else Settings()
        base = store if store is not None else AsyncConversationStore.from_settings(config)
        app.state.api = ApiState.build(config, base, telemetry)
        if not app.state.api.auth_enabled:
            log.warning(
                "agent-memory API runs WITHOUT authentication: set AGENT_MEMORY_API_KEYS "
                "(key:tenant,...) to require API keys"
            )
        try:
            async with mcp.running(app):
                yield
        finally:
            if store is None:
                await base.aclose()

    app = FastAPI(
        title="agent-memory",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Starlette's redirect to the path without a trailing slash would follow an id's
        # encoded slash too (it decodes into the path): `/conversations/a%2F` to conversation
        # `a`, `/conversations/%2F` to the listing. Such paths are 404 (documented); a trailing
        # `/` the client wrote is still redirected (errors._without_trailing_slash).
        redirect_slashes=False,
    )
    errors.install(app)
    # Documented in this order; matched with the message routes first (the busiest: every
    # router tried before the one that matches costs microseconds per request). No path
    # matches routes of two routers, so the order of matching changes no answer.
    documented = (health, conversations, messages, cache, metrics)
    openapi.install(
        app,
        lambda: app.state.api.settings,
        lambda: [route for module in documented for route in module.router.routes],
    )
    app.add_middleware(RequestGuard)  # inside MetricsMiddleware: its 401 and 413 are counted
    app.add_middleware(MetricsMiddleware, metrics=telemetry)
    for module in (messages, conversations, health, cache, metrics):
        app.include_router(module.router)
    mcp.mount(app)
    return app
