"""The REST API under 16 keep-alive clients: ``agent-memory serve`` vs a bare FastAPI route.

``python -m bench.api [--quick] [--out RESULTS.md]`` measures this section alone (its own
redis-server, AOF everysec) and replaces it in RESULTS.md; ``python -m bench`` runs it too.

Servers: ``agent-memory serve`` (one worker, then ``--workers 2``) and :mod:`bench.bare` (the
route a user writes by hand around the same store calls: same Redis writes and reads), each a
child process on loopback, on its own database of the same redis-server.

Load: 16 HTTP/1.1 keep-alive connections from a minimal asyncio client in this process (an
HTTP client library would cost more CPU than the servers it measures; this one's CPU share is
reported, so that it is seen not to be the bottleneck). Each connection appends realistic
corpus messages (one per request, each with its own id, as agents send them) to its own
conversation, then reads that conversation's last 20 messages. Requests are encoded before
the clock starts. Runs of the servers are interleaved; medians of the repeats.

Besides requests/s and latency (wall clock, which other work on a shared machine moves), each
load reports the CPU time the server's processes spent per request (from /proc: the figure
least moved by other work), and for ``--workers 2`` how the 16 connections were spread over
the workers (from /proc/net/tcp: which worker holds the server side of each).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent_memory.codec import record_from_langchain
from agent_memory.embedded import RedisProcess, free_port
from bench import data

CLIENTS = 16
READ_LIMIT = 20
_ROOT = Path(__file__).resolve().parent.parent
_run_ids = itertools.count()

BEGIN = "<!-- api section: written by `python -m bench` (or `python -m bench.api`) -->"
END = "<!-- end of api section -->"
OURS, OURS_2, BARE = "agent-memory serve", "agent-memory serve --workers 2", "bare FastAPI route"


@dataclass(frozen=True)
class Load:
    """One load of ``CLIENTS`` connections: requests/s, latency percentiles, client CPU."""

    rps: float
    p50: float
    p99: float
    client_cpu: float  # this process's CPU seconds per wall second while it ran the load
    server_us: float  # CPU microseconds the server's processes spent per request (nan: no /proc)
    busiest: float  # the busiest worker's share of the connections (1.0 with one worker)


@dataclass(frozen=True)
class ApiRow:
    """One server: medians over the repeats of its append and read loads."""

    name: str
    append: Load
    read: Load


def _env(redis_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "AGENT_MEMORY_", "CACHE_TTL", "PROMETHEUS_"))
    }
    env["REDIS_URL"] = redis_url
    env["PYTHONPATH"] = str(_ROOT)
    return env


def _agent_memory_command(port: int, workers: int = 1) -> list[str]:
    exe = shutil.which("agent-memory", path=str(Path(sys.executable).parent))
    if exe is None:
        raise RuntimeError("agent-memory is not installed next to this Python")
    command = [exe, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return command + (["--workers", str(workers)] if workers > 1 else [])


def _bare_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "bench.bare:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "info",
    ]  # fmt: skip


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


def _post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def _path(client: int) -> str:
    return f"/api/v1/conversations/bench-api-{client}/messages"


def _requests(kind: str, client: int, n: int) -> list[bytes]:
    """The raw requests of one connection, encoded before the clock starts: appends of corpus
    messages in the corpus's order, each with an id no earlier run used; or reads."""
    path = _path(client)
    if kind == "read":
        return [_get(f"{path}?limit={READ_LIMIT}")] * n
    tag = f"{os.getpid()}-{next(_run_ids)}-{client}"
    return [
        _post(path, json.dumps({"messages": [record_from_langchain(m)]}).encode())
        for m in data.conversation(tag, n)
    ]


async def _client(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    raws: list[bytes],
    out: list[float],
) -> None:
    reader, writer = connection
    try:
        for raw in raws:
            start = time.perf_counter()
            status, body = await _request(reader, writer, raw)
            out.append(time.perf_counter() - start)
            if status not in (200, 201):
                raise RuntimeError(f"answered {status}: {body[:300]!r}")
    finally:
        writer.close()


async def _load(port: int, kind: str, n: int, server_pid: int) -> Load:
    """``n`` requests on each of the ``CLIENTS`` connections at once (all connected first,
    together)."""
    per_client = [_requests(kind, c, n) for c in range(CLIENTS)]
    latencies: list[float] = []
    # All at once, as a pool of clients starting together connects.
    connect = (asyncio.open_connection("127.0.0.1", port) for _ in range(CLIENTS))
    connections = await asyncio.gather(*connect)
    pids = {server_pid, *descendants(server_pid)}
    spread = _spread(port, pids)
    server_cpu = _cpu_seconds(pids)
    cpu, start = time.process_time(), time.perf_counter()
    clients = zip(connections, per_client, strict=True)
    await asyncio.gather(*(_client(c, raws, latencies) for c, raws in clients))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    server_cpu = _cpu_seconds(pids) - server_cpu
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    busiest = max(spread) / CLIENTS if spread else math.nan
    return Load(
        len(ms) / elapsed, statistics.median(ms), p99, cpu / elapsed,
        server_cpu / len(ms) * 1e6, busiest,
    )  # fmt: skip


def descendants(pid: int) -> set[int]:
    """The live descendants of ``pid`` (from /proc; empty without it)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _cpu_seconds(pids: set[int]) -> float:
    """CPU seconds ``pids`` have run, every thread counted, in nanoseconds (the first field of
    each thread's /proc schedstat; nan without it)."""
    if not Path("/proc/self/schedstat").exists():
        return math.nan
    ns = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                ns += int(stat.read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # a thread or process that has exited
    return ns / 1e9


def _spread(port: int, pids: set[int]) -> list[int]:
    """How many of the established connections to loopback ``port`` each of ``pids`` holds
    the server side of (nonzero counts only; empty without /proc)."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return []
    local = f"0100007F:{port:04X}"
    inodes = {c[9] for c in map(str.split, table) if c[1] == local and c[3] == "01"}
    counts = []
    for pid in pids:
        try:
            links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError:
            continue
        held = sum(1 for inode in inodes if f"socket:[{inode}]" in links)
        if held:
            counts.append(held)
    return sorted(counts, reverse=True)


async def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await _request(reader, writer, _get("/health"))  # any answer: it serves HTTP
            writer.close()
            return
        except (OSError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("server did not answer HTTP")


class _Server:
    """One server child process on a free port, with its log in a temporary directory."""

    def __init__(self, name: str, redis_url: str, workers: int = 1) -> None:
        self.name = name
        self.port = free_port()
        self.cwd = tempfile.TemporaryDirectory(prefix="agent-memory-bench-api-")
        self.log = Path(self.cwd.name) / "server.log"
        command = (
            _bare_command(self.port) if name == BARE else _agent_memory_command(self.port, workers)
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=self.cwd.name, env=_env(redis_url), stdout=out, stderr=out
            )

    def load(self, kind: str, n: int) -> Load:
        try:
            return asyncio.run(_load(self.port, kind, n, self.proc.pid))
        except Exception as exc:
            raise RuntimeError(f"{self.name}: {exc}; log: {self.log.read_text()[-2000:]}") from exc

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        finally:
            self.cwd.cleanup()


def _median(loads: list[Load]) -> Load:
    return Load(*(statistics.median(getattr(x, f) for x in loads) for f in Load.__annotations__))


def run(server: RedisProcess, *, quick: bool) -> list[ApiRow]:
    """Ours with one worker and with two, and the bare route, each on its own database of
    ``server``; the loads of the three interleaved, ``repeats`` times."""
    n, repeats = (5, 1) if quick else (150, 3)
    names = [(OURS, 1, 2), (BARE, 1, 3), (OURS_2, 2, 4)]
    servers = [_Server(name, f"{server.url}/{db}", workers) for name, workers, db in names]
    try:
        for s in servers:
            try:
                asyncio.run(_wait_ready(s.port, s.proc))
            except Exception as exc:
                raise RuntimeError(f"{s.name}: {exc}; log: {s.log.read_text()[-2000:]}") from exc
            s.load("append", max(2, n // 5))  # warm up, and at least READ_LIMIT messages each
            s.load("append", READ_LIMIT)
        got: dict[str, dict[str, list[Load]]] = {
            s.name: {"append": [], "read": []} for s in servers
        }
        for repeat in range(repeats):
            for kind in ("append", "read"):
                turn = servers[repeat % len(servers) :] + servers[: repeat % len(servers)]
                for s in turn:
                    got[s.name][kind].append(s.load(kind, n))
    finally:
        for s in servers:
            s.stop()
    return [ApiRow(name, _median(v["append"]), _median(v["read"])) for name, v in got.items()]


def render(rows: Sequence[ApiRow], quick: bool = False) -> list[str]:
    by = {r.name: r for r in rows}
    ours, bare, two = by[OURS], by[BARE], by[OURS_2]
    append, read = ours.append.rps / bare.append.rps, ours.read.rps / bare.read.rps
    scale_a, scale_r = two.append.rps / ours.append.rps, two.read.rps / ours.read.rps
    targets = [
        ("append >= 0.6x the bare route", f"{append:.2f}x", append >= 0.6),
        ("read >= 0.8x the bare route", f"{read:.2f}x", read >= 0.8),
        ("append p99 < 25 ms", f"{ours.append.p99:.1f} ms", ours.append.p99 < 25),
        ("read p99 < 25 ms", f"{ours.read.p99:.1f} ms", ours.read.p99 < 25),
        ("append, --workers 2 / one worker >= 1.5x", f"{scale_a:.2f}x", scale_a >= 1.5),
        ("read, --workers 2 / one worker >= 1.5x", f"{scale_r:.2f}x", scale_r >= 1.5),
    ]
    lines = [
        BEGIN,
        "## REST API under 16 keep-alive clients",
        "",
        f"Written by `bench/api.py`{' (quick run)' if quick else ''}. Servers: "
        "`agent-memory serve` (one uvicorn worker; then `--workers 2`) and `bench/bare.py`, the "
        "route a user writes by hand around the same store calls (pydantic body of the "
        "library's `Message`, `AsyncConversationStore.append` / `get_messages`, the stored "
        "messages returned as dicts; no auth, body limit, metrics, response model or error "
        "handlers), each a child process on its own database of one redis-server (AOF "
        "everysec). Load: 16 keep-alive HTTP/1.1 connections over loopback from one asyncio "
        "process, each appending corpus messages (one per request, own ids) to its own "
        "conversation, then reading its last 20; runs interleaved, medians. The machine has "
        f"{os.cpu_count()} CPUs shared by the servers, redis-server and the load generator "
        "(its CPU share is in the last columns): `--workers 2` competes with both for them. "
        "Server CPU is the CPU time of the server's processes per request (from /proc), the "
        "figure that other work on the machine moves least: "
        f"ours / bare {ours.append.server_us / bare.append.server_us:.2f}x on appends, "
        f"{ours.read.server_us / bare.read.server_us:.2f}x on reads. `--workers 2`: the "
        f"busiest worker held {two.append.busiest:.0%} (appends) and {two.read.busiest:.0%} "
        "(reads) of the 16 connections (medians). "
        f"Load average at the end of the run: {_load_average()}.",
        "",
        "| target (agent-memory serve) | measured | met |",
        "|---|--:|:-:|",
        *(f"| {name} | {got} | {'yes' if ok else '**no**'} |" for name, got, ok in targets),
        "",
        "| server | append req/s | p50 ms | p99 ms | read req/s | p50 ms | p99 ms "
        "| server CPU us/req (append / read) | load generator CPU (append / read) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in (ours, bare, two):
        a, g = r.append, r.read
        lines.append(
            f"| {r.name} | {a.rps:,.0f} | {a.p50:.1f} | {a.p99:.1f} | {g.rps:,.0f} "
            f"| {g.p50:.1f} | {g.p99:.1f} | {a.server_us:,.0f} / {g.server_us:,.0f} "
            f"| {a.client_cpu:.0%} / {g.client_cpu:.0%} |"
        )
    return [*lines, "", END]


def _load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min), {fifteen:.2f} (15 min) on {os.cpu_count()} CPUs"


def splice(existing: str, section: Sequence[str]) -> str:
    """``existing`` RESULTS.md text with its API section replaced (or appended)."""
    text = "\n".join(section)
    if BEGIN in existing and END in existing:
        head, rest = existing.split(BEGIN, 1)
        return head + text + rest.split(END, 1)[1]
    return existing.rstrip("\n") + "\n\n" + text + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a few requests (smoke test)")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agent-memory-bench-api-") as tmp:
        server = RedisProcess(Path(tmp) / "aof-everysec", appendonly=True).start()
        try:
            section = render(run(server, quick=args.quick), args.quick)
        finally:
            server.stop()
    old = args.out.read_text(encoding="utf-8") if args.out.exists() else "# Benchmark results\n"
    args.out.write_text(splice(old, section), encoding="utf-8")
    print("\n".join(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
