"""Hostile input at the library's depth: what no reader could serve is refused at write (JSON
nesting, lone surrogates, non-string keys, bytes per call and per metadata), nothing another
program stored can make a read or listing fail, malformed cursors are InvalidCursor, and the
errors name the field and the setting. On fakeredis and a real redis-server (``drv``), through
both drivers; REST in-process where the API's answer is the point."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from agent_memory import (
    AsyncConversationStore,
    ConversationStore,
    InvalidCursor,
    InvalidInput,
    InvalidMessage,
    MessageTooLarge,
    Settings,
    TooLarge,
    UnreadableRecord,
)
from agent_memory.codec import encode_metadata, encode_record
from agent_memory.plans.listing import decode_list_cursor, encode_list_cursor
from agent_memory.transfer import iter_export
from api.app import create_app


def settings_of(**values: Any) -> Settings:
    """Settings that ignore the developer's environment: only what the test says."""
    return Settings.model_validate({"redis_url": None, "redis_host": None, **values})


def nest(levels: int, leaf: Any = "x") -> Any:
    """``levels`` nested objects: ``nest(2) == {"a": {"a": "x"}}``."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


@asynccontextmanager
async def rest(backend: Any, **values: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the API app in-process (lifespan run) over ``backend``."""
    config = settings_of(**values)
    client = backend.async_client()
    app = create_app(config, AsyncConversationStore(client, settings=config))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                yield http
    finally:
        await client.aclose()


def user(content: Any, **fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **fields}


# -- 1. nesting deeper than the readers take ------------------------------------------------

DEEP = 64  # the default AGENT_MEMORY_MAX_JSON_DEPTH; the message object is level 1


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (user([nest(DEEP)]), "messages[0].content"),
        (user("x", metadata=nest(DEEP)), "messages[0].metadata"),
        (user("x", additional_kwargs=nest(DEEP)), "messages[0].additional_kwargs"),
        (user("x", response_metadata=nest(300)), "messages[0].response_metadata"),
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "1", "name": "f", "args": nest(DEEP)}],
            },
            "messages[0].tool_calls",
        ),
    ],
)
async def test_nesting_beyond_the_depth_limit_is_refused_naming_the_field(
    drv: Any, message: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidMessage, match="AGENT_MEMORY_MAX_JSON_DEPTH") as caught:
        await drv.append("c", [message])
    assert caught.value.field == field
    assert drv.raw.keys("*") == []  # nothing stored


async def test_nesting_up_to_the_limit_is_stored_and_read_back(drv: Any) -> None:
    message = user([nest(DEEP - 2)], metadata=nest(DEEP - 2))  # message 1, list 2 / metadata 2
    (stored,) = await drv.append("c", [message])
    (read,) = await drv.get_messages("c")
    assert read.record == stored.record == message
    deep_meta = nest(DEEP - 1)  # the metadata object is level 1
    assert (await drv.create("m", metadata=deep_meta)).metadata == deep_meta
    assert (await drv.get_conversation("m")).metadata == deep_meta


async def test_metadata_too_deep_is_refused_at_create_and_update(drv: Any) -> None:
    for deep in (nest(DEEP + 1), nest(300), nest(5000)):  # 5000 overflows the json module
        with pytest.raises(InvalidInput, match="AGENT_MEMORY_MAX_JSON_DEPTH") as caught:
            await drv.create("p", metadata=deep)
        assert caught.value.field == "metadata"
    await drv.create("p")
    with pytest.raises(InvalidInput) as caught:
        await drv.update_conversation("p", metadata=nest(300))
    assert caught.value.field == "metadata"
    assert (await drv.get_conversation("p")).metadata == {}


def test_the_depth_limit_is_a_setting() -> None:
    assert settings_of().max_json_depth == 64
    assert settings_of(AGENT_MEMORY_MAX_JSON_DEPTH="12").max_json_depth == 12
    with pytest.raises(ValueError, match="max_json_depth"):
        settings_of(max_json_depth=255)  # beyond what orjson reads
    with pytest.raises(InvalidMessage):
        encode_record(user([nest(12)]), 10_000, max_depth=12)


def test_metadata_that_json_would_change_is_refused() -> None:
    for bad in ({1: "int key"}, {"t": (1, 2)}, {"n": math.nan}, {"s": {1, 2}}):
        with pytest.raises(InvalidInput) as caught:
            encode_metadata(bad, max_bytes=65536, max_depth=64)
        assert caught.value.field == "metadata"


# -- 2. lone UTF-16 surrogates --------------------------------------------------------------

LONE = "\ud800"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (user(LONE), "messages[0].content"),
        (user([{"type": "text", "text": LONE}]), "messages[0].content"),
        (user("x", metadata={LONE: 1}), "messages[0].metadata"),
        (user("x", metadata={"k": LONE}), "messages[0].metadata"),
        (user("x", name=LONE), "messages[0].name"),
        (user("x", id=LONE), "messages[0].id"),
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "1", "name": "f", "args": {"q": LONE}}],
            },
            "messages[0].tool_calls",
        ),
    ],
)
async def test_a_lone_surrogate_in_a_message_is_refused_naming_the_field(
    drv: Any, message: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidMessage) as caught:  # by the library, or by pydantic (ids)
        await drv.append("c", [message])
    assert caught.value.field == field
    assert LONE not in str(caught.value)


async def test_a_lone_surrogate_in_ids_titles_metadata_and_keys_is_refused(drv: Any) -> None:
    calls: list[tuple[str, Any]] = [
        ("conversation id", drv.create(f"c{LONE}")),
        ("user_id", drv.create("c", user_id=LONE)),
        ("agent_id", drv.create("c", agent_id=LONE)),
        ("title", drv.create("c", title=f"t{LONE}")),
        ("metadata", drv.create("c", metadata={"k": [LONE]})),
        ("metadata", drv.create("c", metadata={LONE: 1})),
        ("conversation id", drv.append(LONE, [user("x")])),
        ("idempotency_key", drv.append("c", [user("x")], idempotency_key=LONE)),
        ("user_id", drv.list_conversations(user_id=LONE)),
    ]
    for field, call in calls:
        with pytest.raises(InvalidInput) as caught:
            await call
        assert caught.value.field == field
        assert LONE not in str(caught.value)
    await drv.create("c")
    for changes in ({"title": LONE}, {"metadata": {"a": LONE}}):
        with pytest.raises(InvalidInput):
            await drv.update_conversation("c", **changes)
    assert drv.raw.hget(drv.keys.conversation("c").meta, "version") == b"1"


async def test_rest_answers_422_for_lone_surrogates_never_500(backend: Any) -> None:
    bodies = [
        (
            "post",
            "/api/v1/conversations/c/messages",
            '{"messages":[{"role":"user","content":"\\ud800"}]}',
        ),
        ("post", "/api/v1/conversations", '{"id":"p","metadata":{"\\udfff":1}}'),
        ("post", "/api/v1/conversations", '{"id":"p","title":"\\ud800"}'),
        ("post", "/api/v1/conversations", '{"id":"\\ud800"}'),
        (
            "post",
            "/api/v1/conversations/c/messages",
            '{"messages":[{"role":"user","content":"x","\\ud800":1}]}',
        ),
        (
            "post",
            "/api/v1/conversations/c/messages",
            '{"messages":[{"role":"assistant","content":"","tool_calls":[{"id":"1","name":"f","args":{"\\ud800":"x"}}]}]}',
        ),
    ]
    async with rest(backend) as http:
        assert (await http.post("/api/v1/conversations", json={"id": "c"})).status_code == 201
        bodies.append(("patch", "/api/v1/conversations/c", '{"metadata":{"a":"\\ud800"}}'))
        for method, path, body in bodies:
            answer = await http.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["error"]["field"]


# -- 4. bytes per call and per metadata -----------------------------------------------------


async def test_an_append_beyond_the_bytes_per_call_cap_is_refused_naming_the_setting(
    make_driver: Any,
) -> None:
    drv = make_driver(max_append_bytes=10_000)
    messages = [user("x" * 3000) for _ in range(4)]  # each fits, all four do not
    with pytest.raises(MessageTooLarge, match="AGENT_MEMORY_MAX_APPEND_BYTES") as caught:
        await drv.append("c", messages)
    assert caught.value.field == "messages"
    assert isinstance(caught.value, TooLarge)
    assert drv.raw.keys("*") == []
    assert len(await drv.append("c", messages[:3])) == 3


async def test_metadata_beyond_its_byte_cap_is_refused_naming_the_setting(make_driver: Any) -> None:
    drv = make_driver(max_metadata_bytes=1000)
    with pytest.raises(TooLarge, match="AGENT_MEMORY_MAX_METADATA_BYTES") as caught:
        await drv.create("c", metadata={"blob": "x" * 1000})
    assert caught.value.field == "metadata"
    await drv.create("c", metadata={"blob": "x" * 900})
    with pytest.raises(TooLarge):
        await drv.update_conversation("c", metadata={"blob": "y" * 2000})


async def test_rest_answers_413_beyond_the_call_and_metadata_caps(backend: Any) -> None:
    async with rest(backend, max_append_bytes=5000, max_metadata_bytes=500) as http:
        big = {"messages": [{"role": "user", "content": "x" * 2000} for _ in range(3)]}
        answer = await http.post("/api/v1/conversations/c/messages", json=big)
        assert answer.status_code == 413
        assert "AGENT_MEMORY_MAX_APPEND_BYTES" in answer.json()["error"]["message"]
        answer = await http.post("/api/v1/conversations", json={"metadata": {"a": "x" * 600}})
        assert (answer.status_code, answer.json()["error"]["field"]) == (413, "metadata")


# -- 1. nothing stored can make a read fail -------------------------------------------------


def _foreign_entries(raw: Any, stream: str) -> None:
    """Stream entries another program could write into a conversation's stream."""
    raw.xadd(stream, {"m": b"not json"})
    raw.xadd(stream, {"other": b"field"})
    raw.xadd(stream, {"m": json.dumps(nest(300, user("deep")))})
    raw.xadd(stream, {"m": json.dumps({"role": "robot", "content": "?"})})
    raw.xadd(stream, {"m": json.dumps({"role": "user", "content": 5})})
    raw.xadd(stream, {"m": b"\xff\xfe"})
    raw.xadd(stream, {"m": "[" * 3000 + "]" * 3000})


async def test_reads_skip_entries_another_program_wrote(drv: Any, caplog: Any) -> None:
    await drv.append("c", [user("before")])
    _foreign_entries(drv.raw, drv.keys.conversation("c").stream)
    await drv.append("c", [user("after")])
    assert [m.record["content"] for m in await drv.get_messages("c")] == ["before", "after"]
    assert [m.record["content"] for m in await drv.get_messages("c", limit=3)] == ["after"]
    assert [m.content for m in await drv.get_langchain_messages("c")] == ["before", "after"]
    assert "skipped stream entry" in caplog.text


async def test_a_foreign_metadata_hash_is_one_clear_error_and_skipped_by_listing(
    drv: Any, caplog: Any
) -> None:
    for cid in ("a", "bad", "worse", "z"):
        await drv.create(cid, user_id="u")
    meta = drv.keys.conversation("bad").meta
    drv.raw.hdel(meta, "created_at")
    drv.raw.hset(drv.keys.conversation("worse").meta, "metadata", "[" * 5000)
    drv.raw.zadd(drv.keys.index_all, {b"\xff\xfe": 1, b"ctl\x01": 2})  # no id of ours
    with pytest.raises(UnreadableRecord):
        await drv.get_conversation("bad")
    for filters in ({}, {"user_id": "u"}):
        page = await drv.list_conversations(**filters)
        assert [c.id for c in page.items] == ["z", "a"]
    assert "listing skipped conversation" in caplog.text
    assert drv.raw.zscore(drv.keys.index_all, b"\xff\xfe") is None  # pruned as dead
    one = await drv.list_conversations(limit=1)
    assert [
        c.id for c in (await drv.list_conversations(limit=1, cursor=one.next_cursor)).items
    ] == ["a"]


def test_export_skips_entries_it_cannot_read(backend: Any, settings: Settings) -> None:
    store = ConversationStore(backend.client, settings=settings)
    store.append("c", [user("kept")])
    _foreign_entries(backend.client, store.keys.conversation("c").stream)
    store.create("broken")
    backend.client.hset(store.keys.conversation("broken").meta, "title", b"\xff")
    lines = [json.loads(line) for line in iter_export(store)]
    messages = [line["message"]["content"] for line in lines if line["type"] == "message"]
    assert messages == ["kept"]
    assert {line["id"] for line in lines if line["type"] == "conversation"} == {"c"}


async def test_rest_serves_a_tenant_whose_store_holds_foreign_records(backend: Any) -> None:
    async with rest(backend) as http:
        await http.post("/api/v1/conversations/c/messages", json={"messages": [user("ok")]})
        await http.post("/api/v1/conversations", json={"id": "bad"})
        keys = ConversationStore(backend.client, settings=settings_of()).keys
        _foreign_entries(backend.client, keys.conversation("c").stream)
        backend.client.hset(keys.conversation("bad").meta, "metadata", "{")
        listing = await http.get("/api/v1/conversations")
        assert listing.status_code == 200
        assert [c["id"] for c in listing.json()["items"]] == ["c"]
        read = await http.get("/api/v1/conversations/c/messages")
        assert [m["content"] for m in read.json()["messages"]] == ["ok"]
        bad = await http.get("/api/v1/conversations/bad")  # named, never a bare 500
        assert bad.status_code == 502
        assert bad.json()["error"]["code"] == "store_error"


# -- 6. cursors -----------------------------------------------------------------------------


@pytest.mark.parametrize("cursor", ["000-0", "0-00", "01-5", "1-01", "٣-0", "1-", "-1", "1-2-3"])
async def test_a_non_canonical_stream_cursor_is_invalid(drv: Any, cursor: str) -> None:
    await drv.append("c", [user("x")])
    for bound in ("before", "after"):
        with pytest.raises(InvalidCursor):
            await drv.get_messages("c", limit=5, **{bound: cursor})


def _raw_cursor(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _raw_cursor('[NaN,"x"]'),
        _raw_cursor('[Infinity,"x"]'),
        _raw_cursor('[-Infinity,"x"]'),
        _raw_cursor(f'[{"9" * 400},"x"]'),
        _raw_cursor('[1,"\\ud800"]'),
        _raw_cursor('[true,"x"]'),
        _raw_cursor('["1","x"]'),
        _raw_cursor("[1,2]"),
        _raw_cursor("[1]"),
        _raw_cursor('{"a":1}'),
        _raw_cursor("[" * 5000),
        "%%%",
        "\ud800",
        "",
    ],
)
async def test_a_malformed_list_cursor_is_invalid(drv: Any, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await drv.list_conversations(cursor=cursor)


def test_a_list_cursor_round_trips() -> None:
    assert decode_list_cursor(encode_list_cursor(1.5e12, "ü{x}")) == (1.5e12, "ü{x}")
    with pytest.raises(InvalidCursor):
        decode_list_cursor(7)


async def test_rest_answers_4xx_for_malformed_cursors(backend: Any) -> None:
    async with rest(backend) as http:
        await http.post("/api/v1/conversations/c/messages", json={"messages": [user("x")]})
        for query in ("before=000-0", "after=0-00", "before=01-1"):
            answer = await http.get(f"/api/v1/conversations/c/messages?{query}")
            assert answer.status_code == 422, query
        for cursor in (
            _raw_cursor('[NaN,"x"]'),
            _raw_cursor(f'[{"9" * 400},"x"]'),
            _raw_cursor('[1,"\\ud800"]'),
        ):
            answer = await http.get("/api/v1/conversations", params={"cursor": cursor})
            assert answer.status_code == 422, cursor
