"""Stored payloads are plain JSON, read exactly whoever wrote them: no trailing byte is
trusted to say "safe for orjson" (a foreign writer's JSON Lines end in a newline too)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage

from agent_memory import AsyncConversationStore, ConversationStore, Settings, codec
from agent_memory.codec import decode_payload, encode_record, message_from_payload
from agent_memory.errors import InvalidInput
from agent_memory.keys import KeySchema
from agent_memory.plans import messages as messages_plans
from agent_memory.replies import entry_payload
from tests.support.backends import Backend

BIG = 2**70 + 1  # beyond 64 bits: orjson alone would read it as a float
FOREIGN = {
    "role": "assistant",
    "content": "done",
    "id": "foreign-1",
    "response_metadata": {"seed": BIG, "ids": [BIG, -BIG]},
}


def test_foreign_json_with_trailing_newline_keeps_big_integers() -> None:
    payload = (json.dumps(FOREIGN) + "\n").encode()
    assert decode_payload(payload) == FOREIGN
    assert type(decode_payload(payload)["response_metadata"]["seed"]) is int
    message = message_from_payload(payload)
    assert message.response_metadata == FOREIGN["response_metadata"]


def test_payloads_we_write_end_without_a_marker() -> None:
    payload = encode_record({"role": "user", "content": "hi"}, 10_000)
    assert payload == b'{"role":"user","content":"hi"}'


def test_entries_written_with_the_old_newline_marker_still_read() -> None:
    assert decode_payload(b'{"role":"user","content":"hi"}\n') == {"role": "user", "content": "hi"}


def test_a_foreign_entry_in_the_stream_reads_back_exactly(
    backend: Backend, settings: Settings
) -> None:
    store = ConversationStore(backend.client, settings=settings)
    store.append("c-foreign", [{"role": "user", "content": "first"}])
    stream = KeySchema(settings.key_prefix).conversation("c-foreign").stream
    backend.client.xadd(stream, {"m": json.dumps(FOREIGN) + "\n"})
    stored = store.get_messages("c-foreign")
    assert stored[-1].record == FOREIGN
    (last,) = store.get_langchain_messages("c-foreign")[-1:]
    assert last == AIMessage("done", id="foreign-1", response_metadata=FOREIGN["response_metadata"])
    assert type(last.response_metadata["seed"]) is int


# -- msgspec reads a payload only when it reads it exactly as the previous reader did ------------
REFUSED = object()


def exact(value: Any) -> Any:
    """``value`` with dict key order, exact types and float signs (-0.0) made to count in ==."""
    if type(value) is dict:
        return ("dict", [(k, exact(v)) for k, v in value.items()])
    if type(value) is list:
        return ("list", [exact(v) for v in value])
    return (type(value).__name__, repr(value))


def readers_agree(payload: bytes | str) -> None:
    """Whatever msgspec reads, the reader before it (orjson, or json for 19+ digit runs) reads
    the same; what msgspec refuses is read by that reader, so decode_payload is it."""
    new: Any
    old: Any
    try:
        new = codec._read_json(payload)
    except codec._NOT_READ:
        new = REFUSED
    try:
        old = codec._decode_refused(payload)
    except (ValueError, RecursionError):
        old = REFUSED
    if new is not REFUSED:
        assert old is not REFUSED, payload
        assert exact(new) == exact(old), payload
    if old is not REFUSED:
        assert exact(decode_payload(payload)) == exact(old)


big = st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
leaf = st.none() | st.booleans() | big | st.floats() | st.text(max_size=6)
values = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


def encodings(value: Any) -> list[bytes]:
    out = [
        json.dumps(value).encode(),  # NaN, Infinity, big integers, ASCII escapes (surrogates)
        json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass"),
        (json.dumps(value, separators=(",", ":")) + "\n").encode(),
    ]
    with contextlib.suppress(TypeError):  # beyond 64 bits, or a lone surrogate
        out.append(orjson.dumps(value))
    return out


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_msgspec_reads_exactly_what_the_previous_reader_reads(
    value: Any, data: st.DataObject
) -> None:
    for payload in encodings(value):
        readers_agree(payload)
        readers_agree(payload.decode("utf-8", "replace"))
        if payload:  # and near misses: one byte changed, dropped or added
            i = data.draw(st.integers(0, len(payload) - 1))
            byte = data.draw(st.binary(min_size=1, max_size=1))
            readers_agree(payload[:i] + byte + payload[i + 1 :])
            readers_agree(payload[:i] + payload[i + 1 :])
            readers_agree(payload[:i] + byte + payload[i:])


def test_what_msgspec_refuses_is_read_as_before() -> None:
    for payload in [
        b'{"n":1e400}',  # json: inf
        b'{"s":"\\ud800"}',  # an escaped lone surrogate
        b'{"n":-' + b"1" * 4300 + b"}",  # json takes 4300 digits, msgspec 4299 after a minus
        b"[" * 2000 + b"]" * 2000,  # deeper than either
        b'{"n":NaN}',
        b"\xef\xbb\xbf{}",  # a byte order mark
    ]:
        readers_agree(payload)
    with pytest.raises(orjson.JSONDecodeError, match="infinity"):  # orjson refuses it, as it did
        decode_payload(b'{"n":1e400}')
    long_run = b'{"n":1e400,"id":"' + b"1" * 19 + b'"}'  # the json module reads it, as it did
    assert decode_payload(long_run) == {"n": float("inf"), "id": "1" * 19}


# -- the read commands leave redis-py's reply as the server sent it -------------------------
def test_entry_payload_of_a_flat_entry_is_its_last_message_field() -> None:
    assert entry_payload([b"m", b"{}"]) == b"{}"
    assert entry_payload([b"x", b"1", b"m", b"a", b"y", b"2", b"m", b"b"]) == b"b"
    assert entry_payload(["x", "1", "m", "{}"]) == "{}"
    with pytest.raises(InvalidInput, match="without a message field"):
        entry_payload([b"x", b"m"])


async def test_reads_get_the_entries_unparsed_and_read_foreign_fields_exactly(
    backend: Backend, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read sends XRANGE / XREVRANGE by bytes name, so redis-py (sync and asyncio) hands
    over ``[cursor, [b"m", payload]]`` without building a dict and a tuple per entry; an
    entry another writer gave more fields reads by its ``m`` field all the same."""
    store = ConversationStore(backend.client, settings=settings)
    store.append("c-raw", [{"role": "user", "content": "first", "id": "u1"}])
    stream = KeySchema(settings.key_prefix).conversation("c-raw").stream
    backend.client.xadd(stream, {"x": "1", "m": json.dumps(FOREIGN), "y": "2"})
    seen: list[Any] = []
    real = messages_plans.langchain_messages

    def spy(conversation_id: str, found: Any) -> Any:
        seen.append(found)
        return real(conversation_id, found)

    monkeypatch.setattr(messages_plans, "langchain_messages", spy)
    client = backend.async_client()
    try:
        astore = AsyncConversationStore(client, settings=settings)
        for read in (
            store.get_langchain_messages("c-raw"),
            await astore.get_langchain_messages("c-raw"),
            store.get_langchain_messages("c-raw", limit=2),
        ):
            assert [m.id for m in read] == ["u1", "foreign-1"]
            assert read[1].response_metadata == FOREIGN["response_metadata"]
        assert [m.record for m in store.get_messages("c-raw")][1] == FOREIGN
    finally:
        await client.aclose()
    assert len(seen) == 3
    for found in seen:
        assert found[0][1] == [b"m", b'{"role":"user","content":"first","id":"u1"}']
