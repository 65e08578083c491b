"""Exact counts: round trips and server commands per operation, Redis bytes per message.

Round trips are counted by wrapping ``send_packed_command`` of redis-py's connections (sync and
asyncio): one call = one write to the socket = one round trip. Server commands are the
``INFO commandstats`` calls after ``CONFIG RESETSTAT`` (commands run inside a Lua script
count too), without the counting client's own CONFIG/INFO.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio.connection
import redis.connection
from langchain_core.messages import BaseMessage, message_to_dict

from agent_memory.codec import encode_record, record_from_langchain
from agent_memory.keys import KeySchema
from bench import data
from bench.subjects import Subject


class RoundTrips:
    """Counts every packed command sent by any redis-py connection while active."""

    def __init__(self) -> None:
        self.n = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[RoundTrips]:
        sync_cls = redis.connection.AbstractConnection
        async_cls = redis.asyncio.connection.AbstractConnection
        sync_orig, async_orig = sync_cls.send_packed_command, async_cls.send_packed_command

        @functools.wraps(sync_orig)
        def sync_send(conn: Any, *args: Any, **kwargs: Any) -> Any:
            self.n += 1
            return sync_orig(conn, *args, **kwargs)

        @functools.wraps(async_orig)
        async def async_send(conn: Any, *args: Any, **kwargs: Any) -> Any:
            self.n += 1
            return await async_orig(conn, *args, **kwargs)

        sync_cls.send_packed_command = sync_send  # type: ignore[method-assign,assignment]
        async_cls.send_packed_command = async_send  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            sync_cls.send_packed_command = sync_orig  # type: ignore[method-assign]
            async_cls.send_packed_command = async_orig  # type: ignore[method-assign]


def _commands(control: redis.Redis) -> int:
    stats: dict[str, Any] = control.info("commandstats")
    own = ("config", "info")  # the counting client's CONFIG RESETSTAT (its INFO is not yet in)
    return sum(
        int(v["calls"]) for k, v in stats.items() if not k.removeprefix("cmdstat_").startswith(own)
    )


@dataclass(frozen=True)
class Count:
    subject: str
    operation: str
    round_trips: float
    commands: float


def measure(
    control: redis.Redis, subject: Subject, operation: str, run: Callable[[], object], times: int
) -> Count:
    control.config_resetstat()
    with RoundTrips().active() as trips:
        run()
    cmds = _commands(control)
    return Count(subject.name, operation, trips.n / times, cmds / times)


def count_operations(control: redis.Redis, subjects: Sequence[Subject], k: int) -> list[Count]:
    """Each operation ``k`` times per subject, after untimed seeding and a warm-up."""
    out: list[Count] = []
    for s in subjects:
        out += _count_subject(control, s, k)
        s.reset()
    return out


def _count_subject(control: redis.Redis, s: Subject, k: int) -> list[Count]:
    tag = f"count-{s.name}"
    singles = data.conversation(f"{tag}-1", k)
    batches = [data.conversation(f"{tag}-10-{i}", 10) for i in range(k)]
    turns = [(f"{tag}-t", data.human(tag, i), data.ai_tool_call(tag, i)) for i in range(k)]
    s.prepare(singles + [m for b in batches for m in b] + [m for t in turns for m in t[1:]])
    read_sid = f"{tag}-r"
    s.seed(read_sid, data.conversation(read_sid, 50))
    s.seed(f"{tag}-t", data.conversation(f"{tag}-t0", 2))
    s.read([read_sid, f"{tag}-1", f"{tag}-10"])  # connections and scripts ready
    ops: list[tuple[str, Callable[[], object]]] = [
        ("add_message", lambda: s.add_each(f"{tag}-1", singles)),
        ("add_messages (10)", lambda: s.add_batches(f"{tag}-10", batches)),
        ("read 50 messages", lambda: s.read([read_sid] * k)),
        ("agent turn", lambda: s.turns(turns)),
        ("new object + read", lambda: s.fresh_reads([read_sid] * k)),
    ]
    return [measure(control, s, name, run, k) for name, run in ops]


@dataclass(frozen=True)
class Memory:
    who: str
    bytes_per_message: float
    json_bytes_per_message: float

    @property
    def ratio(self) -> float:
        return self.bytes_per_message / self.json_bytes_per_message


def _usage(control: redis.Redis, keys: Sequence[str]) -> int:
    return sum(int(control.memory_usage(k, samples=0) or 0) for k in keys)


def memory_per_message(control: redis.Redis, ours: Subject, peer: Subject, n: int) -> list[Memory]:
    """Redis bytes per stored message (MEMORY USAGE of all of a conversation's keys / n)
    against the size of the message's JSON (ours: the stored record; the peer's: its dict)."""
    msgs: list[BaseMessage] = data.conversation("mem", n)
    ours.seed("mem", msgs)
    peer.seed("mem", msgs)
    ours_json = sum(len(encode_record(record_from_langchain(m), 1 << 30)) for m in msgs)
    peer_json = sum(len(_peer_json(m)) for m in msgs)
    ours_keys = list(KeySchema("agent_memory").conversation("mem").all)
    ours_bytes = _usage(control, ours_keys)
    peer_bytes = _usage(control, ["message_store:mem"])
    return [
        Memory("ours (stream + meta + id map + tokens)", ours_bytes / n, ours_json / n),
        Memory("peer (list)", peer_bytes / n, peer_json / n),
    ]


def _peer_json(m: BaseMessage) -> bytes:
    return json.dumps(message_to_dict(m)).encode()
