"""The REST API under 16 concurrent clients: ``agent-memory serve`` vs bare FastAPI routes.

Both servers run as child processes with one uvicorn worker on loopback; the load comes from
16 keep-alive HTTP/1.1 connections driven by a minimal asyncio client (a full HTTP client
library would be slower than the servers it measures). Each client appends to / reads the
last 20 messages of its own conversation.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent_memory.embedded import RedisProcess, free_port
from bench.report import ApiRow

CLIENTS = 16
_ROOT = Path(__file__).resolve().parent.parent


def _env(redis_url: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "AGENT_MEMORY_", "CACHE_TTL"))
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    env["PYTHONPATH"] = str(_ROOT)
    return env


def _agent_memory_command(port: int) -> list[str]:
    exe = shutil.which("agent-memory", path=str(Path(sys.executable).parent))
    if exe is None:
        raise RuntimeError("agent-memory is not installed next to this Python")
    return [exe, "serve", "--host", "127.0.0.1", "--port", str(port)]


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


def _append_body(client: int, i: int) -> bytes:
    text = f"Client {client} asks question {i}: when will order A-{i:06d} arrive?"
    return json.dumps({"messages": [{"role": "user", "content": text}]}).encode()


async def _client(port: int, client: int, n: int, kind: str, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    path = f"/api/v1/conversations/bench-api-{client}/messages"
    try:
        for i in range(n):
            raw = (
                _post(path, _append_body(client, i))
                if kind == "append"
                else _get(path + "?limit=20")
            )
            start = time.perf_counter()
            status, body = await _request(reader, writer, raw)
            out.append(time.perf_counter() - start)
            if status not in (200, 201):
                raise RuntimeError(f"{kind} answered {status}: {body[:200]!r}")
    finally:
        writer.close()


async def _load(port: int, kind: str, n: int) -> tuple[float, float, float]:
    """Requests/s, p50 and p99 ms of ``n`` requests per client, 16 clients at once."""
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, c, n, kind, latencies) for c in range(CLIENTS)))
    elapsed = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)
    return len(ms) / elapsed, statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


async def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError("server did not start listening")


def _measure(
    name: str, command: list[str], env: dict[str, str], port: int, n: int, repeats: int
) -> ApiRow:
    with tempfile.TemporaryDirectory(prefix="agent-memory-bench-api-") as cwd:
        log = Path(cwd) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            asyncio.run(_wait_ready(port, proc))
            asyncio.run(_load(port, "append", max(2, n // 10)))  # warm up
            runs = [
                (asyncio.run(_load(port, "append", n)), asyncio.run(_load(port, "read", n)))
                for _ in range(repeats)
            ]
        except Exception as exc:
            raise RuntimeError(f"{exc}; server log: {log.read_text()[-2000:]}") from exc
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    med = [statistics.median(run[k][j] for run in runs) for k in (0, 1) for j in (0, 1, 2)]
    return ApiRow(name, *med)


def run(server: RedisProcess, *, quick: bool) -> list[ApiRow]:
    """Ours (``agent-memory serve`` on ``server``, DB 2) and the bare ceiling, same load."""
    n, repeats = (5, 1) if quick else (150, 3)
    port = free_port()
    ours = _measure(
        "agent-memory serve", _agent_memory_command(port), _env(f"{server.url}/2"), port, n, repeats
    )
    port = free_port()
    bare = _measure("bare FastAPI route", _bare_command(port), _env(None), port, n, repeats)
    return [ours, bare]
