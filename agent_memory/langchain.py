"""RedisChatMessageHistory: a LangChain chat history on the conversation store.

A drop-in for ``langchain_community``'s and ``langchain_redis``'s classes of the same name: their
positional order ``(session_id, url, key_prefix, ttl)``, their keywords (``redis_url``,
``redis_client``, ``index_name`` and ``overwrite_index``: accepted, ignored, no search module
is needed), extra keyword arguments forwarded to the Redis client as langchain-redis does
(``socket_timeout=5``, ``decode_responses=True``...), their URL schemes (``redis://``,
``rediss://``, ``unix://``, ``redis+sentinel://host:26379/mymaster/2``), and what their users
call (``key``, ``id``, ``len()``, ``delete()``, ``clear()``, ``session_id``, ``redis_client``,
``key_prefix``, ``ttl``). The README's table ("A drop-in for LangChain's Redis histories")
lists what is identical, what differs and why; in short:

* ``ttl``: seconds as int, float (to the millisecond) or timedelta; ``None`` is the configured
  TTL (``CACHE_TTL_AGENT_MEMORY``, 30 days), never "keep forever"; ``0`` and negative values
  (the peers' "no expiry") are refused with an error that says so: every key expires.
  ``history.ttl`` reads the TTL applied, in seconds.
* ``key_prefix``: any string the peers take (``"message_store:"``, ``"chat:"``, ``""``) names
  its own namespace; see :func:`history_prefix` for the (injective) mapping to the store's key
  prefix. ``history.key_prefix`` reads it back as given. ``None`` is the configured prefix.
* ``delete()`` removes every conversation under the history's prefix, as langchain-redis's
  drops its index with all sessions; ``clear()`` removes this session only.
* without a URL or client the connection comes from the environment (``REDIS_URL`` or
  ``REDIS_HOST``/``REDIS_PORT``/``REDIS_DB_AI_AGENTS``, DB 2 by default); a URL without a
  database number means DB 0, as redis-py (and the peers) read it;
* ``window=k`` makes ``messages`` return only the last k messages (reads only those).

Constructing it does no I/O and reads no environment (the settings are read once per process:
:func:`agent_memory.settings.get_settings`). Without ``redis_client`` the history uses a store
and client shared by every history of the process with the same connection settings, prefix,
TTL and client arguments (:func:`agent_memory.connection.shared_sync_client`), so a history
built per request, as ``RunnableWithMessageHistory``'s factory does, costs a few microseconds
and reuses one connection pool; the pool is made at first use and, as every redis-py pool,
starts over in a forked child. The async methods use redis.asyncio natively (no threads):
without ``async_redis_client`` they use an asyncio client shared the same way per running
event loop (never across loops). An injected ``redis_client`` / ``async_redis_client`` is used
as given and never shared; extra client arguments are then unused, as in langchain-redis.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
import redis.asyncio
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from agent_memory import connection
from agent_memory.aio import AsyncConversationStore
from agent_memory.errors import InvalidInput
from agent_memory.keys import encode_id, validate_id
from agent_memory.plans.context import ttl_to_ms
from agent_memory.settings import Settings, get_settings
from agent_memory.store import ConversationStore

_ASYNC_TWIN_KEYS = frozenset(
    {"host", "port", "db", "username", "password", "socket_timeout", "socket_connect_timeout"}
)
EMPTY_PREFIX = "%"
"""The store prefix of ``key_prefix=""`` (no other prefix maps to it)."""
_STORES_CACHED = 1024


def history_prefix(key_prefix: str) -> str:
    """The store's key prefix for a history's ``key_prefix``, one-to-one.

    A plain name (no ``:``, ``%``, braces, glob characters or backslash) is used as is, so
    ``"agent_memory"`` or ``"tenant_a"`` mean what they mean to the stores and the API. Any
    other string is percent-encoded as ids are (:func:`agent_memory.keys.encode_id`:
    ``"message_store:"`` -> ``message_store%3A``, ``"myapp::"`` -> ``myapp%3A%3A``), and ``""``
    is ``%``. Distinct prefixes therefore never share keys, and since no mapped prefix holds a
    ``:``, one prefix's ``SCAN`` never matches another's keys."""
    if not isinstance(key_prefix, str):
        raise InvalidInput(f"key_prefix must be a string, not {key_prefix!r}", field="key_prefix")
    if any(ord(c) < 32 or ord(c) == 127 for c in key_prefix):
        raise InvalidInput(
            f"key_prefix {key_prefix!r} contains a control character; key prefixes cannot",
            field="key_prefix",
        )
    return encode_id(key_prefix) if key_prefix else EMPTY_PREFIX


def history_ttl_ms(ttl: object) -> int:
    """A history's ``ttl`` (seconds: int, float, timedelta) in milliseconds; 0 and negative
    values, the peers' "never expire", are refused: every key of the store expires."""
    if isinstance(ttl, timedelta):
        seconds: Any = ttl.total_seconds()
    else:
        seconds = ttl
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds <= 0:
        raise InvalidInput(
            f"ttl={ttl!r}: langchain_community and langchain_redis read 0 or a negative TTL as "
            "'never expire', but every key agent-memory writes expires; pass ttl=None for the "
            "configured TTL (CACHE_TTL_AGENT_MEMORY, 30 days by default) or a positive number "
            "of seconds (int, float or timedelta)",
            field="ttl",
        )
    return ttl_to_ms(ttl)


def async_twin(client: redis.Redis) -> redis.asyncio.Redis:
    """An asyncio client for the same server, database and credentials as a sync client."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k in _ASYNC_TWIN_KEYS}
    if "path" in pool.connection_kwargs:
        kwargs["unix_socket_path"] = pool.connection_kwargs["path"]
    if issubclass(pool.connection_class, redis.SSLConnection):
        kwargs["ssl"] = True
        kwargs.update(
            {
                k: v
                for k, v in pool.connection_kwargs.items()
                if k.startswith("ssl_") and v is not None
            }
        )
    return redis.asyncio.Redis(**kwargs)


# -- stores shared by the histories built from connection settings -------------------------
_lock = threading.Lock()
_stores: dict[tuple[Any, ...], tuple[Settings, ConversationStore]] = {}


@dataclass(frozen=True, slots=True)
class _Wanted:
    """What a history built without ``redis_client`` asks of its store."""

    base: Settings
    link: str | None
    prefix: str | None
    ttl_ms: int | None
    client_kwargs: Mapping[str, Any]

    def build(self) -> ConversationStore:
        _check_client_kwargs(self.client_kwargs)
        settings = connection.settings_for_url(self.base, self.link) if self.link else self.base
        client = connection.shared_sync_client(settings, self.client_kwargs)
        ttl = None if self.ttl_ms is None else self.ttl_ms / 1000
        return ConversationStore(client, settings=settings, key_prefix=self.prefix, ttl=ttl)


def _shared_store(
    base: Settings, link: str | None, prefix: str | None, ttl_ms: int | None, kwargs: Any
) -> ConversationStore:
    """The store of histories built with these arguments: made once (settings pointed at
    the URL, a shared client), then found with one dict lookup."""
    key = (id(base), link, prefix, ttl_ms, tuple(sorted(kwargs.items())) if kwargs else ())
    try:
        found = _stores.get(key)
    except TypeError:  # an unhashable client argument: a store (and client) of its own
        return _Wanted(base, link, prefix, ttl_ms, kwargs).build()
    if found is not None and found[0] is base:
        return found[1]
    store = _Wanted(base, link, prefix, ttl_ms, kwargs).build()
    with _lock:
        if len(_stores) >= _STORES_CACHED:
            _stores.clear()
        _stores[key] = (base, store)  # base kept alive, so its id() is not reused
    return store


@functools.cache
def _client_parameters() -> frozenset[str]:
    """The keyword arguments redis-py's clients and connections take."""
    import redis.connection as rc

    owners = (redis.Redis, rc.AbstractConnection, rc.SSLConnection, rc.UnixDomainSocketConnection)
    return frozenset(
        name
        for owner in owners
        for name, param in inspect.signature(owner).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
        or param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    )


def _check_client_kwargs(client_kwargs: Mapping[str, Any]) -> None:
    """TypeError now for a name no Redis client takes (redis-py itself would fail only at
    the first command, when it opens a connection)."""
    unknown = set(client_kwargs) - _client_parameters()
    if unknown:
        raise TypeError(
            f"unexpected keyword arguments for the Redis client: {', '.join(sorted(unknown))}"
        )


class RedisChatMessageHistory(BaseChatMessageHistory):
    """Chat message history stored in Redis as a stream + hash, with a sliding TTL."""

    def __init__(
        self,
        session_id: str,
        url: str | None = None,
        key_prefix: str | None = None,
        ttl: float | timedelta | None = None,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        async_redis_client: redis.asyncio.Redis | None = None,
        index_name: str | None = None,
        overwrite_index: bool = False,
        window: int | None = None,
        settings: Settings | None = None,
        **client_kwargs: Any,
    ) -> None:
        """``index_name`` and ``overwrite_index`` (langchain-redis's RediSearch index) are
        kept as attributes and otherwise ignored; ``client_kwargs`` go to the Redis client
        built from the URL or the environment (unused with ``redis_client``)."""
        self.session_id = validate_id(session_id, "session_id")
        if url is not None and redis_url is not None and url != redis_url:
            raise TypeError("pass url or redis_url (the same thing), not both")
        link = url if url is not None else redis_url
        if link is not None and not isinstance(link, str):
            raise TypeError(f"url must be a string, not {type(link).__name__}")
        if window is not None and (
            not isinstance(window, int) or isinstance(window, bool) or window < 1
        ):
            raise InvalidInput(f"window must be a positive integer, not {window!r}", field="window")
        self.window = window
        self.index_name = index_name
        self.overwrite_index = overwrite_index
        self._key_prefix = key_prefix
        prefix = None if key_prefix is None else history_prefix(key_prefix)
        ttl_ms = None if ttl is None else history_ttl_ms(ttl)
        base = settings if settings is not None else get_settings()
        if redis_client is not None:
            ttl_s = None if ttl_ms is None else ttl_ms / 1000
            self._store = ConversationStore(
                redis_client, settings=base, key_prefix=prefix, ttl=ttl_s
            )
        else:
            self._store = _shared_store(base, link, prefix, ttl_ms, client_kwargs)
        self._client_kwargs = client_kwargs
        self._client_given = redis_client is not None
        self.redis_client: redis.Redis = self._store.client
        self._async_client = async_redis_client
        self._astore: AsyncConversationStore | None = None
        self._astore_loop: asyncio.AbstractEventLoop | None = None

    # -- what the peers' users read --------------------------------------------------------
    @property
    def key_prefix(self) -> str:
        """The ``key_prefix`` given (the configured store prefix when none was)."""
        return self._key_prefix if self._key_prefix is not None else self._store.keys.prefix

    @property
    def ttl(self) -> int | float:
        """The sliding TTL applied to the session's keys on every write, in seconds."""
        ms = self._store.config.ttl_ms
        return ms // 1000 if ms % 1000 == 0 else ms / 1000

    @property
    def id(self) -> str:
        """The session id (langchain-redis's name for it)."""
        return self.session_id

    @property
    def key(self) -> str:
        """The Redis key that holds the session's messages (a stream; langchain_community's
        ``key`` is its list)."""
        return self._store.keys.conversation(self.session_id).stream

    @property
    def store(self) -> ConversationStore:
        return self._store

    def __len__(self) -> int:
        """How many messages the session holds (one round trip, XLEN)."""
        return self._store.count_messages(self.session_id)

    def _async_store(self) -> AsyncConversationStore:
        loop = asyncio.get_running_loop()
        if self._astore is None or (self._async_client is None and self._astore_loop is not loop):
            client = self._async_client
            if client is None and self._client_given:
                client = async_twin(self.redis_client)
            elif client is None:
                client = connection.shared_async_client(self._store.settings, self._client_kwargs)
            config = self._store.config
            self._astore = AsyncConversationStore(
                client,
                settings=self._store.settings,
                key_prefix=config.keys.prefix,
                ttl=config.ttl_ms / 1000,
            )
            self._astore_loop = loop
        return self._astore

    # -- sync ------------------------------------------------------------------------------
    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The history, oldest first (the last ``window`` messages when a window is set)."""
        return self._store.get_langchain_messages(self.session_id, limit=self.window)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store messages in one atomic round trip; ids already stored are not added again."""
        self._store.append(self.session_id, list(messages))

    def clear(self) -> None:
        """Delete this session's messages and metadata."""
        self._store.delete_conversation(self.session_id)

    def delete(self) -> None:
        """Delete every session under this history's key prefix (langchain-redis's
        ``delete()`` drops its index with all its sessions): SCAN + UNLINK of the prefix's
        keys in this database, nothing else. ``clear()`` deletes one session."""
        self._store.clear_all()

    # -- async -----------------------------------------------------------------------------
    async def aget_messages(self) -> list[BaseMessage]:
        store = self._async_store()
        return await store.get_langchain_messages(self.session_id, limit=self.window)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        await self._async_store().append(self.session_id, list(messages))

    async def aclear(self) -> None:
        await self._async_store().delete_conversation(self.session_id)
