"""ConversationStore: the synchronous driver. I/O only; every operation is a plan of the core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from agent_memory import connection
from agent_memory._base import (
    StoreBase,
    described,
    goes_direct,
    lane_open,
    merged,
    noscript,
    packed,
    refused,
    writes,
)
from agent_memory.core import StoreCore
from agent_memory.plan import Batch, Call, Plan
from agent_memory.settings import Settings, get_settings

T = TypeVar("T")
P = ParamSpec("P")
_EXECUTE = vars(Redis).get("execute_command")  # redis-py's own, unless already wrapped


def _sent_on(conn: Any, args: tuple[Any, ...]) -> Any:
    conn.send_packed_command(packed(conn, args))
    return conn.read_response()


def _op(
    plan: Callable[Concatenate[StoreCore, P], Plan[T]],
) -> Callable[Concatenate[ConversationStore, P], T]:
    """A store method that runs the core's plan of the same name (its signature and doc, its
    result as the return type)."""

    def method(self: ConversationStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run(plan(self._core, *args, **kwargs))

    return described(method, plan, "ConversationStore")


class ConversationStore(StoreBase[Redis]):
    """Conversations in Redis, synchronously. Construct with a ``redis.Redis`` client (no I/O
    happens here) or with :meth:`from_settings` / :meth:`from_url`."""

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> ConversationStore:
        settings = settings if settings is not None else get_settings()
        return cls(connection.sync_client(settings), settings=settings, **kwargs)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ConversationStore:
        return cls.from_settings(connection.settings_for_url(get_settings(), url), **kwargs)

    def close(self) -> None:
        self._client.close()
        for sentinel in connection.sentinel_clients(self._client):
            sentinel.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the driver ------------------------------------------------------------------------
    @property
    def _direct(self) -> bool:
        """Whether a lone :func:`~agent_memory._base.goes_direct` call (a script, a read by
        bytes name) skips ``execute_command`` (:func:`~agent_memory._base.lane_open`)."""
        return lane_open(self._client, Redis, _EXECUTE, "_single_connection_client")

    def _send_direct(self, args: tuple[Any, ...]) -> Any:
        """One call, as ``execute_command`` sends it (a connection of the client's pool, its
        health check, the client's retry policy, the connection's timeouts and errors, the
        same bytes on the wire through ``send_packed_command``), without the rest of its
        per-call work: its closures, metrics and event bookkeeping and the response-callback
        lookup (these calls have none): ~5 us of CPU less per call."""
        pool: Any = self._client.connection_pool
        conn = pool.get_connection()
        try:
            return conn.retry.call_with_retry(
                lambda: _sent_on(conn, args), lambda _error: conn.disconnect()
            )
        finally:
            pool.release(conn)

    def _send(self, batch: Batch, with_source: bool) -> list[Any]:
        """The replies of ``batch``, a server's error refusing a call in its place."""
        if len(batch) == 1:
            call = batch[0]
            try:
                if call.target is not None:
                    return [self._fan_out(call)]
                if goes_direct(call) and self._direct:
                    return [self._send_direct(call.command(with_source))]
                return [self._client.execute_command(*call.command(with_source))]  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                return [exc]
        pipe = self._client.pipeline(transaction=False)
        for call in batch:
            pipe.execute_command(*call.command(with_source))  # type: ignore[no-untyped-call]
        replies: list[Any] = pipe.execute(raise_on_error=False)
        return replies

    def _fan_out(self, call: Call) -> Any:
        """A call with a cluster target, sent to each of its nodes in turn."""
        nodes = self._nodes(call)
        client: Any = self._client
        replies = [client.execute_command(*call.args, target_nodes=node) for node in nodes]
        return self._per_node(call, nodes, replies)

    def _execute(self, batch: Batch) -> list[Any]:
        try:
            replies = self._send(batch, with_source=False)
            missing = noscript(batch, replies)  # first use on this server: EVAL caches it
            again = self._send([batch[i] for i in missing], True) if missing else []
            return merged(replies, missing, again)
        except RedisError as exc:
            if refused(batch, exc):
                return [None]
            raise connection.translate(exc, write=writes(batch)) from exc

    def run(self, plan: Plan[T]) -> T:
        """Carry ``plan`` (the :mod:`agent_memory.plan` protocol) to Redis and back, a batch per
        round trip, and return its result; the plan is closed on every path. How the store's
        own methods and integrations that bring plans of their own run them."""
        try:
            batch = next(plan)
            while True:
                batch = plan.send(self._execute(batch))
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            plan.close()

    # -- operations: each one is the core's plan of the same name, run here ----------------
    ping = _op(StoreCore.ping)
    append = _op(StoreCore.append)
    get_messages = _op(StoreCore.get_messages)
    get_langchain_messages = _op(StoreCore.get_langchain_messages)
    count_messages = _op(StoreCore.count_messages)
    create = _op(StoreCore.create)
    get_conversation = _op(StoreCore.get_conversation)
    update_conversation = _op(StoreCore.update_conversation)
    delete_conversation = _op(StoreCore.delete_conversation)
    list_conversations = _op(StoreCore.list_conversations)
    delete_user = _op(StoreCore.delete_user)
    clear_all = _op(StoreCore.clear_all)
    server_info = _op(StoreCore.server_info)
    count_conversations = _op(StoreCore.count_conversations)
    export_scan = _op(StoreCore.export_scan)
    export_head = _op(StoreCore.export_head)
    export_chunk = _op(StoreCore.export_chunk)
    import_chunk = _op(StoreCore.import_chunk)
    # the import of the peers' histories (agent_memory.migrate)
    peer_scan = _op(StoreCore.peer_scan)
    peer_type = _op(StoreCore.peer_type)
    peer_read = _op(StoreCore.peer_read)
    peer_delete = _op(StoreCore.peer_delete)
    peer_import = _op(StoreCore.peer_import)
