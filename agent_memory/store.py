"""ConversationStore: the synchronous store. I/O only; every operation is a plan of the core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import NoScriptError, RedisError

from agent_memory import connection
from agent_memory._base import StoreBase
from agent_memory.codec import StoredMessage
from agent_memory.core import _UNSET, Batch, ConversationPage, InputMessage, Plan
from agent_memory.models import Conversation
from agent_memory.settings import Settings

T = TypeVar("T")


class ConversationStore(StoreBase[Redis]):
    """Conversations in Redis, synchronously. Construct with a ``redis.Redis`` client (no I/O
    happens here) or with :meth:`from_settings` / :meth:`from_url`."""

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> ConversationStore:
        settings = settings if settings is not None else Settings()
        return cls(connection.sync_client(settings), settings=settings, **kwargs)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ConversationStore:
        return cls.from_settings(Settings(redis_url=url), **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the driver ------------------------------------------------------------------------
    def _send(self, batch: Batch, with_source: bool) -> list[Any]:
        if len(batch) == 1:
            return [self._client.execute_command(*batch[0].command(with_source))]  # type: ignore[no-untyped-call]
        pipe = self._client.pipeline(transaction=False)
        for call in batch:
            pipe.execute_command(*call.command(with_source))  # type: ignore[no-untyped-call]
        replies: list[Any] = pipe.execute()
        return replies

    def _execute(self, batch: Batch) -> list[Any]:
        try:
            try:
                return self._send(batch, with_source=False)
            except NoScriptError:  # first use on this server: EVAL caches the script
                return self._send(batch, with_source=True)
        except RedisError as exc:
            raise connection.translate(exc) from exc

    def _run(self, plan: Plan[T]) -> T:
        try:
            batch = next(plan)
            while True:
                batch = plan.send(self._execute(batch))
        except StopIteration as done:
            result: T = done.value
            return result

    # -- operations ------------------------------------------------------------------------
    def ping(self) -> bool:
        return self._run(self._core.ping())

    def append(
        self,
        conversation_id: str,
        messages: Sequence[InputMessage],
        *,
        idempotency_key: str | None = None,
    ) -> list[StoredMessage]:
        """Append messages atomically in one round trip; ids already stored are not re-added
        (their stored message is returned with ``added=False``)."""
        return self._run(
            self._core.append(conversation_id, messages, idempotency_key=idempotency_key)
        )

    def get_messages(
        self,
        conversation_id: str,
        *,
        limit: int | None = None,
        before: str | None = None,
        after: str | None = None,
        require_exists: bool = False,
    ) -> list[StoredMessage]:
        """Messages oldest first: all, the last ``limit``, or a page before/after a cursor."""
        return self._run(
            self._core.get_messages(
                conversation_id,
                limit=limit,
                before=before,
                after=after,
                require_exists=require_exists,
            )
        )

    def create(
        self,
        conversation_id: str | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Conversation:
        return self._run(
            self._core.create(
                conversation_id, user_id=user_id, agent_id=agent_id, title=title, metadata=metadata
            )
        )

    def get_conversation(self, conversation_id: str) -> Conversation:
        return self._run(self._core.get_conversation(conversation_id))

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = _UNSET,
        metadata: Mapping[str, Any] | None = _UNSET,
        expected_version: int | None = None,
    ) -> Conversation:
        return self._run(
            self._core.update_conversation(
                conversation_id, title=title, metadata=metadata, expected_version=expected_version
            )
        )

    def delete_conversation(self, conversation_id: str) -> bool:
        return self._run(self._core.delete_conversation(conversation_id))

    def list_conversations(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> ConversationPage:
        return self._run(
            self._core.list_conversations(
                user_id=user_id, agent_id=agent_id, limit=limit, cursor=cursor
            )
        )

    def delete_user(self, user_id: str) -> int:
        return self._run(self._core.delete_user(user_id))

    def clear_all(self) -> int:
        return self._run(self._core.clear_all())
