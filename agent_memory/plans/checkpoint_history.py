"""LangGraph checkpoint reads over many checkpoints: ``list`` in pages, and
``get_delta_channel_history`` (the parent chain walked by the read script, one round trip)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
)

from agent_memory.errors import InvalidInput
from agent_memory.plan import Call, Plan
from agent_memory.plans.checkpoint_context import CheckpointContext
from agent_memory.plans.checkpoint_format import SEP, Target, as_bytes, member, part
from agent_memory.replies import text, texts

PAGE = 10  # checkpoints per round trip of list(): each comes with its values and writes


class CheckpointHistoryPlans(CheckpointContext):
    def delta_channel_history(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Plan[dict[str, DeltaChannelHistory]]:
        """BaseCheckpointSaver.get_delta_channel_history in one round trip: the script walks
        the parent chain until every channel has a stored value (its ``seed``); writes come
        oldest first, each checkpoint's in ``writes_sort_key`` order (as InMemorySaver's)."""
        if not channels:
            return {}
        target = Target.of(config)
        ns = target.ns or ""
        names = [part(c, "channel") for c in channels]
        args = ("history", ns.encode(), (target.checkpoint_id or "").encode(), *names)
        steps = yield from self._read(target.thread_id, *args)
        remaining = set(channels)
        chunks: dict[str, list[list[PendingWrite]]] = {c: [] for c in channels}
        seeds: dict[str, Any] = {}
        for _, found, writes in steps:
            here: dict[str, list[PendingWrite]] = {}
            for stored in writes:
                write = self._write(stored, remaining)
                if write is not None:
                    here.setdefault(write[1], []).append(write)
            for channel, chunk in here.items():
                chunks[channel].append(chunk)
            for i in range(0, len(found), 2):
                channel = text(found[i])
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
        """The state of one ``list()``: run ``pages(listing)`` one plan after the other."""
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise InvalidInput(f"limit must be an integer, not {limit!r}", field="limit")
        target = Target.of(config, default_ns=None) if config is not None else None
        before_id = get_checkpoint_id(before) if before else None
        return Listing(self, target, dict(filter or {}), before_id, limit)

    def thread_ids(self) -> Plan[list[str]]:
        """Every thread (conversation) in the index, for ``list(None)``."""
        (members,) = yield [Call(("ZRANGE", self.store.config.keys.index_all, 0, -1))]
        return texts(members)


@dataclass
class Listing:
    """One ``list()`` call: each :meth:`page` is a plan returning the next matching tuples
    (one round trip); ``done`` once the limit is reached or nothing is left. Newest first per
    namespace (``ZREVRANGEBYLEX``); ``filter`` and ``before`` across namespaces are applied
    to each page, so a listing reads pages until it has ``limit`` matches, not every one."""

    plans: CheckpointHistoryPlans
    target: Target | None
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
            found = yield from self.plans._read(thread, "one", member(ns or "", only))
            self.done = True
        else:
            high, low = self._bounds(ns)
            count = PAGE if self.filter or self.limit is None else min(PAGE, self.limit)
            found = yield from self.plans._read(thread, "page", high, low, count)
            if len(found) < count:
                self._next_thread()
            else:
                self._high = b"(" + as_bytes(found[-1][0])
        return self._take(thread, found)

    def _bounds(self, ns: str | None) -> tuple[bytes, bytes]:
        if ns is None:
            return self._high or b"+", b"-"
        low = b"[" + ns.encode() + SEP
        high = self._high or b"[" + ns.encode() + SEP + b"\xff"
        if self._high is None and self.before is not None:
            high = b"(" + member(ns, self.before)
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
