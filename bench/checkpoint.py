"""LangGraph checkpointers side by side: agent turns/s, Redis bytes per thread, round trips.

The workload is one StateGraph agent turn: a human message in, an AI message with a tool call
and token usage out (``messages`` channel with ``add_messages``; the messages are the corpus's
own: ``agent_turns.jsonl`` holds the first 50 plain-text human messages and the first 50 AI
messages with tool calls and usage of the shared corpus, ``messages.jsonl``, and each turn
gets fresh ids). The node returns a prepared
message, so a turn costs the framework plus the checkpointer and nothing else.

Subjects, each constructed the way its README tells its users to (async, ``graph.ainvoke``):

* ``InMemorySaver`` (langgraph): the framework's own cost, no I/O: the limit;
* ``plainredis``: ``langgraph_checkpoint_plainredis.AsyncRedisSaver(url=..., ttl=...)``;
* ``aws-valkey``: ``async with AsyncValkeySaver.from_conn_string(url)`` (langgraph-checkpoint-aws;
  it talks to any Redis-compatible server through valkey-py);
* ``sqlite``: ``async with AsyncSqliteSaver.from_conn_string(path)`` on a file;
* ``ours``: ``agent_memory.langgraph.AsyncRedisSaver.from_url(url)``;
* ``1-RT floor``: ``InMemorySaver`` plus one bare redis.asyncio PING before each ``aget_tuple``,
  ``aput`` and ``aput_writes``, storing nothing in Redis: InMemorySaver's own work plus the
  round trip each call of a Redis checkpointer with one round trip per call (as ours) makes, an
  approximate ceiling of such a saver's turns/s (one that did less CPU work per call than
  InMemorySaver, which serialises every channel value, could in principle pass it).

Figures: turns/s (``turns`` over ``threads`` threads, round robin, one turn at a time; the
subjects take turns by rounds of one turn per thread, on one redis-server with AOF everysec);
one thread's Redis bytes after each of ``marks`` turns (``INFO used_memory`` and the keys'
``MEMORY USAGE``, less what the server held after a warm-up turn of another thread, on a fresh
redis-server per subject with AOF off), with the keys without TTL; round trips, server commands
and CPU per turn (``send_packed_command`` calls of redis-py's and valkey-py's connections;
``INFO commandstats``; ``process_time`` and ``INFO cpu``), and the checkpointer calls made.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, TypedDict

import orjson
import redis
import redis.asyncio.connection
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    message_to_dict,
    messages_from_dict,
)
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph

from agent_memory.embedded import RedisProcess
from bench.subjects import TTL

CORPUS = Path(__file__).with_name("agent_turns.jsonl")
SAVER_METHODS = ("aget_tuple", "aput", "aput_writes")
FLOOR = "1-RT floor"


@dataclass(frozen=True)
class Sizes:
    threads: int = 10
    turns: int = 300
    marks: tuple[int, ...] = (50, 100, 200)
    counted_turns: int = 20
    repeats: int = 5

    @classmethod
    def quick(cls) -> Sizes:
        return cls(threads=2, turns=10, marks=(5, 10, 20), counted_turns=3, repeats=1)


# -- the agent --------------------------------------------------------------------------------


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _corpus() -> tuple[list[HumanMessage], list[AIMessage]]:
    """The corpus's plain-text human messages and its AI messages with tool calls and usage."""
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    messages = messages_from_dict(rows)
    humans = [m for m in messages if isinstance(m, HumanMessage) and isinstance(m.content, str)]
    calls = [
        m
        for m in messages
        if isinstance(m, AIMessage) and m.tool_calls and m.usage_metadata is not None
    ]
    return humans, calls


class Script:
    """Every turn's messages, built before any clock starts: ``turn(thread, i)`` is the input,
    and the agent node answers a human message with the AI message prepared for it."""

    def __init__(self) -> None:
        self.humans, self.calls = _corpus()
        self.answers: dict[str, AIMessage] = {}

    def turn(self, thread: str, i: int) -> HumanMessage:
        key = f"{thread}-{i:05d}"
        human = self.humans[i % len(self.humans)].model_copy(update={"id": f"h-{key}"})
        ai = self.calls[i % len(self.calls)]
        calls = [{**c, "id": f"call-{key}-{n}"} for n, c in enumerate(ai.tool_calls)]
        self.answers[f"h-{key}"] = ai.model_copy(update={"id": f"ai-{key}", "tool_calls": calls})
        return human

    def agent(self, state: State) -> dict[str, list[AnyMessage]]:
        question = state["messages"][-1]
        assert question.id is not None
        return {"messages": [self.answers.pop(question.id)]}


def build_graph(script: Script, saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any]:
    builder = StateGraph(State)
    builder.add_node("agent", script.agent)
    builder.add_edge(START, "agent")
    return builder.compile(checkpointer=saver)


def _config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


async def run_turns(
    graph: CompiledStateGraph[Any], turns: Sequence[tuple[str, BaseMessage]]
) -> None:
    for thread, human in turns:
        await graph.ainvoke({"messages": [human]}, _config(thread))


# -- the subjects -----------------------------------------------------------------------------

Opener = Callable[[str, Path], contextlib.AbstractAsyncContextManager[BaseCheckpointSaver[Any]]]


@dataclass(frozen=True)
class Subject:
    name: str
    what: str
    open: Opener
    modules: tuple[str, ...]
    """What it imports (``available`` checks them before anything runs)."""
    redis: bool = True
    stores: bool = True
    """Whether it keeps the thread somewhere whose size the memory marks measure."""


@contextlib.asynccontextmanager
async def _in_memory(url: str, tmp: Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    from langgraph.checkpoint.memory import InMemorySaver

    yield InMemorySaver()


class _OneRoundTrip(BaseCheckpointSaver[Any]):
    """An ``InMemorySaver`` that first makes one bare round trip (PING) to Redis in each call
    LangGraph makes in a turn: the floor of any Redis saver with one round trip per call."""

    def __init__(self, url: str) -> None:
        from langgraph.checkpoint.memory import InMemorySaver

        super().__init__()
        self.memory = InMemorySaver()
        self.client = redis.asyncio.Redis.from_url(url)

    async def aget_tuple(self, config: Any) -> Any:
        await self.client.ping()
        return await self.memory.aget_tuple(config)

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        await self.client.ping()
        return await self.memory.aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: Any, writes: Any, task_id: str, task_path: str = ""
    ) -> None:
        await self.client.ping()
        await self.memory.aput_writes(config, writes, task_id, task_path)

    def get_next_version(self, current: Any, channel: None = None) -> Any:
        return self.memory.get_next_version(current, channel)


@contextlib.asynccontextmanager
async def _one_round_trip(url: str, tmp: Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    saver = _OneRoundTrip(url)
    try:
        yield saver
    finally:
        await saver.client.aclose()


@contextlib.asynccontextmanager
async def _plainredis(url: str, tmp: Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    from langgraph_checkpoint_plainredis import AsyncRedisSaver

    saver = AsyncRedisSaver(url=url, ttl=TTL)
    try:
        yield saver
    finally:
        await saver.aclose()


@contextlib.asynccontextmanager
async def _aws_valkey(url: str, tmp: Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    from langgraph_checkpoint_aws import AsyncValkeySaver

    async with AsyncValkeySaver.from_conn_string(url) as saver:
        yield saver


@contextlib.asynccontextmanager
async def _sqlite(url: str, tmp: Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(tmp / "checkpoints.sqlite")) as saver:
        yield saver


@contextlib.asynccontextmanager
async def _ours(url: str, tmp: Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    from agent_memory.langgraph import AsyncRedisSaver

    saver = AsyncRedisSaver.from_url(url)
    try:
        yield saver
    finally:
        close = getattr(saver, "aclose", None)
        if close is not None:
            await close()


SUBJECTS = (
    Subject(
        "InMemorySaver",
        "langgraph `InMemorySaver()`",
        _in_memory,
        ("langgraph.checkpoint.memory",),
        redis=False,
    ),
    Subject(
        "plainredis",
        "langgraph-checkpoint-plainredis `AsyncRedisSaver(url=url, ttl=2592000)`",
        _plainredis,
        ("langgraph_checkpoint_plainredis",),
    ),
    Subject(
        "aws-valkey",
        "langgraph-checkpoint-aws `async with AsyncValkeySaver.from_conn_string(url)`",
        _aws_valkey,
        ("langgraph_checkpoint_aws", "valkey.asyncio"),
    ),
    Subject(
        "sqlite",
        "langgraph-checkpoint-sqlite `async with AsyncSqliteSaver.from_conn_string(file)`",
        _sqlite,
        ("langgraph.checkpoint.sqlite.aio",),
        redis=False,
    ),
    Subject(
        "ours", "agent-memory `AsyncRedisSaver.from_url(url)`", _ours, ("agent_memory.langgraph",)
    ),
    Subject(
        FLOOR,
        "`InMemorySaver` + one bare PING round trip per `aget_tuple` / `aput` / `aput_writes`, "
        "nothing stored in Redis: an approximate ceiling of a Redis saver with one round trip "
        "per call",
        _one_round_trip,
        ("langgraph.checkpoint.memory",),
        stores=False,
    ),
)
REDIS_PEERS = ("plainredis", "aws-valkey")


def available(subjects: Sequence[Subject] = SUBJECTS) -> tuple[list[Subject], dict[str, str]]:
    """The subjects that can run here, and for each other one the reason it cannot."""
    ok: list[Subject] = []
    missing: dict[str, str] = {}
    for s in subjects:
        try:
            for module in s.modules:
                importlib.import_module(module)
        except ImportError as exc:
            missing[s.name] = f"{type(exc).__name__}: {exc}"
        else:
            ok.append(s)
    return ok, missing


# -- counting ---------------------------------------------------------------------------------


def _connection_classes() -> list[type]:
    classes: list[type] = [redis.asyncio.connection.AbstractConnection]
    with contextlib.suppress(ImportError):
        import valkey.asyncio.connection

        classes.append(valkey.asyncio.connection.AbstractConnection)
    return classes


@contextlib.contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Counts ``send_packed_command`` calls (one per write to the socket: a command or a whole
    pipeline) of every redis-py and valkey-py asyncio connection while active."""
    count = [0]
    saved = []
    for cls in _connection_classes():
        orig = cls.send_packed_command  # type: ignore[attr-defined]

        @functools.wraps(orig)
        async def send(conn: Any, *args: Any, _orig: Any = orig, **kwargs: Any) -> Any:
            count[0] += 1
            return await _orig(conn, *args, **kwargs)

        saved.append((cls, orig))
        cls.send_packed_command = send  # type: ignore[attr-defined]
    try:
        yield count
    finally:
        for cls, orig in saved:
            cls.send_packed_command = orig  # type: ignore[attr-defined]


def counting_saver_calls(saver: BaseCheckpointSaver[Any]) -> dict[str, int]:
    """Counts the checkpointer calls LangGraph makes (wrapping the instance's methods)."""
    calls = dict.fromkeys(SAVER_METHODS, 0)
    for name in SAVER_METHODS:
        orig = getattr(saver, name)

        @functools.wraps(orig)
        async def call(*args: Any, _orig: Any = orig, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return await _orig(*args, **kwargs)

        setattr(saver, name, call)
    return calls


def server_commands(control: redis.Redis) -> int:
    stats: dict[str, Any] = control.info("commandstats")
    own = ("config", "info")
    return sum(
        int(v["calls"]) for k, v in stats.items() if not k.removeprefix("cmdstat_").startswith(own)
    )


# -- measurements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Count:
    round_trips: float | None
    commands: float | None
    saver_calls: dict[str, float]
    client_cpu_ms: float
    """CPU time of this process (all its threads) per turn."""
    server_cpu_ms: float | None
    """CPU time of redis-server (INFO cpu, user + sys) per turn."""


@dataclass(frozen=True)
class Mark:
    turns: int
    used_memory: int
    """INFO used_memory minus its value before the thread's first turn."""
    key_bytes: int
    """MEMORY USAGE of every key, summed (for sqlite, the database files' size), less the same
    before the thread's first turn."""
    keys: int
    """Keys added by the thread."""
    keys_without_ttl: int
    """Keys without a TTL in the whole server (the warm-up thread's and shared keys too)."""
    json_bytes: int
    """The thread's messages as compact JSON (``message_to_dict``), summed."""


@dataclass
class Results:
    sizes: Sizes
    subjects: list[Subject]
    missing: dict[str, str]
    rates: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, Count] = field(default_factory=dict)
    memory: dict[str, list[Mark]] = field(default_factory=dict)
    seconds: float = 0.0
    ping_us: float = 0.0
    """One bare redis.asyncio round trip (PING) on the same server: what any round trip costs."""

    def rate(self, name: str) -> float | None:
        runs = self.rates.get(name)
        return statistics.median(runs) if runs else None

    def ratio(self, a: str, b: str) -> float | None:
        """The median over repeats of a's turns/s over b's in the same repeat (the two ran
        within seconds of each other, so a slow spell of the machine hits both)."""
        pairs = list(zip(self.rates.get(a, []), self.rates.get(b, []), strict=False))
        return statistics.median(x / y for x, y in pairs) if pairs else None


def _inputs(script: Script, tag: str, threads: int, turns: int) -> list[tuple[str, BaseMessage]]:
    """``turns`` turns round robin over ``threads`` threads."""
    return [
        (f"{tag}-t{i % threads}", script.turn(f"{tag}-t{i % threads}", i // threads))
        for i in range(turns)
    ]


async def _throughput(
    subjects: Sequence[Subject], url: str, tmp: Path, tag: str, z: Sizes
) -> dict[str, float]:
    """Turns/s of every subject in one repeat, interleaved finely: all savers open at once,
    then round after round of ``threads`` turns (one per thread) on each subject in turn, so
    a slow spell of the (shared) machine hits every subject alike."""
    async with contextlib.AsyncExitStack() as stack:
        runs = []
        for s in subjects:
            where = _fresh_dir(tmp, f"rates-{s.name}-{tag}")
            saver = await stack.enter_async_context(s.open(url, where))
            script = Script()
            graph = build_graph(script, saver)
            await run_turns(graph, _inputs(script, f"{s.name}-{tag}-warm", 1, 1))
            runs.append((s.name, graph, _inputs(script, f"{s.name}-{tag}", z.threads, z.turns)))
        spent = dict.fromkeys((name for name, _, _ in runs), 0.0)
        for start in range(0, z.turns, z.threads):
            for name, graph, inputs in runs:
                began = time.perf_counter()
                await run_turns(graph, inputs[start : start + z.threads])
                spent[name] += time.perf_counter() - began
    return {name: z.turns / seconds for name, seconds in spent.items()}


async def _count(s: Subject, url: str, tmp: Path, control: redis.Redis, k: int) -> Count:
    script = Script()
    warm = _inputs(script, "count", 1, 2)
    counted = _inputs(script, "count", 1, 2 + k)[2:]
    async with s.open(url, tmp) as saver:
        graph = build_graph(script, saver)
        await run_turns(graph, warm)
        calls = counting_saver_calls(saver)
        control.config_resetstat()
        server_cpu, client_cpu = _server_cpu(control), time.process_time()
        with counting_round_trips() as trips:
            await run_turns(graph, counted)
        client_ms = (time.process_time() - client_cpu) * 1e3 / k
        server_ms = (_server_cpu(control) - server_cpu) * 1e3 / k
        commands = server_commands(control)
    per_call = {name: n / k for name, n in calls.items()}
    if not s.redis:
        return Count(None, None, per_call, client_ms, None)
    return Count(trips[0] / k, commands / k, per_call, client_ms, server_ms)


async def _ping_us(url: str, n: int) -> float:
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.ping()
        start = time.perf_counter()
        for _ in range(n):
            await client.ping()
        return (time.perf_counter() - start) * 1e6 / n
    finally:
        await client.aclose()


def _server_cpu(control: redis.Redis) -> float:
    cpu: dict[str, Any] = control.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


class _Probe:
    """Looks at a server through one connection per DB, opened once (a connection opened per
    look would add its own buffers to used_memory)."""

    def __init__(self, server: RedisProcess) -> None:
        self.server = server
        self.clients = {0: server.client()}

    def client(self, db: int) -> redis.Redis:
        if db not in self.clients:
            self.clients[db] = self.server.client(db=db)
        return self.clients[db]

    def used_memory(self) -> int:
        return int(self.clients[0].info("memory")["used_memory"])

    def keys(self) -> tuple[int, int, int]:
        """(MEMORY USAGE summed over every key of every DB, key count, keys without a TTL)."""
        total = keys = no_ttl = 0
        for db in self.clients[0].info("keyspace"):
            client = self.client(int(db.removeprefix("db")))
            for key in client.scan_iter(count=1000):
                keys += 1
                total += int(client.memory_usage(key, samples=0) or 0)
                no_ttl += client.pttl(key) == -1
        return total, keys, no_ttl

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def _json_bytes(messages: Sequence[BaseMessage]) -> int:
    return sum(len(orjson.dumps(message_to_dict(m))) for m in messages)


def _sqlite_bytes(tmp: Path) -> int:
    return sum(p.stat().st_size for p in tmp.glob("checkpoints.sqlite*"))


@dataclass(frozen=True)
class _Footprint:
    used_memory: int
    key_bytes: int
    keys: int
    keys_without_ttl: int


def _footprint(probe: _Probe | None, tmp: Path) -> _Footprint:
    if probe is None:  # sqlite: its database files
        return _Footprint(0, _sqlite_bytes(tmp), 0, 0)
    return _Footprint(probe.used_memory(), *probe.keys())


async def _memory(s: Subject, tmp: Path, marks: Sequence[int]) -> list[Mark]:
    """One thread grown to each mark on a fresh server (AOF off) of the subject's own, less
    what the server held after one turn of another thread (connections, buffers and scripts
    warm, whatever keys the saver shares between threads made)."""
    server = RedisProcess(tmp / "redis", appendonly=False).start() if s.redis else None
    probe = _Probe(server) if server else None
    try:
        script = Script()
        warm = _inputs(script, "warm", 1, 1)
        inputs = _inputs(script, "mem", 1, max(marks))
        config = _config(inputs[0][0])
        async with s.open(server.url if server else "redis://unused", tmp) as saver:
            graph = build_graph(script, saver)
            await run_turns(graph, warm)
            base = _footprint(probe, tmp)
            out: list[Mark] = []
            done = 0
            for mark in marks:
                await run_turns(graph, inputs[done:mark])
                done = mark
                state = await graph.aget_state(config)
                now = _footprint(probe, tmp)
                out.append(
                    Mark(
                        mark,
                        now.used_memory - base.used_memory,
                        now.key_bytes - base.key_bytes,
                        now.keys - base.keys,
                        now.keys_without_ttl,
                        _json_bytes(state.values["messages"]),
                    )
                )
        return out
    finally:
        if probe:
            probe.close()
        if server:
            server.stop()


async def measure(tmp: Path, quick: bool) -> Results:
    z = Sizes.quick() if quick else Sizes()
    subjects, missing = available()
    results = Results(z, subjects, missing)
    started = time.monotonic()
    server = RedisProcess(tmp / "redis-rates", appendonly=True, appendfsync="everysec").start()
    try:
        control = server.client()
        for r in range(z.repeats):
            control.flushall()
            order = subjects[r % len(subjects) :] + subjects[: r % len(subjects)]
            for name, rate in (await _throughput(order, server.url, tmp, f"r{r}", z)).items():
                results.rates.setdefault(name, []).append(rate)
        control.flushall()
        results.ping_us = await _ping_us(server.url, 200 if quick else 3000)
        for s in subjects:
            where = _fresh_dir(tmp, f"count-{s.name}")
            results.counts[s.name] = await _count(s, server.url, where, control, z.counted_turns)
            control.flushall()
    finally:
        server.stop()
    for s in subjects:
        if s.stores and s.name != "InMemorySaver":
            results.memory[s.name] = await _memory(s, _fresh_dir(tmp, f"mem-{s.name}"), z.marks)
    results.seconds = time.monotonic() - started
    return results


def _fresh_dir(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.mkdir(parents=True, exist_ok=False)
    return path


def run(tmp: Path, quick: bool) -> Results:
    return asyncio.run(measure(tmp, quick))


# -- the report -------------------------------------------------------------------------------

BEGIN = "<!-- checkpoint section: written by `python -m bench` (or `--only checkpoint`) -->"
END = "<!-- end of checkpoint section -->"
DISTS = (
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-plainredis",
    "langgraph-checkpoint-aws",
    "valkey",
    "langgraph-checkpoint-sqlite",
    "aiosqlite",
)


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def _times(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} KB"


def _versions() -> str:
    out = []
    for dist in DISTS:
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(f"{dist} not installed")
    return ", ".join(out)


def targets(r: Results) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for ours; empty when ours did not run."""
    ours = r.rate("ours")
    if ours is None:
        return []
    rows: list[tuple[str, str, bool]] = []
    limit = r.ratio("ours", "InMemorySaver")
    if limit:
        rows.append(("turns/s >= 0.8x InMemorySaver", f"{limit:.2f}x", limit >= 0.8))
    peers = {p: v for p in REDIS_PEERS if (v := r.rate(p))}
    if peers:
        best = max(peers, key=peers.__getitem__)
        got = r.ratio("ours", best) or 0.0
        rows.append((f"turns/s >= 1.3x the fastest Redis peer ({best})", f"{got:.2f}x", got >= 1.3))
    marks = r.memory.get("ours", [])
    if len(marks) >= 2:
        last, prev = marks[-1], marks[-2]
        got = last.used_memory / last.json_bytes
        rows.append(
            (f"bytes after {last.turns} turns <= 5x the messages' JSON", f"{got:.2f}x", got <= 5)
        )
        growth = last.used_memory / prev.used_memory if prev.used_memory > 0 else float("inf")
        rows.append(
            (f"bytes({last.turns}) / bytes({prev.turns}) <= 2.2", f"{growth:.2f}", growth <= 2.2)
        )
        rows.append(
            ("every key has a TTL", f"{last.keys_without_ttl} without", not last.keys_without_ttl)
        )
    count = r.counts.get("ours")
    if count and count.round_trips is not None:
        calls = sum(count.saver_calls.values())
        rows.append(
            (
                "one round trip per checkpointer call (get_tuple, put, put_writes)",
                f"{count.round_trips:g} per {calls:g} calls",
                count.round_trips <= calls,
            )
        )
    return rows


def render(r: Results) -> list[str]:
    z = r.sizes
    lines = [
        BEGIN,
        "## LangGraph checkpointers",
        "",
        f"Written by `bench/checkpoint.py`; whole section {r.seconds:.0f} s, "
        f"{z.repeats} interleaved repeat(s), medians. Versions: {_versions()}.",
        "",
        "A turn is `graph.ainvoke({'messages': [human]})` of a StateGraph (`add_messages`) whose "
        "one node answers with an AI message with a tool call and usage (messages from the "
        "corpus, fresh ids per turn); one turn at a time, async, every client over loopback TCP.",
        "",
        "| subject | constructed as |",
        "|---|---|",
        *[f"| {s.name} | {s.what} |" for s in r.subjects],
        *[f"| {name} | **cannot run here**: {why} |" for name, why in r.missing.items()],
        "",
    ]
    rows = targets(r)
    if rows:
        lines += ["| target (ours) | measured | met |", "|---|--:|:-:|"]
        lines += [f"| {t} | {got} | {'yes' if ok else '**no**'} |" for t, got, ok in rows]
        lines.append("")
    lines += _rates_lines(r) + _count_lines(r) + _memory_lines(r) + [END]
    return lines


def _rates_lines(r: Results) -> list[str]:
    z = r.sizes
    lines = [
        f"### Agent turns/s: {z.turns} turns over {z.threads} threads (redis-server AOF everysec)",
        "",
        "| subject | turns/s | / InMemorySaver | / ours | runs |",
        "|---|--:|--:|--:|---|",
    ]
    for s in r.subjects:
        v = r.rate(s.name)
        to_limit, to_ours = r.ratio(s.name, "InMemorySaver"), r.ratio(s.name, "ours")
        runs = ", ".join(f"{x:.0f}" for x in r.rates.get(s.name, []))
        lines.append(f"| {s.name} | {_num(v)} | {_times(to_limit)} | {_times(to_ours)} | {runs} |")
    lines += [
        "",
        "Interleaved finely: in each repeat every saver is open at once and the subjects take "
        "turns, one round of one turn per thread each (the order rotates per repeat); ratios are "
        "medians of the per-repeat ratios.",
    ]
    return [*lines, ""]


def _count_lines(r: Results) -> list[str]:
    lines = [
        f"### Per turn (mean of {r.sizes.counted_turns} turns of one thread, after 2)",
        "",
        "| subject | round trips | server commands | aget_tuple | aput | aput_writes "
        "| client CPU ms | redis-server CPU ms |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in r.subjects:
        c = r.counts.get(s.name)
        if c is None:
            continue
        calls = " | ".join(f"{c.saver_calls[m]:g}" for m in SAVER_METHODS)
        trips = "-" if c.round_trips is None else f"{c.round_trips:g}"
        cmds = "-" if c.commands is None else f"{c.commands:g}"
        server = "-" if c.server_cpu_ms is None else f"{c.server_cpu_ms:.2f}"
        lines.append(
            f"| {s.name} | {trips} | {cmds} | {calls} | {c.client_cpu_ms:.2f} | {server} |"
        )
    lines += [
        "",
        "Round trips: writes to the socket by redis-py / valkey-py connections (a pipeline is "
        "one); server commands: INFO commandstats (a Lua script's commands included). sqlite "
        "and InMemorySaver make no network round trips. CPU: `time.process_time()` of the "
        "benchmark process (every thread: sqlite's too) and INFO cpu of the server, per turn.",
        "",
        *_budget_lines(r),
    ]
    return lines


def _budget_lines(r: Results) -> list[str]:
    """What 0.8x InMemorySaver leaves for the round trips, against what bare ones cost."""
    limit, ours = r.rate("InMemorySaver"), r.counts.get("ours")
    if not limit or ours is None or ours.round_trips is None or not r.ping_us:
        return []
    budget = (1 / 0.8 - 1) * 1e3 / limit
    floor = ours.round_trips * r.ping_us / 1e3
    lines = [
        f"A bare redis.asyncio round trip (PING) costs {r.ping_us:.0f} us on this server. "
        f"InMemorySaver takes {1e3 / limit:.2f} ms per turn, so 0.8x of its rate leaves "
        f"{budget:.2f} ms per turn for everything a Redis saver adds; {ours.round_trips:g} "
        f"bare round trips alone take {floor:.2f} ms.",
    ]
    ceiling, share = r.ratio(FLOOR, "InMemorySaver"), r.ratio("ours", FLOOR)
    if ceiling and share:
        lines.append(
            f"The {FLOOR} subject (InMemorySaver making one bare PING per call, storing "
            f"nothing) reaches {ceiling:.2f}x InMemorySaver: InMemorySaver's work plus one bare "
            f"round trip per call, an approximate ceiling of a Redis saver with one round trip "
            f"per call; ours reaches {share:.2f}x of it."
        )
    return [" ".join(lines), ""]


def _memory_lines(r: Results) -> list[str]:
    lines = [
        "### One thread's size (fresh redis-server per subject, AOF off; less what it held "
        "after one turn of another thread)",
        "",
        "| subject | turns | messages' JSON | INFO used_memory delta | / JSON | keys' MEMORY USAGE "
        "| keys added | keys without TTL (all) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, marks in r.memory.items():
        for m in marks:
            if name == "sqlite":
                lines.append(
                    f"| {name} | {m.turns} | {_mb(m.json_bytes)} | - | - | "
                    f"file {_mb(m.key_bytes)} | - | - |"
                )
                continue
            lines.append(
                f"| {name} | {m.turns} | {_mb(m.json_bytes)} | {_mb(m.used_memory)} "
                f"| {m.used_memory / m.json_bytes:.1f}x | {_mb(m.key_bytes)} | {m.keys} "
                f"| {m.keys_without_ttl} |"
            )
    lines += [
        "",
        "JSON: the thread's messages (graph state after the turns) as compact UTF-8 JSON of "
        "`message_to_dict`. sqlite: size of its database files (with the WAL).",
        "",
    ]
    return lines


def splice(existing: str, section: Sequence[str]) -> str:
    """``existing`` RESULTS.md text with its checkpoint section replaced (or appended)."""
    text = "\n".join(section)
    if BEGIN in existing and END in existing:
        head, rest = existing.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        return head + text + tail
    return existing.rstrip("\n") + "\n\n" + text + "\n"
