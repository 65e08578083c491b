"""What the sync and async drivers share besides the plans: construction, configuration, and
the pure parts of carrying a batch (cluster routing and slots, NOSCRIPT, refusals, signatures,
which calls take the direct lane and their bytes)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from datetime import timedelta
from types import FunctionType
from typing import Any, Generic, TypeVar

import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from agent_memory.core import StoreConfig, StoreCore
from agent_memory.keys import KeySchema
from agent_memory.plan import PRIMARIES, Batch, Call
from agent_memory.settings import Settings, get_settings

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # a dependency (redis[hiredis]); an install without it packs as redis-py does
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is installed wherever the tests run
    _hiredis_pack = None

try:  # redis-py >= 7's own metrics (OpenTelemetry): is_enabled() says whether they are on
    from redis.observability.providers import get_observability_instance as _observability
except ImportError:  # pragma: no cover - older redis-py: no metrics of its own
    _observability = None  # type: ignore[assignment]

ClientT = TypeVar("ClientT")
F = TypeVar("F", bound=Callable[..., Any])
_PACKABLE = frozenset({bytes, str, int})  # what hiredis packs exactly as redis-py's encoder does


def slot_of(key: str | bytes) -> int:
    """A key's Redis Cluster hash slot (redis-py's CRC16), for the plans' ``key_slot``."""
    return key_slot(key if isinstance(key, bytes) else key.encode())


def refused(batch: Batch, exc: Exception) -> bool:
    """True when ``exc`` is the server refusing the lone optional call of ``batch``: the
    drivers then reply ``[None]`` instead of raising (connection errors still raise)."""
    return (
        len(batch) == 1
        and batch[0].optional
        and isinstance(exc, ResponseError)
        and not isinstance(exc, NoScriptError)
    )


def writes(batch: Batch) -> bool:
    """True when ``batch`` may change data (every write of the store is a script), so a
    failure of it leaves the outcome unknown."""
    return any(call.script is not None for call in batch)


def noscript(batch: Batch, replies: list[Any]) -> list[int]:
    """Positions to send again after the server answered NOSCRIPT (script not cached there
    yet): the calls that failed so, and the calls after the first of them that are not
    scripts (they may read what the script writes: :class:`~agent_memory.plan.Call`). A
    script that did run (on a cluster, on another node) is not sent again."""
    for first, reply in enumerate(replies):  # a loop, not a generator: runs once per call
        if isinstance(reply, NoScriptError):
            return [
                i
                for i in range(first, len(batch))
                if batch[i].script is None or isinstance(replies[i], NoScriptError)
            ]
    return []


def merged(replies: list[Any], positions: list[int], again: list[Any]) -> list[Any]:
    """``replies`` with the replies of the calls sent again put in place; raises the first
    error among them (as a pipeline does), so the drivers translate it."""
    if positions:
        for i, reply in zip(positions, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def lane_open(client: Any, client_class: type[Any], execute: object, single: str) -> bool:
    """Whether the driver may send a lone :func:`goes_direct` call straight on a connection of
    the client's pool instead of through ``execute_command``: the client is a
    ``client_class`` (one server, or Sentinel's master; not a cluster), not a
    single-connection client (its attribute ``single`` is false), its pool has no
    client-side cache, and its ``execute_command`` is redis-py's own (``execute``, as the
    class defines it), and redis-py's own metrics are off (they time each call in
    ``execute_command``). A client whose ``execute_command`` is wrapped (tracing
    instrumentation, a test's spy; on its class or the instance) or overridden gets every
    call through it. Checked per call: a wrapper may come at any time."""
    return (
        type(execute) is FunctionType
        and type(client).execute_command is execute
        and "execute_command" not in vars(client)
        and isinstance(client, client_class)
        and not getattr(client, single)
        and getattr(client.connection_pool, "cache", None) is None
        and (_observability is None or not _observability().is_enabled())
    )


def goes_direct(call: Call) -> bool:
    """A call whose reply ``execute_command`` would hand over as the connection read it: a
    script of ours (EVALSHA / EVAL have no response callback) or a command named in bytes
    (redis-py finds callbacks by str name: the reads' ``XRANGE``, docs/design.md)."""
    return call.target is None and (call.script is not None or type(call.args[0]) is bytes)


def packed(conn: Any, args: tuple[Any, ...]) -> list[bytes]:
    """``args`` as RESP bytes, those ``execute_command`` sends: hiredis's packer (C, ~2 us for
    a script call of 25 arguments) when every argument is one it packs as redis-py's encoder
    would (bytes, str in UTF-8 strict, int not bool), else the connection's own (~12 us in
    Python). A command name holds no space (redis-py would split it)."""
    encoder = conn.encoder
    if (
        _hiredis_pack is not None
        and encoder.encoding in ("utf-8", "utf8")
        and encoder.encoding_errors == "strict"
        and _PACKABLE.issuperset(map(type, args))
    ):
        return [_hiredis_pack(args)]
    out: list[bytes] = conn.pack_command(*args)
    return out


def described(method: F, plan: Callable[..., Any], owner: str) -> F:
    """``method`` (a store's runner of ``plan``) with the plan's name, documentation and
    signature, the return type being the plan's result instead of ``Plan[...]`` (for an
    ``async def`` method: what awaiting it gives)."""
    signature = inspect.signature(plan, eval_str=True)
    result = typing.get_args(signature.return_annotation)[2]
    self_param, *params = signature.parameters.values()
    method.__name__ = plan.__name__
    method.__qualname__ = f"{owner}.{plan.__name__}"
    method.__doc__ = plan.__doc__
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param.replace(name="self", annotation=owner), *params],
        return_annotation=result,
    )
    method.__annotations__ = {p.name: p.annotation for p in params} | {"return": result}
    return method


class StoreBase(Generic[ClientT]):
    """Holds the injected client and the pure core; constructing one does no I/O."""

    def __init__(
        self,
        client: ClientT,
        *,
        settings: Settings | None = None,
        key_prefix: str | None = None,
        ttl: int | float | timedelta | None = None,
    ) -> None:
        self._client = client
        self._settings = settings if settings is not None else get_settings()
        cluster = isinstance(
            client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster
        )
        self._core = StoreCore(
            StoreConfig.from_settings(
                self._settings, key_prefix=key_prefix, ttl=ttl, cluster=cluster
            ),
            key_slot=slot_of,
        )

    def _nodes(self, call: Call) -> list[Any]:
        """The cluster nodes a call with a target goes to (redis-py ``ClusterNode`` s)."""
        client: Any = self._client
        if call.target == PRIMARIES:
            return list(client.get_primaries())
        return [client.get_node(node_name=call.target)]

    @staticmethod
    def _per_node(call: Call, nodes: list[Any], replies: list[Any]) -> Any:
        """The plan's view of a call with a target: ``{node name: reply}`` for PRIMARIES, the
        node's reply for one node, each reply as the node gave it (redis-py wraps even one
        node's SCAN reply as ``({node: cursor}, keys)``; unwrapped here)."""
        own = {}
        for node, reply in zip(nodes, replies, strict=True):
            if str(call.args[0]).upper() == "SCAN":
                cursors, keys = reply
                reply = (cursors[node.name], keys)
            own[node.name] = reply
        return own if call.target == PRIMARIES else own[nodes[0].name]

    @property
    def client(self) -> ClientT:
        return self._client

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def config(self) -> StoreConfig:
        return self._core.config

    @property
    def keys(self) -> KeySchema:
        return self._core.config.keys

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.keys.prefix!r}, ttl_ms={self.config.ttl_ms})"
