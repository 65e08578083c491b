"""The codec: LangChain and REST messages <-> stored records, exactly, and its errors."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from agent_memory import InvalidMessage, MessageTooLarge
from agent_memory.codec import (
    StoredMessage,
    decode_payload,
    encode_record,
    message_from_payload,
    record_from_input,
    record_from_langchain,
    record_to_langchain,
)
from tests.support.samples import FIDELITY


def through_codec(message: BaseMessage | dict[str, Any]) -> BaseMessage:
    payload = encode_record(record_from_input(message), 1_000_000)
    back = record_to_langchain(decode_payload(payload))
    direct = message_from_payload(payload)  # a chat history's read: the same message
    assert type(direct) is type(back)
    assert direct == back
    assert direct.model_fields_set == back.model_fields_set
    return back


@pytest.mark.parametrize(("written", "expected"), [(w, e) for _, w, e in FIDELITY])
def test_every_langchain_type_and_field_round_trips_exactly(
    written: BaseMessage, expected: BaseMessage
) -> None:
    back = through_codec(written)
    assert back == expected
    assert type(back) is type(expected)


def test_only_non_default_fields_are_stored() -> None:
    assert record_from_langchain(HumanMessage("hi")) == {"role": "user", "content": "hi"}
    assert record_from_langchain(ToolMessage("x", tool_call_id="c")) == {
        "role": "tool",
        "content": "x",
        "tool_call_id": "c",
    }


# -- generated messages ---------------------------------------------------------------------

json_scalars: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
)
json_scalars |= st.floats(allow_nan=False, allow_infinity=False)
keys = st.text(max_size=8).map(lambda k: "k_" + k)  # never a LangChain-reserved key
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(keys, json_values, max_size=4)
blocks = st.lists(
    st.text(max_size=20)
    | st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "data"])}, optional={"x": json_values}
    ),
    max_size=4,
)
content = st.text(max_size=60) | blocks
optional_id = st.none() | st.text(min_size=1, max_size=20)


@st.composite
def messages(draw: st.DrawFn) -> BaseMessage:
    common: dict[str, Any] = {
        "content": draw(content),
        "id": draw(optional_id),
        "additional_kwargs": draw(json_objects),
        "response_metadata": draw(json_objects),
    }
    kind = draw(st.sampled_from(["human", "ai", "system", "tool", "function", "chat"]))
    if kind != "function":
        common["name"] = draw(st.none() | st.text(max_size=10))
    if kind == "human":
        return HumanMessage(**common)
    if kind == "system":
        return SystemMessage(**common)
    if kind == "function":
        return FunctionMessage(name=draw(st.text(max_size=10)), **common)
    if kind == "chat":
        return ChatMessage(role=draw(st.text(max_size=10)), **common)
    if kind == "tool":
        return ToolMessage(
            tool_call_id=draw(st.text(max_size=10)),
            status=draw(st.sampled_from(["success", "error"])),
            artifact=draw(json_values),
            **common,
        )
    calls = st.lists(
        st.fixed_dictionaries(
            {"name": st.text(max_size=10), "args": json_objects, "id": optional_id}
        ),
        max_size=3,
    )
    usage = st.none() | st.fixed_dictionaries(
        {
            "input_tokens": st.integers(0, 10**6),
            "output_tokens": st.integers(0, 10**6),
            "total_tokens": st.integers(0, 10**6),
        }
    )
    return AIMessage(tool_calls=draw(calls), usage_metadata=draw(usage), **common)


@settings(max_examples=150, deadline=None)
@given(messages())
def test_generated_messages_round_trip(message: BaseMessage) -> None:
    back = through_codec(message)
    assert back == message
    assert type(back) is type(message)


# -- REST dicts -----------------------------------------------------------------------------


def test_rest_messages_become_langchain_messages() -> None:
    assistant = {
        "role": "assistant",
        "content": "calling",
        "id": "a1",
        "tool_calls": [{"id": "c1", "name": "search", "args": {"q": "redis"}}],
    }
    assert through_codec(assistant) == AIMessage(
        "calling", id="a1", tool_calls=[{"id": "c1", "name": "search", "args": {"q": "redis"}}]
    )
    tool = {"role": "tool", "content": "found", "tool_call_id": "c1"}
    assert through_codec(tool) == ToolMessage("found", tool_call_id="c1")
    user = {"role": "user", "content": "hi", "metadata": {"source": "web"}}
    assert through_codec(user) == HumanMessage(
        "hi", additional_kwargs={"metadata": {"source": "web"}}
    )


def test_a_langchain_message_and_its_rest_twin_store_the_same_record() -> None:
    rest = {"role": "system", "content": "rules", "name": "r", "id": "s1"}
    assert record_from_input(rest) == record_from_input(SystemMessage("rules", name="r", id="s1"))


def test_stored_message_to_dict_adds_cursor_and_time() -> None:
    stored = StoredMessage("1700000000123-4", {"role": "user", "content": "x"})
    assert stored.to_dict() == {
        "role": "user",
        "content": "x",
        "cursor": "1700000000123-4",
        "created_at": "2023-11-14T22:13:20.123000+00:00",
    }
    assert stored.id is None


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"role": "robot", "content": "x"}, "messages[3].role"),
        ({"role": "user"}, "messages[3].content"),
        ({"role": "tool", "content": "x"}, "tool_call_id"),
        ({"role": "user", "content": "x", "tool_calls": []}, "only allowed on role 'assistant'"),
        ({"role": "user", "content": "x", "surprise": 1}, "messages[3].surprise"),
        ({"role": "user", "content": "x", "id": ""}, "messages[3].id"),
        ("just text", "must be a LangChain message or a mapping"),
    ],
)
def test_invalid_input_messages_name_the_problem(message: Any, words: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        record_from_input(message, 3)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)
    assert (info.value.field or "").startswith("messages[3]")


@pytest.mark.parametrize(
    "message",
    [
        HumanMessage("x", additional_kwargs={"tags": {"a", "b"}}),
        HumanMessage("x", additional_kwargs={"obj": object()}),
        AIMessage("x", response_metadata={"score": math.nan}),
        ToolMessage("x", tool_call_id="c", artifact=float("inf")),
    ],
)
def test_unserialisable_messages_are_refused(message: BaseMessage) -> None:
    with pytest.raises(InvalidMessage, match=r"messages\[2\] cannot be stored as JSON"):
        encode_record(record_from_input(message, 2), 1_000_000, 2)


def test_an_oversized_message_is_refused_with_its_size() -> None:
    record = record_from_input(HumanMessage("x" * 1000))
    size = len(json.dumps(record, separators=(",", ":")).encode())
    assert encode_record(record, size)
    with pytest.raises(MessageTooLarge, match=f"is {size} bytes encoded; the limit is {size - 1}"):
        encode_record(record, size - 1)


def test_an_unknown_message_class_is_refused() -> None:
    class Odd(BaseMessage):
        type: str = "odd"

    with pytest.raises(InvalidMessage, match="unsupported LangChain message type Odd"):
        record_from_input(Odd(content="x"))


def test_two_reads_of_one_record_share_no_dicts() -> None:
    def message() -> AIMessage:
        return AIMessage(
            "",
            tool_calls=[{"id": "c1", "name": "f", "args": {"x": 1}}],
            usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
            response_metadata={"m": 1},
        )

    original = message()
    stored = StoredMessage(
        "1-0", decode_payload(encode_record(record_from_langchain(message()), 10**6))
    )
    first, second = stored.to_langchain(), stored.to_langchain()
    assert isinstance(first, AIMessage)
    first.tool_calls[0]["args"]["x"] = 99
    first.response_metadata["m"] = 99
    assert first.usage_metadata is not None
    first.usage_metadata["input_tokens"] = 99
    assert second == original
    assert stored.to_langchain() == original


_WRITTEN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1e15, max_value=1e300)
    | st.floats(min_value=-1e-5, max_value=1e-5)
    | st.text(alphabet='0123456789.e-+"\\é', max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)


@given(_WRITTEN)
@settings(max_examples=400, deadline=None)
def test_orjson_reads_what_orjson_writes_as_the_reader_does(value: Any) -> None:
    """encode_record checks its payload with orjson.loads; the reader (decode_payload) takes
    the json module for payloads with 19+ digit runs. On what orjson.dumps writes (64-bit
    integers, shortest floats, any string) both read the same values, types included."""
    payload = orjson.dumps({"v": value, "pad": 10**19})  # a long run: decode_payload -> json
    ours, theirs = orjson.loads(payload), decode_payload(payload)
    assert ours == theirs == {"v": value, "pad": 10**19}
    assert json.dumps(ours) == json.dumps(theirs)  # same types (int vs float, ...) everywhere
