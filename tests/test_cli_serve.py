"""``agent-memory serve`` end to end: a real process, real HTTP, SIGTERM, exit code 0.

Once against a Redis given by REDIS_URL, once in embedded mode (no REDIS_URL/REDIS_HOST: the
command starts its own server with AOF in AGENT_MEMORY_DATA_DIR, and stops it on exit)."""

from __future__ import annotations

import gc
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from agent_memory import cli
from agent_memory.embedded import RedisProcess, free_port
from bench.api import descendants  # the bench counts CPU of the same process tree
from tests.support.settings import make_settings

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
def serving(
    env: dict[str, str], log: Path, *options: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``agent-memory serve [options]`` on a free port until /health answers; SIGTERM on
    exit."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(EXE), "serve", "--host", "127.0.0.1", "--port", str(port), *options],
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
async def test_serve_freezes_what_its_lifespan_built(redis_server: RedisProcess) -> None:
    """What the app's lifespan builds lives as long as the process (the store, the MCP
    endpoint and the SDK it imports): the app ``serve`` runs freezes the heap once its
    lifespan has started, so the collector's full passes skip all of it (frozen before the
    lifespan, they walked its ~50,000 objects and stalled every request in flight)."""
    app = cli._application(make_settings(redis_url=f"{redis_server.url}/2"))
    try:
        async with app.router.lifespan_context(app):
            collected = {id(o) for o in gc.get_objects()}  # frozen objects are not listed
            assert id(app.state.api) not in collected
            assert id(app.state.api.store) not in collected
            assert id(app.state.mcp) not in collected
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


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


def _running(pid: int) -> bool:
    """True if ``pid`` is a process that has not exited (a zombie waiting to be reaped by
    whoever inherited it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _listening(pid: int, port: int) -> set[str]:
    """The inodes of the sockets ``pid`` holds that listen on loopback ``port``."""
    inodes = {
        cols[9]
        for cols in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if cols[1] == f"0100007F:{port:04X}" and cols[3] == "0A"  # 0A: LISTEN
    }
    try:
        links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return set()
    return {inode for inode in inodes if f"socket:[{inode}]" in links}


def _workers(pid: int, port: int) -> set[int]:
    """The children of ``serve`` (pid) that listen on ``port``: its workers."""
    return {child for child in descendants(pid) if _listening(child, port)}


def _owner_of_peer(port: int, client_port: int, pids: set[int]) -> int | None:
    """The pid among ``pids`` whose socket is the server side of the loopback connection from
    ``client_port`` to ``port`` (matched through /proc/net/tcp inodes)."""
    want = f"0100007F:{client_port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[1] == f"0100007F:{port:04X}" and cols[2] == want:
            inode = cols[9]
    for pid in pids:
        try:
            links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            return pid
    return None


@pytest.mark.redis_server
def test_serve_workers_embedded_share_one_redis_and_all_stop_on_sigterm(tmp_path: Path) -> None:
    env = clean_env(AGENT_MEMORY_DATA_DIR=str(tmp_path / "data"))
    log = tmp_path / "serve.log"
    with serving(env, log, "--workers", "2") as (proc, base):
        port = int(base.rsplit(":", 1)[1])
        family = descendants(proc.pid)
        servers = [p for p in family if b"redis-server" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(servers) == 1, log.read_text()  # one embedded server for all the workers
        workers = _workers(proc.pid, port)
        assert len(workers) == 2, log.read_text()
        # Each worker accepts on a listening socket of its own (the kernel spreads new
        # connections over them), not on one socket they share.
        assert len({frozenset(_listening(pid, port)) for pid in workers}) == 2
        assert all(len(_listening(pid, port)) == 1 for pid in workers)
        served: set[int] = set()
        # New connections until two workers have each answered one (the kernel picks which
        # worker accepts a connection): bounded, and each append must be stored.
        for i in range(200):
            with httpx.Client(base_url=base, timeout=5) as http:
                url = "/api/v1/conversations/workers/messages"
                got = http.post(url, json={"messages": [{"role": "user", "content": f"m{i}"}]})
                assert got.status_code == 201, got.text
                client_port = next(
                    int(line.split()[1].split(":")[1], 16)
                    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                    if line.split()[2] == f"0100007F:{port:04X}" and line.split()[3] == "01"
                )
                owner = _owner_of_peer(port, client_port, workers)
                if owner is not None:
                    served.add(owner)
            if len(served) >= 2:
                break
        assert len(served) >= 2, f"only {served} of {workers} answered"
        messages = httpx.get(f"{base}/api/v1/conversations/workers/messages?limit=500").json()
        assert [m["content"] for m in messages["messages"]] == [f"m{j}" for j in range(i + 1)]
        assert stop(proc) == 0
    match = re.search(r"embedded Redis at redis://127\.0\.0\.1:(\d+)", log.read_text())
    assert match, log.read_text()
    assert not {p for p in family if _running(p)}  # the workers and the server are gone
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=int(match.group(1)), socket_connect_timeout=0.5).ping()


def _wait_for_workers(proc: subprocess.Popen[bytes], port: int, gone: set[int]) -> set[int]:
    """The two workers of ``serve`` once none of ``gone`` is among them (bounded wait)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        workers = _workers(proc.pid, port)
        if len(workers) == 2 and not workers & gone:
            return workers
        time.sleep(0.1)
    pytest.fail(f"the workers were not replaced: {_workers(proc.pid, port)} (gone: {gone})")


@pytest.mark.redis_server
def test_serve_workers_replaces_a_dead_worker_and_every_worker_on_sighup(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    env = clean_env(REDIS_URL=f"{redis_server.url}/2", AGENT_MEMORY_PREFIX="serve_workers")
    log = tmp_path / "serve.log"
    with serving(env, log, "--workers", "2") as (proc, base):
        port = int(base.rsplit(":", 1)[1])
        first = _wait_for_workers(proc, port, set())
        sockets = {frozenset(_listening(pid, port)) for pid in first}
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        after_kill = _wait_for_workers(proc, port, {killed})
        assert first - {killed} < after_kill  # the other worker was left alone
        proc.send_signal(signal.SIGHUP)
        after_hup = _wait_for_workers(proc, port, after_kill)
        # The replacements accept on the sockets the parent kept: the same ones.
        assert {frozenset(_listening(pid, port)) for pid in after_hup} == sockets
        for i in range(8):  # new connections, whichever worker each reaches, are served
            assert talk(base, "replaced", f"m{i}")[-1] == f"m{i}"
        assert stop(proc) == 0
    assert "died" in log.read_text()
    keys = redis_server.client(db=2).keys("serve_workers:*")
    redis_server.client(db=2).delete(*keys)


@pytest.mark.redis_server
def test_serve_workers_on_a_port_in_use_exits_3_and_stops_the_embedded_redis(
    tmp_path: Path,
) -> None:
    env = clean_env(AGENT_MEMORY_DATA_DIR=str(tmp_path / "data"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(EXE), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=env,
            capture_output=True,
            timeout=60,
        )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 3, output
    assert "cannot listen on 127.0.0.1" in output
    match = re.search(r"embedded Redis at redis://127\.0\.0\.1:(\d+)", output)
    assert match, output
    assert "embedded Redis stopped" in output
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=int(match.group(1)), socket_connect_timeout=0.5).ping()
