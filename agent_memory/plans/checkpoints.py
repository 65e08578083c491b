"""LangGraph checkpoints as plans: what RedisSaver and AsyncRedisSaver (agent_memory.langgraph)
run, one batch per round trip, through the stores' drivers.

The rules, besides the plans package's:

- A thread is a conversation: thread id = conversation id, every key in its hash tag
  (:mod:`.checkpoint_format` has the layout), every write refreshing all of them
  (``lua/_checkpoint.lua``).
- The root namespace's ``messages`` channel is a reference into the conversation's stream,
  each message stored once (:mod:`.checkpoint_messages`); any value that cannot be stored so
  exactly is stored in full with the serializer, for that version.
- ``put``, ``put_writes`` and ``get_tuple`` are one script call each (a cluster adds the
  conversation index update, as ``append`` does); ``list`` reads pages (:mod:`.checkpoint_history`);
  thread maintenance is in :mod:`.checkpoint_admin`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
)

from agent_memory import scripts
from agent_memory.errors import InvalidInput
from agent_memory.plan import Call, Plan
from agent_memory.plans.checkpoint_admin import CheckpointAdminPlans
from agent_memory.plans.checkpoint_format import (
    EMPTY,
    SEP,
    Target,
    frame,
    head,
    member,
    part,
    value_field,
    write_key,
)
from agent_memory.plans.checkpoint_history import CheckpointHistoryPlans, Listing, pages
from agent_memory.plans.checkpoint_messages import FULL, Consumed, storable
from agent_memory.replies import text

__all__ = ["CheckpointPlans", "Listing", "pages"]


class CheckpointPlans(CheckpointHistoryPlans, CheckpointAdminPlans):
    """Every checkpointer operation as a plan over a conversation store's core."""

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Plan[RunnableConfig]:
        target = Target.of(config)
        ns = target.ns or ""
        checkpoint_id = part(checkpoint["id"], "checkpoint id").decode()
        saved = dict(checkpoint)
        values: dict[str, Any] = saved.pop("channel_values")  # type: ignore[assignment]
        meta = get_checkpoint_metadata(config, metadata)
        run = meta.get("run_id")
        run_id = part(str(run), "run_id") if run is not None else b""
        versions = checkpoint["channel_versions"]
        record = {"checkpoint": saved, "metadata": meta, "parent": target.checkpoint_id}
        names = [part(c, "channel") + SEP + str(v).encode() for c, v in versions.items()]
        parent = (target.checkpoint_id or "").encode()
        stored_head = head(names, parent, run_id, frame(self.serde.dumps_typed(record)))
        head_args = [self._ttl, target.thread_id, member(ns, checkpoint_id), stored_head, run_id]
        pairs, messages = self._values(ns, values, new_versions)
        # the values, then the parent's pending message writes to store as references
        pairs = [len(pairs) // 2, *pairs]
        calls: list[Call] = []
        if run_id and self.store.config.cluster:
            calls = self._run_index_calls([run_id], target.thread_id)
        if messages is not None:
            stored = yield from self._put_messages(
                target.thread_id, head_args, pairs, messages, calls
            )
            if stored:
                return target.config(checkpoint_id)
            pairs[0] += 1
            pairs[1:1] = (messages[0], frame(self.serde.dumps_typed(messages[1])))
            limit = self.store.config.max_message_bytes
            appendix = self.known.appendix(target.thread_id, messages[1], limit)
            if appendix:
                pairs += (b"", b"+", *appendix)  # new messages still go to the stream
            self.known.remember(target.thread_id, messages[1], FULL)
        yield from self._put_call(target.thread_id, [*head_args, *pairs], calls)
        return target.config(checkpoint_id)

    def _values(
        self, ns: str, values: dict[str, Any], new_versions: ChannelVersions
    ) -> tuple[list[Any], tuple[bytes, list[BaseMessage]] | None]:
        """The (field, value) pairs of the new versions, and the messages channel's field and
        list when it goes to the stream."""
        pairs: list[Any] = []
        messages = None
        for channel, version in new_versions.items():
            name = value_field(ns, channel, version)
            if channel not in values:
                pairs += (name, EMPTY)
            elif ns == "" and channel == self.messages_channel and storable(values[channel]):
                messages = (name, values[channel])
            else:
                pairs += (name, frame(self.serde.dumps_typed(values[channel])))
        return pairs, messages

    def _put_messages(
        self,
        thread_id: str,
        head_args: list[Any],
        pairs: list[Any],
        messages: tuple[bytes, list[BaseMessage]],
        calls: list[Call],
    ) -> Plan[bool]:
        """Put with the messages as a reference; False (nothing stored) when they must be
        stored in full instead."""
        name, value = messages
        found = self.known.section(thread_id, value, self.store.config.max_message_bytes)
        if found is None:
            return False
        section, kept = found
        argv = [*head_args, *pairs, name, *section]
        reply = yield from self._put_call(thread_id, argv, calls)
        if reply[0]:
            self.known.remember(thread_id, value, text(reply[1]), kept)
        return bool(reply[0])

    def _put_call(self, thread_id: str, argv: list[Any], calls: list[Call]) -> Plan[list[Any]]:
        replies = yield [Call.run(scripts.CHECKPOINT_PUT, self._keys(thread_id), argv), *calls]
        reply: list[Any] = replies[0]
        if self.store.config.cluster and reply[0]:
            yield from self.store._touch_indexes(thread_id, reply[-4:])
        return reply

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> Plan[None]:
        target = Target.of(config)
        if target.checkpoint_id is None:
            raise InvalidInput("put_writes needs a checkpoint_id", field="checkpoint_id")
        task, path = part(task_id, "task_id"), part(task_path, "task_path")
        argv: list[Any] = [
            self._ttl,
            target.thread_id,
            member(target.ns or "", target.checkpoint_id) + SEP,
        ]
        for idx, (channel, value) in enumerate(writes):
            special = WRITES_IDX_MAP.get(channel)
            key = write_key(path, task, idx if special is None else special)
            stored = part(channel, "channel") + SEP + frame(self.serde.dumps_typed(value))
            argv += (key, b"0" if special is None else b"1", stored)
            ref = None
            if special is None and target.ns == "" and channel == self.messages_channel:
                ref = Consumed.of(key, value, self.store.config.max_message_bytes)
            if ref is None:
                argv.append(0)
                continue
            argv += (len(ref.messages), ref.shape)
            for mid, payload in ref.messages:
                argv += (mid, payload)
        if len(argv) == 3:
            return
        (reply,) = yield [Call.run(scripts.CHECKPOINT_WRITES, self._keys(target.thread_id), argv)]
        if self.store.config.cluster:
            yield from self.store._touch_indexes(target.thread_id, reply[-4:])

    def get_tuple(self, config: RunnableConfig) -> Plan[CheckpointTuple | None]:
        target = Target.of(config)
        ns = target.ns or ""
        if target.checkpoint_id is not None:
            args: tuple[Any, ...] = ("one", member(ns, target.checkpoint_id))
        else:
            args = ("latest", ns.encode())
        cached = self.known.get(target.thread_id)
        if cached is not None and cached.ref == FULL:
            cached = None
        found = yield from self._read(target.thread_id, *args, cached.ref if cached else "")
        return self._tuple(target.thread_id, found[0], cached) if found else None
