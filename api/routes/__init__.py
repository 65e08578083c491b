"""One router per resource; ``errors(...)`` documents the error responses of a route."""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorBody

_DESCRIPTIONS = {
    400: "The request body cannot be decoded",
    401: "Missing or invalid API key",
    403: "This key may not use this route",
    404: "No such conversation (or another tenant's)",
    409: "The conversation id is taken",
    412: "Stale version (If-Match / version)",
    413: "A message is larger than the configured limit",
    422: "Invalid input; `error.field` names the field",
    503: "Redis is unreachable (see Retry-After)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the given error statuses (400, 422 and 503 always apply)."""
    return {
        s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]}
        for s in sorted({*statuses, 400, 422, 503})
    }
