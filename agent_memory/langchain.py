"""RedisChatMessageHistory: a LangChain chat history on the conversation store.

A drop-in for the constructors of ``langchain_community``'s and ``langchain_redis``'s classes of
the same name (``session_id``, ``url``/``redis_url``, ``redis_client``, ``key_prefix``, ``ttl``;
``index_name`` is accepted and ignored: no search module is needed). Differences on purpose:

* ``ttl=None`` means the configured TTL (30 days by default), never "keep forever";
* a trailing ``:`` of ``key_prefix`` is dropped (``"message_store:"`` -> ``message_store``);
* without a URL or client the connection comes from the environment (``REDIS_URL`` or
  ``REDIS_HOST``/``REDIS_PORT``/``REDIS_DB_AI_AGENTS``, DB 2 by default);
* ``window=k`` makes ``messages`` return only the last k messages (reads only those).

Constructing it does no I/O. Without ``redis_client`` the history uses a client shared by every
history of the process with the same connection settings (URL, database, credentials, TLS,
topology, timeouts: :func:`agent_memory.connection.shared_sync_client`), so a history built per
request, as ``RunnableWithMessageHistory``'s factory does, reuses one connection pool instead of
opening a TCP connection per request; the pool is made at first use and, as every redis-py
pool, starts over in a forked child. The async methods use redis.asyncio natively (no
threads): without ``async_redis_client`` they use an asyncio client shared the same way per
running event loop (never across loops; :func:`agent_memory.connection.shared_async_client`).
An injected ``redis_client`` / ``async_redis_client`` is used as given and never shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from agent_memory import connection
from agent_memory.aio import AsyncConversationStore
from agent_memory.errors import InvalidInput
from agent_memory.keys import validate_id
from agent_memory.settings import Settings
from agent_memory.store import ConversationStore

_ASYNC_TWIN_KEYS = frozenset(
    {"host", "port", "db", "username", "password", "socket_timeout", "socket_connect_timeout"}
)
_IGNORED_PEER_ARGS = frozenset({"index_name"})


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


class RedisChatMessageHistory(BaseChatMessageHistory):
    """Chat message history stored in Redis as a stream + hash, with a sliding TTL."""

    def __init__(
        self,
        session_id: str,
        *,
        redis_url: str | None = None,
        url: str | None = None,
        redis_client: redis.Redis | None = None,
        async_redis_client: redis.asyncio.Redis | None = None,
        key_prefix: str | None = None,
        ttl: int | None = None,
        window: int | None = None,
        settings: Settings | None = None,
        **peer_kwargs: Any,
    ) -> None:
        unknown = set(peer_kwargs) - _IGNORED_PEER_ARGS
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise InvalidInput(f"window must be a positive integer, not {window!r}", field="window")
        self.session_id = validate_id(session_id, "session_id")
        self.window = window
        settings = settings if settings is not None else Settings()
        link = redis_url or url
        if link:
            settings = settings.model_copy(update={"redis_url": link})
        self._settings = settings
        self._options: dict[str, Any] = {"settings": settings, "key_prefix": key_prefix, "ttl": ttl}
        self._client_given = redis_client is not None
        self.redis_client = (
            redis_client if redis_client is not None else connection.shared_sync_client(settings)
        )
        self._store = ConversationStore(self.redis_client, **self._options)
        self._async_client = async_redis_client
        self._astore: AsyncConversationStore | None = None
        self._astore_loop: asyncio.AbstractEventLoop | None = None

    @property
    def key_prefix(self) -> str:
        return self._store.keys.prefix

    @property
    def ttl(self) -> int:
        """The sliding TTL in seconds."""
        return self._store.config.ttl_ms // 1000

    @property
    def store(self) -> ConversationStore:
        return self._store

    def _async_store(self) -> AsyncConversationStore:
        loop = asyncio.get_running_loop()
        if self._astore is None or (self._async_client is None and self._astore_loop is not loop):
            client = self._async_client
            if client is None and self._client_given:
                client = async_twin(self.redis_client)
            elif client is None:
                client = connection.shared_async_client(self._settings)
            self._astore = AsyncConversationStore(client, **self._options)
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
        self._store.delete_conversation(self.session_id)

    # -- async -----------------------------------------------------------------------------
    async def aget_messages(self) -> list[BaseMessage]:
        store = self._async_store()
        return await store.get_langchain_messages(self.session_id, limit=self.window)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        await self._async_store().append(self.session_id, list(messages))

    async def aclear(self) -> None:
        await self._async_store().delete_conversation(self.session_id)
