"""The OpenAPI document: FastAPI's, plus the limits the settings enforce, so that a client
generated from it cannot send what the server refuses.

The routes are declared once for every app, but their bounds are settings: the page size
(``limit`` maximum) and the messages of one call (``maxItems``). They are written into the
generated document here, for the settings of the running app. (Encoded message bytes are not
expressible in JSON Schema; they are refused with 413.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from agent_memory.settings import Settings


def install(
    app: FastAPI, settings_of: Any, routes_of: Callable[[], Sequence[BaseRoute]] | None = None
) -> None:
    """Make ``app.openapi()`` build (once) the document with the limits of ``settings_of()``,
    of the routes ``routes_of()`` in their order (default: the app's routes)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=routes_of() if routes_of is not None else app.routes,
            )
            app.openapi_schema = with_limits(document, settings_of())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_limits(document: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``document`` with the settings' bounds on paging and messages per call."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "limit" and parameter["in"] == "query":
                    _integer(parameter["schema"])["maximum"] = settings.max_page_size
    schemas = document.get("components", {}).get("schemas", {})
    if "MessagesIn" in schemas:
        messages = schemas["MessagesIn"]["properties"]["messages"]
        messages["maxItems"] = settings.max_messages_per_request
    return document


def _integer(schema: dict[str, Any]) -> dict[str, Any]:
    """The integer branch of an optional parameter's schema (``anyOf: [integer, null]``)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "integer":
            found: dict[str, Any] = branch
            return found
    raise ValueError(f"no integer in {schema}")
