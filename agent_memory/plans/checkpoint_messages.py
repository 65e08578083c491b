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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from agent_memory.codec import _CLASSES, encode_record, message_from_payload, record_from_langchain
from agent_memory.errors import AgentMemoryError, InvalidInput
from agent_memory.plans.checkpoint_snapshots import Remembered, Snapshot
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
    of that list (each message as a :class:`Snapshot`). A put whose list extends the
    remembered one sends only the new messages: one replaced or changed in place, at any
    depth, no longer matches and is sent again. A read whose stored reference is the
    remembered one gets new copies of the snapshots instead of the payloads (the read script
    returns ``[reference, 1]``), so a turn does not decode the thread's history again.
    Bounded; a miss only costs sending (or reading) the whole list once (the put script finds
    the stored ones by id)."""

    threads: dict[str, Remembered] = field(default_factory=dict)

    def get(self, thread_id: str) -> Remembered | None:
        return self.threads.get(thread_id)

    def base(self, thread_id: str, value: list[Any]) -> tuple[str, list[Snapshot]]:
        """The reference and snapshots of the remembered list if ``value`` extends it."""
        known = self.threads.get(thread_id)
        if known is None or not known.extended_by(value):
            return "", []
        return known.ref, known.snapshots

    def remember(
        self,
        thread_id: str,
        messages: list[BaseMessage],
        ref: str,
        kept: Sequence[Snapshot] = (),
    ) -> None:
        """Remember ``messages`` under ``ref``; ``kept`` are the snapshots of their first
        ones (the base :meth:`section` found), kept instead of taken again."""
        if len(self.threads) >= KNOWN_THREADS and thread_id not in self.threads:
            self.threads.clear()
        taken = map(Snapshot.of, messages[len(kept) :])
        self.threads[thread_id] = Remembered.of([*kept, *taken], ref)

    def forget(self, thread_id: str) -> None:
        self.threads.pop(thread_id, None)

    def section(
        self, thread_id: str, value: list[BaseMessage], limit: int
    ) -> tuple[list[Any], list[Snapshot]] | None:
        """The put script's messages arguments: the base reference, then (id, payload) of each
        message to send, and the snapshots of the base's messages (for :meth:`remember`);
        None when the value must be stored in full."""
        ref, kept = self.base(thread_id, value)
        start = len(kept)
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
        return out, kept

    def appendix(self, thread_id: str, value: list[BaseMessage], limit: int) -> list[Any]:
        """(id, payload) of the messages of a value stored in full that the stream may not
        hold yet (those after the remembered list, or all of them): the put script appends
        those whose id it does not hold, so the conversation (REST, history, export) still
        gets every new message of a thread whose list had to be stored in full."""
        ref, kept = self.base(thread_id, value)
        out: list[Any] = []
        for i, message in enumerate(value[len(kept) if ref else 0 :]):
            mid = message.id
            if not isinstance(mid, str) or not mid or len(mid) > 256:
                continue
            try:
                out += (mid, encode_record(record_from_langchain(message), limit, i))
            except InvalidInput:
                continue
        return out

    def read(
        self, thread_id: str, ns: str, value: list[Any], cached: Remembered | None = None
    ) -> list[BaseMessage]:
        """The messages of a reference as the read script returns it: [reference, payload...],
        or [reference, 1] when it is the reference of ``cached`` (what the plan sent)."""
        ref = text(value[0])
        if len(value) == 2 and isinstance(value[1], int):
            if cached is None or cached.ref != ref:
                raise AgentMemoryError(f"thread {thread_id!r}: a cached read without the cache")
            return cached.messages()
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


LIST = b"L"
"""A pending write's value that was a list of messages (else ``b"M"``: one message)."""
REF_TYPE = b"am.ref"
"""The type of a pending write stored as a reference (serde's types are ``msgpack``,
``json``, ``bytes``, ``null``...: never this)."""


@dataclass(frozen=True, slots=True)
class Consumed:
    """A pending write of the root ``messages`` channel that is a message or a list of them,
    each with an id, sent with their payloads: once they are all in the stream with those
    payloads (now, or when the next checkpoint's put has appended them), the write is stored
    as ``am.ref`` and their cursors instead of a second copy (lua/checkpoint_writes.lua)."""

    key: bytes
    shape: bytes
    messages: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, key: bytes, value: Any, limit: int) -> Consumed | None:
        shape, items = (LIST, value) if isinstance(value, list) else (b"M", [value])
        if not items or not storable(items):
            return None
        out: list[tuple[str, bytes]] = []
        for message in items:
            mid = message.id
            if not isinstance(mid, str) or not mid or len(mid) > 256:
                return None
            try:
                out.append((mid, encode_record(record_from_langchain(message), limit)))
            except InvalidInput:
                return None
        return cls(key, shape, tuple(out))
