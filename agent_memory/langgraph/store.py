"""LangGraph long-term memory (``BaseStore``) on plain Redis: RedisStore and AsyncRedisStore.

Both run the plans of :mod:`agent_memory.langgraph._store_plans` through the stores' drivers
(``ConversationStore.run`` / ``AsyncConversationStore.run``); they differ only where I/O
happens (Redis, and the embedding model of an index config). Key layout and rules: that
module's docstring and docs/design.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Self, TypeVar

import redis
import redis.asyncio
from langgraph.store.base import BaseStore, IndexConfig, Op, Result, TTLConfig
from langgraph.store.base.embed import ensure_embeddings

from agent_memory import connection
from agent_memory.aio import AsyncConversationStore
from agent_memory.errors import AgentMemoryError, InvalidInput
from agent_memory.items import ItemConfig
from agent_memory.langgraph import _store_plans as plans
from agent_memory.settings import Settings
from agent_memory.store import ConversationStore

__all__ = ["AsyncRedisStore", "RedisStore"]

ClientT = TypeVar("ClientT")
DriverT = TypeVar("DriverT")


class _StoreCore(Generic[ClientT, DriverT]):
    """Construction and configuration shared by both stores; no I/O. A twin names its
    driver class and how it builds a client from settings."""

    supports_ttl: bool = True
    _driver_class: Callable[..., DriverT]
    _connect: Callable[[Settings], ClientT]

    def __init__(
        self,
        redis_client: ClientT | None = None,
        *,
        redis_url: str | None = None,
        settings: Settings | None = None,
        key_prefix: str | None = None,
        ttl: TTLConfig | None = None,
        index: IndexConfig | None = None,
        max_candidates: int = 1_000,
        max_namespaces: int = 100_000,
    ) -> None:
        settings = connection.resolve_settings(settings, redis_url)
        self.settings = settings
        self.ttl_config = ttl
        self.index_config = index
        self.embeddings = ensure_embeddings(index.get("embed")) if index else None
        prefix = Settings(key_prefix=key_prefix).key_prefix if key_prefix else None
        default_ttl = (ttl or {}).get("default_ttl")
        if default_ttl is not None and not default_ttl > 0:
            raise InvalidInput("ttl default_ttl must be a positive number of minutes", field="ttl")
        self._cfg = ItemConfig(
            prefix=prefix or settings.key_prefix,
            default_ttl_ms=(
                round(default_ttl * 60_000) if default_ttl else settings.ttl_seconds * 1000
            ),
            max_value_bytes=settings.max_message_bytes,
            max_candidates=max_candidates,
            max_namespaces=max_namespaces,
            fields=tuple(index.get("fields") or ["$"]) if index else None,
            dims=index.get("dims") if index else None,
        )
        client = redis_client if redis_client is not None else type(self)._connect(settings)
        self._driver: DriverT = type(self)._driver_class(client, settings=settings)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        return cls(redis_url=url, **options)

    @property
    def config(self) -> ItemConfig:
        return self._cfg

    def _checked(self, vectors: Sequence[Sequence[float]]) -> Sequence[Sequence[float]]:
        dims = self._cfg.dims
        for vec in vectors:
            if dims is not None and len(vec) != dims:
                raise InvalidInput(
                    f"the embedding model returned {len(vec)} dimensions, index dims is {dims}",
                    field="index",
                )
        return vectors


class RedisStore(_StoreCore[redis.Redis, ConversationStore], BaseStore):
    """LangGraph ``BaseStore`` on Redis, synchronous. ``redis_client=`` a ``redis.Redis`` (or
    ``redis_url=``, else the settings' Redis); ``ttl=`` a ``TTLConfig`` (``default_ttl``
    minutes, else ``settings.ttl_seconds``; ``refresh_on_read``); ``index=`` an
    ``IndexConfig`` for semantic search. Constructing one does no I/O."""

    _driver_class = ConversationStore
    _connect = staticmethod(connection.sync_client)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        prepared = plans.prepare(self._cfg, ops)
        vectors: Sequence[Sequence[float]] = []
        queries: dict[str, Sequence[float]] = {}
        if self.embeddings is not None:
            if prepared.texts:
                vectors = self._checked(self.embeddings.embed_documents(list(prepared.texts)))
            queries = {q: self.embeddings.embed_query(q) for q in prepared.queries}
        return self._driver.run(plans.batch(self._cfg, prepared, vectors, queries))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Runs :meth:`batch` in a thread; use :class:`AsyncRedisStore` in asyncio code."""
        return await asyncio.to_thread(self.batch, list(ops))

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRedisStore(_StoreCore[redis.asyncio.Redis, AsyncConversationStore], BaseStore):
    """The asyncio twin of :class:`RedisStore` (``redis.asyncio``, no threads); the same
    arguments, ``redis_client=`` a ``redis.asyncio.Redis``."""

    _driver_class = AsyncConversationStore
    _connect = staticmethod(connection.async_client)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):  # built inside the loop: that is its loop
            self._loop = asyncio.get_running_loop()

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        self._loop = asyncio.get_running_loop()
        prepared = plans.prepare(self._cfg, ops)
        vectors: Sequence[Sequence[float]] = []
        queries: dict[str, Sequence[float]] = {}
        if self.embeddings is not None:
            if prepared.texts:
                docs = await self.embeddings.aembed_documents(list(prepared.texts))
                vectors = self._checked(docs)
            found = await asyncio.gather(*map(self.embeddings.aembed_query, prepared.queries))
            queries = dict(zip(prepared.queries, found, strict=True))
        return await self._driver.run(plans.batch(self._cfg, prepared, vectors, queries))

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """For sync code running beside the event loop that uses this store (a sync tool in
        an async graph runs in a worker thread): runs :meth:`abatch` on that loop."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop or not loop.is_running():
            raise AgentMemoryError(
                "AsyncRedisStore's sync methods work only from another thread while its event "
                "loop runs; use the a* methods (aget, aput, asearch) or RedisStore"
            )
        return asyncio.run_coroutine_threadsafe(self.abatch(list(ops)), loop).result()

    async def aclose(self) -> None:
        await self._driver.aclose()

    async def __aenter__(self) -> AsyncRedisStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
