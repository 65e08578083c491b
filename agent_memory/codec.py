"""Message <-> stream entry: pure, exact, fast.

A stored message is a *record*: a JSON object in the REST role vocabulary with LangChain-only
fields under their LangChain names (see :mod:`agent_memory.models`). LangChain messages are
converted field by field (no pydantic validation on the write path) and rebuilt as the same
class with the same fields, so ``decode(encode(m)) == m``; chunk types come back as their base
types. Only fields that differ from LangChain's defaults are stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import ValidationError

from agent_memory.errors import InvalidMessage, MessageTooLarge
from agent_memory.models import Message, ms_to_datetime

Record = dict[str, Any]

# Checked in order: chunk classes subclass their base classes.
_ROLES: tuple[tuple[type[BaseMessage], str], ...] = (
    (AIMessage, "assistant"),
    (HumanMessage, "user"),
    (SystemMessage, "system"),
    (ToolMessage, "tool"),
    (FunctionMessage, "function"),
    (ChatMessage, "chat"),
)
_ROLE_BY_CLASS: dict[type[BaseMessage], str] = {}
_COMMON = ("id", "name")
_COMMON_DICTS = ("additional_kwargs", "response_metadata")


def _role_of(message: BaseMessage) -> str:
    cls = type(message)
    role = _ROLE_BY_CLASS.get(cls)
    if role is None:
        role = next((r for base, r in _ROLES if isinstance(message, base)), "")
        if not role:
            raise InvalidMessage(f"unsupported LangChain message type {cls.__name__}")
        _ROLE_BY_CLASS[cls] = role
    return role


def record_from_langchain(message: BaseMessage) -> Record:
    """The record of a LangChain message: every field that is not at its default."""
    role = _role_of(message)
    rec: Record = {"role": role, "content": message.content}
    for name in _COMMON:
        value = getattr(message, name)
        if value is not None:
            rec[name] = value
    for name in _COMMON_DICTS:
        value = getattr(message, name)
        if value:
            rec[name] = value
    if role == "assistant":
        _assistant_fields(message, rec)  # type: ignore[arg-type]
    elif role == "tool":
        _tool_fields(message, rec)  # type: ignore[arg-type]
    elif role == "chat":
        rec["chat_role"] = message.role  # type: ignore[attr-defined]
    extra = message.__pydantic_extra__
    if extra:
        rec["extra"] = extra
    return rec


def _assistant_fields(message: AIMessage, rec: Record) -> None:
    if message.tool_calls:
        rec["tool_calls"] = [
            {"id": c.get("id"), "name": c["name"], "args": c["args"]} for c in message.tool_calls
        ]
    if message.invalid_tool_calls:
        rec["invalid_tool_calls"] = [dict(c) for c in message.invalid_tool_calls]
    if message.usage_metadata is not None:
        rec["usage_metadata"] = message.usage_metadata


def _tool_fields(message: ToolMessage, rec: Record) -> None:
    rec["tool_call_id"] = message.tool_call_id
    if message.status != "success":
        rec["status"] = message.status
    if message.artifact is not None:
        rec["artifact"] = message.artifact


_CLASSES: dict[str, type[BaseMessage]] = {
    "user": HumanMessage,
    "assistant": AIMessage,
    "system": SystemMessage,
    "tool": ToolMessage,
    "function": FunctionMessage,
    "chat": ChatMessage,
}
_FIELDS: dict[str, tuple[str, ...]] = {
    role: ("id", "name", "response_metadata") for role in _CLASSES
} | {
    "assistant": (
        "id",
        "name",
        "response_metadata",
        "tool_calls",
        "invalid_tool_calls",
        "usage_metadata",
    ),
    "tool": ("id", "name", "response_metadata", "tool_call_id", "status", "artifact"),
}


def record_to_langchain(rec: Record) -> BaseMessage:
    """Rebuild the LangChain message of a record (same class, same fields)."""
    fast = _fast_message(rec)
    if fast is not None:
        return fast
    role = rec["role"]
    kwargs: dict[str, Any] = {name: rec[name] for name in _FIELDS[role] if name in rec}
    kwargs["content"] = rec["content"]
    additional = rec.get("additional_kwargs")
    if "metadata" in rec:  # REST per-message metadata, visible to LangChain here
        additional = {**(additional or {}), "metadata": rec["metadata"]}
    if additional:
        kwargs["additional_kwargs"] = additional
    if "extra" in rec:
        kwargs.update(rec["extra"])
    if role == "chat":
        kwargs["role"] = rec["chat_role"]
    return _CLASSES[role](**kwargs)


# -- the read fast path ----------------------------------------------------------------------
# Reads are dominated by pydantic validation of messages that were validated when written. For
# the shapes below (plain user/system/assistant text, assistant tool calls and token usage, all
# of the exact types validation would accept unchanged) the message is assembled the way
# ``model_construct`` does (fields in declaration order, defaults from their factories), which
# gives an object equal in every field to the validated one. Any other shape is validated.
_FAST_KEYS: dict[str, frozenset[str]] = {
    "user": frozenset({"role", "content", "id", "name", "response_metadata"}),
    "system": frozenset({"role", "content", "id", "name", "response_metadata"}),
    "assistant": frozenset(
        {"role", "content", "id", "name", "response_metadata", "tool_calls", "usage_metadata"}
    ),
}
_USAGE_KEYS = frozenset({"input_tokens", "output_tokens", "total_tokens"})
_CALL_KEYS = frozenset({"id", "name", "args"})


@dataclass(frozen=True, slots=True)
class _Template:
    """A class's fields in declaration order: immutable defaults, and the factory-made ones."""

    cls: type[BaseMessage]
    defaults: dict[str, Any]
    factories: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, message_cls: type[BaseMessage]) -> _Template:
        fields = message_cls.model_fields
        return cls(
            message_cls,
            {name: f.default for name, f in fields.items()},
            tuple((n, f.default_factory) for n, f in fields.items() if f.default_factory),
        )

    def build(self, given: dict[str, Any]) -> BaseMessage:
        values = {**self.defaults, **given}
        for name, factory in self.factories:
            if name not in given:
                values[name] = factory()
        message: BaseMessage = _new(self.cls)
        _set(message, "__dict__", values)
        _set(message, "__pydantic_fields_set__", set(given))
        _set(message, "__pydantic_extra__", {})
        _set(message, "__pydantic_private__", None)
        return message


_new = object.__new__
_set = object.__setattr__


_TEMPLATES = {
    role: _Template.of(cls)
    for role, cls in _CLASSES.items()
    if role in _FAST_KEYS and cls.__pydantic_post_init__ is None  # nothing runs after fields
}


def _plain(value: Any, kind: type) -> bool:
    return value is None or type(value) is kind


def _fast_values(rec: Record) -> dict[str, Any] | None:
    """The given field values when ``rec`` has a fast shape, else None. ``rec`` may be read
    again (a StoredMessage's record): the message gets copies of its dicts, as validation
    would make."""
    keys = _FAST_KEYS.get(rec["role"])
    if keys is None or not keys.issuperset(rec) or type(rec["content"]) is not str:
        return None
    return _fast_owned(_own_copy(rec))


def _own_copy(rec: Record) -> Record:
    """``rec`` with its message-level dicts (metadata, usage, tool-call args) copied."""
    given = rec.copy()
    for name in ("response_metadata", "usage_metadata"):
        if type(given.get(name)) is dict:
            given[name] = dict(given[name])
    calls = given.get("tool_calls")
    if type(calls) is list:
        given["tool_calls"] = [
            {**c, "args": dict(c["args"])} if type(c) is dict and type(c.get("args")) is dict else c
            for c in calls
        ]
    return given


def _fast_owned(given: dict[str, Any]) -> dict[str, Any] | None:
    """:func:`_fast_values` of a record of a fast role and keys that nobody else holds (just
    decoded for this message alone): the same checks, its dicts become the message's without
    copies; the record is changed into the field values only once every check has passed."""
    value = given.get("id")
    if value is not None and type(value) is not str:
        return None
    value = given.get("name")
    if value is not None and type(value) is not str:
        return None
    if "response_metadata" in given and type(given["response_metadata"]) is not dict:
        return None
    usage = given.get("usage_metadata")
    if usage is not None and not _fast_usage(usage):
        return None
    calls = given.get("tool_calls")
    if calls is not None:
        if type(calls) is not list or not all(_fast_call(c) for c in calls):
            return None
        given["tool_calls"] = [  # validation's key order and its "type" key
            {"name": c["name"], "args": c["args"], "id": c["id"], "type": "tool_call"}
            for c in calls
        ]
    del given["role"]
    return given


def _fast_usage(usage: Any) -> bool:
    return (
        type(usage) is dict
        and usage.keys() == _USAGE_KEYS
        and type(usage["input_tokens"]) is int
        and type(usage["output_tokens"]) is int
        and type(usage["total_tokens"]) is int
    )


def _fast_call(call: Any) -> bool:
    return (
        type(call) is dict
        and call.keys() == _CALL_KEYS
        and type(call["name"]) is str
        and type(call["args"]) is dict
        and _plain(call["id"], str)
    )


def _fast_message(rec: Record) -> BaseMessage | None:
    template = _TEMPLATES.get(rec["role"])
    given = _fast_values(rec) if template is not None else None
    return None if given is None else template.build(given)  # type: ignore[union-attr]


def message_from_payload(payload: bytes | str) -> BaseMessage:
    """The LangChain message of a stored payload, equal to
    ``record_to_langchain(decode_payload(payload))`` and built without copying the freshly
    decoded record's dicts (for reads that want messages, not records)."""
    rec = decode_payload(payload)
    role = rec["role"]
    template = _TEMPLATES.get(role)
    if template is not None and type(rec["content"]) is str:
        if len(rec) == 2:  # role and text content only (a user's typical message)
            del rec["role"]
            return template.build(rec)
        if _FAST_KEYS[role].issuperset(rec) and (given := _fast_owned(rec)) is not None:
            return template.build(given)
    return record_to_langchain(rec)


def record_from_input(message: BaseMessage | Mapping[str, Any], index: int = 0) -> Record:
    """Validate one input message (LangChain object or dict in the REST vocabulary)."""
    if isinstance(message, BaseMessage):
        return record_from_langchain(message)
    if not isinstance(message, Mapping):
        raise InvalidMessage(
            f"messages[{index}] must be a LangChain message or a mapping, "
            f"not {type(message).__name__}",
            field=f"messages[{index}]",
        )
    try:
        return Message.model_validate(message).to_record()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        field = f"messages[{index}]" + (f".{where}" if where else "")
        raise InvalidMessage(f"{field}: {err['msg']}", field=field) from None


def encode_record(rec: Record, max_bytes: int, index: int = 0) -> bytes:
    """The JSON bytes stored in the stream entry; raises before anything is stored.

    orjson writes it when its bytes read back equal to the record (else the json module
    decides). The payload is plain JSON (UTF-8, no marker): :func:`decode_payload` decides
    how to read it from its bytes alone, so entries written by anyone read back exactly."""
    try:
        fast = orjson.dumps(rec)
    except TypeError:
        fast = None
    if fast is not None and len(fast) <= max_bytes and decode_payload(fast) == rec:
        return fast
    return _encode_checked(rec, max_bytes, index)


def _encode_checked(rec: Record, max_bytes: int, index: int) -> bytes:
    try:
        data = json.dumps(rec, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidMessage(
            f"messages[{index}] cannot be stored as JSON: {exc}", field=f"messages[{index}]"
        ) from None
    payload = data.encode()
    if len(payload) > max_bytes:
        raise MessageTooLarge(
            f"messages[{index}] is {len(payload)} bytes encoded; the limit is {max_bytes} "
            "(AGENT_MEMORY_MAX_MESSAGE_BYTES, or Settings(max_message_bytes=...))",
            field=f"messages[{index}]",
        )
    if decode_payload(payload) != rec:  # JSON would change it: refuse rather than alter
        raise InvalidMessage(
            f"messages[{index}] would not read back as written: JSON objects need string keys "
            "and tuples would come back as lists",
            field=f"messages[{index}]",
        )
    return payload


# orjson reads integers beyond 64 bits as floats: a payload with a run of 19+ digits (anywhere,
# strings included) is read by the json module instead, so every value comes back exactly. The
# run is found by mapping digits to "0" and everything else to " " (a C loop, unlike a regex).
# No byte of the payload is trusted to say how to read it: entries written before this rule
# ended in a newline meaning "exact for orjson", but a foreign writer's JSON can end in one too
# (json.dumps(...) + "\n", JSON Lines) and carry big integers; every payload is scanned.
_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


def _has_long_run(payload: bytes) -> bool:
    return _LONG_RUN in payload.translate(_DIGIT_MAP)


def decode_payload(payload: bytes | str) -> Record:
    if isinstance(payload, str):
        payload = payload.encode()
    rec: Record = (json.loads if _has_long_run(payload) else orjson.loads)(payload)
    return rec


def cursor_ms(cursor: str) -> int:
    return int(cursor.split("-", 1)[0])


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as stored: its record, its stream cursor and whether this call added it."""

    cursor: str
    record: Record
    added: bool = True

    @property
    def id(self) -> str | None:
        value = self.record.get("id")
        return value if isinstance(value, str) else None

    @property
    def created_at(self) -> datetime:
        return ms_to_datetime(cursor_ms(self.cursor))

    def to_langchain(self) -> BaseMessage:
        return record_to_langchain(self.record)

    def to_dict(self) -> Record:
        """The REST form: the record plus ``cursor`` and ``created_at`` (ISO 8601)."""
        return {**self.record, "cursor": self.cursor, "created_at": self.created_at.isoformat()}
