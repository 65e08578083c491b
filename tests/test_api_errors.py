"""Error mapping: each store error class gets its status and stable code (a subclass its
nearest listed base's), one error shape everywhere. No Redis needed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio

from agent_memory import AsyncConversationStore, errors
from agent_memory.embedded import free_port
from agent_memory.rules import ID_PATTERN
from api.app import create_app
from api.errors import STATUSES, error_responses
from tests.support.api import api_client, running
from tests.support.backends import Backend
from tests.support.settings import make_settings

RAISED: list[tuple[errors.AgentMemoryError, int, str]] = [
    (errors.ConversationNotFound("c"), 404, "not_found"),
    (errors.ConversationExists("c"), 409, "conflict"),
    (errors.VersionConflict("c", 1, 2), 412, "version_conflict"),
    (errors.MessageTooLarge("too big", field="messages[0]"), 413, "too_large"),
    (errors.InvalidMessage("bad", field="messages[0].role"), 422, "invalid_input"),
    (errors.InvalidConversationId("bad id", field="id"), 422, "invalid_input"),
    (errors.InvalidCursor("bad cursor", field="before"), 422, "invalid_input"),
    (errors.IdempotencyKeyReused("key used with other messages"), 422, "invalid_input"),
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
    # REST names the header a client sent (as request validation does), the library its argument
    rest_name = {"idempotency_key": "idempotency-key"}
    field = getattr(exc, "field", None)
    assert error["field"] == rest_name.get(field, field) if field else error["field"] is None
    assert (response.headers.get("retry-after") is not None) == (status == 503)
    if type(exc) is errors.EmbeddedServerError:  # an unexpected store error says nothing
        assert error["message"] == "the store failed; see the server log"
    elif status in (501, 503):  # no internal text (addresses, Redis errors): only in the log
        assert str(exc) not in error["message"]
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


# -- body limit, information exposure, strict version -----------------------------------------
async def test_a_body_over_the_limit_is_413_by_length_and_by_stream(backend: Backend) -> None:
    async with api_client(backend, max_body_bytes=1000) as client:
        url = "/api/v1/conversations/c/messages"
        by_length = await client.post(url, content=b"x" * 1001)
        assert by_length.status_code == 413, by_length.text
        assert by_length.json()["error"]["code"] == "too_large"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b'{"messages": [' + b" " * 200

        streamed = await client.post(url, content=chunks())
        assert streamed.status_code == 413, streamed.text
        ok = await client.post(url, json={"messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 201


async def test_unreachable_redis_shows_no_address_in_health_or_errors() -> None:
    config = make_settings(socket_timeout=0.2, connect_timeout=0.2, retries=0)
    dead = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=0.2)
    store = AsyncConversationStore(dead, settings=config)
    async with running(create_app(config, store)) as client:
        health = await client.get("/health")
        write = await client.post(
            "/api/v1/conversations/c/messages",
            json={"messages": [{"role": "user", "content": "x"}]},
        )
    assert health.status_code == 503
    assert write.status_code == 503
    assert write.headers["retry-after"]
    for text in (health.text, write.text):
        assert "127.0.0.1" not in text
        assert "Error" not in text
    assert "outcome is unknown" in write.json()["error"]["message"]


@pytest.mark.parametrize("version", [False, "1", 1.0])
async def test_version_must_be_an_integer(backend: Backend, version: object) -> None:
    async with api_client(backend) as client:
        await client.post("/api/v1/conversations", json={"id": "c"})
        response = await client.patch("/api/v1/conversations/c", json={"version": version})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "version"


async def test_the_schema_states_what_the_server_enforces(backend: Backend) -> None:
    async with api_client(backend, max_page_size=50, max_messages_per_request=20) as client:
        doc = (await client.get("/openapi.json")).json()
        limits = [
            b["maximum"]
            for path in doc["paths"].values()
            for op in path.values()
            for p in op.get("parameters", [])
            if p["name"] == "limit"
            for b in p["schema"]["anyOf"]
            if b.get("type") == "integer"
        ]
        assert limits == [50, 50]
        assert (await client.get("/api/v1/conversations", params={"limit": 51})).status_code == 422
        schemas = doc["components"]["schemas"]
        assert schemas["MessagesIn"]["properties"]["messages"]["maxItems"] == 20
        many = {"messages": [{"role": "user", "content": "x"}] * 21}
        assert (await client.post("/api/v1/conversations/c/messages", json=many)).status_code == 422
        for name in ("id", "user_id", "agent_id"):
            field = schemas["ConversationCreate"]["properties"][name]["anyOf"][0]
            assert field["pattern"] == ID_PATTERN
            refused = await client.post("/api/v1/conversations", json={name: "a\x07b"})
            assert refused.status_code == 422, name
        chat = {"if": {"properties": {"role": {"const": "chat"}}, "required": ["role"]}}
        assert any(r["if"] == chat["if"] for r in schemas["Message"]["allOf"])
        no_role = {"messages": [{"role": "chat", "content": "x"}]}
        assert (
            await client.post("/api/v1/conversations/c/messages", json=no_role)
        ).status_code == 422
        version = schemas["ConversationUpdate"]["properties"]["version"]["anyOf"][0]
        assert version["type"] == "integer"


def test_each_error_class_code_is_its_rest_status_code() -> None:
    """One code per class, in errors.py: REST reports it, and it is the code of the status the
    class maps to (so a client sees one vocabulary across REST and MCP)."""
    from api.errors import _STORE_STATUS

    for cls, status in _STORE_STATUS.items():
        assert cls.code == STATUSES[status][0], cls
    assert errors.MessageTooLarge.code == "too_large"
    assert errors.InvalidCursor.code == "invalid_input"
