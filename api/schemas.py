"""Request and response bodies of the REST API (separate from the library's domain models).

A request message is the library's :class:`agent_memory.models.Message` (role vocabulary,
LangChain-only fields under their LangChain names); a stored message adds its stream ``cursor``
and ``created_at``. Fields that are not set are left out of responses.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from agent_memory import rules
from agent_memory.codec import StoredMessage
from agent_memory.keys import MAX_ID_LENGTH
from agent_memory.models import Conversation, Message, MessageFields, ms_to_datetime
from agent_memory.rules import ID_PATTERN, MAX_MESSAGE_ID_LENGTH, Role

CURSOR_PATTERN = f"^{rules.CURSOR_PATTERN}$"


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable, machine-readable error code.")
    message: str
    field: str | None = Field(None, description="The input field that was wrong, when known.")


class ErrorBody(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail


# -- conversations ----------------------------------------------------------------------
class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="Chosen if left out. Any id without control characters.",
    )
    user_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    agent_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    title: str | None = Field(None, max_length=1024)
    metadata: dict[str, Any] | None = None


class ConversationUpdate(BaseModel):
    """Fields to change; a field set to null is removed. ``version`` (or an ``If-Match``
    header) makes the update conditional on the conversation still being at that version."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=1024)
    metadata: dict[str, Any] | None = None
    version: int | None = Field(None, ge=0, le=2**53, strict=True)


class ConversationOut(BaseModel):
    id: str
    user_id: str | None = None
    agent_id: str | None = None
    title: str | None = None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    message_count: int
    version: int
    expires_at: datetime | None = None

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationOut:
        return cls.model_validate(conversation.model_dump())


class ConversationList(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class Deleted(BaseModel):
    deleted: int


# -- messages ---------------------------------------------------------------------------
class MessagesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1)


class StoredMessageOut(MessageFields):
    """A stored message: what was written, plus its stream ``cursor`` and ``created_at``."""

    cursor: str = Field(description="The message's stream id; use it for before/after paging.")
    created_at: datetime


class MessageList(BaseModel):
    messages: list[StoredMessageOut]


_STORED = TypeAdapter(list[StoredMessageOut])
_ROLES = frozenset(get_args(Role))
_TEXT = ("name", "tool_call_id", "chat_role")
_DICTS = ("metadata", "additional_kwargs", "response_metadata", "usage_metadata", "extra")
_CALL_KEYS = frozenset({"id", "name", "args"})
# Every field of the stored-message model, each checked by _plain below (an import-time check:
# a field added to the model without a check here turns the fast path off, never wrong).
_CHECKED = frozenset({"role", "content", "id", "tool_calls", "invalid_tool_calls", "status"})
_CHECKED |= {*_TEXT, *_DICTS, "artifact"}
_FAST = set(MessageFields.model_fields) == _CHECKED and not MessageFields.model_config.get("strict")


def _is_text(value: Any) -> bool:
    return type(value) is str


def _is_dict(value: Any) -> bool:
    return type(value) is dict


def _is_content(value: Any) -> bool:
    if type(value) is str:
        return True
    return type(value) is list and all(type(b) is str or type(b) is dict for b in value)


def _is_call(call: Any) -> bool:
    return (
        type(call) is dict
        and call.keys() == _CALL_KEYS
        and (call["id"] is None or type(call["id"]) is str)
        and type(call["name"]) is str
        and type(call["args"]) is dict
    )


# The check of each field's value (records come from JSON: exact types; anything else, even a
# subclass, is left to the model).
_PLAIN_VALUE: dict[str, Callable[[Any], bool]] = {
    "role": lambda v: type(v) is str and v in _ROLES,
    "content": _is_content,
    "id": lambda v: v is None or (type(v) is str and 0 < len(v) <= MAX_MESSAGE_ID_LENGTH),
    **dict.fromkeys(_TEXT, _is_text),
    **dict.fromkeys(_DICTS, _is_dict),
    "status": lambda v: v in ("success", "error"),
    "invalid_tool_calls": lambda v: type(v) is list and all(type(c) is dict for c in v),
    "tool_calls": lambda v: type(v) is list and all(_is_call(c) for c in v),
    "artifact": lambda v: True,  # any JSON value
}


def _plain(rec: dict[str, Any]) -> bool:
    """True if validating ``rec`` as a :class:`StoredMessageOut` would keep every value as it
    is (known fields only, each of its declared type), so encoding it directly gives what the
    model gives. One check per key the record has (most have three to six of the fourteen)."""
    if "role" not in rec or "content" not in rec:
        return False
    for key, value in rec.items():
        check = _PLAIN_VALUE.get(key)
        if check is None or not check(value):
            return False
    return True


_SECOND_TEXT_CACHE = 4096
# Below this many ms since the epoch (year 2096), ms / 1000 as a float is within half a
# microsecond of the exact time, so datetime.fromtimestamp gives exactly ms * 1000 us and the
# text built from the integer below is the one pydantic writes for that datetime.
_EXACT_MS = 4_000_000_000_000


@lru_cache(maxsize=_SECOND_TEXT_CACHE)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _created_text(cursor: str) -> str:
    """A stream id's time as pydantic writes a UTC datetime (``...Z``; fraction in
    microseconds, none for a whole second), from the id's milliseconds (the second's text
    cached: the messages of a page are often seconds apart, and pages are read again)."""
    ms = int(cursor.partition("-")[0])
    if not 0 <= ms < _EXACT_MS:
        return ms_to_datetime(ms).isoformat().replace("+00:00", "Z")
    second, fraction = divmod(ms, 1000)
    if fraction:
        return f"{_second_text(second)}.{fraction:03d}000Z"
    return f"{_second_text(second)}Z"


def message_list_json(messages: list[StoredMessage]) -> bytes:
    """The :class:`MessageList` JSON of ``messages`` (fields not set left out), as the route's
    response model would give it, encoded once (a model per message that FastAPI then
    validated and serialized again cost a quarter of a read's time).

    Records whose every value already has its declared type (the library writes only such
    records) are encoded directly with orjson; any other (another program's record, an integer
    past 64 bits) goes through :class:`StoredMessageOut` validation, as before."""
    if _FAST and all(_plain(m.record) for m in messages):
        try:
            return orjson.dumps(
                {
                    "messages": [
                        {**m.record, "cursor": m.cursor, "created_at": _created_text(m.cursor)}
                        for m in messages
                    ]
                }
            )
        except TypeError:  # orjson refuses integers past 64 bits: the model encodes them
            pass
    rows = _STORED.validate_python(
        [{**m.record, "cursor": m.cursor, "created_at": m.created_at} for m in messages]
    )
    return b'{"messages":' + _STORED.dump_json(rows, exclude_unset=True) + b"}"


# -- health and cache -------------------------------------------------------------------
class RedisHealth(BaseModel):
    reachable: bool
    version: str | None = None
    aof_enabled: bool | None = None
    appendfsync: str | None = None
    maxmemory_policy: str | None = None
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    redis: RedisHealth
    warnings: list[str]


class CacheStats(BaseModel):
    """The integration guide's fields (null when the server does not report them), plus the
    store's own counts."""

    connected: bool
    memory_used: str | None = Field(None, description="INFO used_memory_human, e.g. '1.05M'.")
    keyspace_hits: int | None = None
    keyspace_misses: int | None = None
    hit_rate: float | None = Field(None, description="keyspace hits in percent of lookups.")
    total_commands_processed: int | None = None
    connected_clients: int | None = None
    conversations: int = Field(description="Conversations in the index (all tenants).")
    keys: int = Field(description="Keys in the configured database (all services).")
