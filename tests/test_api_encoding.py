"""The REST message list is encoded once, directly from the stored records when they are plain:
the JSON must be what the response model (``MessageList`` of ``StoredMessageOut``, fields not
set left out) gives, for every record shape, plain or not."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import messages_from_dict
from pydantic import TypeAdapter, ValidationError

from agent_memory.codec import StoredMessage, record_from_langchain
from agent_memory.models import ms_to_datetime
from api import schemas
from api.schemas import MessageList, StoredMessageOut, message_list_json

_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)
CORPUS = Path(__file__).resolve().parent.parent / "bench" / "corpus.jsonl"


def _model_json(messages: list[StoredMessage]) -> Any:
    out = MessageList(messages=[StoredMessageOut.model_validate(m.to_dict()) for m in messages])
    return orjson.loads(out.model_dump_json(exclude_unset=True))


def _corpus() -> list[StoredMessage]:
    with CORPUS.open(encoding="utf-8") as f:
        dicts = [json.loads(line) for line in f if line.strip()]
    records = [record_from_langchain(m) for m in messages_from_dict(dicts)]
    # cursors with and without milliseconds (pydantic writes no fraction for whole seconds)
    return [StoredMessage(f"{1700000000000 + i * 337}-{i}", r) for i, r in enumerate(records)]


def test_the_fast_path_is_on_for_this_model() -> None:
    assert schemas._FAST


def test_corpus_pages_encode_as_the_response_model_does() -> None:
    stored = _corpus()
    assert all(schemas._plain(m.record) for m in stored)  # the fast path is the one tested
    for start in range(0, len(stored), 20):
        page = stored[start : start + 20]
        assert orjson.loads(message_list_json(page)) == _model_json(page)


@pytest.mark.parametrize(
    "record",
    [
        {"role": "user", "content": "hi", "unknown": 1},  # dropped by the model
        {"role": "user", "content": "big", "metadata": {"n": 2**70}},  # past orjson's ints
        {"role": "user", "content": "x", "id": 5},  # coerced or refused by the model
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, "b"]},
        {"role": "assistant", "content": "", "tool_calls": [{"id": None, "name": "f", "args": {}}]},
        {"role": "tool", "content": "ok", "tool_call_id": "c1", "status": "error"},
        {"role": "chat", "content": "c", "chat_role": "critic", "artifact": [1, {"a": None}]},
    ],
)
def test_other_shapes_encode_as_the_response_model_does(record: dict[str, Any]) -> None:
    page = [StoredMessage("1700000000123-0", record), StoredMessage("1700000001000-1", record)]
    try:
        expected = _model_json(page)
    except ValueError as exc:  # the model refuses it: so does the encoding
        with pytest.raises(type(exc)):
            message_list_json(page)
        return
    assert orjson.loads(message_list_json(page)) == expected


def test_a_tool_call_without_args_is_refused_as_before() -> None:
    record = {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "name": "f"}]}
    page = [StoredMessage("1700000000000-0", {**record})]
    assert not schemas._plain(page[0].record)
    with pytest.raises(ValidationError, match="args"):
        message_list_json(page)


@settings(max_examples=500)
@given(st.integers(min_value=0, max_value=253_402_300_799_999))  # up to the end of year 9999
def test_created_at_is_written_as_pydantic_writes_the_datetime(ms: int) -> None:
    expected = orjson.loads(_DATETIME.dump_json(ms_to_datetime(ms)))
    assert schemas._created_text(f"{ms}-0") == expected


@pytest.mark.parametrize(
    "ms",
    [0, 999, 1000, 1_700_000_000_000, 1_700_000_000_001, schemas._EXACT_MS - 1, schemas._EXACT_MS],
)
def test_created_at_at_the_edges(ms: int) -> None:
    expected = orjson.loads(_DATETIME.dump_json(ms_to_datetime(ms)))
    assert schemas._created_text(f"{ms}-7") == expected
