"""W1-W6, run interleaved: every repeat runs each workload on every subject, slice by slice."""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from langchain_core.messages import BaseMessage

from bench import data
from bench.subjects import Subject, Turn

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How much each workload does; ``quick`` shrinks everything for the smoke test."""

    w1_adds: int = 2000
    w2_calls: int = 200
    w2_batch: int = 10
    w3_history: int = 1000
    w3_reads: int = 20
    w4_histories: int = 100
    w4_history: int = 50
    w5_turns: int = 500
    w5_conversations: int = 50
    w6_requests: int = 200
    w6_history: int = 20

    @classmethod
    def quick(cls) -> Sizes:
        return cls(40, 4, 10, 50, 2, 4, 10, 10, 2, 4, 5)


SLICES = 10
"""Each workload's operations are timed in this many slices, the subjects taking turns slice
by slice (see run_workloads)."""

Slices = list[Callable[[], object]]


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    unit: str
    run: Callable[[Subject, str, Sizes], tuple[Slices, int]]
    """(subject, tag, sizes) -> (the timed calls, after untimed seeding, that together make the
    workload: consecutive slices of it; operations they do)"""


def _sliced(items: Sequence[T], call: Callable[[Sequence[T]], object]) -> Slices:
    """``call`` of ``items`` in SLICES consecutive parts (fewer if there are fewer items)."""
    n = min(SLICES, len(items))
    bounds = [len(items) * i // n for i in range(n + 1)]
    return [functools.partial(call, items[a:b]) for a, b in itertools.pairwise(bounds)]


def _w1(s: Subject, tag: str, z: Sizes) -> tuple[Slices, int]:
    msgs = data.conversation(tag, z.w1_adds)
    s.prepare(msgs)
    return _sliced(msgs, functools.partial(s.add_each, f"w1-{tag}")), z.w1_adds


def _w2(s: Subject, tag: str, z: Sizes) -> tuple[Slices, int]:
    msgs = data.conversation(tag, z.w2_calls * z.w2_batch)
    s.prepare(msgs)
    batches = [msgs[i : i + z.w2_batch] for i in range(0, len(msgs), z.w2_batch)]
    return _sliced(batches, functools.partial(s.add_batches, f"w2-{tag}")), z.w2_calls


def _seed(s: Subject, prefix: str, count: int, size: int) -> list[str]:
    sids = [f"{prefix}-{i}" for i in range(count)]
    for sid in sids:
        msgs = data.conversation(sid, size)
        for i in range(0, size, 1000):
            s.seed(sid, msgs[i : i + 1000])
    return sids


def _w3(s: Subject, tag: str, z: Sizes) -> tuple[Slices, int]:
    (sid,) = _seed(s, f"w3-{tag}", 1, z.w3_history)
    return _sliced([sid] * z.w3_reads, s.read), z.w3_reads


def _w4(s: Subject, tag: str, z: Sizes) -> tuple[Slices, int]:
    sids = _seed(s, f"w4-{tag}", z.w4_histories, z.w4_history)
    return _sliced(sids, s.read), len(sids)


def _w5(s: Subject, tag: str, z: Sizes) -> tuple[Slices, int]:
    turns: list[Turn] = [
        (f"w5-{tag}-{i % z.w5_conversations}", data.human(tag, i), data.ai_tool_call(tag, i))
        for i in range(z.w5_turns)
    ]
    s.prepare([m for _, q, a in turns for m in (q, a)])
    return _sliced(turns, s.turns), z.w5_turns


def _w6(s: Subject, tag: str, z: Sizes) -> tuple[Slices, int]:
    sids = _seed(s, f"w6-{tag}", z.w6_requests // 2, z.w6_history)
    return _sliced(sids + sids, s.fresh_reads), len(sids) * 2


WORKLOADS = (
    Workload("W1", "add_message, one at a time", "messages/s", _w1),
    Workload("W2", "add_messages, 10 per call", "calls/s", _w2),
    Workload("W3", "read a 1000-message history", "reads/s", _w3),
    Workload("W4", "read 100 different 50-message histories", "reads/s", _w4),
    Workload("W5", "agent turn: read, then add human + AI (tool call)", "turns/s", _w5),
    Workload("W6", "new history object per request + read (20 messages)", "requests/s", _w6),
)


@dataclass
class Rates:
    """Operations per second of every (workload, subject), one value per repeat, and the share
    of each timed call spent in the garbage collector."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    gc_shares: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, workload: str, subject: str, rate: float, gc_share: float = 0.0) -> None:
        self.values.setdefault(workload, {}).setdefault(subject, []).append(rate)
        self.gc_shares.setdefault(workload, {}).setdefault(subject, []).append(gc_share)

    def median(self, workload: str, subject: str) -> float | None:
        runs = self.values.get(workload, {}).get(subject)
        return statistics.median(runs) if runs else None

    def gc_share(self, workload: str, subject: str) -> float | None:
        """The median over repeats of the fraction of the timed call spent collecting."""
        runs = self.gc_shares.get(workload, {}).get(subject)
        return statistics.median(runs) if runs else None

    def ratio_without_gc(self, workload: str, a: str, b: str) -> float | None:
        """The median over repeats of a's rate over b's in the same repeat, with the time each
        spent collecting left out."""
        rates, shares = self.values.get(workload, {}), self.gc_shares.get(workload, {})
        pairs = zip(
            rates.get(a, []), shares.get(a, []), rates.get(b, []), shares.get(b, []), strict=False
        )
        out = [ra * (1 - sb) / rb / (1 - sa) for ra, sa, rb, sb in pairs if sa < 1 and sb < 1]
        return statistics.median(out) if out else None


@contextlib.contextmanager
def collecting() -> Iterator[list[float]]:
    """Seconds spent in CPython's garbage collector (every generation) while active, summed
    into the one-item list yielded (``gc.callbacks``: what the interpreter does anyway, timed)."""
    spent = [0.0]
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - began[0]

    gc.callbacks.append(callback)
    try:
        yield spent
    finally:
        gc.callbacks.remove(callback)


def run_workloads(
    subjects: Sequence[Subject],
    sizes: Sizes,
    repeats: int,
    flush: Callable[[], object],
    only_w6: Sequence[Subject] = (),
) -> Rates:
    """Every repeat: every workload on every subject (order rotated per repeat), each
    workload's slices interleaved: slice 1 of every subject, then slice 2, ... (the order
    rotated per slice too), so a slow spell of the shared machine hits every subject alike
    instead of the one whose whole run it falls in."""
    rates = Rates()
    for r in range(repeats):
        flush()
        order = list(subjects[r % len(subjects) :]) + list(subjects[: r % len(subjects)])
        for w in WORKLOADS:
            runs = [(s, *w.run(s, f"{s.name}-r{r}", sizes)) for s in order]
            runs += [(s, *w.run(s, f"{s.name}-r{r}", sizes)) for s in only_w6 if w.key == "W6"]
            took = dict.fromkeys((s.name for s, _, _ in runs), 0.0)
            collected = dict.fromkeys(took, 0.0)
            for k in range(max(len(slices) for _, slices, _ in runs)):
                turn = runs[k % len(runs) :] + runs[: k % len(runs)]
                for s, slices, _ in turn:
                    if k < len(slices):
                        with collecting() as spent:
                            start = time.perf_counter()
                            slices[k]()
                            took[s.name] += time.perf_counter() - start
                        collected[s.name] += spent[0]
            for s, _, ops in runs:
                rates.add(w.key, s.name, ops / took[s.name], collected[s.name] / took[s.name])
        for s in list(subjects) + list(only_w6):
            s.reset()
    return rates


def warm(subjects: Sequence[Subject]) -> None:
    """Connections open and scripts cached before any clock starts."""
    msgs: list[BaseMessage] = data.conversation("warm", 4)
    for s in subjects:
        s.prepare(msgs)
        s.add_batches("warm", [msgs[:2]])
        s.read(["warm"])
        s.turns([("warm", msgs[2], msgs[3])])
