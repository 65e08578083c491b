"""AsyncConversationStore: the asyncio twin of ConversationStore (redis.asyncio, no threads).

I/O only; every operation is a plan of the core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from agent_memory import connection
from agent_memory._base import StoreBase
from agent_memory.codec import StoredMessage
from agent_memory.core import _UNSET, Batch, ConversationPage, InputMessage, Plan
from agent_memory.models import Conversation
from agent_memory.settings import Settings

T = TypeVar("T")


class AsyncConversationStore(StoreBase[Redis]):
    """Conversations in Redis, with asyncio. Construct with a ``redis.asyncio.Redis`` client (no I/O
    happens here) or with :meth:`from_settings` / :meth:`from_url`."""

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, **kwargs: Any
    ) -> AsyncConversationStore:
        settings = settings if settings is not None else Settings()
        return cls(connection.async_client(settings), settings=settings, **kwargs)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> AsyncConversationStore:
        return cls.from_settings(Settings(redis_url=url), **kwargs)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncConversationStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the driver ------------------------------------------------------------------------
    async def _send(self, batch: Batch, with_source: bool) -> list[Any]:
        if len(batch) == 1:
            return [await self._client.execute_command(*batch[0].command(with_source))]  # type: ignore[no-untyped-call]
        pipe = self._client.pipeline(transaction=False)
        for call in batch:
            pipe.execute_command(*call.command(with_source))
        replies: list[Any] = await pipe.execute()
        return replies

    async def _execute(self, batch: Batch) -> list[Any]:
        try:
            try:
                return await self._send(batch, with_source=False)
            except NoScriptError:  # first use on this server: EVAL caches the script
                return await self._send(batch, with_source=True)
        except RedisError as exc:
            raise connection.translate(exc) from exc

    async def _run(self, plan: Plan[T]) -> T:
        try:
            batch = next(plan)
            while True:
                batch = plan.send(await self._execute(batch))
        except StopIteration as done:
            result: T = done.value
            return result

    # -- operations ------------------------------------------------------------------------
    async def ping(self) -> bool:
        return await self._run(self._core.ping())

    async def append(
        self,
        conversation_id: str,
        messages: Sequence[InputMessage],
        *,
        idempotency_key: str | None = None,
    ) -> list[StoredMessage]:
        """Append messages atomically in one round trip; ids already stored are not re-added
        (their stored message is returned with ``added=False``)."""
        return await self._run(
            self._core.append(conversation_id, messages, idempotency_key=idempotency_key)
        )

    async def get_messages(
        self,
        conversation_id: str,
        *,
        limit: int | None = None,
        before: str | None = None,
        after: str | None = None,
        require_exists: bool = False,
    ) -> list[StoredMessage]:
        """Messages oldest first: all, the last ``limit``, or a page before/after a cursor."""
        return await self._run(
            self._core.get_messages(
                conversation_id,
                limit=limit,
                before=before,
                after=after,
                require_exists=require_exists,
            )
        )

    async def create(
        self,
        conversation_id: str | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Conversation:
        return await self._run(
            self._core.create(
                conversation_id, user_id=user_id, agent_id=agent_id, title=title, metadata=metadata
            )
        )

    async def get_conversation(self, conversation_id: str) -> Conversation:
        return await self._run(self._core.get_conversation(conversation_id))

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = _UNSET,
        metadata: Mapping[str, Any] | None = _UNSET,
        expected_version: int | None = None,
    ) -> Conversation:
        return await self._run(
            self._core.update_conversation(
                conversation_id, title=title, metadata=metadata, expected_version=expected_version
            )
        )

    async def delete_conversation(self, conversation_id: str) -> bool:
        return await self._run(self._core.delete_conversation(conversation_id))

    async def list_conversations(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> ConversationPage:
        return await self._run(
            self._core.list_conversations(
                user_id=user_id, agent_id=agent_id, limit=limit, cursor=cursor
            )
        )

    async def delete_user(self, user_id: str) -> int:
        return await self._run(self._core.delete_user(user_id))

    async def clear_all(self) -> int:
        return await self._run(self._core.clear_all())
