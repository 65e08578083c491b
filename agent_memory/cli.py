"""The ``agent-memory`` command line: ``serve``, ``mcp``, ``doctor``, ``stats``, ``export``,
``import``.

Each command builds its own ``Settings()`` (the environment is read then, not at import) and
imports what it needs inside the function, so ``agent-memory --help`` stays fast and the library
never imports FastAPI.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from agent_memory.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    name="agent-memory",
    help="Durable conversation memory for AI agents on plain Redis.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Durable conversation memory for AI agents on plain Redis."""


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@contextlib.contextmanager
def _redis_for(settings: Settings, *, err: bool = False) -> Iterator[Settings]:
    """The settings to serve with: as given, or pointed at an embedded server started here
    (AOF on, in ``data_dir/redis``) and stopped on the way out. ``err``: say so on stderr."""
    if not settings.embedded:
        typer.echo(f"agent-memory: using Redis at {settings.url} (DB {settings.redis_db})", err=err)
        yield settings
        return
    from agent_memory.embedded import RedisProcess

    server = RedisProcess(settings.data_dir / "redis", appendonly=True)
    with _only_server_of(server.data_dir) as record:
        try:
            server.start()
            record(server.pid, server.port)
            typer.echo(
                f"agent-memory: embedded Redis at {server.url} (DB {settings.redis_db}), "
                f"data (AOF) in {server.data_dir}",
                err=err,
            )
            yield settings.model_copy(update={"redis_url": f"{server.url}/{settings.redis_db}"})
        finally:
            server.stop()
            typer.echo("agent-memory: embedded Redis stopped", err=err)


@contextlib.contextmanager
def _only_server_of(data_dir: Path) -> Iterator[Callable[[int | None, int], None]]:
    """Refuse a second embedded server on one data directory: two servers appending to one
    AOF corrupt it. A lock held while ``serve`` runs keeps out a concurrent ``serve``; the pid
    written in it catches a server left running by a ``serve`` that was SIGKILLed."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "serve.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _refuse(f"another 'agent-memory serve' is using {data_dir}")
        lock.seek(0)
        orphan = _live_server(lock.read().split())
        if orphan:
            _refuse(
                f"an embedded server from an earlier run still uses {data_dir} (pid {orphan[0]},"
                f" port {orphan[1]}); stop it first: redis-cli -p {orphan[1]} shutdown"
            )

        def record(pid: int | None, port: int) -> None:
            lock.truncate(0)
            lock.write(f"{pid} {port}\n")
            lock.flush()

        try:
            yield record
        finally:
            lock.truncate(0)


def _live_server(fields: list[str]) -> tuple[int, int] | None:
    """(pid, port) from the lock file if that process still runs a redis/valkey server."""
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        return None
    pid, port = int(fields[0]), int(fields[1])
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return (pid, port) if b"redis-server" in cmdline or b"valkey-server" in cmdline else None


def _refuse(message: str) -> NoReturn:
    typer.echo(f"agent-memory: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default: $AGENT_MEMORY_HOST or 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default: AGENT_MEMORY_PORT or 8000).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes on the port (about one per core; on Linux each accepts on a "
            "socket of its own, so the kernel spreads connections over them).",
        ),
    ] = 1,
) -> None:
    """Run the REST API.

    Without REDIS_URL or REDIS_HOST it starts an embedded Redis with AOF on in the data dir:
    one server, started here and shared by every worker, stopped when serve exits."""
    import uvicorn

    settings = Settings()
    # uvicorn re-raises the SIGTERM it handled once it has shut down: exit 0 through `finally`.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with _redis_for(settings) as effective:
            options: dict[str, Any] = {
                "host": host or settings.host,
                "port": port or settings.port,
                "log_level": "info",
            }
            if workers == 1:
                uvicorn.run(_application(effective), workers=1, **options)
                return
            # Each worker is a fresh process that builds its app from the environment: point
            # it at the embedded server started above (REDIS_URL wins over everything else).
            if settings.embedded:
                os.environ[_REDIS_URL] = effective.url
            from agent_memory import workers as supervisor

            # The supervisor handles SIGINT and SIGTERM itself: it stops every worker, then
            # returns (0), and the embedded server stops on the way out.
            code = supervisor.run(f"{__name__}:worker_app", workers, **options)
            if code:
                raise typer.Exit(code)
    finally:
        signal.signal(signal.SIGTERM, previous)


_REDIS_URL = "REDIS_URL"


def _application(settings: Settings) -> Any:
    from api.app import create_app

    application = create_app(settings)
    started = application.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with started(app) as state:
            _freeze_heap()
            yield state

    application.router.lifespan_context = lifespan
    return application


def _freeze_heap() -> None:
    """Keep what startup built out of the garbage collector's full passes: it lives as long
    as the process, and a full pass over it stalls every request in flight. Called once the
    app's lifespan has started, not before: the lifespan builds the store and imports the MCP
    SDK (about 50,000 objects; frozen before them, a full pass took 25-40 ms)."""
    gc.collect()
    gc.freeze()


def worker_app() -> Any:
    """The app of one ``serve --workers N`` worker (uvicorn calls it in each worker process):
    its settings from the environment the parent left, which names the Redis to use."""
    return _application(Settings())


@app.command()
def mcp(
    tenant: Annotated[
        str | None,
        typer.Option(
            help="Serve this tenant's conversations, the ones its API keys see (default: "
            "AGENT_MEMORY_MCP_TENANT; unset: those of the API without keys)."
        ),
    ] = None,
) -> None:
    """Serve the memory tools over MCP on stdin/stdout, for an MCP client to launch.

    Redis: REDIS_URL or REDIS_HOST; with neither, the embedded server of a running
    'agent-memory serve' on AGENT_MEMORY_DATA_DIR, else an embedded server of its own (AOF on,
    stopped on exit). Everything it says goes to stderr: stdout carries the protocol."""
    try:
        import anyio

        from agent_memory import mcp as tools
    except ImportError:
        _refuse("the MCP tools need the mcp extra: pip install 'agent-memory[mcp]'")
    from agent_memory.errors import InvalidInput

    settings = _settings_for(None)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with _redis_for(settings, err=True) as effective:
            anyio.run(tools.serve_stdio, effective, tenant or settings.mcp_tenant)
    except InvalidInput as exc:
        _refuse(str(exc))
    except SystemExit:
        # SIGTERM: the store is closed and the embedded server stopped, but a worker thread
        # still blocks reading stdin, and a normal exit would wait for it (for ever, if the
        # client keeps stdin open).
        sys.stderr.flush()
        os._exit(0)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _settings_for(url: str | None) -> Settings:
    """Settings from the environment, pointed at ``url`` when one is given, else at the
    embedded server a running ``serve`` has on the data directory (if any)."""
    settings = Settings()
    if url is None and settings.embedded:
        lock = settings.data_dir / "redis" / "serve.lock"
        running = _live_server(lock.read_text().split()) if lock.exists() else None
        if running:
            url = f"redis://127.0.0.1:{running[1]}/{settings.redis_db}"
    return settings.model_copy(update={"redis_url": url}) if url else settings


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Redis URL (default: REDIS_URL, or REDIS_HOST/PORT/DB, else the embedded server "
        "of a running 'agent-memory serve' on AGENT_MEMORY_DATA_DIR).",
    ),
]


@app.command()
def doctor(url: UrlOption = None) -> None:
    """Check a live Redis: reachability, AOF and fsync, eviction policy, memory headroom,
    version, keys without TTL. Exits 1 on any risk that can lose memory."""
    from agent_memory import connection
    from agent_memory import doctor as checks

    settings = _settings_for(url)
    client = connection.sync_client(settings.model_copy(update={"retries": 0}))
    try:
        findings = checks.diagnose(client, settings.key_prefix)
    finally:
        client.close()
    checks.render(findings, f"{settings.url} (prefix {settings.key_prefix!r})")
    raise typer.Exit(checks.exit_code(findings))


@app.command()
def stats(url: UrlOption = None) -> None:
    """Print the Redis stats of /api/v1/cache/stats as JSON: memory, keyspace hits/misses and
    hit rate, commands, clients, keys in the database and conversations under the prefix."""
    import json

    from agent_memory.store import ConversationStore

    with ConversationStore.from_settings(_settings_for(url)) as store:
        info = _guarded(store.server_info)
    typer.echo(json.dumps(info.cache_stats(), indent=2))


@contextlib.contextmanager
def _progress(label: str, total: int | None, quiet: bool) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal (None when piped or ``quiet``); yields
    ``update(completed, text)``."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)

        def update(done: int, text: str, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total, description=f"{label} {text}")

        yield update


QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


@app.command("export")
def export_(
    url: UrlOption = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="File to write, '-' for stdout.")
    ] = "-",
    quiet: QuietOption = False,
) -> None:
    """Write every conversation (messages, metadata, remaining TTL) as JSON Lines."""
    from agent_memory.store import ConversationStore
    from agent_memory.transfer import TransferStats, export_jsonl

    with ConversationStore.from_settings(_settings_for(url)) as store:
        total = store.count_conversations()
        with (
            (
                open(output, "w", encoding="utf-8")
                if output != "-"
                else contextlib.nullcontext(sys.stdout)
            ) as out,
            _progress("exporting", total, quiet) as update,
        ):

            def report(stats: TransferStats) -> None:
                if update is not None and stats.lines % 200 == 1:
                    update(stats.conversations, f"{stats.messages} messages")

            stats = _guarded(lambda: export_jsonl(store, out, progress=report))
    typer.echo(
        f"exported {stats.conversations} conversations, {stats.messages} messages, "
        f"{stats.items} LangGraph store items",
        err=True,
    )


PEERS = ("langchain-community",)


@app.command("import")
def import_(
    source: Annotated[
        str | None,
        typer.Argument(help="JSON Lines file of an export, '-' for stdin (not with --from)."),
    ] = None,
    url: UrlOption = None,
    quiet: QuietOption = False,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Import what a peer left in Redis instead of a file: 'langchain-community' "
            "(RedisChatMessageHistory lists).",
        ),
    ] = None,
    source_url: Annotated[
        str | None,
        typer.Option(help="Redis URL of the peer's data (default: the --url server)."),
    ] = None,
    source_db: Annotated[
        int | None,
        typer.Option(
            help="Database of the peer's data (default: 0 without --source-url, as "
            "the peer's default URL; else the URL's)."
        ),
    ] = None,
    source_prefix: Annotated[str, typer.Option(help="The peer's key_prefix.")] = "message_store:",
    session: Annotated[
        str | None, typer.Option(help="Import this session only (default: all).")
    ] = None,
    key_prefix: Annotated[
        str | None,
        typer.Option(
            help="The key_prefix your code passes to agent_memory.RedisChatMessageHistory "
            "(default: none, the configured AGENT_MEMORY_PREFIX)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be imported; write nothing.")
    ] = False,
    delete_source: Annotated[
        bool,
        typer.Option(
            "--delete-source",
            help="Delete each peer list once all of it is imported (kept if it changed).",
        ),
    ] = False,
) -> None:
    """Restore an export, or (--from) import the histories a peer left in Redis.

    Both add nothing when run twice and complete an interrupted run when run again.

    An export: conversations that exist are left alone.

    --from langchain-community: each list <source-prefix><session> goes to conversation <session>.

    The peer's data is only read, unless --delete-source."""
    if from_ is not None:
        if source is not None:
            _refuse("give a file or --from, not both")
        if from_ not in PEERS:
            _refuse(f"--from takes one of: {', '.join(PEERS)} (not {from_!r})")
        peer = PeerSource(source_url, source_db, source_prefix, session)
        _import_peer(url, peer, key_prefix, dry_run, delete_source, quiet)
        return
    if source is None:
        _refuse("give a JSON Lines file to import, or --from langchain-community")
    _import_file(source, url, quiet)


def _import_file(source: str, url: str | None, quiet: bool) -> None:
    from agent_memory.store import ConversationStore
    from agent_memory.transfer import import_jsonl

    size = os.path.getsize(source) if source != "-" else None
    with (
        ConversationStore.from_settings(_settings_for(url)) as store,
        open(source, encoding="utf-8")
        if source != "-"
        else contextlib.nullcontext(sys.stdin) as lines,
        _progress("importing", size, quiet) as update,
    ):
        read = 0

        def report(line: str) -> None:
            nonlocal read
            read += len(line.encode())
            if update is not None:
                update(read, "")

        stats = _guarded(lambda: import_jsonl(store, lines, progress=report))
    typer.echo(
        f"restored {stats.conversations} conversations, {stats.messages} messages; "
        f"{stats.skipped_existing} already present, {stats.skipped_expired} expired; "
        f"{stats.items} LangGraph store items restored",
        err=True,
    )


@dataclass(frozen=True)
class PeerSource:
    """Where the peer's histories are: server, database, key prefix, one session or all."""

    url: str | None
    db: int | None
    prefix: str
    session: str | None

    def settings(self, target: Settings) -> Settings:
        """Connection settings for the source: ``url`` (else the target's server) with
        ``db`` (else 0 without a URL, the peer's default; else the URL's database)."""
        from agent_memory.connection import settings_for_url

        link = self.url or target.url
        db = self.db if self.db is not None else (None if self.url else 0)
        if db is not None:
            link = _with_db(link, db)
        plain = target.model_copy(update={"redis_cluster": False, "redis_sentinels": None})
        return settings_for_url(plain, link)


def _with_db(url: str, db: int) -> str:
    """``url`` naming database ``db`` (path for redis/rediss/sentinel URLs, query for unix)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query)) | {"db": str(db)}
        return urlunsplit(parts._replace(query=urlencode(query)))
    if parts.scheme.endswith("+sentinel"):
        service = parts.path.strip("/").split("/")[0] or "mymaster"
        return urlunsplit(parts._replace(path=f"/{service}/{db}"))
    return urlunsplit(parts._replace(path=f"/{db}"))


def _import_peer(
    url: str | None,
    peer: PeerSource,
    key_prefix: str | None,
    dry_run: bool,
    delete_source: bool,
    quiet: bool,
) -> None:
    from agent_memory import connection
    from agent_memory.langchain import history_prefix
    from agent_memory.migrate import ImportReport, import_langchain_community
    from agent_memory.store import ConversationStore

    target = _settings_for(url)
    prefix = history_prefix(key_prefix) if key_prefix is not None else None
    source_client = connection.sync_client(peer.settings(target))
    with (
        ConversationStore.from_settings(target, key_prefix=prefix) as store,
        contextlib.closing(source_client),
        _progress("importing", None, quiet) as update,
    ):

        def report(done: ImportReport, session_id: str) -> None:
            if update is not None:
                update(done.sessions, session_id[:40], done.total_sessions)

        result = _guarded(
            lambda: import_langchain_community(
                store,
                source_client,
                source_prefix=peer.prefix,
                session=peer.session,
                dry_run=dry_run,
                delete_source=delete_source,
                progress=report,
            )
        )
    for line in result.lines():
        typer.echo(line, err=True)


def _guarded(run: Callable[[], T]) -> T:
    """Run an export/import; a store error ends the command with its message and exit 1."""
    from agent_memory.errors import AgentMemoryError

    try:
        return run()
    except AgentMemoryError as exc:
        typer.echo(f"agent-memory: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()
