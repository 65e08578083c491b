"""The listening sockets of ``serve --workers N`` (agent_memory.workers.listeners).

One socket per worker on one port with SO_REUSEPORT, so that the kernel spreads new
connections over the workers instead of the first worker to wake accepting them all; never
silently sharing a port that another process listens on. The processes themselves are tested
end to end in test_cli_serve.py."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_memory.embedded import free_port
from agent_memory.workers import SPREADS, listeners


@pytest.fixture
def opened() -> Iterator[list[socket.socket]]:
    """Sockets to close after the test."""
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def _pending(sock: socket.socket) -> int:
    """How many connections wait in ``sock``'s accept queue (accepted here and closed)."""
    sock.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def test_linux_spreads() -> None:
    assert SPREADS  # CI runs on Linux: the tests below run the spreading path


def test_each_worker_gets_its_own_socket_on_one_port(opened: list[socket.socket]) -> None:
    sockets = listeners("127.0.0.1", 0, 3, spread=True)
    opened += sockets
    assert len({id(s) for s in sockets}) == 3
    assert len({s.getsockname() for s in sockets}) == 1  # one address
    assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in sockets)


def test_connections_opened_at_once_are_spread_over_the_sockets(
    opened: list[socket.socket],
) -> None:
    sockets = listeners("127.0.0.1", 0, 2, spread=True)
    opened += sockets
    for _ in range(64):  # all connect before anything accepts, as a pool of clients does
        opened.append(socket.create_connection(sockets[0].getsockname()))
    counts = [_pending(s) for s in sockets]
    assert sum(counts) == 64
    # The kernel picks a socket by a hash of each connection's ports: both get some (the
    # chance that 64 connections all hash to one of two sockets is 2**-63).
    assert min(counts) > 0, counts


def test_without_spreading_the_workers_share_one_socket(opened: list[socket.socket]) -> None:
    sockets = listeners("127.0.0.1", 0, 2, spread=False)
    opened.append(sockets[0])
    assert sockets[0] is sockets[1]


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_another_process_listens_on_is_refused(
    opened: list[socket.socket], reuse_port: bool
) -> None:
    """Also when the other listener set SO_REUSEPORT: joining its group would take half its
    clients (and give it half of ours)."""
    other = socket.socket()
    opened.append(other)
    if reuse_port:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen()
    with pytest.raises(OSError, match="in use") as caught:
        listeners("127.0.0.1", other.getsockname()[1], 2, spread=True)
    assert caught.value.errno == errno.EADDRINUSE


@contextlib.contextmanager
def supervising(tmp_path: Path, fail: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """``workers.run`` of tests/support/flaky_app.py with 2 workers in a subprocess: (its
    process, its port, its log); killed at the end if still running."""
    port = free_port()
    log = tmp_path / "serve.log"
    code = (
        "import sys; from agent_memory import workers; "
        f"sys.exit(workers.run('tests.support.flaky_app:create', 2, host='127.0.0.1', port={port}))"
    )
    env = {**os.environ, "FLAKY_APP_FAIL": str(fail)}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_for_log(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_sighup_keeps_the_workers_when_their_replacements_do_not_start(tmp_path: Path) -> None:
    """A SIGHUP while the app no longer loads (a broken deploy): the first replacement fails,
    the old workers keep serving (the restart is abandoned), and SIGTERM still stops all."""
    fail = tmp_path / "fail"
    with supervising(tmp_path, fail) as (proc, port, log):
        before = _pids_answering(port, until=lambda pids: len(pids) == 2)
        fail.touch()
        proc.send_signal(signal.SIGHUP)
        _wait_for_log(log, "restart abandoned")
        assert _pids_answering(port, until=lambda pids: pids == before) == before
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def _pids_answering(port: int, until: Callable[[set[str]], bool]) -> set[str]:
    """The worker pids answering new connections, once ``until`` holds of them (30 s)."""
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while not until(seen):
        assert time.monotonic() < deadline, seen
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                seen.add(answer.read().decode())
        except OSError:
            time.sleep(0.1)
    return seen


def test_a_worker_that_stops_answering_is_killed_and_replaced(tmp_path: Path) -> None:
    """A stopped (or hung) worker keeps its socket's share of new connections: the parent's
    health ping finds it (no pong within HEALTH_SECONDS), kills it and starts a new one on the
    same socket, so every new connection is served again."""
    with supervising(tmp_path, tmp_path / "never") as (proc, port, log):
        before = _pids_answering(port, until=lambda pids: len(pids) == 2)
        stopped = int(min(before))
        os.kill(stopped, signal.SIGSTOP)
        _wait_for_log(log, "did not answer")
        after = _pids_answering(port, until=lambda pids: len(pids) == 2)
        assert str(stopped) not in after
        assert before - {str(stopped)} < after  # the other worker was left alone
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
