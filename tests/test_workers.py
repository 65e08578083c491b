"""The listening sockets of ``serve --workers N`` (agent_memory.workers.listeners).

One socket per worker on one port with SO_REUSEPORT, so that the kernel spreads new
connections over the workers instead of the first worker to wake accepting them all; never
silently sharing a port that another process listens on. The processes themselves are tested
end to end in test_cli_serve.py."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

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
