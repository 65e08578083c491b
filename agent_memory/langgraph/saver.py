"""RedisSaver and AsyncRedisSaver: LangGraph checkpointers on the conversation store.

Thin twins over :class:`agent_memory.plans.checkpoints.CheckpointPlans`: each method builds the
plan and runs it through a ConversationStore (sync) or AsyncConversationStore (asyncio), so
both share every bit of logic and differ only where I/O happens. Constructing one does no I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from agent_memory import connection
from agent_memory.aio import AsyncConversationStore
from agent_memory.core import StoreCore
from agent_memory.errors import InvalidInput
from agent_memory.plans.checkpoints import CheckpointPlans, pages
from agent_memory.settings import Settings
from agent_memory.store import ConversationStore

_ASYNC_ONLY = "AsyncRedisSaver is asyncio-only: use RedisSaver for synchronous graphs"
_SYNC_ONLY = "RedisSaver is synchronous: use AsyncRedisSaver for ainvoke/astream"


def _check_client(client: Any) -> None:
    """Checkpoints are binary: a client that decodes replies to str cannot read them."""
    kwargs: Mapping[str, Any] = {}
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        kwargs = pool.connection_kwargs
    elif hasattr(client, "nodes_manager"):  # RedisCluster
        kwargs = client.nodes_manager.connection_kwargs
    if kwargs.get("decode_responses"):
        raise InvalidInput(
            "redis_client must be created with decode_responses=False (checkpoints are bytes)",
            field="redis_client",
        )


class _SaverBase(BaseCheckpointSaver[str]):
    """What both savers share: construction, the store, the plans, versions."""

    _store: ConversationStore | AsyncConversationStore
    _store_class: type[ConversationStore] | type[AsyncConversationStore]
    _make_client: Callable[[Settings], Any]

    def __init__(
        self,
        redis_client: Any = None,
        *,
        redis_url: str | None = None,
        settings: Settings | None = None,
        key_prefix: str | None = None,
        ttl: int | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        """``redis_client``: a ``redis.Redis`` / ``RedisCluster`` for RedisSaver, their
        ``redis.asyncio`` twins for AsyncRedisSaver; without one, a client of the saver's own
        from ``redis_url`` or ``settings`` (environment by default). No I/O happens here."""
        super().__init__(serde=serde)
        settings = connection.resolve_settings(settings, redis_url)
        if redis_client is None:
            redis_client = type(self)._make_client(settings)
        _check_client(redis_client)
        self._store = self._store_class(
            redis_client, settings=settings, key_prefix=key_prefix, ttl=ttl
        )
        self._plans = CheckpointPlans(StoreCore(self._store.config), self.serde)

    @property
    def store(self) -> ConversationStore | AsyncConversationStore:
        """The conversation store underneath (the thread's messages are its conversation)."""
        return self._store

    def get_next_version(self, current: str | int | float | None, channel: None = None) -> str:
        return CheckpointPlans.next_version(current)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> Any:
        clone = super().with_allowlist(extra_allowlist)
        if isinstance(clone, _SaverBase) and clone is not self:
            clone._plans = CheckpointPlans(self._plans.store, clone.serde)
        return clone

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r})"


class RedisSaver(_SaverBase):
    """LangGraph checkpointer (sync) on plain Redis: a thread is a conversation.

    ``RedisSaver(redis_client)`` uses an injected ``redis.Redis`` (or ``RedisCluster``);
    ``RedisSaver(redis_url=...)``, ``RedisSaver(settings=...)`` or :meth:`from_url` make a
    client of their own (closed by :meth:`close` / ``with``)."""

    _store: ConversationStore
    _store_class = ConversationStore
    _make_client = staticmethod(connection.sync_client)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisSaver:
        return cls(redis_url=url, **options)

    @classmethod
    @contextlib.contextmanager
    def from_conn_string(cls, url: str, **options: Any) -> Iterator[RedisSaver]:
        """``with RedisSaver.from_conn_string(url) as saver:`` (the form other LangGraph
        savers use); the client is closed at the end."""
        with cls.from_url(url, **options) as saver:
            yield saver

    def setup(self) -> None:
        """Nothing to create (no indexes, no modules): kept for code written for savers that
        need it."""

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> RedisSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._store.run(self._plans.get_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        listing = self._plans.listing(config, filter=filter, before=before, limit=limit)
        for plan in pages(listing):
            yield from self._store.run(plan)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._store.run(self._plans.put(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._store.run(self._plans.put_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._store.run(self._plans.delete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._store.run(self._plans.delete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._store.run(self._plans.copy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._store.run(self._plans.prune(thread_ids, strategy))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self._store.run(self._plans.delta_channel_history(config, channels))

    # The async methods of BaseCheckpointSaver: a clear error instead of NotImplementedError.
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        raise InvalidInput(_SYNC_ONLY)

    async def aput(self, *args: Any, **kwargs: Any) -> RunnableConfig:
        raise InvalidInput(_SYNC_ONLY)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        raise InvalidInput(_SYNC_ONLY)


class AsyncRedisSaver(_SaverBase):
    """LangGraph checkpointer (asyncio, redis.asyncio) on plain Redis: the twin of
    :class:`RedisSaver`, for ``ainvoke``/``astream`` and ``create_agent``."""

    _store: AsyncConversationStore
    _store_class = AsyncConversationStore
    _make_client = staticmethod(connection.async_client)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncRedisSaver:
        return cls(redis_url=url, **options)

    @classmethod
    @contextlib.asynccontextmanager
    async def from_conn_string(cls, url: str, **options: Any) -> AsyncIterator[AsyncRedisSaver]:
        """``async with AsyncRedisSaver.from_conn_string(url) as saver:``; closed at the end."""
        async with cls.from_url(url, **options) as saver:
            yield saver

    async def asetup(self) -> None:
        """Nothing to create (no indexes, no modules)."""

    async def aclose(self) -> None:
        await self._store.aclose()

    async def __aenter__(self) -> AsyncRedisSaver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._store.run(self._plans.get_tuple(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        listing = self._plans.listing(config, filter=filter, before=before, limit=limit)
        for plan in pages(listing):
            for item in await self._store.run(plan):
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._store.run(self._plans.put(config, checkpoint, metadata, new_versions))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._store.run(self._plans.put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._store.run(self._plans.delete_thread(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._store.run(self._plans.delete_for_runs(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._store.run(self._plans.copy_thread(source_thread_id, target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._store.run(self._plans.prune(thread_ids, strategy))

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self._store.run(self._plans.delta_channel_history(config, channels))

    # The sync methods of BaseCheckpointSaver: a clear error instead of NotImplementedError.
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        raise InvalidInput(_ASYNC_ONLY)

    def put(self, *args: Any, **kwargs: Any) -> RunnableConfig:
        raise InvalidInput(_ASYNC_ONLY)

    def put_writes(self, *args: Any, **kwargs: Any) -> None:
        raise InvalidInput(_ASYNC_ONLY)

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        raise InvalidInput(_ASYNC_ONLY)

    def list(self, *args: Any, **kwargs: Any) -> Iterator[CheckpointTuple]:
        raise InvalidInput(_ASYNC_ONLY)

    def delete_thread(self, thread_id: str) -> None:
        raise InvalidInput(_ASYNC_ONLY)
