"""``agent-memory serve --workers N``: N uvicorn workers, each accepting on a socket of its own.

uvicorn's multi-worker mode binds one socket that every worker accepts from, and the worker
whose event loop wakes first accepts every connection waiting: clients that connect together
land on one worker (16 keep-alive connections opened at once: 16 on one of two workers in 7
rounds of 8, 15/1 in the other) and the other workers idle for as long as those connections
live. Here the parent binds one socket per worker on the same address with ``SO_REUSEPORT``
(Linux) and the kernel hands each new connection to one of them by a hash of its addresses;
each worker serves only its own socket. The parent keeps the sockets open: a worker that dies
is replaced on its socket, and the connections that arrive meanwhile wait in its queue.

Where ``SO_REUSEPORT`` does not spread connections (not Linux), the workers share one socket,
as uvicorn's do. The parent stops every worker on SIGINT or SIGTERM (then returns 0), replaces
every worker on SIGHUP (one at a time, each old one stopped only once its replacement has
started: a replacement that fails or is not ready within ``READY_SECONDS`` is stopped, the old
workers are kept and the restart is abandoned, as uvicorn's own supervisor does), replaces a
worker that died or stopped answering (every ``HEALTH_SECONDS`` each worker's event loop is
asked for a pong through a pipe; one that gives none within ``HEALTH_SECONDS`` is killed and
replaced: a hung or stopped worker would otherwise keep receiving its share of new
connections on its socket), and stops them all if one fails to start (then returns
``STARTUP_FAILURE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("uvicorn.error")

SPREADS = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
"""True where sockets bound with SO_REUSEPORT share new connections out (Linux)."""

BACKLOG = 2048  # uvicorn's default
READY_SECONDS = 60.0  # a replacement's startup (lifespan included) on SIGHUP
HEALTH_SECONDS = 5.0  # how often a worker is pinged, and how long its pong may take (uvicorn's)
_POLL_SECONDS = 0.5
_spawn = multiprocessing.get_context("spawn")


def listeners(host: str, port: int, count: int, *, spread: bool = SPREADS) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` (port 0: a free port), one per worker:
    each its own with SO_REUSEPORT when ``spread``, else one socket ``count`` times."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # A plain bind first: it fails if anything listens on the address, also another process's
    # SO_REUSEPORT sockets (a bind with SO_REUSEPORT would join them and take their clients).
    first = _bound(family, host, port, reuse_port=False)
    if not spread:
        first.listen(BACKLOG)
        return [first] * count
    port = first.getsockname()[1]
    first.close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_bound(family, host, port, reuse_port=True))
            sockets[-1].listen(BACKLOG)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bound(
    family: socket.AddressFamily, host: str, port: int, *, reuse_port: bool
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def run(
    app: str, count: int, *, host: str, port: int, spread: bool = SPREADS, **options: Any
) -> int:
    """Serve the app factory ``app`` (an import string) from ``count`` worker processes until
    SIGINT or SIGTERM (0), or until a worker fails to start (``STARTUP_FAILURE``)."""
    config = uvicorn.Config(app, factory=True, host=host, port=port, **options)  # logging too
    try:
        sockets = listeners(host, port, count, spread=spread)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return STARTUP_FAILURE
    bound_host, bound_port = sockets[0].getsockname()[:2]
    log.info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit), %d workers %s",
        f"[{bound_host}]" if ":" in bound_host else bound_host,
        bound_port,
        count,
        "each accepting on a socket of its own (SO_REUSEPORT)" if spread else "on one socket",
    )
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, record) for sig in handled}
    workers: list[Worker] = []
    try:
        workers.extend(_start(config, sock) for sock in sockets)
        log.info("Started parent process [%d]", os.getpid())
        return _supervise(config, sockets, workers, received)
    finally:
        for worker in workers:
            if worker.process.exitcode is None:
                worker.process.terminate()
        for worker in workers:
            worker.process.join()
        for sock in set(sockets):
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("Stopping parent process [%d]", os.getpid())


def _supervise(
    config: uvicorn.Config,
    sockets: list[socket.socket],
    workers: list[Worker],
    received: list[int],
) -> int:
    """Watch ``workers`` (one per socket, replaced in place) until a stop signal or a failed
    start."""
    pinged = time.monotonic()
    while True:
        if time.monotonic() - pinged >= HEALTH_SECONDS:
            _replace_unresponsive(config, sockets, workers)
            pinged = time.monotonic()
        while received:
            signum = received.pop(0)
            if signum != signal.SIGHUP:
                log.info("Received %s, exiting.", signal.Signals(signum).name)
                return 0
            log.info("Received SIGHUP, replacing the workers.")
            _replace_all(config, sockets, workers, received)
        for i, worker in enumerate(workers):
            process = worker.process
            if process.exitcode is None:
                continue
            if process.exitcode == STARTUP_FAILURE:
                log.error("Worker [%d] failed to start: stopping.", process.pid)
                return STARTUP_FAILURE
            log.info(
                "Worker [%d] died (exit code %d): replacing it.", process.pid, process.exitcode
            )
            worker.close()
            workers[i] = _start(config, sockets[i])
        time.sleep(_POLL_SECONDS)


def _replace_unresponsive(
    config: uvicorn.Config, sockets: list[socket.socket], workers: list[Worker]
) -> None:
    """Ping every worker that serves; kill and replace those without a pong in time."""
    asked = [i for i, w in enumerate(workers) if w.ready.is_set() and w.ping()]
    deadline = time.monotonic() + HEALTH_SECONDS
    for i in asked:
        worker = workers[i]
        if worker.pong(max(0.0, deadline - time.monotonic())):
            continue
        if worker.process.exitcode is not None:
            continue  # died meanwhile: the supervisor's next round replaces it as such
        log.error(
            "Worker [%d] did not answer in %.0f s: killing and replacing it.",
            worker.process.pid,
            HEALTH_SECONDS,
        )
        worker.process.kill()
        worker.process.join()
        worker.close()
        workers[i] = _start(config, sockets[i])


def _replace_all(
    config: uvicorn.Config,
    sockets: list[socket.socket],
    workers: list[Worker],
    received: list[int],
) -> None:
    """Replace each worker by a new one, stopping the old one only once the new one serves; on
    the first replacement that does not start, keep the old workers and stop there."""
    for i, old in enumerate(workers):
        new = _start(config, sockets[i])
        if not new.wait_ready(READY_SECONDS, received):
            code = new.process.exitcode
            why = f"exit code {code}" if code is not None else "stop requested or timed out"
            log.error(
                "New worker [%d] was not ready (%s); keeping worker [%d], restart abandoned.",
                new.process.pid,
                why,
                old.process.pid,
            )
            new.process.terminate()
            new.process.join()
            new.close()
            return
        workers[i] = new
        old.process.terminate()
        old.process.join()
        old.close()


@dataclass(frozen=True)
class Worker:
    """A worker process, the event it sets once it serves (its lifespan has started) and the
    parent's end of its health pipe."""

    process: SpawnProcess
    ready: Event
    health: Connection

    def ping(self) -> bool:
        """Ask for a pong (False if the pipe is closed: the worker is gone)."""
        try:
            self.health.send_bytes(b"ping")
        except OSError:
            return False
        return True

    def pong(self, timeout: float) -> bool:
        """True if the worker's event loop answered within ``timeout`` seconds."""
        try:
            if not self.health.poll(timeout):
                return False
            self.health.recv_bytes()
        except (OSError, EOFError):
            return False
        return True

    def close(self) -> None:
        self.health.close()

    def wait_ready(self, timeout: float, received: list[int]) -> bool:
        """True once the worker serves; False if it exits, ``timeout`` passes, or a signal
        other than SIGHUP arrives (the supervisor handles it next)."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            stop = any(signum != signal.SIGHUP for signum in received)
            if self.process.exitcode is not None or stop or time.monotonic() > deadline:
                return False
        return True


def _start(config: uvicorn.Config, sock: socket.socket) -> Worker:
    ready = _spawn.Event()
    health, child_end = _spawn.Pipe()
    process = _spawn.Process(
        target=_serve, args=(config, sock, ready, child_end), name="agent-memory worker"
    )
    process.start()
    child_end.close()  # the worker has its copy
    return Worker(process, ready, health)


class _Server(uvicorn.Server):
    """uvicorn's server, setting ``ready`` once its startup (the app's lifespan) is done."""

    def __init__(self, config: uvicorn.Config, ready: Event, health: Connection) -> None:
        super().__init__(config)
        self._ready = ready
        self._health = health

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            loop = asyncio.get_running_loop()
            threading.Thread(target=_answer_pings, args=(self._health, loop), daemon=True).start()
            self._ready.set()


def _answer_pings(health: Connection, loop: asyncio.AbstractEventLoop) -> None:
    """Answer each ping once the event loop has run a task: a hung loop gives no pong."""
    try:
        while True:
            health.recv_bytes()
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result()
            health.send_bytes(b"pong")
    except Exception:  # the parent or the loop is gone (closed pipe, closed or stopped loop)
        return


def _serve(
    config: uvicorn.Config, sock: socket.socket, ready: Event, health: Connection
) -> None:  # in the worker
    config.configure_logging()
    # Ctrl-C reaches the workers too: uvicorn shuts down, then re-raises it.
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, ready, health).run(sockets=[sock])
