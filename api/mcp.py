"""MCP over streamable HTTP at ``/mcp``, with the REST API's keys and tenants.

Each request is authenticated like a REST request (the same dependency resolves the key to its
tenant's store; no key -> 401, an admin key -> 403, before the body is read) and the MCP tools
then use that store only, so a key reaches over MCP exactly the conversations it reaches over
REST. Without the ``mcp`` extra installed the route is absent (404).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.deps import tenant_store

log = logging.getLogger("agent_memory.api")

PATH = "/mcp"


def available() -> bool:
    return importlib.util.find_spec("mcp") is not None


class McpRoute(Route):
    """``POST /mcp``: authenticate like a REST request, then hand the request to the app's MCP
    endpoint with the caller's store. The endpoint is stateless and answers in JSON, so it
    offers no SSE stream to GET and no session to DELETE: both are 405, as the MCP spec
    allows (an idle GET stream would only hold a connection open)."""

    def __init__(self) -> None:
        # ``handle`` below serves every request; the endpoint given here is never called.
        super().__init__(PATH, self.handle, methods=["POST"], include_in_schema=False)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in (self.methods or ()):
            await super().handle(scope, receive, send)  # 405 with Allow
            return
        scope["route"] = self  # the route label of the request metrics
        request = Request(scope, receive)
        store = await tenant_store(request)  # an ApiError here is the app's 401/403 JSON
        endpoint: Any = request.app.state.mcp
        await endpoint.handle(scope, receive, send, store)


def mount(app: FastAPI) -> None:
    """Add the ``/mcp`` route (absent without the mcp extra)."""
    if available():
        app.router.routes.append(McpRoute())
    else:
        log.info("MCP at %s is off: install agent-memory[mcp]", PATH)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Run the MCP endpoint for the app's lifespan (after ``app.state.api`` is built)."""
    if not available():
        yield
        return
    from agent_memory.mcp import HttpEndpoint, create_server

    endpoint = HttpEndpoint(create_server(settings=app.state.api.settings))
    async with endpoint.running():
        app.state.mcp = endpoint
        yield
