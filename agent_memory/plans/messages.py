"""Message plans: append (atomic, idempotent, one round trip) and reads by position or cursor."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from agent_memory import rules, scripts
from agent_memory.codec import (
    StoredMessage,
    decode_payload,
    encode_record,
    message_from_payload,
    readable_record,
    record_from_input,
)
from agent_memory.errors import (
    ConversationNotFound,
    InvalidInput,
    MessageTooLarge,
    ServerUnsupported,
    StoreUnavailable,
)
from agent_memory.plan import Call, Plan
from agent_memory.plans.context import PlanContext
from agent_memory.plans.idempotency import call_token, reused
from agent_memory.replies import entry_payload, text

InputMessage = BaseMessage | Mapping[str, Any]
log = logging.getLogger("agent_memory")
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, RecursionError)
"""What building a message from another writer's entry can raise (pydantic's ValidationError,
JSON and UTF-8 decoding errors and InvalidInput are ValueErrors)."""


# By bytes name redis-py leaves entries as sent, [cursor, [b"m", payload]], not a dict and a
# tuple each (docs/design.md, Messages); a cluster client needs str names to find the keys.
_RANGE_NAMES = {False: (b"XRANGE", b"XREVRANGE"), True: ("XRANGE", "XREVRANGE")}


def _skipped(conversation_id: str, cursor: Any) -> None:
    log.warning(
        "skipped stream entry %s of conversation %r: not a message this store can read "
        "(written by another program?)",
        text(cursor, "replace"),
        conversation_id,
    )


def stored_messages(conversation_id: str, found: Sequence[Any]) -> list[StoredMessage]:
    """The stored messages of XRANGE entries; an entry that is not a readable message is
    skipped with a logged warning, so one foreign entry cannot make the whole read fail."""
    out: list[StoredMessage] = []
    for cursor, fields in found:
        try:
            rec = readable_record(entry_payload(fields))
        except (InvalidInput, *_UNREADABLE):
            rec = None
        if rec is None:
            _skipped(conversation_id, cursor)
        else:
            out.append(StoredMessage(text(cursor), rec))
    return out


def langchain_messages(conversation_id: str, found: Sequence[Any]) -> list[BaseMessage]:
    """The LangChain messages of XRANGE entries, skipping (with a warning) any entry that
    is not a readable message."""
    out: list[BaseMessage] = []
    append = out.append
    for cursor, fields in found:
        try:  # an entry as the server sends ours, inline: this runs once per message
            flat = type(fields) is list and len(fields) == 2 and fields[0] == b"m"
            append(message_from_payload(fields[1] if flat else entry_payload(fields)))
        except _UNREADABLE:
            _skipped(conversation_id, cursor)
    return out


def _appended(reply: Sequence[Any], records: list[dict[str, Any]]) -> list[StoredMessage]:
    """The append script's ``cursor, stored payload or ''`` pairs as stored messages: a
    message already stored under its id comes back as stored (``added=False``)."""
    out: list[StoredMessage] = []
    for i in range(0, len(reply), 2):
        cursor, stored = text(reply[i]), reply[i + 1]
        if stored:
            out.append(StoredMessage(cursor, decode_payload(stored), added=False))
        else:
            out.append(StoredMessage(cursor, records[i // 2]))
    return out


class MessagePlans(PlanContext):
    def encode_messages(
        self, messages: Sequence[InputMessage]
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        """Validate and encode a batch (all or nothing): records and the script's arguments."""
        # (a list, what the history and the API pass, is not one of these: one type check)
        if type(messages) is not list and isinstance(messages, BaseMessage | Mapping | str | bytes):
            raise InvalidInput("messages must be a sequence of messages", field="messages")
        config = self.config
        if len(messages) > config.max_messages_per_request:
            raise InvalidInput(
                f"{len(messages)} messages in one call; at most "
                f"{config.max_messages_per_request} are allowed "
                "(AGENT_MEMORY_MAX_MESSAGES_PER_REQUEST, or Settings(max_messages_per_request=))",
                field="messages",
            )
        records: list[dict[str, Any]] = []
        argv: list[Any] = []
        max_bytes, max_depth = config.max_message_bytes, config.max_json_depth
        size = 0
        for i, message in enumerate(messages):
            rec = record_from_input(message, i)
            mid = rec.get("id")
            if mid is not None and not rules.is_message_id(mid):
                raise InvalidInput(
                    f"messages[{i}].id must be a non-empty string of at most "
                    f"{rules.MAX_MESSAGE_ID_LENGTH} characters",
                    field=f"messages[{i}].id",
                )
            payload = encode_record(rec, max_bytes, i, max_depth=max_depth)
            size += len(payload)
            argv.append(mid or "")
            argv.append(payload)
            records.append(rec)
        if size > config.max_append_bytes:
            raise MessageTooLarge(
                f"the {len(records)} messages of this call are {size} bytes encoded; one call "
                f"takes at most {config.max_append_bytes} (AGENT_MEMORY_MAX_APPEND_BYTES): "
                "send them in several calls",
                field="messages",
            )
        return records, argv

    def append(
        self,
        conversation_id: str,
        messages: Sequence[InputMessage],
        *,
        idempotency_key: str | None = None,
    ) -> Plan[list[StoredMessage]]:
        """Append ``messages`` atomically (all or none), creating the conversation if needed;
        a message whose id is already stored is returned as stored (``added=False``)."""
        self.conversation_keys(conversation_id)  # the id is checked before the messages
        records, argv = self.encode_messages(messages)
        if not records:
            return []
        # Every call carries a token, so a retry of this very call (by redis-py after a lost
        # reply, or by the caller with the same idempotency key) replays instead of re-adding.
        token = call_token(idempotency_key, argv, self.config.idempotency_ttl_ms)
        reply = yield from self._append_script(conversation_id, token, argv)
        return _appended(reply, records)

    def _append_script(self, conversation_id: str, token: str, pairs: list[Any]) -> Plan[Any]:
        """Run the append script on (message id or '', payload) ``pairs`` (with WAITAOF when
        configured; then the cluster index updates); its reply: cursor, payload-or-'' each.
        ``token`` names the call (:func:`~agent_memory.plans.idempotency.call_token`)."""
        argv = [self.config.ttl_ms, conversation_id, token, *pairs]
        batch = [Call.run(scripts.APPEND, self._script_keys(conversation_id), argv)]
        if self.config.fsync_ack:
            batch.append(self._waitaof())
        reply, *fsynced = yield batch
        if len(reply) == 1 and text(reply[0]) == "reused":
            raise reused(conversation_id, self.config.idempotency_ttl_ms)
        if fsynced and int(fsynced[0][0]) < 1:
            raise StoreUnavailable(
                f"the append was not confirmed fsynced to the AOF within "
                f"{self.config.fsync_timeout_ms} ms: outcome unknown (it may be stored); retrying "
                "with the same message ids / idempotency key is safe"
            )
        if self.config.cluster:
            reply, info = reply[:-4], reply[-4:]
            yield from self._touch_indexes(conversation_id, info)
        return reply

    def _waitaof(self) -> Call:
        """WAITAOF 1 0 <timeout>: sent with the append, so it costs no extra round trip. A
        server without it (Redis < 7.2) or without AOF answers an error that the drivers
        turn into ServerUnsupported (see connection.translate)."""
        if self.config.cluster:
            raise ServerUnsupported(
                "AGENT_MEMORY_FSYNC_ACK is not supported with REDIS_CLUSTER (WAITAOF would not "
                "reach the conversation's node); use appendfsync always on the nodes"
            )
        return Call(("WAITAOF", 1, 0, self.config.fsync_timeout_ms))

    def count_messages(self, conversation_id: str) -> Plan[int]:
        """How many messages the conversation holds (XLEN of its stream; 0 if absent)."""
        (n,) = yield [Call(("XLEN", self.conversation_keys(conversation_id).stream))]
        return int(n)

    def get_messages(
        self,
        conversation_id: str,
        *,
        limit: int | None = None,
        before: str | None = None,
        after: str | None = None,
        require_exists: bool = False,
    ) -> Plan[list[StoredMessage]]:
        """Messages in order: all; the last ``limit``; or a page before/after a cursor."""
        found = yield from self._read(conversation_id, limit, before, after, require_exists)
        return stored_messages(conversation_id, found)

    def get_langchain_messages(
        self, conversation_id: str, *, limit: int | None = None
    ) -> Plan[list[BaseMessage]]:
        """The LangChain messages of :meth:`get_messages` (all, or the last ``limit``), built
        straight from the stored payloads (no StoredMessage, no cursor text): a chat
        history's read."""
        found = yield from self._read(conversation_id, limit, None, None, False)
        return langchain_messages(conversation_id, found)

    def _read(
        self,
        conversation_id: str,
        limit: int | None,
        before: str | None,
        after: str | None,
        require_exists: bool,
    ) -> Plan[Sequence[Any]]:
        """The stream entries of a read, oldest first (one round trip)."""
        keys = self.conversation_keys(conversation_id)
        limit = rules.check_limit(limit)
        low = "(" + a if (a := rules.check_cursor(after, "after")) else "-"
        high = "(" + b if (b := rules.check_cursor(before, "before")) else "+"
        if a == rules.LAST_CURSOR or b == rules.FIRST_CURSOR:  # nothing beyond: Redis would
            low, high = "+", "-"  # reject the bound, so ask for an empty range
        newest_first = limit is not None and after is None
        xrange, xrevrange = _RANGE_NAMES[self.config.cluster]
        if limit is None:
            read = Call((xrange, keys.stream, low, high))
        elif newest_first:
            read = Call((xrevrange, keys.stream, high, low, "COUNT", limit))
        else:
            read = Call((xrange, keys.stream, low, high, "COUNT", limit))
        batch = [read]
        if require_exists:
            batch.append(Call(("EXISTS", keys.meta)))
        if self.config.touch_on_read:
            batch += [Call(("PEXPIRE", k, self.config.ttl_ms)) for k in keys.all]
        replies = yield batch
        if require_exists and not replies[1]:
            raise ConversationNotFound(conversation_id)
        found: Sequence[Any] = replies[0]
        return found[::-1] if newest_first else found
