"""A thread's messages stored once: the ``messages`` channel as a reference into its stream.

The root namespace's ``messages`` value, when it is a list of LangChain's own message classes,
is stored as ``count from to from to ...`` (inclusive cursor ranges of the conversation's
stream, entries in the codec's format) instead of being serialised again. :class:`Known`
remembers the list this saver last wrote or read per thread with its reference, so a put sends
the reference and only the messages that extend it; the script appends those whose id the
stream does not hold yet. A value that cannot be expressed so exactly is stored in full
(:data:`FULL` marks a thread whose list extends one that had to be).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from agent_memory.codec import _CLASSES, encode_record, message_from_payload, record_from_langchain
from agent_memory.errors import AgentMemoryError, InvalidInput
from agent_memory.replies import text

MESSAGES_CHANNEL = "messages"
FULL = "!"
EXACT_CLASSES = frozenset(_CLASSES.values())  # the classes the codec rebuilds as they were
KNOWN_THREADS = 1024


def storable(value: Any) -> bool:
    """A list of messages of LangChain's own classes (not subclasses, not chunks, not
    RemoveMessage): what the stream stores and reads back exactly."""
    return isinstance(value, list) and all(type(m) in EXACT_CLASSES for m in value)


@dataclass
class Known:
    """What this saver last wrote or read of each thread's messages, and the stream reference
    of that list. Each message is kept as its class and a shallow copy of its fields: a message
    replaced, or changed in place at the top level (``m.content = ...``), no longer matches and
    is sent again. Bounded; a miss only costs sending the whole list once (the script finds the
    stored ones by id)."""

    threads: dict[str, tuple[list[tuple[type, dict[str, Any]]], str]] = field(default_factory=dict)

    def base(self, thread_id: str, value: list[Any]) -> tuple[str, int]:
        """The reference and length of the remembered list if ``value`` extends it."""
        known = self.threads.get(thread_id)
        if known is None:
            return "", 0
        messages, ref = known
        if len(value) < len(messages):
            return "", 0
        for (cls, fields), new in zip(messages, value, strict=False):
            if type(new) is not cls or new.__dict__ != fields:
                return "", 0
        return ref, len(messages)

    def remember(self, thread_id: str, messages: list[BaseMessage], ref: str) -> None:
        if len(self.threads) >= KNOWN_THREADS:
            self.threads.clear()
        self.threads[thread_id] = ([(type(m), dict(m.__dict__)) for m in messages], ref)

    def forget(self, thread_id: str) -> None:
        self.threads.pop(thread_id, None)

    def section(self, thread_id: str, value: list[BaseMessage], limit: int) -> list[Any] | None:
        """The put script's messages arguments: the base reference, then (id, payload) of each
        message to send; None when the value must be stored in full."""
        ref, start = self.base(thread_id, value)
        if ref == FULL:
            return None
        out: list[Any] = [ref]
        for i, message in enumerate(value[start:], start):
            if not ref and message.id is None:
                return None  # without an id it cannot be found in the stream: store in full
            mid = message.id or ""
            if not isinstance(mid, str) or len(mid) > 256:
                return None
            try:
                payload = encode_record(record_from_langchain(message), limit, i)
            except InvalidInput:
                return None
            out += (mid, payload)
        return out

    def read(self, thread_id: str, ns: str, value: list[Any]) -> list[BaseMessage]:
        """The messages of a reference as the read script returns it: [reference, payload...]."""
        ref = text(value[0])
        messages = [message_from_payload(p) for p in value[1:]]
        count = ref.split(" ", 1)[0]
        if int(count) != len(messages):
            raise AgentMemoryError(
                f"thread {thread_id!r}: a checkpoint refers to {count} messages of the "
                f"conversation's stream but {len(messages)} are left (trimmed?)"
            )
        if ns == "":
            self.remember(thread_id, messages, ref)
        return messages
