"""Bad input is refused with a ValueError-family error naming the problem, and nothing is
stored; an unreachable Redis is a StoreUnavailable, never None or an empty list."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from agent_memory import (
    AgentMemoryError,
    AsyncConversationStore,
    ConversationExists,
    ConversationNotFound,
    ConversationStore,
    InvalidConversationId,
    InvalidCursor,
    InvalidInput,
    InvalidMessage,
    MessageTooLarge,
    RedisChatMessageHistory,
    StoreUnavailable,
    VersionConflict,
    errors,
)
from agent_memory.embedded import free_port
from tests.support.drivers import Driver
from tests.support.settings import make_settings

BAD_IDS = [
    ("", "must not be empty"),
    ("x" * 257, "257 characters long; at most 256"),
    ("a\nb", "control character U+000A"),
    ("a\x00", "control character U+0000"),
    ("\x1b[31m", "control character U+001B"),
]
GOOD = [{"role": "user", "content": "fine"}]


def nothing_stored(drv: Driver) -> None:
    assert drv.raw.keys("*") == []


@pytest.mark.parametrize(("bad", "words"), BAD_IDS)
async def test_bad_conversation_ids_are_refused_everywhere(
    drv: Driver, bad: str, words: str
) -> None:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("append", (bad, GOOD), {}),
        ("create", (bad,), {}),
        ("get_messages", (bad,), {}),
        ("get_conversation", (bad,), {}),
        ("update_conversation", (bad,), {"title": "t"}),
        ("delete_conversation", (bad,), {}),
        ("create", ("ok",), {"user_id": bad}),
        ("create", ("ok",), {"agent_id": bad}),
        ("list_conversations", (), {"user_id": bad}),
        ("delete_user", (bad,), {}),
    ]
    for name, args, kwargs in calls:
        with pytest.raises(InvalidConversationId, match=re.escape(words)) as info:
            await getattr(drv, name)(*args, **kwargs)
        assert isinstance(info.value, ValueError)
    nothing_stored(drv)


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"role": "user", "content": "x", "additional_kwargs": {"s": {1, 2}}}, "JSON"),
        ({"role": "user", "content": "x", "additional_kwargs": {"o": object()}}, "JSON"),
        ({"role": "user", "content": "x", "metadata": {"score": math.nan}}, "JSON"),
        ({"role": "user", "content": [{"type": "text", "v": math.inf}]}, "JSON"),
        (HumanMessage("x", additional_kwargs={"s": {1}}), "JSON"),
        (AIMessage("x", response_metadata={"nan": math.nan}), "JSON"),
        ({"role": "user", "content": "x", "id": "y" * 300}, "messages[1].id"),
        ({"role": "narrator", "content": "x"}, "messages[1].role"),
        ({"content": "x"}, "messages[1].role"),
        (None, "must be a LangChain message or a mapping"),
        (HumanMessage("x", additional_kwargs={1: "int key"}), "would not read back as written"),
        (
            AIMessage("x", tool_calls=[{"name": "f", "args": {"t": (1, 2)}, "id": "c"}]),
            "would not read back as written",
        ),
    ],
)
async def test_unstorable_messages_are_refused_and_nothing_is_stored(
    drv: Driver, message: Any, words: str
) -> None:
    with pytest.raises(InvalidMessage, match=re.escape(words)) as info:
        await drv.append("c1", [GOOD[0], message])
    assert "messages[1]" in str(info.value)
    assert (info.value.field or "").startswith("messages[1]")
    nothing_stored(drv)


async def test_an_oversized_message_is_refused(make_driver: Callable[..., Driver]) -> None:
    drv = make_driver(max_message_bytes=200)
    fits = {"role": "user", "content": "x" * 150}
    too_big = {"role": "user", "content": "x" * 200}
    with pytest.raises(
        MessageTooLarge, match=r"messages\[1\] is \d+ bytes encoded; the limit is 200"
    ):
        await drv.append("c1", [fits, too_big])
    nothing_stored(drv)
    assert len(await drv.append("c1", [fits])) == 1


async def test_too_many_messages_in_one_call(make_driver: Callable[..., Driver]) -> None:
    drv = make_driver(max_messages_per_request=3)
    with pytest.raises(InvalidInput, match="4 messages in one call; at most 3"):
        await drv.append("c1", GOOD * 4)
    nothing_stored(drv)
    assert len(await drv.append("c1", GOOD * 3)) == 3


@pytest.mark.parametrize("not_a_list", [GOOD[0], "hello", b"hello", HumanMessage("x")])
async def test_messages_must_be_a_sequence(drv: Driver, not_a_list: Any) -> None:
    with pytest.raises(InvalidInput, match="messages must be a sequence"):
        await drv.append("c1", not_a_list)
    nothing_stored(drv)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"metadata": {"s": {1}}}, "metadata cannot be stored as JSON"),
        ({"metadata": {"f": math.nan}}, "metadata cannot be stored as JSON"),
        ({"metadata": ["not", "an", "object"]}, "metadata must be a JSON object"),
        ({"title": "t" * 1025}, "title must be a string of at most 1024"),
        ({"title": 42}, "title must be a string"),
    ],
)
async def test_bad_conversation_fields_are_refused(
    drv: Driver, kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidInput, match=words):
        await drv.create("c1", **kwargs)
    nothing_stored(drv)
    await drv.create("c1")
    with pytest.raises(InvalidInput, match=words):
        await drv.update_conversation("c1", **kwargs)
    assert (await drv.get_conversation("c1")).version == 1


async def test_expected_version_must_be_an_integer(drv: Driver) -> None:
    await drv.create("c1")
    with pytest.raises(InvalidInput, match="expected_version"):
        await drv.update_conversation("c1", title="x", expected_version="1")


def test_the_hierarchy_has_one_root() -> None:
    for cls in (
        StoreUnavailable,
        ConversationNotFound,
        ConversationExists,
        VersionConflict,
        InvalidInput,
        InvalidConversationId,
        InvalidMessage,
        MessageTooLarge,
        InvalidCursor,
        errors.ServerUnsupported,
        errors.EmbeddedServerError,
    ):
        assert issubclass(cls, AgentMemoryError)
    for cls in (InvalidConversationId, InvalidMessage, MessageTooLarge, InvalidCursor):
        assert issubclass(cls, InvalidInput)
        assert issubclass(cls, ValueError)
    assert issubclass(ConversationNotFound, KeyError)
    assert str(ConversationNotFound("c")) == "conversation 'c' not found"


# -- Redis unreachable ----------------------------------------------------------------------


def closed_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/2"


SYNC_CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("ping", ()),
    ("append", ("c1", GOOD)),
    ("get_messages", ("c1",)),
    ("get_conversation", ("c1",)),
    ("create", ("c1",)),
    ("list_conversations", ()),
    ("delete_conversation", ("c1",)),
    ("delete_user", ("u",)),
    ("clear_all", ()),
]


@pytest.mark.parametrize(("name", "args"), SYNC_CALLS)
def test_unreachable_redis_raises_store_unavailable(name: str, args: tuple[Any, ...]) -> None:
    store = ConversationStore.from_settings(make_settings(redis_url=closed_url()))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        getattr(store, name)(*args)
    assert time.monotonic() - started < 5  # a hang guard, not a speed claim
    store.close()


@pytest.mark.parametrize(("name", "args"), SYNC_CALLS)
async def test_unreachable_redis_raises_store_unavailable_async(
    name: str, args: tuple[Any, ...]
) -> None:
    store = AsyncConversationStore.from_settings(make_settings(redis_url=closed_url()))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        await getattr(store, name)(*args)
    assert time.monotonic() - started < 5
    await store.aclose()


async def test_unreachable_redis_in_the_langchain_history() -> None:
    h = RedisChatMessageHistory("s", redis_url=closed_url(), settings=make_settings())
    with pytest.raises(StoreUnavailable):
        _ = h.messages
    with pytest.raises(StoreUnavailable):
        h.add_messages([HumanMessage("x")])
    with pytest.raises(StoreUnavailable):
        await h.aget_messages()
    with pytest.raises(StoreUnavailable):
        await h.aadd_messages([HumanMessage("x")])
    with pytest.raises(StoreUnavailable):
        h.clear()
