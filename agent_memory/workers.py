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
worker that died, and stops them all if one fails to start (then returns ``STARTUP_FAILURE``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
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
    while True:
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
            workers[i] = _start(config, sockets[i])
        time.sleep(_POLL_SECONDS)


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
            return
        workers[i] = new
        old.process.terminate()
        old.process.join()


@dataclass(frozen=True)
class Worker:
    """A worker process and the event it sets once it serves (its lifespan has started)."""

    process: SpawnProcess
    ready: Event

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
    process = _spawn.Process(target=_serve, args=(config, sock, ready), name="agent-memory worker")
    process.start()
    return Worker(process, ready)


class _Server(uvicorn.Server):
    """uvicorn's server, setting ``ready`` once its startup (the app's lifespan) is done."""

    def __init__(self, config: uvicorn.Config, ready: Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._ready.set()


def _serve(config: uvicorn.Config, sock: socket.socket, ready: Event) -> None:  # in the worker
    config.configure_logging()
    # Ctrl-C reaches the workers too: uvicorn shuts down, then re-raises it.
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, ready).run(sockets=[sock])
