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

import msgspec
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

from agent_memory import fastpath, rules
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
    """Rebuild the LangChain message of a record (same class, same fields). ``rec`` is left as
    it is: the message gets values of its own (a StoredMessage's record may be read again)."""
    return _owned_to_langchain(fastpath.copy_json(rec))


def message_from_payload(payload: bytes | str) -> BaseMessage:
    """The LangChain message of a stored payload, equal to
    ``record_to_langchain(decode_payload(payload))``; the freshly decoded record's values
    become the message's without copies (for reads that want messages, not records)."""
    try:  # decode_payload, inline: this runs once per message read
        rec: Record = _read_json(payload)
    except _NOT_READ:
        rec = _decode_refused(payload)
    return _owned_to_langchain(rec)


def _owned_to_langchain(rec: Record) -> BaseMessage:
    """The message of a record nobody else holds: built by the read fast path when validation
    would keep every value as it is (see :mod:`agent_memory.fastpath`), else validated."""
    role = rec["role"]
    kwargs = _constructor_arguments(role, rec)
    template = _TEMPLATES.get(role)
    if template is not None:
        message = template.build(kwargs)
        if message is not None:
            return message
    return _CLASSES[role](**kwargs)


def _constructor_arguments(role: str, rec: Record) -> dict[str, Any]:
    """The keyword arguments of the record's class that make its message (``rec`` itself,
    changed in place, when it holds nothing but such arguments: the common case)."""
    if rec.keys() <= _PLAIN[role]:  # (issuperset would build a set of the keys)
        del rec["role"]
        if "additional_kwargs" in rec and not rec["additional_kwargs"]:
            del rec["additional_kwargs"]
        return rec
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
    return kwargs


# The record keys that are constructor arguments under the same name.
_PLAIN = {
    role: frozenset({"role", "content", "additional_kwargs", *names})
    for role, names in _FIELDS.items()
    if role != "chat"
}
_PLAIN["chat"] = frozenset()  # its role is stored as chat_role


# One record per shape the fast path serves, each built both ways once at import: a template
# whose sample differs from validation is not used (see fastpath.self_check).
_SAMPLES: dict[str, list[Record]] = {
    "user": [{"content": "hi", "id": "u1"}, {"content": [{"type": "text", "text": "a"}, "b"]}],
    "system": [{"content": "be brief", "name": "policy"}],
    "assistant": [
        {
            "content": [{"type": "reasoning", "reasoning": "r"}, {"type": "text", "text": "t"}],
            "id": "a1",
            "additional_kwargs": {"refusal": None},
            "response_metadata": {"model_name": "m", "token_usage": {"total_tokens": 3}},
            "tool_calls": [{"name": "f", "args": {"x": [1]}, "id": "c1"}],
            "invalid_tool_calls": [{"name": "g", "args": "{", "id": "c2", "error": "bad"}],
            "usage_metadata": {
                "input_tokens": 1,
                "output_tokens": 2,
                "total_tokens": 3,
                "input_token_details": {"cache_read": 1},
                "output_token_details": {"reasoning": 1},
            },
            "output_version": "v1",
        },
        {"content": "", "tool_calls": [{"name": "f", "args": {}, "id": None, "type": "tool_call"}]},
    ],
    "tool": [
        {"content": "42", "tool_call_id": "c1", "status": "error", "artifact": {"raw": [1]}},
        {"content": [{"type": "text", "text": "a"}], "tool_call_id": "c1", "name": "f"},
    ],
    "function": [{"content": "{}", "name": "f"}],
    "chat": [{"content": "x", "role": "critic"}],
}
_TEMPLATES = fastpath.self_check(fastpath.templates(_CLASSES), _SAMPLES)


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
    # Read back with orjson.loads, equal to decode_payload on what orjson.dumps writes: that
    # switches to the json module for runs of 19+ digits, which orjson.dumps writes only in
    # strings (read alike) and in integers of 64 bits at most (exact for both readers; larger
    # ones raise above); its floats are shortest round-trip reprs, which both readers round
    # correctly to the same float (tests/test_codec.py checks it as a property). One scan of
    # the payload less per message written.
    if fast is not None and len(fast) <= max_bytes and orjson.loads(fast) == rec:
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
    an opening bracket, so a payload with at most ``max_depth`` of them is not walked (counted
    as the bytes one translate deletes: one pass instead of two counts)."""
    if payload is not None and len(payload) - len(payload.translate(None, b"{[")) <= max_depth:
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


# A payload is read by msgspec, which reads every integer exactly (beyond 64 bits too) and refuses
# what it cannot read exactly: an infinity (1e400), an escaped lone surrogate, an integer longer
# than Python allows, nesting beyond the recursion limit, anything that is not strict JSON. What
# it refuses is read as before msgspec: orjson, or the json module when the payload holds a run
# of 19+ digits (orjson reads integers beyond 64 bits as floats), so whatever msgspec refuses is
# read (or refused) exactly as it was, and whatever it reads, it reads as those do
# (tests/test_payload_format.py compares them). The run is found by mapping digits to "0" and
# everything else to " " (a C loop, unlike a regex). No byte of the payload is trusted to say how
# to read it: entries written before this rule ended in a newline meaning "exact for orjson",
# but a foreign writer's JSON can end in one too (JSON Lines) and carry big integers.
_read_json = msgspec.json.Decoder().decode
_NOT_READ = (msgspec.MsgspecError, ValueError, RecursionError)
_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


def decode_payload(payload: bytes | str) -> Record:
    try:
        rec: Record = _read_json(payload)
    except _NOT_READ:
        return _decode_refused(payload)
    return rec


def _decode_refused(payload: bytes | str) -> Record:
    """A payload msgspec refused, read as every payload was before it (which may raise)."""
    if isinstance(payload, str):
        payload = payload.encode()
    rec: Record
    if _LONG_RUN in payload.translate(_DIGIT_MAP):
        rec = json.loads(payload)
    else:
        rec = orjson.loads(payload)
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
