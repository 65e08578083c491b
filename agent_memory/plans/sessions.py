"""The OpenAI Agents SDK session as plans: Responses API input items kept as messages.

A session is a conversation: the same keys, TTL, limits and scripts as the store's. Each item
is one stream entry whose record is in the REST role vocabulary, so that REST, the LangChain
history and export read a session like any other conversation (:func:`item_record`)::

    item                                        record
    {"role": r, "content": "text"}              the item itself (r: user, system, assistant)
    a message (any role, any content)           user / system (developer) / assistant, the
                                                text of its text parts
    function_call / any *_call with call_id     assistant with tool_calls [{id: call_id,
                                                name, args}] (invalid_tool_calls when the
                                                arguments are not a JSON object)
    function_call_output / *_output, call_id    tool, tool_call_id = call_id, the output's text
    anything else (reasoning, hosted tools...)  assistant, content ""

The item itself, exactly as given, is kept in the record's ``metadata`` under ``openai_item``
whenever the record alone would not give it back (every item but a plain text message).
Reading (:func:`item_of`) returns that item; a record without one (written over REST or by
LangChain) reads as the nearest item: a role + content message, or a function_call_output.

:class:`SessionPlans` keeps the rules of :mod:`agent_memory.plans` (this module belongs there,
as ``plans/items_session.py``): it holds all the logic, yields batches of
:class:`~agent_memory.plan.Call` and imports nothing from redis-py. Writes reuse the store's
``append`` plan (one round trip, atomic, a token per call) and ``delete_conversation``;
``pop_item`` is the ``pop.lua`` script.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agent_memory import scripts
from agent_memory.codec import Record, decode_payload
from agent_memory.errors import InvalidInput, InvalidMessage
from agent_memory.plan import Call, Plan
from agent_memory.plans.conversations import ConversationPlans
from agent_memory.plans.messages import MessagePlans
from agent_memory.replies import entry_payload

Item = dict[str, Any]

ITEM_FIELD = "openai_item"
"""The key of ``metadata`` that holds an item the record alone would not give back."""

_PLAIN_ROLES = frozenset({"user", "system", "assistant"})
_MESSAGE_ROLES = {
    "user": "user",
    "system": "system",
    "developer": "system",
    "assistant": "assistant",
}
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}
_NOT_ARGS = frozenset({"type", "id", "call_id", "name", "status"})


# -- items <-> records (pure) ----------------------------------------------------------------
def item_record(item: Mapping[str, Any], index: int = 0) -> Record:
    """The record stored for ``item`` (see the module's table)."""
    if not isinstance(item, Mapping):
        raise InvalidMessage(
            f"items[{index}] must be a mapping (a Responses API input item), "
            f"not {type(item).__name__}",
            field=f"items[{index}]",
        )
    item = dict(item)
    record = _record_of(item)
    if item_of(record) != item:
        record["metadata"] = {ITEM_FIELD: item}
    return record


def _record_of(item: Item) -> Record:
    kind, call_id = item.get("type"), item.get("call_id")
    if kind in (None, "message") and item.get("role") in _MESSAGE_ROLES:
        return {"role": _MESSAGE_ROLES[item["role"]], "content": _content(item.get("content"))}
    if isinstance(kind, str) and isinstance(call_id, str):
        if kind.endswith("_call"):
            return _tool_call(item, kind, call_id)
        if kind.endswith("_output"):
            return {
                "role": "tool",
                "content": _content(item.get("output")),
                "tool_call_id": call_id,
            }
    return {"role": "assistant", "content": ""}


def _tool_call(item: Item, kind: str, call_id: str) -> Record:
    """An assistant message calling the item's tool: a function call's JSON arguments, or the
    item's own fields (a computer or shell action, a custom tool's input) as the args."""
    name = item.get("name")
    if not isinstance(name, str):
        name = kind.removesuffix("_call")
    call: Record = {"id": call_id, "name": name}
    if kind != "function_call":
        fields = {k: v for k, v in item.items() if k not in _NOT_ARGS}
        return {"role": "assistant", "content": "", "tool_calls": [{**call, "args": fields}]}
    arguments = item.get("arguments")
    args = _json_object(arguments)
    if args is not None:
        return {"role": "assistant", "content": "", "tool_calls": [{**call, "args": args}]}
    invalid = {
        **call,
        "args": arguments if isinstance(arguments, str) else None,
        "error": "arguments are not a JSON object",
        "type": "invalid_tool_call",
    }
    return {"role": "assistant", "content": "", "invalid_tool_calls": [invalid]}


def _json_object(text: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _content(value: Any) -> str:
    """The text of a string, or of the text parts of a list of parts (images, files and
    other parts are left to the kept item: a record does not hold their bytes twice)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    return "".join(text for text in map(_part_text, value) if text is not None)


def _part_text(part: Any) -> str | None:
    if not isinstance(part, Mapping):
        return None
    key = _TEXT_PARTS.get(part.get("type"))  # type: ignore[arg-type]
    text = part.get(key) if key is not None else None
    return text if isinstance(text, str) else None


def item_of(record: Record) -> Item:
    """The item of a stored record: the one kept in its metadata, else the nearest item."""
    metadata = record.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get(ITEM_FIELD), dict):
        kept: Item = metadata[ITEM_FIELD]
        return kept
    role, content = record.get("role"), record.get("content")
    text = content if isinstance(content, str) else _blocks_text(content)
    if role == "tool":
        return {
            "type": "function_call_output",
            "call_id": record.get("tool_call_id"),
            "output": text,
        }
    if role == "chat":
        role = _MESSAGE_ROLES.get(record.get("chat_role"), "user")  # type: ignore[arg-type]
    elif role not in _PLAIN_ROLES:
        role = "user"
    return {"role": role, "content": text}


def _blocks_text(content: Any) -> str:
    """The text of LangChain/REST content blocks (``{"type": "text", "text": ...}`` or str)."""
    if not isinstance(content, list):
        return ""
    parts = (
        b if isinstance(b, str) else b.get("text") for b in content if isinstance(b, str | dict)
    )
    return "".join(p for p in parts if isinstance(p, str))


def items_digest(items: Sequence[Mapping[str, Any]]) -> str:
    """A digest of a call's items: the same items give the same digest (key order aside)."""
    raw = json.dumps(list(items), sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


# -- the plans -------------------------------------------------------------------------------
class SessionPlans(MessagePlans, ConversationPlans):
    """The session's operations, over the message and conversation plans of the store."""

    def get_items(self, session_id: str, limit: int | None) -> Plan[list[Item]]:
        """All items, oldest first, or the last ``limit`` (one XREVRANGE ... COUNT limit)."""
        if isinstance(limit, int) and not isinstance(limit, bool) and limit <= 0:
            return []
        found = yield from self._read(session_id, limit, None, None, False)
        return [item_of(decode_payload(entry_payload(fields))) for _, fields in found]

    def add_items(
        self, session_id: str, items: Sequence[Mapping[str, Any]], token: str
    ) -> Plan[None]:
        """Append the items atomically in one round trip. ``token`` names the call: a call
        with a token the conversation has seen (within the idempotency TTL) replays instead."""
        if isinstance(items, Mapping | str | bytes):
            raise InvalidInput("items must be a list of items", field="items")
        records = [item_record(item, i) for i, item in enumerate(items)]
        if not records:
            return
        try:
            yield from self.append(session_id, records, idempotency_key=token)
        except InvalidInput as exc:  # name the caller's items, not the store's messages
            if not (exc.field or "").startswith("messages"):
                raise
            field = "items" + (exc.field or "").removeprefix("messages")
            raise type(exc)(str(exc).replace("messages", "items", 1), field=field) from None

    def pop_item(self, session_id: str) -> Plan[Item | None]:
        """Remove the newest item and return it (None when there is none), atomically."""
        keys = self._script_keys(session_id)
        (reply,) = yield [Call.run(scripts.POP, keys, [self.config.ttl_ms, session_id])]
        if not reply:
            return None
        if len(reply) == 1:  # {'thread'}: nothing removed
            raise InvalidInput(
                f"session {session_id!r} is also a LangGraph thread: its checkpoints refer to "
                "its messages, so pop_item would make them unreadable; nothing was removed "
                "(remove messages through the graph, with RemoveMessage)",
                field="session_id",
            )
        if self.config.cluster:
            yield from self._touch_indexes(session_id, reply[2:])
        return item_of(decode_payload(reply[1]))

    def clear_session(self, session_id: str) -> Plan[bool]:
        """Delete the session's conversation (every key, index entries); True if it existed."""
        return (yield from self.delete_conversation(session_id))
