"""The messages the workloads write: the realistic corpus (bench/corpus.jsonl, a copy of
../shared/corpus/messages.jsonl: OpenAI/Anthropic-shaped AI messages with usage details and
response metadata, tool calls, ToolMessages, content blocks), each given an id of its own as
real agents send them; built before timing."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from langchain_core.messages import BaseMessage, messages_from_dict

CORPUS = Path(__file__).with_name("corpus.jsonl")


@functools.cache
def _corpus() -> tuple[BaseMessage, ...]:
    with CORPUS.open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return tuple(m for m in messages_from_dict(records) if m.type != "system")


@functools.cache
def _of(kind: str) -> tuple[BaseMessage, ...]:
    if kind == "ai_tool_call":
        return tuple(m for m in _corpus() if getattr(m, "tool_calls", None))
    return tuple(m for m in _corpus() if m.type == kind)


def _with_id(message: BaseMessage, message_id: str) -> BaseMessage:
    return message.model_copy(update={"id": message_id}, deep=True)


def human(tag: str, i: int) -> BaseMessage:
    """A user's message from the corpus, with an id of its own."""
    pool = _of("human")
    return _with_id(pool[i % len(pool)], f"h-{tag}-{i:06d}")


def ai_tool_call(tag: str, i: int) -> BaseMessage:
    """A model's tool call from the corpus (usage, response metadata), with an id of its own."""
    pool = _of("ai_tool_call")
    return _with_id(pool[i % len(pool)], f"run-{tag}-{i:06d}")


def conversation(tag: str, n: int) -> list[BaseMessage]:
    """n messages of the corpus in its order (user, assistant, tool, ...), cycled, each with a
    unique id."""
    pool = _corpus()
    return [_with_id(pool[i % len(pool)], f"m-{tag}-{i:06d}") for i in range(n)]
