"""Error mapping: each store error class gets its status and stable code (a subclass its
nearest listed base's), one error shape everywhere. No Redis needed."""

from __future__ import annotations

import httpx
import pytest

from agent_memory import errors
from api.app import create_app
from api.errors import STATUSES, error_responses

RAISED: list[tuple[errors.AgentMemoryError, int, str]] = [
    (errors.ConversationNotFound("c"), 404, "not_found"),
    (errors.ConversationExists("c"), 409, "conflict"),
    (errors.VersionConflict("c", 1, 2), 412, "version_conflict"),
    (errors.MessageTooLarge("too big", field="messages[0]"), 413, "too_large"),
    (errors.InvalidMessage("bad", field="messages[0].role"), 422, "invalid_input"),
    (errors.InvalidConversationId("bad id", field="id"), 422, "invalid_input"),
    (errors.InvalidCursor("bad cursor", field="before"), 422, "invalid_input"),
    (errors.InvalidInput("bad"), 422, "invalid_input"),
    (errors.StoreUnavailable("down"), 503, "store_unavailable"),
    (errors.ServerUnsupported("no WAITAOF"), 501, "server_unsupported"),
    (errors.EmbeddedServerError("no binary"), 502, "store_error"),
    (errors.TooLarge("metadata too big", field="metadata"), 413, "too_large"),
    (errors.UnreadableRecord("foreign entry", field="messages"), 502, "store_error"),
]


def every_error_class() -> set[type[errors.AgentMemoryError]]:
    """Every public class of the hierarchy in ``agent_memory.errors``."""
    found: set[type[errors.AgentMemoryError]] = set()
    todo = [errors.AgentMemoryError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__ == errors.__name__:
                found.add(sub)
            todo.append(sub)
    return found


def test_the_table_covers_every_error_class() -> None:
    assert {type(exc) for exc, _, _ in RAISED} == every_error_class()


@pytest.mark.parametrize(("exc", "status", "code"), RAISED, ids=lambda v: type(v).__name__)
async def test_each_store_error_class_has_its_status_and_code(
    exc: errors.AgentMemoryError, status: int, code: str
) -> None:
    app = create_app()

    @app.get("/raise")
    async def raise_it() -> None:
        raise exc

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/raise")
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["field"] == getattr(exc, "field", None)
    assert (response.headers.get("retry-after") is not None) == (status == 503)
    if type(exc) is errors.EmbeddedServerError:  # an unexpected store error says nothing
        assert error["message"] == "the store failed; see the server log"
    else:
        assert error["message"] == str(exc)


def test_documented_error_responses_come_from_the_one_status_table() -> None:
    documented = error_responses(401, 404)
    assert sorted(documented) == [400, 401, 404, 422, 503]
    for status, entry in documented.items():
        assert isinstance(status, int)
        assert entry["description"] == STATUSES[status][1]
    with pytest.raises(ValueError, match="no description"):
        error_responses(502)
