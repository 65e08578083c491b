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

from agent_memory import rules
from agent_memory.errors import InvalidInput, InvalidMessage, MessageTooLarge, TooLarge
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


def encode_record(
    rec: Record, max_bytes: int, index: int = 0, *, max_depth: int = rules.DEFAULT_MAX_JSON_DEPTH
) -> bytes:
    """The JSON bytes stored in the stream entry; raises before anything is stored.

    orjson writes it when its bytes read back equal to the record (else the json module
    decides). The payload is plain JSON (UTF-8, no marker): :func:`decode_payload` decides
    how to read it from its bytes alone, so entries written by anyone read back exactly.
    Whatever a reader could not serve is refused with InvalidMessage naming the field: nesting
    deeper than ``max_depth`` (the message object is level 1), lone UTF-16 surrogates,
    non-string keys."""
    try:
        fast = orjson.dumps(rec)
    except TypeError:  # also surrogates and 255+ levels: the checked path names the field
        fast = None
    if fast is not None and len(fast) <= max_bytes and decode_payload(fast) == rec:
        _check_depth(fast, rec, max_depth, index)
        return fast
    return _encode_checked(rec, max_bytes, index, max_depth)


def _encode_checked(rec: Record, max_bytes: int, index: int, max_depth: int) -> bytes:
    where = f"messages[{index}]"
    try:
        data = json.dumps(rec, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        payload = data.encode()
    except RecursionError:
        _check_depth(None, rec, max_depth, index)
        raise  # pragma: no cover - _check_depth raised
    except UnicodeEncodeError:
        field = f"{where}.{_surrogate_field(rec)}"
        raise InvalidMessage(
            f"{field} contains a lone UTF-16 surrogate, which cannot be stored as UTF-8",
            field=field,
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidMessage(f"{where} cannot be stored as JSON: {exc}", field=where) from None
    if len(payload) > max_bytes:
        raise MessageTooLarge(
            f"{where} is {len(payload)} bytes encoded; the limit is {max_bytes} "
            "(AGENT_MEMORY_MAX_MESSAGE_BYTES, or Settings(max_message_bytes=...))",
            field=where,
        )
    if decode_payload(payload) != rec:  # JSON would change it: refuse rather than alter
        raise InvalidMessage(
            f"{where} would not read back as written: JSON objects need string keys "
            "and tuples would come back as lists",
            field=where,
        )
    _check_depth(payload, rec, max_depth, index)
    return payload


_CONTAINERS = (dict, list, tuple)


def deepest_field(obj: Mapping[str, Any], max_depth: int) -> str | None:
    """The key of ``obj`` (level 1) under which objects and arrays nest deeper than
    ``max_depth`` levels, or None. Iterative: any depth is walked without recursion."""
    stack = [(v, 2, k) for k, v in obj.items() if isinstance(v, _CONTAINERS)]
    while stack:
        value, depth, top = stack.pop()
        if depth > max_depth:
            return str(top)
        children = value.values() if isinstance(value, dict) else value
        stack += [(c, depth + 1, top) for c in children if isinstance(c, _CONTAINERS)]
    return None


def _check_depth(payload: bytes | None, rec: Record, max_depth: int, index: int) -> None:
    """InvalidMessage naming the field that nests deeper than ``max_depth``. Each level needs
    an opening bracket, so a payload with at most ``max_depth`` of them is not walked."""
    if payload is not None and payload.count(b"{") + payload.count(b"[") <= max_depth:
        return
    top = deepest_field(rec, max_depth)
    if top is not None:
        field = f"messages[{index}].{top}"
        raise InvalidMessage(
            f"{field} nests objects/arrays deeper than {max_depth} levels (the message is "
            "level 1; AGENT_MEMORY_MAX_JSON_DEPTH)",
            field=field,
        )


def _has_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and any(0xD800 <= ord(c) < 0xE000 for c in item):
                return True
        elif isinstance(item, dict):
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list | tuple):
            stack += item
    return False


def _surrogate_field(rec: Record) -> str:
    """The top-level field of ``rec`` holding a lone surrogate (in a string or a key)."""
    return next((str(k) for k, v in rec.items() if _has_surrogate(v)), "content")


def encode_metadata(metadata: object, *, max_bytes: int, max_depth: int) -> str:
    """The JSON text of a conversation's metadata, refused (InvalidInput naming ``metadata``)
    when a reader could not serve it back exactly: not an object, nesting deeper than
    ``max_depth`` (the object is level 1), lone surrogates, non-string keys, tuples, NaN;
    TooLarge beyond ``max_bytes`` encoded."""
    if not isinstance(metadata, Mapping):
        raise InvalidInput("metadata must be a JSON object", field="metadata")
    value = dict(metadata)
    deep = InvalidInput(
        f"metadata nests objects/arrays deeper than {max_depth} levels (the metadata object "
        "is level 1; AGENT_MEMORY_MAX_JSON_DEPTH)",
        field="metadata",
    )
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        size = len(text.encode())
    except RecursionError:
        raise deep from None
    except UnicodeEncodeError:
        raise InvalidInput(
            "metadata contains a lone UTF-16 surrogate, which cannot be stored as UTF-8",
            field="metadata",
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata cannot be stored as JSON: {exc}", field="metadata") from None
    if size > max_bytes:
        raise TooLarge(
            f"metadata is {size} bytes encoded; the limit is {max_bytes} "
            "(AGENT_MEMORY_MAX_METADATA_BYTES)",
            field="metadata",
        )
    if deepest_field(value, max_depth) is not None:
        raise deep
    if json.loads(text) != value:
        raise InvalidInput(
            "metadata would not read back as written: JSON objects need string keys and "
            "tuples would come back as lists",
            field="metadata",
        )
    return text


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


def readable_record(payload: bytes | str) -> Record | None:
    """The record of a stored payload, or None when it is not one this store could have
    written (another writer's entry): not JSON, nesting deeper than any configurable limit
    (:data:`~agent_memory.rules.MAX_JSON_DEPTH`, so every reader and envelope can serve what
    is returned), or not an object with a known role and text or list content."""
    try:
        rec = decode_payload(payload)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested beyond the parser
        return None
    if type(rec) is not dict or rec.get("role") not in rules.ROLES:
        return None
    if not isinstance(rec.get("content"), str | list):
        return None
    raw = payload if isinstance(payload, bytes) else payload.encode(errors="replace")
    deep = raw.count(b"{") + raw.count(b"[") > rules.MAX_JSON_DEPTH
    if deep and deepest_field(rec, rules.MAX_JSON_DEPTH) is not None:
        return None
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
