"""Redis clients built from Settings, and the translation of redis-py errors.

Timeouts and the retry policy are chosen on purpose: a dead server must surface as
StoreUnavailable within about a second (connect timeout 1 s, ``retries`` extra attempts with
jittered backoff of 50-500 ms), not after redis-py's defaults. Retrying an append is safe: every
append carries a token, so a retried call whose first attempt did reach Redis stores nothing
twice.

Three topologies (docs/scaling.md): one server (``redis.Redis``), Redis Cluster
(``REDIS_CLUSTER=true``: ``RedisCluster``, DB 0 only) and Sentinel (``REDIS_SENTINELS``: the
master of ``REDIS_SENTINEL_MASTER``, found again after a failover); TLS for all three with
``rediss://`` or ``REDIS_TLS`` and the ``REDIS_TLS_*`` certificate paths.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from pydantic import SecretStr
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from agent_memory.errors import AgentMemoryError, ServerUnsupported, StoreUnavailable
from agent_memory.settings import Settings, get_settings

_RETRY_ON = (ConnectionError, TimeoutError, BusyLoadingError)
# Timeouts are not retried: a server that accepts connections but does not answer (frozen,
# swapping) would otherwise cost (1 + retries) x socket_timeout (6 s by default) before the
# caller (or the API's 503) hears of it; one socket_timeout is the bound. Refused or reset
# connections are retried with backoff: they fail fast, and a restart is over quickly.
_RETRIED = (ConnectionError, BusyLoadingError)
_UNAVAILABLE = (*_RETRY_ON, ClusterDownError, TryAgainError)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url`` (sync or asyncio) from settings."""
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "health_check_interval": 30,
        "decode_responses": False,
    }
    if settings.redis_url is None and not settings.redis_cluster:
        kwargs["db"] = settings.redis_db
    if settings.redis_username is not None:
        kwargs["username"] = settings.redis_username
    if settings.redis_password is not None:
        kwargs["password"] = settings.redis_password.get_secret_value()
    return kwargs | tls_kwargs(settings)


def tls_kwargs(settings: Settings) -> dict[str, Any]:
    """The ``ssl_*`` keyword arguments when TLS is on (none otherwise: plain connections
    reject them)."""
    if not settings.tls:
        return {}
    paths = {
        "ssl_ca_certs": settings.redis_tls_ca_cert,
        "ssl_certfile": settings.redis_tls_cert,
        "ssl_keyfile": settings.redis_tls_key,
    }
    return {name: str(path) for name, path in paths.items() if path is not None}


def _sentinel_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection settings for the sentinels themselves (same timeouts and TLS as the data)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
    }
    if settings.redis_sentinel_password is not None:
        kwargs["password"] = settings.redis_sentinel_password.get_secret_value()
    if settings.tls:
        kwargs |= {"ssl": True, **tls_kwargs(settings)}
    return kwargs


def _sentinel_master_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs = client_kwargs(settings) | {"db": settings.redis_db}
    if settings.tls:
        kwargs["ssl"] = True
    return kwargs


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=0.05, cap=0.5)


def sync_client(settings: Settings, extra: Mapping[str, Any] | None = None) -> redis.Redis:
    """A client for the configured topology: Sentinel master, Cluster, or one server.
    ``extra`` keyword arguments (a LangChain history's ``socket_timeout=5``,
    ``decode_responses=True``...) go to the client as given, over the settings' own.

    A ``RedisCluster`` is typed as ``redis.Redis`` here: it serves every command the store
    sends (the store detects it and keeps each script within one hash slot)."""
    from redis.retry import Retry

    retry = Retry(_backoff(), settings.retries, supported_errors=_RETRIED)
    extra = dict(extra or {})
    if settings.sentinels:
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            settings.sentinels, sentinel_kwargs=_sentinel_kwargs(settings)
        )
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_master,
            retry=retry,
            **(_sentinel_master_kwargs(settings) | extra),
        )
        return master
    if settings.redis_cluster:
        try:  # redis-py's sync RedisCluster connects here, to learn the slot map
            cluster = redis.cluster.RedisCluster.from_url(
                _cluster_url(settings), retry=retry, **(client_kwargs(settings) | extra)
            )
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailable(f"Redis Cluster is unreachable: {exc}") from exc
        return cast(redis.Redis, cluster)
    return redis.Redis.from_url(settings.url, retry=retry, **(client_kwargs(settings) | extra))


def async_client(settings: Settings, extra: Mapping[str, Any] | None = None) -> redis.asyncio.Redis:
    """The asyncio twin of :func:`sync_client`."""
    from redis.asyncio.retry import Retry

    retry = Retry(_backoff(), settings.retries, supported_errors=_RETRIED)
    extra = dict(extra or {})
    if settings.sentinels:
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            settings.sentinels, sentinel_kwargs=_sentinel_kwargs(settings)
        )
        master: redis.asyncio.Redis = sentinel.master_for(
            settings.redis_sentinel_master,
            retry=retry,
            **(_sentinel_master_kwargs(settings) | extra),
        )
        return master
    if settings.redis_cluster:
        cluster = redis.asyncio.cluster.RedisCluster.from_url(
            _cluster_url(settings), retry=retry, **(client_kwargs(settings) | extra)
        )
        return cast(redis.asyncio.Redis, cluster)
    return redis.asyncio.Redis.from_url(
        settings.url, retry=retry, **(client_kwargs(settings) | extra)
    )


_SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}


def resolve_settings(settings: Settings | None, redis_url: str | None) -> Settings:
    """What an object built with ``settings=`` / ``redis_url=`` runs on: ``settings`` (the
    process's cached environment when ``None``, not read again per object), pointed at
    ``redis_url`` when one is given (any scheme :func:`settings_for_url` accepts)."""
    base = settings if settings is not None else get_settings()
    return settings_for_url(base, redis_url) if redis_url else base


def settings_for_url(settings: Settings, url: str) -> Settings:
    """``settings`` pointed at ``url``: ``redis://``, ``rediss://`` and ``unix://`` as
    redis-py reads them; ``redis+sentinel://[[user]:password@]host[:port]/service[/db]`` (and
    ``rediss+sentinel://``, TLS), the form langchain_community's ``get_client`` and redisvl
    accept: one sentinel (port 26379 by default), the master named ``service`` ("mymaster"
    when empty), database ``db`` (0 when absent, as redis-py), the URL's credentials for the
    master and the sentinel alike. A URL names the server, so it wins over a configured
    ``REDIS_SENTINELS``. Pure: no I/O."""
    parts = urlsplit(url)
    tls = _SENTINEL_SCHEMES.get(parts.scheme.lower())
    if tls is None:
        return settings.model_copy(update={"redis_url": url, "redis_sentinels": None})
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    service = path[0] if path and path[0] else "mymaster"
    db = path[1] if len(path) > 1 and path[1] else "0"
    if not db.isdigit():
        raise ValueError(f"the database of a sentinel URL must be a number, not {db!r}")
    update: dict[str, Any] = {
        "redis_url": None,
        "redis_host": None,
        "redis_sentinels": f"{parts.hostname or 'localhost'}:{parts.port or 26379}",
        "redis_sentinel_master": service,
        "redis_db": int(db),
        "redis_tls": settings.redis_tls or tls,
        "redis_cluster": False,
    }
    if parts.username:
        update["redis_username"] = unquote(parts.username)
    if parts.password:
        secret = SecretStr(unquote(parts.password))
        update |= {"redis_password": secret, "redis_sentinel_password": secret}
    return settings.model_copy(update=update)


def _connection_key(settings: Settings) -> tuple[Any, ...]:
    """Every setting that changes the client :func:`sync_client` builds (and nothing else:
    key prefix, TTL and limits belong to the stores, not to the connection)."""
    secret = settings.redis_password
    sentinel_secret = settings.redis_sentinel_password
    return (
        settings.url,
        settings.redis_db,
        settings.redis_username,
        secret.get_secret_value() if secret is not None else None,
        settings.redis_cluster,
        tuple(settings.sentinels),
        settings.redis_sentinel_master,
        sentinel_secret.get_secret_value() if sentinel_secret is not None else None,
        settings.tls,
        settings.redis_tls_ca_cert,
        settings.redis_tls_cert,
        settings.redis_tls_key,
        settings.socket_timeout,
        settings.connect_timeout,
        settings.retries,
    )


_shared_lock = threading.Lock()
_shared_sync: dict[tuple[Any, ...], redis.Redis] = {}
_shared_async: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], redis.asyncio.Redis]
] = weakref.WeakKeyDictionary()


def _extra_key(extra: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """``extra`` as part of a cache key; None when a value cannot be hashed (not shared)."""
    if not extra:
        return ()
    key = tuple(sorted(extra.items()))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def shared_sync_client(settings: Settings, extra: Mapping[str, Any] | None = None) -> redis.Redis:
    """One :func:`sync_client` per process and connection settings, made at first use.

    Objects built per request (a LangChain history per call of a ``RunnableWithMessageHistory``
    factory) then reuse one connection pool instead of opening a TCP connection each. Building
    it does no I/O (except a Cluster client, which learns the slot map when built). Fork-safe:
    redis-py's pools drop the parent's connections in a child process (pid check). ``extra``
    client keyword arguments are part of the key (an unhashable value gets a client of its
    own)."""
    extra_key = _extra_key(extra)
    if extra_key is None:
        return sync_client(settings, extra)
    key = (*_connection_key(settings), extra_key)
    client = _shared_sync.get(key)
    if client is None:
        with _shared_lock:
            client = _shared_sync.get(key)
            if client is None:
                client = _shared_sync[key] = sync_client(settings, extra)
    return client


def shared_async_client(
    settings: Settings, extra: Mapping[str, Any] | None = None
) -> redis.asyncio.Redis:
    """One :func:`async_client` per running event loop and connection settings (an asyncio
    client is bound to the loop its connections were made on, so loops never share one; a
    loop's clients are dropped with the loop). Call it from a coroutine."""
    loop = asyncio.get_running_loop()
    extra_key = _extra_key(extra)
    if extra_key is None:
        return async_client(settings, extra)
    key = (*_connection_key(settings), extra_key)
    with _shared_lock:
        clients = _shared_async.get(loop)
        if clients is None:
            clients = _shared_async[loop] = {}
        client = clients.get(key)
        if client is None:
            client = clients[key] = async_client(settings, extra)
    return client


def _cluster_url(settings: Settings) -> str:
    """``settings.url``, refused with a clear message when it names a database other than 0."""
    db = urlsplit(settings.url).path.strip("/")
    if db not in ("", "0"):
        raise AgentMemoryError(
            f"REDIS_URL names database {db}, but a Redis Cluster has only database 0: drop it "
            "from the URL; the key prefix (AGENT_MEMORY_PREFIX) isolates the services"
        )
    return settings.url


def sentinel_clients(client: object) -> list[Any]:
    """The clients of the sentinels behind a ``master_for`` client (none for other clients):
    closing the master client leaves them open, so the stores close them too."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", ()))


OUTCOME_UNKNOWN = (
    " The outcome of this write is unknown (it may have been applied): retrying with the "
    "same message ids / idempotency key is safe."
)


def translate(exc: RedisError, *, write: bool = False) -> AgentMemoryError:
    """The agent-memory error for a redis-py error (raise it ``from exc``); ``write`` says
    that the batch could have changed data, so a StoreUnavailable says the outcome is unknown
    and how to retry safely."""
    unknown = OUTCOME_UNKNOWN if write else ""
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"Redis is unreachable or not answering: {exc}.{unknown}")
    if isinstance(exc, ReadOnlyError):
        return StoreUnavailable(f"Redis refuses writes (read-only replica?): {exc}.{unknown}")
    if isinstance(exc, OutOfMemoryError) or (
        isinstance(exc, ResponseError) and str(exc).startswith("OOM")
    ):  # redis-py strips the OOM prefix into the class; a bare client may keep it
        return StoreUnavailable(
            "Redis is full (used memory reached maxmemory, noeviction): it refuses writes until "
            "memory is freed or maxmemory is raised (see agent-memory doctor)." + unknown
        )
    if isinstance(exc, ResponseError) and "WAITAOF" in str(exc).upper():
        return ServerUnsupported(
            "AGENT_MEMORY_FSYNC_ACK needs WAITAOF with AOF on (Redis >= 7.2 or Valkey) and this "
            f"server refused it: {exc}. The write itself may have been applied; retrying with "
            "the same message ids is safe. Turn AGENT_MEMORY_FSYNC_ACK off (appendfsync always "
            "gives the same guarantee server-side)."
        )
    return AgentMemoryError(f"Redis error: {exc}")
