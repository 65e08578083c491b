"""The LangGraph store (``agent_memory.langgraph.RedisStore``) against its peers.

``python -m bench.store [--quick] [--out PATH]`` runs this part alone (its own redis-server,
AOF everysec) and replaces the "LangGraph store" section of RESULTS.md; ``python -m bench``
runs it too. Subjects: **ours** = ``RedisStore`` (one connection over loopback TCP),
**in-memory** = ``langgraph.store.memory.InMemoryStore`` (the limit: no I/O at all),
**sqlite** = ``langgraph.store.sqlite.SqliteStore`` (a file in a temp dir, autocommit, WAL as
it sets up). Each operation is a single call of the public API (``put``, ``get``,
``search(filter=)``, ``list_namespaces``), interleaved repeats, medians; Redis bytes per item
are MEMORY USAGE over the store's keys divided by the items, against the value's JSON size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_memory.embedded import RedisProcess

SECTION = "## LangGraph store (BaseStore)"
NAMESPACES = 100


@dataclass(frozen=True)
class Sizes:
    items: int = 2_000
    searches: int = 1_000
    lists: int = 300
    repeats: int = 3

    @classmethod
    def quick(cls) -> Sizes:
        return cls(items=200, searches=40, lists=20, repeats=1)


def _value(i: int) -> dict[str, Any]:
    return {
        "kind": "preference" if i % 5 == 0 else "fact",
        "text": f"the user mentioned item {i}: prefers green tea over coffee in the morning",
        "score": i % 10,
        "source": {"thread": f"t{i % 37}", "turn": i % 50},
    }


def _namespace(i: int) -> tuple[str, ...]:
    return ("users", f"user-{i % NAMESPACES}", "memories")


@contextlib.contextmanager
def _subjects(server: RedisProcess, tmp: Path) -> Iterator[dict[str, Any]]:
    from langgraph.store.memory import InMemoryStore
    from langgraph.store.sqlite import SqliteStore

    from agent_memory.langgraph import RedisStore

    ours = RedisStore(server.client(db=2), key_prefix="bench_store")  # as its users build it
    conn = sqlite3.connect(tmp / "store.db", check_same_thread=False, isolation_level=None)
    sqlite = SqliteStore(conn)
    sqlite.setup()
    try:
        yield {"ours": ours, "in-memory": InMemoryStore(), "sqlite": sqlite}
    finally:
        ours.close()
        conn.close()


def _rate(n: int, op: Callable[[int], Any]) -> float:
    started = time.perf_counter()
    for i in range(n):
        op(i)
    return n / (time.perf_counter() - started)


def _workloads(store: Any, sizes: Sizes) -> dict[str, float]:
    n = sizes.items
    return {
        "put": _rate(n, lambda i: store.put(_namespace(i), f"item-{i}", _value(i))),
        "get": _rate(n, lambda i: store.get(_namespace(i), f"item-{i}")),
        "search (filter, limit 10)": _rate(
            sizes.searches,
            lambda i: store.search(_namespace(i), filter={"kind": "preference"}, limit=10),
        ),
        "list_namespaces (limit 100)": _rate(
            sizes.lists, lambda i: store.list_namespaces(prefix=("users",), limit=100)
        ),
    }


def _clear(name: str, store: Any, server: RedisProcess) -> None:
    if name == "ours":
        client = server.client(db=2)
        for key in client.scan_iter(match="bench_store:*", count=1000):
            client.delete(key)
        client.close()
    elif name == "in-memory":
        store._data.clear()
        store._vectors.clear()
    else:
        store.conn.execute("DELETE FROM store")


def _bytes_per_item(server: RedisProcess, items: int) -> tuple[float, float]:
    client = server.client(db=2)
    total = sum(
        client.memory_usage(key, samples=0) or 0
        for key in client.scan_iter(match="bench_store:*", count=1000)
    )
    client.close()
    json_bytes = statistics.mean(
        len(json.dumps(_value(i), separators=(",", ":")).encode()) for i in range(items)
    )
    return total / items, json_bytes


def run(server: RedisProcess, quick: bool) -> list[str]:
    """The report section (Markdown lines)."""
    sizes = Sizes.quick() if quick else Sizes()
    rates: dict[str, dict[str, list[float]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-store-") as tmp,
        _subjects(server, Path(tmp)) as subjects,
    ):
        memory = (0.0, 0.0)
        for repeat in range(sizes.repeats):
            for name, store in subjects.items():
                _clear(name, store, server)
                for op, rate in _workloads(store, sizes).items():
                    rates.setdefault(op, {}).setdefault(name, []).append(rate)
                if name == "ours" and repeat == 0:
                    memory = _bytes_per_item(server, sizes.items)
    return _render(rates, memory, sizes, quick)


def _render(
    rates: dict[str, dict[str, list[float]]],
    memory: tuple[float, float],
    sizes: Sizes,
    quick: bool,
) -> list[str]:
    mode = " (**--quick: smoke-test sizes, not results**)" if quick else ""
    lines = [
        SECTION,
        "",
        f"{sizes.items} items in {NAMESPACES} namespaces (`users/<id>/memories`, ~200-byte "
        f"values), {sizes.searches} filtered searches, {sizes.lists} listings; "
        f"{sizes.repeats} interleaved repeat(s), medians, ops/s{mode}. Written by "
        "`python -m bench.store` (also part of `python -m bench`).",
        "",
        "| operation | ours | in-memory | sqlite | ours / in-memory | ours / sqlite |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for op, by in rates.items():
        med = {name: statistics.median(values) for name, values in by.items()}
        lines.append(
            f"| {op} | {med['ours']:,.0f} | {med['in-memory']:,.0f} | {med['sqlite']:,.0f} "
            f"| {med['ours'] / med['in-memory']:.3f}x | {med['ours'] / med['sqlite']:.2f}x |"
        )
    per_item, json_bytes = memory
    lines += [
        "",
        f"Redis bytes per item (MEMORY USAGE over every store key / items): {per_item:,.0f}; "
        f"the value's JSON: {json_bytes:,.0f} bytes; ratio {per_item / json_bytes:.2f}x.",
        "",
    ]
    return lines


def replace_section(text: str, section: list[str]) -> str:
    """``text`` (a RESULTS.md) with its LangGraph store section replaced, or appended."""
    start = text.find(SECTION)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + "\n".join(section)
    end = text.find("\n## ", start + len(SECTION))
    tail = "" if end < 0 else text[end + 1 :]
    return text[:start] + "\n".join(section) + ("\n" + tail if tail else "")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a few iterations (smoke test)")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agent-memory-bench-store-") as tmp:
        server = RedisProcess(Path(tmp) / "aof-everysec", appendonly=True).start()
        try:
            section = run(server, args.quick)
        finally:
            server.stop()
    old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    args.out.write_text(replace_section(old, section), encoding="utf-8")
    print("\n".join(section))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
