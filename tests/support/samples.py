"""Every LangChain message type and field the store promises to round-trip exactly (SPEC
"Messages"): pairs of (message written, message expected back). Chunk types come back as their
base types with the same fields."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)

USAGE = {
    "input_tokens": 12,
    "output_tokens": 7,
    "total_tokens": 19,
    "input_token_details": {"cache_read": 3},
}
BLOCKS: list[str | dict[str, Any]] = [
    {"type": "text", "text": "Here is the chart:"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    "and a plain string block",
]
TOOL_CALL = {"name": "get_weather", "args": {"city": "Paris", "days": [1, 2]}, "id": "call_1"}

AI_FULL = AIMessage(
    content=BLOCKS,
    id="ai-1",
    name="planner",
    tool_calls=[TOOL_CALL, {"name": "noop", "args": {}, "id": None}],
    invalid_tool_calls=[
        {"name": "broken", "args": "{not json", "id": "call_2", "error": "bad JSON"}
    ],
    usage_metadata=USAGE,
    response_metadata={"model_name": "gpt-x", "finish_reason": "tool_calls", "logprobs": None},
    additional_kwargs={"refusal": None, "nested": {"a": [1, 2.5, True, None]}},
)

FIDELITY: list[tuple[str, BaseMessage, BaseMessage]] = [
    ("human plain", HumanMessage("hello"), HumanMessage("hello")),
    (
        "human every field",
        HumanMessage(
            content=[{"type": "text", "text": "look"}, {"type": "image", "url": "https://x/y.png"}],
            id="h-1",
            name="ada",
            additional_kwargs={"k": "v"},
            response_metadata={"r": 1},
        ),
        HumanMessage(
            content=[{"type": "text", "text": "look"}, {"type": "image", "url": "https://x/y.png"}],
            id="h-1",
            name="ada",
            additional_kwargs={"k": "v"},
            response_metadata={"r": 1},
        ),
    ),
    ("human unicode", HumanMessage("héllo 🙂 \u0000 \n\t"), HumanMessage("héllo 🙂 \u0000 \n\t")),
    ("human empty", HumanMessage(""), HumanMessage("")),
    (
        "human with an undeclared attribute",
        HumanMessage("tagged", trace_id="t-9"),
        HumanMessage("tagged", trace_id="t-9"),
    ),
    ("ai plain", AIMessage("hi"), AIMessage("hi")),
    ("ai every field", AI_FULL, AI_FULL),
    (
        "system",
        SystemMessage("be brief", id="s-1", name="rules", additional_kwargs={"x": 1}),
        SystemMessage("be brief", id="s-1", name="rules", additional_kwargs={"x": 1}),
    ),
    (
        "tool every field",
        ToolMessage(
            "72F",
            tool_call_id="call_1",
            status="error",
            artifact={"raw": [1, 2]},
            id="t-1",
            name="get_weather",
        ),
        ToolMessage(
            "72F",
            tool_call_id="call_1",
            status="error",
            artifact={"raw": [1, 2]},
            id="t-1",
            name="get_weather",
        ),
    ),
    (
        "tool success, list content",
        ToolMessage([{"type": "text", "text": "ok"}], tool_call_id="c"),
        ToolMessage([{"type": "text", "text": "ok"}], tool_call_id="c"),
    ),
    (
        "function",
        FunctionMessage(content="42", name="calc", id="f-1"),
        FunctionMessage(content="42", name="calc", id="f-1"),
    ),
    (
        "chat",
        ChatMessage(content="hmm", role="critic", id="ch-1", name="c"),
        ChatMessage(content="hmm", role="critic", id="ch-1", name="c"),
    ),
    ("human chunk", HumanMessageChunk(content="part", id="hc"), HumanMessage("part", id="hc")),
    ("system chunk", SystemMessageChunk(content="sys"), SystemMessage("sys")),
    (
        "ai chunk with tool call chunks",
        AIMessageChunk(
            content="calling",
            id="aic",
            tool_call_chunks=[
                {"name": "get_weather", "args": '{"city": "Paris"}', "id": "call_9", "index": 0}
            ],
            usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
            response_metadata={"model_name": "m"},
            chunk_position="last",
        ),
        AIMessage(
            content="calling",
            id="aic",
            tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_9"}],
            usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
            response_metadata={"model_name": "m"},
        ),
    ),
    (
        "tool chunk",
        ToolMessageChunk(content="out", tool_call_id="c1", artifact=[1], status="error"),
        ToolMessage("out", tool_call_id="c1", artifact=[1], status="error"),
    ),
    (
        "function chunk",
        FunctionMessageChunk(content="r", name="fn"),
        FunctionMessage(content="r", name="fn"),
    ),
    (
        "chat chunk",
        ChatMessageChunk(content="c", role="narrator"),
        ChatMessage(content="c", role="narrator"),
    ),
]
