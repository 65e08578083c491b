"""LangGraph checkpoints as plans (the :mod:`agent_memory.plan` protocol): the pure core that
RedisSaver and AsyncRedisSaver share. Imports nothing from redis-py; every Redis step is one of
the ``checkpoint_*`` scripts (lua/) or a plain command, one batch per round trip.

Rules of this module (see docs/langgraph.md for the layout and the semantics):

- A thread is a conversation: thread id = conversation id, all keys in its hash tag.
- The root namespace's ``messages`` channel is not serialised with the checkpoint: its messages
  are entries of the conversation's stream (codec format) and the value is a *reference*
  ``"count from to from to ..."`` (inclusive cursor ranges). A put sends only the messages the
  saver has not seen in this thread (``_Known``); the script appends those whose id is not in
  the stream yet. Any value that cannot be expressed that way exactly (an element that is not
  exactly one of LangChain's six message classes, a message the codec refuses, an id stored
  with other content) is stored in full with the serializer, for that version only.
- Other channel values and pending writes are ``type NUL bytes`` of ``serde.dumps_typed``.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from agent_memory import scripts
from agent_memory.codec import _CLASSES, encode_record, message_from_payload, record_from_langchain
from agent_memory.core import StoreCore
from agent_memory.errors import AgentMemoryError, InvalidInput
from agent_memory.keys import validate_id
from agent_memory.plan import Call, Plan
from agent_memory.replies import text as _text

SEP = b"\0"
NAMES_SEP = b"\1"
EMPTY = b"empty" + SEP
FULL = "!"  # _Known: this thread's list extends one that had to be stored in full
MESSAGES_CHANNEL = "messages"
PRUNE_STRATEGIES = ("keep_latest", "delete")
_EXACT_CLASSES = frozenset(_CLASSES.values())  # the classes the codec rebuilds
_IDX_OFFSET = 2**31
_PAGE = 10
_RUNS_PER_CALL = 100
_KNOWN_THREADS = 1024


def _part(value: object, what: str) -> bytes:
    """A name used inside field names and members: a string without NUL or \\x01."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}", field=what)
    raw = value.encode()
    if SEP in raw or NAMES_SEP in raw:
        raise InvalidInput(f"{what} must not contain NUL or \\x01 characters", field=what)
    return raw


def _frame(typed: tuple[str, bytes]) -> bytes:
    return typed[0].encode() + SEP + typed[1]


def _unframe(value: bytes) -> tuple[str, bytes]:
    kind, _, data = value.partition(SEP)
    return kind.decode(), data


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@dataclass(frozen=True, slots=True)
class _Target:
    """The thread, namespace and (optional) checkpoint id a config names."""

    thread_id: str
    ns: str | None
    checkpoint_id: str | None

    @classmethod
    def of(cls, config: RunnableConfig, *, default_ns: str | None = "") -> _Target:
        conf = config.get("configurable") or {}
        if "thread_id" not in conf:
            raise InvalidInput("config['configurable'] needs a thread_id", field="thread_id")
        thread_id = validate_id(str(conf["thread_id"]), "thread_id")
        ns = conf.get("checkpoint_ns", default_ns)
        if ns is not None:
            _part(ns, "checkpoint_ns")
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is not None:
            _part(checkpoint_id, "checkpoint_id")
        return cls(thread_id, ns, checkpoint_id)

    def config(self, checkpoint_id: str) -> RunnableConfig:
        return {
            "configurable": {
                "thread_id": self.thread_id,
                "checkpoint_ns": self.ns or "",
                "checkpoint_id": checkpoint_id,
            }
        }


def _member(ns: str, checkpoint_id: str) -> bytes:
    return ns.encode() + SEP + checkpoint_id.encode()


def _value_field(ns: str, channel: str, version: Any) -> bytes:
    return b"b" + SEP + ns.encode() + SEP + _part(channel, "channel") + SEP + str(version).encode()


@dataclass
class _Known:
    """What this saver last wrote or read of each thread's messages, and the stream reference
    of that list, so that a put sends only the messages that extend it. Each message is kept as
    its class and a shallow copy of its fields: a message replaced, or changed in place at the
    top level (``m.content = ...``), no longer matches and is sent again. Bounded; a miss only
    costs sending the whole list once (the script finds the stored ones by id)."""

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
        if len(self.threads) >= _KNOWN_THREADS:
            self.threads.clear()
        self.threads[thread_id] = ([(type(m), dict(m.__dict__)) for m in messages], ref)

    def forget(self, thread_id: str) -> None:
        self.threads.pop(thread_id, None)


class CheckpointPlans:
    """Every checkpointer operation as a plan over a store's core."""

    def __init__(
        self,
        core: StoreCore,
        serde: SerializerProtocol,
        messages_channel: str = MESSAGES_CHANNEL,
    ) -> None:
        self.core = core
        self.serde = serde
        self.messages_channel = messages_channel
        self.known = _Known()

    # -- keys -----------------------------------------------------------------------------
    def _keys(self, thread_id: str) -> tuple[str, ...]:
        conv = self.core.conversation_keys(thread_id)
        keys = (*conv.all, *conv.thread)
        if self.core.config.cluster:
            return keys
        return (*keys, self.core.config.keys.index_all, self.core.config.keys.index_runs)

    @property
    def _ttl(self) -> int:
        return self.core.config.ttl_ms

    # -- put ------------------------------------------------------------------------------
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Plan[RunnableConfig]:
        target = _Target.of(config)
        ns = target.ns or ""
        checkpoint_id = _part(checkpoint["id"], "checkpoint id").decode()
        saved = dict(checkpoint)
        values: dict[str, Any] = saved.pop("channel_values")  # type: ignore[assignment]
        meta = get_checkpoint_metadata(config, metadata)
        record = _frame(
            self.serde.dumps_typed(
                {"checkpoint": saved, "metadata": meta, "parent": target.checkpoint_id}
            )
        )
        names = NAMES_SEP.join(
            _value_field(ns, ch, v) for ch, v in checkpoint["channel_versions"].items()
        )
        run = meta.get("run_id")
        run_id = _part(str(run), "run_id") if run is not None else b""
        pairs: list[bytes] = []
        messages: list[BaseMessage] | None = None
        messages_field = b""
        for channel, version in new_versions.items():
            value_field = _value_field(ns, channel, version)
            if channel not in values:
                pairs += (value_field, EMPTY)
                continue
            value = values[channel]
            if ns == "" and channel == self.messages_channel and _storable(value):
                messages = value
                messages_field = value_field
                continue
            pairs += (value_field, _frame(self.serde.dumps_typed(value)))
        parent = (target.checkpoint_id or "").encode()
        head = [
            self._ttl,
            target.thread_id,
            _member(ns, checkpoint_id),
            record,
            names,
            run_id,
            parent,
        ]
        calls: list[Call] = []
        if run_id and self.core.config.cluster:
            calls = self._run_index_calls([run_id], target.thread_id)
        stored = False
        if messages is not None:
            section = self._messages_section(target.thread_id, messages)
            if section is not None:
                argv = [*head, len(pairs) // 2, *pairs, messages_field, *section]
                reply = yield from self._put_call(target.thread_id, argv, calls)
                stored = bool(reply[0])
                if stored:
                    self.known.remember(target.thread_id, messages, _text(reply[1]))
            if not stored:
                pairs += (messages_field, _frame(self.serde.dumps_typed(messages)))
                self.known.remember(target.thread_id, messages, FULL)
        if not stored:
            yield from self._put_call(target.thread_id, [*head, len(pairs) // 2, *pairs], calls)
        return target.config(checkpoint_id)

    def _put_call(self, thread_id: str, argv: list[Any], calls: list[Call]) -> Plan[list[Any]]:
        replies = yield [Call.run(scripts.CHECKPOINT_PUT, self._keys(thread_id), argv), *calls]
        reply: list[Any] = replies[0]
        if self.core.config.cluster and reply[0]:
            yield from self.core._touch_indexes(thread_id, reply[-3:])
        return reply

    def _messages_section(self, thread_id: str, value: list[BaseMessage]) -> list[Any] | None:
        """The base reference and the (id, payload) pairs of the messages to send, or None
        when the value must be stored in full."""
        ref, start = self.known.base(thread_id, value)
        if ref == FULL:
            return None
        out: list[Any] = [ref]
        limit = self.core.config.max_message_bytes
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

    # -- put_writes -----------------------------------------------------------------------
    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> Plan[None]:
        target = _Target.of(config)
        if target.checkpoint_id is None:
            raise InvalidInput("put_writes needs a checkpoint_id", field="checkpoint_id")
        prefix = _member(target.ns or "", target.checkpoint_id) + SEP
        task = _part(task_id, "task_id")
        path = _part(task_path, "task_path")
        argv: list[Any] = [self._ttl, target.thread_id, prefix]
        for idx, (channel, value) in enumerate(writes):
            special = WRITES_IDX_MAP.get(channel)
            position = idx if special is None else special
            key = path + SEP + task + SEP + b"%010d" % (position + _IDX_OFFSET)
            value_bytes = _part(channel, "channel") + SEP + _frame(self.serde.dumps_typed(value))
            argv += (key, b"0" if special is None else b"1", value_bytes)
        if len(argv) == 3:
            return
        (reply,) = yield [Call.run(scripts.CHECKPOINT_WRITES, self._keys(target.thread_id), argv)]
        if self.core.config.cluster:
            yield from self.core._touch_indexes(target.thread_id, reply[-3:])

    # -- reads ----------------------------------------------------------------------------
    def _read(self, thread_id: str, *args: Any) -> Plan[list[Any]]:
        touch = self._ttl if self.core.config.touch_on_read else ""
        (reply,) = yield [Call.run(scripts.CHECKPOINT_READ, self._keys(thread_id), [touch, *args])]
        return list(reply)

    def get_tuple(self, config: RunnableConfig) -> Plan[CheckpointTuple | None]:
        target = _Target.of(config)
        ns = target.ns or ""
        if target.checkpoint_id is not None:
            args: tuple[Any, ...] = ("one", _member(ns, target.checkpoint_id))
        else:
            args = ("latest", ns.encode())
        found = yield from self._read(target.thread_id, *args)
        if not found:
            return None
        return self._tuple(target.thread_id, found[0])

    def _tuple(self, thread_id: str, found: Sequence[Any]) -> CheckpointTuple:
        member, record, values, writes = found
        ns_raw, _, id_raw = _bytes(member).partition(SEP)
        ns, checkpoint_id = ns_raw.decode(), id_raw.decode()
        saved = self.serde.loads_typed(_unframe(_bytes(record)))
        channel_values: dict[str, Any] = {}
        for i in range(0, len(values), 2):
            value = values[i + 1]
            if value is None or value == EMPTY:
                continue
            channel = _bytes(values[i]).split(SEP)[2].decode()
            channel_values[channel] = self._value(thread_id, ns, value)
        target = _Target(thread_id, ns, None)
        parent = saved["parent"]
        return CheckpointTuple(
            config=target.config(checkpoint_id),
            checkpoint={**saved["checkpoint"], "channel_values": channel_values},  # type: ignore[typeddict-item]
            metadata=saved["metadata"],
            parent_config=target.config(parent) if parent else None,
            pending_writes=[w for w in map(self._write, writes) if w is not None],
        )

    def _value(self, thread_id: str, ns: str, value: Any) -> Any:
        """A stored channel value: a messages reference (read as a list) or serde bytes."""
        if isinstance(value, list):
            return self._messages(thread_id, ns, value)
        return self.serde.loads_typed(_unframe(_bytes(value)))

    def _messages(self, thread_id: str, ns: str, value: list[Any]) -> list[BaseMessage]:
        ref = _text(value[0])
        messages = [message_from_payload(p) for p in value[1:]]
        if int(ref.split(" ", 1)[0]) != len(messages):
            raise AgentMemoryError(
                f"thread {thread_id!r}: a checkpoint refers to {ref.split(' ', 1)[0]} messages "
                f"of the conversation's stream but {len(messages)} are left (trimmed?)"
            )
        if ns == "":
            self.known.remember(thread_id, messages, ref)
        return messages

    def _write(self, member: Any, channels: Collection[str] | None = None) -> PendingWrite | None:
        """A pending write from its member (None if its channel is not in ``channels``)."""
        parts = _bytes(member).split(SEP, 7)
        task_id, channel = parts[3].decode(), parts[5].decode()
        if channels is not None and channel not in channels:
            return None
        return (task_id, channel, self.serde.loads_typed((parts[6].decode(), parts[7])))

    def delta_channel_history(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Plan[dict[str, DeltaChannelHistory]]:
        """BaseCheckpointSaver.get_delta_channel_history in one round trip: the script walks
        the parent chain until every channel has a stored value (its ``seed``)."""
        if not channels:
            return {}
        target = _Target.of(config)
        ns = target.ns or ""
        names = [_part(c, "channel") for c in channels]
        args = ("history", ns.encode(), (target.checkpoint_id or "").encode(), *names)
        steps = yield from self._read(target.thread_id, *args)
        remaining = set(channels)
        chunks: dict[str, list[list[PendingWrite]]] = {c: [] for c in channels}
        seeds: dict[str, Any] = {}
        for _, found, writes in steps:
            here: dict[str, list[PendingWrite]] = {}
            for member in writes:
                write = self._write(member, remaining)
                if write is not None:
                    here.setdefault(write[1], []).append(write)
            for channel, chunk in here.items():
                chunks[channel].append(chunk)
            for i in range(0, len(found), 2):
                channel = _text(found[i])
                seeds[channel] = self._value(target.thread_id, ns, found[i + 1])
                remaining.discard(channel)
        out: dict[str, DeltaChannelHistory] = {}
        for channel in channels:
            entry: DeltaChannelHistory = {
                "writes": [w for chunk in reversed(chunks[channel]) for w in chunk]
            }
            if channel in seeds:
                entry["seed"] = seeds[channel]
            out[channel] = entry
        return out

    def listing(
        self,
        config: RunnableConfig | None,
        *,
        filter: Mapping[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Listing:
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise InvalidInput(f"limit must be an integer, not {limit!r}", field="limit")
        target = _Target.of(config, default_ns=None) if config is not None else None
        before_id = get_checkpoint_id(before) if before else None
        return Listing(self, target, dict(filter or {}), before_id, limit)

    def thread_ids(self) -> Plan[list[str]]:
        """Every thread (conversation) in the index, for ``list(None)``."""
        (members,) = yield [Call(("ZRANGE", self.core.config.keys.index_all, 0, -1))]
        return [_text(m) for m in members]

    # -- maintenance ----------------------------------------------------------------------
    def delete_thread(self, thread_id: str) -> Plan[None]:
        """The thread is the conversation: its messages, metadata and checkpoints go."""
        self.known.forget(thread_id)
        yield from self.core.delete_conversation(str(thread_id))

    def _admin(self, thread_id: str, *args: Any) -> Call:
        argv = [self._ttl, thread_id, *args]
        return Call.run(scripts.CHECKPOINT_ADMIN, self._keys(thread_id), argv)

    def prune(self, thread_ids: Sequence[str], strategy: str = "keep_latest") -> Plan[None]:
        if strategy not in PRUNE_STRATEGIES:
            raise InvalidInput(
                f"strategy must be one of {', '.join(PRUNE_STRATEGIES)}, not {strategy!r}",
                field="strategy",
            )
        ids = [validate_id(str(t), "thread_id") for t in thread_ids]
        for i in range(0, len(ids), _RUNS_PER_CALL):
            yield [self._admin(t, "prune", strategy) for t in ids[i : i + _RUNS_PER_CALL]]

    def delete_for_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        index = self.core.config.keys.index_runs
        runs = [_part(str(r), "run_id") for r in run_ids]
        for i in range(0, len(runs), _RUNS_PER_CALL):
            chunk = runs[i : i + _RUNS_PER_CALL]
            found = yield [
                Call(("ZRANGEBYLEX", index, b"[" + r + SEP, b"[" + r + SEP + b"\xff"))
                for r in chunk
            ]
            by_thread: dict[str, list[bytes]] = {}
            entries: list[bytes] = []
            for run, members in zip(chunk, found, strict=True):
                for entry in members:
                    entries.append(_bytes(entry))
                    thread = _bytes(entry)[len(run) + 1 :].decode()
                    by_thread.setdefault(thread, []).append(run)
            if by_thread:
                yield [
                    *(self._admin(t, "runs", *rs) for t, rs in by_thread.items()),
                    Call(("ZREM", index, *entries)),
                ]

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> Plan[None]:
        """The target becomes a copy of the source's checkpoints, writes and messages (its
        own are replaced), with its own metadata and expiry."""
        source = self.core.conversation_keys(validate_id(str(source_thread_id), "thread_id"))
        target_id = validate_id(str(target_thread_id), "thread_id")
        target = self.core.conversation_keys(target_id)
        pairs = [
            (source.checkpoints, target.checkpoints),
            (source.data, target.data),
            (source.writes, target.writes),
            (source.runs, target.runs),
            (source.stream, target.stream),
            (source.ids, target.ids),
        ]
        dumps = yield [Call(("DUMP", src)) for src, _ in pairs]
        if dumps[0] is None:
            return
        self.known.forget(target_id)
        restores = [
            Call(("DEL", *(dst for _, dst in pairs))),
        ] + [
            Call(("RESTORE", dst, self._ttl, dump, "REPLACE"))
            for (_, dst), dump in zip(pairs, dumps, strict=True)
            if dump is not None
        ]
        replies = yield [*restores, self._admin(target_id, "copied")]
        reply = replies[-1]
        if self.core.config.cluster:
            yield from self.core._touch_indexes(target_id, reply[-3:])
            runs = [_bytes(r) for r in reply[0]]
            if runs:
                yield self._run_index_calls(runs, target_id)

    def _run_index_calls(self, runs: Iterable[bytes], thread_id: str) -> list[Call]:
        """Cluster mode: the run index lives in another slot; entries and its expiry."""
        index = self.core.config.keys.index_runs
        thread = thread_id.encode()
        return [
            Call(("ZADD", index, *(x for r in runs for x in (0, r + SEP + thread)))),
            Call(("PEXPIRE", index, self._ttl, "NX")),
            Call(("PEXPIRE", index, self._ttl, "GT")),
        ]

    @staticmethod
    def next_version(current: str | int | float | None) -> str:
        """Versions that sort as strings (a zero-padded counter) with a random tail, so that
        two runs forking from one checkpoint never give one channel the same version (and
        overwrite each other's value): ``0000000007.9f86d081``. Short on purpose: every
        checkpoint record names each channel's version twice or more."""
        if current is None:
            number = 0
        elif isinstance(current, int | float):
            number = int(current)
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:010d}.{random.getrandbits(32):08x}"


def _storable(value: Any) -> bool:
    """A list of messages of LangChain's own classes (not subclasses, not chunks, not
    RemoveMessage): what the stream stores and reads back exactly."""
    return isinstance(value, list) and all(type(m) in _EXACT_CLASSES for m in value)


@dataclass
class Listing:
    """The state of one ``list()`` call: each :meth:`page` is a plan returning the next
    matching tuples (one round trip); ``done`` once the limit is reached or nothing is left."""

    plans: CheckpointPlans
    target: _Target | None
    filter: dict[str, Any]
    before: str | None
    limit: int | None
    done: bool = False
    _threads: list[str] | None = None
    _high: bytes | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            self.done = True

    def page(self) -> Plan[list[CheckpointTuple]]:
        if self.target is None:
            if self._threads is None:
                self._threads = yield from self.plans.thread_ids()
            if not self._threads:
                self.done = True
                return []
            thread, ns, only = self._threads[0], None, None
        else:
            thread, ns, only = self.target.thread_id, self.target.ns, self.target.checkpoint_id
        if only is not None:
            found = yield from self.plans._read(thread, "one", _member(ns or "", only))
            self.done = True
        else:
            high, low = self._bounds(ns)
            count = _PAGE if self.filter or self.limit is None else min(_PAGE, self.limit)
            found = yield from self.plans._read(thread, "page", high, low, count)
            if len(found) < count:
                self._next_thread()
            else:
                self._high = b"(" + _bytes(found[-1][0])
        return self._take(thread, found)

    def _bounds(self, ns: str | None) -> tuple[bytes, bytes]:
        if ns is None:
            return self._high or b"+", b"-"
        low = b"[" + ns.encode() + SEP
        high = self._high or b"[" + ns.encode() + SEP + b"\xff"
        if self._high is None and self.before is not None:
            high = b"(" + _member(ns, self.before)
        return high, low

    def _next_thread(self) -> None:
        self._high = None
        if self._threads:
            self._threads.pop(0)
        if not self._threads:
            self.done = True

    def _take(self, thread: str, found: list[Any]) -> list[CheckpointTuple]:
        out: list[CheckpointTuple] = []
        for item in found:
            tup = self.plans._tuple(thread, item)
            if self.before is not None and tup.config["configurable"]["checkpoint_id"] >= (
                self.before
            ):
                continue
            if any(tup.metadata.get(k) != v for k, v in self.filter.items()):
                continue
            out.append(tup)
            if self.limit is not None and len(out) >= self.limit:
                self.done = True
                break
        if self.limit is not None:
            self.limit -= len(out)
        return out


def pages(listing: Listing) -> Iterator[Plan[list[CheckpointTuple]]]:
    """The page plans of a listing, until it is done."""
    while not listing.done:
        yield listing.page()
