"""``agent-memory serve`` end to end: a real process, real HTTP, SIGTERM, exit code 0.

Once against a Redis given by REDIS_URL, once in embedded mode (no REDIS_URL/REDIS_HOST: the
command starts its own server with AOF in AGENT_MEMORY_DATA_DIR, and stops it on exit)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from agent_memory.embedded import RedisProcess, free_port

EXE = Path(sys.executable).with_name("agent-memory")
START_TIMEOUT = 30.0


def clean_env(**values: str) -> dict[str, str]:
    """The test's environment without any Redis / agent-memory setting, plus ``values``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "AGENT_MEMORY_", "CACHE_TTL_"))
    }
    return {**env, **values}


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``agent-memory serve`` on a free port until /health answers; SIGTERM on exit."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(EXE), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, log)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited early:\n{log.read_text()}"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"serve did not become healthy:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def talk(base: str, cid: str, text: str) -> list[str]:
    """Append one message over HTTP and return every message's content."""
    url = f"{base}/api/v1/conversations/{cid}/messages"
    posted = httpx.post(url, json={"messages": [{"role": "user", "content": text}]}, timeout=5)
    assert posted.status_code == 201, posted.text
    return [m["content"] for m in httpx.get(url, timeout=5).json()["messages"]]


@pytest.mark.redis_server
def test_serve_with_redis_url_then_sigterm_exits_0(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    env = clean_env(REDIS_URL=f"{redis_server.url}/2", AGENT_MEMORY_PREFIX="serve_test")
    with serving(env, tmp_path / "serve.log") as (proc, base):
        assert talk(base, "e2e", "hello") == ["hello"]
        assert httpx.get(f"{base}/docs", timeout=5).status_code == 200
        assert stop(proc) == 0
    keys = redis_server.client(db=2).keys("serve_test:*")
    assert keys  # the data went to DB 2 of the given server, under the prefix
    redis_server.client(db=2).delete(*keys)


@pytest.mark.redis_server
def test_serve_embedded_keeps_data_across_restarts_and_stops_its_server(tmp_path: Path) -> None:
    env = clean_env(AGENT_MEMORY_DATA_DIR=str(tmp_path / "data"))
    log = tmp_path / "serve.log"
    with serving(env, log) as (proc, base):
        assert talk(base, "e2e", "first") == ["first"]
        assert stop(proc) == 0
    output = log.read_text()
    assert str(tmp_path / "data" / "redis") in output  # says where the data lives
    match = re.search(r"embedded Redis at redis://127\.0\.0\.1:(\d+)", output)
    assert match, output
    with pytest.raises(redis.ConnectionError):  # the embedded server was stopped too
        redis.Redis(port=int(match.group(1)), socket_connect_timeout=0.5).ping()
    assert (tmp_path / "data" / "redis" / "appendonlydir").is_dir()
    with serving(env, tmp_path / "serve2.log") as (proc, base):
        assert talk(base, "e2e", "second") == ["first", "second"]
        assert stop(proc) == 0
