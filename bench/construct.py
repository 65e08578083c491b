"""What building a history per request costs (``RunnableWithMessageHistory``'s factory does it
once per call): our class in the drop-in form ``RedisChatMessageHistory(session_id, url=...)``,
the peer's, and a ``dict`` of the same arguments as the yardstick measured in the same run (the
ratio travels across machines better than microseconds do).

Each sample times a loop of constructions and divides; the median of the samples is reported.
Our construction does no I/O; the peer's builds a client and asks the server whether it is a
cluster (one INFO round trip), which is part of what its users pay."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent_memory import RedisChatMessageHistory
from bench.subjects import peer_class


@dataclass(frozen=True)
class Construction:
    ours_us: float
    dict_us: float
    peer_us: float

    @property
    def ours_per_dict(self) -> float:
        return self.ours_us / self.dict_us

    @property
    def peer_per_ours(self) -> float:
        return self.peer_us / self.ours_us


def _median_us(build: Callable[[int], object], loops: int, samples: int) -> float:
    per: list[float] = []
    for s in range(samples):
        start = time.perf_counter()
        for i in range(loops):
            build(s * loops + i)
        per.append((time.perf_counter() - start) / loops)
    return statistics.median(per) * 1e6


def measure(url: str, quick: bool) -> Construction:
    sids = [f"user-{i}" for i in range(200)]  # requests come back to known sessions
    samples = 20 if quick else 200
    peer = peer_class()

    def ours(i: int) -> object:
        return RedisChatMessageHistory(sids[i % 200], url=url)

    def plain(i: int) -> object:
        return dict(session_id=sids[i % 200], url=url)

    def theirs(i: int) -> object:
        h = peer(sids[i % 200], url=url)
        h.redis_client.close()  # type: ignore[attr-defined]
        return h

    ours(0)  # the first one builds the shared store and client
    interleaved: dict[str, list[float]] = {"ours": [], "dict": [], "peer": []}
    for _ in range(5):
        interleaved["ours"].append(_median_us(ours, 100, samples // 5))
        interleaved["dict"].append(_median_us(plain, 100, samples // 5))
        interleaved["peer"].append(_median_us(theirs, 5, max(2, samples // 50)))
    return Construction(
        statistics.median(interleaved["ours"]),
        statistics.median(interleaved["dict"]),
        statistics.median(interleaved["peer"]),
    )
