"""Domain models: a message in the role vocabulary every agent stack understands, and a
conversation's metadata. Pure data, no I/O; the REST API builds its schemas on these.

A message is stored as the JSON of :meth:`Message.to_record` (only the fields that are set).
LangChain-only fields keep their LangChain names; a LangChain ``ChatMessage`` has
``role="chat"`` and its own role in ``chat_role``; a ``FunctionMessage`` has ``role="function"``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from agent_memory.rules import MAX_MESSAGE_ID_LENGTH
from agent_memory.rules import Role as Role

ContentBlock = str | dict[str, Any]


class ToolCall(BaseModel):
    """A tool call requested by the assistant."""

    model_config = ConfigDict(extra="forbid")

    id: str | None
    name: str
    args: dict[str, Any]


class MessageFields(BaseModel):
    """The fields of a message, without the rules between them (shared by :class:`Message`
    and the REST API's stored-message response)."""

    role: Role
    content: str | list[ContentBlock]
    id: str | None = Field(None, min_length=1, max_length=MAX_MESSAGE_ID_LENGTH)
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    metadata: dict[str, Any] | None = None
    # LangChain-only fields, under their LangChain names
    additional_kwargs: dict[str, Any] | None = None
    response_metadata: dict[str, Any] | None = None
    invalid_tool_calls: list[dict[str, Any]] | None = None
    usage_metadata: dict[str, Any] | None = None
    status: Literal["success", "error"] | None = None
    artifact: Any = None
    chat_role: str | None = None
    extra: dict[str, Any] | None = Field(
        None, description="attributes a LangChain message carried beyond its declared fields"
    )


def _needs(role: str, field: str) -> JsonValue:
    return {
        "if": {"properties": {"role": {"const": role}}, "required": ["role"]},
        "then": {"required": [field], "properties": {field: {"type": "string"}}},
    }


def _only_on(role: str, *fields: str) -> JsonValue:
    return {
        "if": {"properties": {"role": {"not": {"const": role}}}, "required": ["role"]},
        "then": {"properties": {f: {"type": "null"} for f in fields}},
    }


ROLE_RULES: list[JsonValue] = [
    _needs("tool", "tool_call_id"),
    _needs("function", "name"),
    _needs("chat", "chat_role"),
    _only_on("assistant", "tool_calls", "invalid_tool_calls", "usage_metadata"),
    _only_on("tool", "tool_call_id", "status"),
]
"""The rules of :meth:`Message._role_fields` in JSON Schema (``allOf`` of ``if``/``then``), so
that the OpenAPI document states them."""


class Message(MessageFields):
    """One message as written by a client (REST or a dict given to the library)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": ROLE_RULES})

    @model_validator(mode="after")
    def _role_fields(self) -> Message:
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a message with role 'tool' needs tool_call_id")
        if self.role == "function" and self.name is None:
            raise ValueError("a message with role 'function' needs name")
        if self.role == "chat" and self.chat_role is None:
            raise ValueError("a message with role 'chat' needs chat_role")
        if self.role != "assistant":
            for name in ("tool_calls", "invalid_tool_calls", "usage_metadata"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is only allowed on role 'assistant'")
        if self.role != "tool" and (self.tool_call_id is not None or self.status is not None):
            raise ValueError("tool_call_id and status are only allowed on role 'tool'")
        return self

    def to_record(self) -> dict[str, Any]:
        """The stored form: only fields that are set, tool calls as plain dicts (a tool call's
        ``id`` of None is kept: only top-level None fields are left out)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Conversation(BaseModel):
    """A conversation's metadata as stored in its hash."""

    id: str
    user_id: str | None = None
    agent_id: str | None = None
    title: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    message_count: int = 0
    version: int = 1
    expires_at: datetime | None = None


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
