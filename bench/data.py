"""The messages the workloads write: realistic sizes, unique ids, built before timing."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

_QUESTION = (
    "Can you look up the delivery status of order {i} and tell me when it will arrive? "
    "I need it before the weekend."
)
_ANSWER = (
    "Order {i} left the warehouse this morning and is with the carrier now. The tracking page "
    "shows an expected delivery on Friday between 9:00 and 13:00; you will get a text message "
    "with a narrower window on the day itself."
)


def human(i: int) -> HumanMessage:
    """A user's message, as chat frameworks build it: content only, no id."""
    return HumanMessage(_QUESTION.format(i=i))


def ai(tag: str, i: int) -> AIMessage:
    """A model's plain answer, with the id, usage and response metadata a provider returns."""
    return AIMessage(
        _ANSWER.format(i=i),
        id=f"run-{tag}-{i:06d}",
        response_metadata={"model_name": "gpt-4o-mini-2024-07-18", "finish_reason": "stop"},
        usage_metadata={"input_tokens": 412, "output_tokens": 58, "total_tokens": 470},
    )


def ai_tool_call(tag: str, i: int) -> AIMessage:
    """A model's tool call, with usage and response metadata (an agent's typical turn)."""
    return AIMessage(
        "",
        id=f"run-{tag}-{i:06d}",
        tool_calls=[
            {
                "id": f"call_{tag}_{i:06d}",
                "name": "order_status",
                "args": {"order_id": f"A-{i:06d}", "include_history": False},
            }
        ],
        response_metadata={
            "model_name": "gpt-4o-mini-2024-07-18",
            "finish_reason": "tool_calls",
            "system_fingerprint": "fp_0ba0d124f1",
        },
        usage_metadata={"input_tokens": 388, "output_tokens": 21, "total_tokens": 409},
    )


def conversation(tag: str, n: int) -> list[BaseMessage]:
    """n messages alternating user / assistant, the assistant's with unique ids."""
    return [human(i) if i % 2 == 0 else ai(tag, i) for i in range(n)]
