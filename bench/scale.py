"""Scale: the cost of a read or a listing must not grow with what else is stored."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent_memory import ConversationStore, RedisChatMessageHistory
from bench import data


@dataclass(frozen=True)
class Scale:
    what: str
    small: str
    large: str
    small_ms: float
    large_ms: float

    @property
    def ratio(self) -> float:
        return self.large_ms / self.small_ms


def _interleaved(small: Callable[[], object], large: Callable[[], object], n: int) -> list[float]:
    """Median milliseconds of each, alternating calls."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for i, call in enumerate((small, large)):
            start = time.perf_counter()
            call()
            times[i].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


def last_messages(store: ConversationStore, big: int, reads: int) -> Scale:
    """The last 20 messages of a ``big``-message conversation vs of a 100-message one."""
    for sid, size in (("scale-small", 100), ("scale-big", big)):
        msgs = data.conversation(sid, size)
        for i in range(0, size, 1000):
            store.append(sid, msgs[i : i + 1000])
    small, large = (
        RedisChatMessageHistory(sid, redis_client=store.client, window=20)
        for sid in ("scale-small", "scale-big")
    )
    s, b = _interleaved(lambda: small.messages, lambda: large.messages, reads)
    return Scale("read the last 20 messages", "of 100", f"of {big:,}", s, b)


def listing(store: ConversationStore, big: int, reads: int) -> Scale:
    """A user's 20 newest conversations when the user has ``big`` of them vs 20."""
    client = store.client
    for user, count in (("u-small", 20), ("u-big", big)):
        for i in range(count):
            store.create(f"{user}-{i}", user_id=user, title=f"conversation {i}")
    client.ping()
    s, b = _interleaved(
        lambda: store.list_conversations(user_id="u-small", limit=20),
        lambda: store.list_conversations(user_id="u-big", limit=20),
        reads,
    )
    return Scale("list a user's 20 newest conversations", "of 20", f"of {big:,}", s, b)
