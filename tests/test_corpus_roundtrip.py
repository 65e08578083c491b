"""Every message of the realistic corpus (bench/corpus.jsonl: OpenAI and Anthropic AI
messages with token details, tool messages, content blocks, images, reasoning) reads back
equal to what ``model_validate`` builds: same class, same ``__dict__``, same fields set
(as validating the fields the read set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import BaseMessage, messages_from_dict

from agent_memory.codec import encode_record, message_from_payload, record_from_langchain

CORPUS = Path(__file__).parent.parent / "bench" / "corpus.jsonl"
MESSAGES: list[BaseMessage] = messages_from_dict(
    [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
)


@pytest.mark.parametrize("index", range(len(MESSAGES)))
def test_corpus_message_reads_back_as_validated(index: int) -> None:
    original = MESSAGES[index]
    payload = encode_record(record_from_langchain(original), 10**7)
    back = message_from_payload(payload)
    given = {name: getattr(original, name) for name in back.model_fields_set}
    validated = type(original).model_validate(given)  # the same fields, through validation
    assert type(back) is type(original)
    assert back == original
    assert back.__dict__ == validated.__dict__
    assert back.model_fields_set == validated.model_fields_set
