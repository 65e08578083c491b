"""Stored payloads are plain JSON, read exactly whoever wrote them: no trailing byte is
trusted to say "safe for orjson" (a foreign writer's JSON Lines end in a newline too)."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage

from agent_memory import ConversationStore, Settings
from agent_memory.codec import decode_payload, encode_record, message_from_payload
from agent_memory.keys import KeySchema
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
