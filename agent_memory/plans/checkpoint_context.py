"""What the LangGraph checkpoint plans share: the store's plans, the serializer, the thread's
keys, and reading what the read script returns into LangGraph's types."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from langgraph.checkpoint.base import CheckpointTuple, PendingWrite
from langgraph.checkpoint.serde.base import SerializerProtocol

from agent_memory import scripts
from agent_memory.codec import message_from_payload
from agent_memory.errors import AgentMemoryError
from agent_memory.plan import Call, Plan
from agent_memory.plans.checkpoint_format import (
    EMPTY,
    SEP,
    Target,
    as_bytes,
    head_record,
    unframe,
)
from agent_memory.plans.checkpoint_messages import LIST, MESSAGES_CHANNEL, Known
from agent_memory.plans.checkpoint_snapshots import Remembered
from agent_memory.plans.conversations import ConversationPlans


class CheckpointContext:
    """The state of one saver's plans; constructing it does no I/O. ``store`` is the
    conversation store's core (its keys, config, cluster index steps, deletion)."""

    def __init__(
        self,
        store: ConversationPlans,
        serde: SerializerProtocol,
        messages_channel: str = MESSAGES_CHANNEL,
    ) -> None:
        self.store = store
        self.serde = serde
        self.messages_channel = messages_channel
        self.known = Known()

    def _keys(self, thread_id: str) -> tuple[str, ...]:
        """A checkpoint script's keys (lua/_checkpoint.lua): the thread's eight, then the
        conversation index, the run index and the TTL marker on a single server."""
        conv = self.store.conversation_keys(thread_id)
        keys = (*conv.all, *conv.thread)
        if self.store.config.cluster:
            return keys
        names = self.store.config.keys
        return (*keys, names.index_all, names.index_runs, names.ttl_marker)

    @property
    def _ttl(self) -> int:
        return self.store.config.ttl_ms

    def _read(self, thread_id: str, *args: Any) -> Plan[list[Any]]:
        touch = self._ttl if self.store.config.touch_on_read else ""
        (reply,) = yield [Call.run(scripts.CHECKPOINT_READ, self._keys(thread_id), [touch, *args])]
        return list(reply)

    def _admin(self, thread_id: str, *args: Any) -> Call:
        argv = [self._ttl, thread_id, *args]
        return Call.run(scripts.CHECKPOINT_ADMIN, self._keys(thread_id), argv)

    def _run_index_calls(self, runs: Iterable[bytes], thread_id: str) -> list[Call]:
        """Cluster mode: the run index lives in another slot; entries and its expiry."""
        index = self.store.config.keys.index_runs
        thread = thread_id.encode()
        return [
            Call(("ZADD", index, *(x for r in runs for x in (0, r + SEP + thread)))),
            Call(("PEXPIRE", index, self._ttl, "NX")),
            Call(("PEXPIRE", index, self._ttl, "GT")),
        ]

    # -- what the read script returns -------------------------------------------------------
    def _tuple(
        self, thread_id: str, found: Sequence[Any], cached: Remembered | None = None
    ) -> CheckpointTuple:
        """{checkpoint, record, values, writes} as a CheckpointTuple (``cached``: the
        remembered messages the read named, :class:`Known`)."""
        name, stored_head, values, writes = found
        ns_raw, _, id_raw = as_bytes(name).partition(SEP)
        ns, checkpoint_id = ns_raw.decode(), id_raw.decode()
        saved = self.serde.loads_typed(unframe(head_record(as_bytes(stored_head))))
        channel_values: dict[str, Any] = {}
        for i in range(0, len(values), 2):
            value = values[i + 1]
            if value is None or value == EMPTY:
                continue
            channel = as_bytes(values[i]).split(SEP)[2].decode()
            channel_values[channel] = self._value(thread_id, ns, value, cached)
        target = Target(thread_id, ns, None)
        parent = saved["parent"]
        return CheckpointTuple(
            config=target.config(checkpoint_id),
            checkpoint={**saved["checkpoint"], "channel_values": channel_values},  # type: ignore[typeddict-item]
            metadata=saved["metadata"],
            parent_config=target.config(parent) if parent else None,
            pending_writes=[w for w in map(self._write, writes) if w is not None],
        )

    def _value(self, thread_id: str, ns: str, value: Any, cached: Remembered | None = None) -> Any:
        """A stored channel value: a messages reference (read as a list) or serde bytes."""
        if isinstance(value, list):
            return self.known.read(thread_id, ns, value, cached)
        return self.serde.loads_typed(unframe(as_bytes(value)))

    def _write(self, stored: Any, channels: Collection[str] | None = None) -> PendingWrite | None:
        """A pending write from its member (None if its channel is not in ``channels``); a
        write of messages stored as a reference comes as [member, payload...]."""
        payloads = None
        if isinstance(stored, list):
            stored, payloads = stored[0], stored[1:]
        parts = as_bytes(stored).split(SEP, 7)
        task_id, channel = parts[3].decode(), parts[5].decode()
        if channels is not None and channel not in channels:
            return None
        if payloads is None:
            return (task_id, channel, self.serde.loads_typed((parts[6].decode(), parts[7])))
        shape, *cursors = parts[7].split(b" ")
        if len(cursors) != len(payloads):
            raise AgentMemoryError(
                f"a pending write refers to {len(cursors)} messages of the conversation's "
                f"stream but {len(payloads)} are left (trimmed?)"
            )
        messages = [message_from_payload(as_bytes(p)) for p in payloads]
        return (task_id, channel, messages if shape == LIST else messages[0])
