"""RedisSession: an OpenAI Agents SDK session (``agents.memory.SessionABC``) on the store.

Pass it to ``Runner.run(agent, input, session=RedisSession("user-123"))``. One session id is
one conversation, in the same data model as every other way in (stream + hash, DB 2, prefix,
sliding TTL, size limits), so REST and the LangChain history read it too; how items map to
messages is in :mod:`agent_memory.plans.sessions`. The session's methods run those plans on
an :class:`~agent_memory.AsyncConversationStore`; constructing one does no I/O.

``add_items`` is one atomic round trip, safe to retry. Responses items need not carry ids (and
the SDK gives many the same placeholder id), so a *call* is what is recognised: each call sends
a token, and the conversation remembers each call's token for the idempotency TTL
(AGENT_MEMORY_IDEMPOTENCY_TTL_SECONDS, 24 h) with the entries it added; a call whose token it
knows adds nothing again (the same key with other items raises
:class:`~agent_memory.IdempotencyKeyReused`). The token is

* the ``idempotency_key`` given to ``add_items``, when one is: a retry with the same key, from
  this process or another, never duplicates;
* else a random one, which redis-py's own retry of a lost reply re-sends; and when the call
  fails with :class:`~agent_memory.StoreUnavailable` (outcome unknown), this session object
  keeps it for those items, so calling ``add_items`` again with the same items reuses it.
"""

from __future__ import annotations

import secrets
from typing import Any, cast

import redis.asyncio

try:
    from agents.items import TResponseInputItem
    from agents.memory import SessionABC
    from agents.memory.session_settings import (
        SessionSettings,
        coerce_session_settings,
        resolve_session_limit,
    )
except ImportError as exc:  # pragma: no cover - the extra is part of dev
    raise ImportError(
        "agent_memory.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'agent-memory[openai-agents]'"
    ) from exc

from agent_memory import connection
from agent_memory.aio import AsyncConversationStore
from agent_memory.errors import StoreUnavailable
from agent_memory.keys import validate_id
from agent_memory.plan import Plan, T
from agent_memory.plans import sessions as plans
from agent_memory.settings import Settings

__all__ = ["RedisSession"]

_UNSETTLED_KEPT = 16  # tokens of calls of unknown outcome this session object keeps


class RedisSession(SessionABC):
    """An Agents SDK session stored in Redis as one conversation (stream + hash, sliding TTL).

    ``redis_client`` (a ``redis.asyncio.Redis``) is used as given; without it the session uses
    the process's shared asyncio client for ``redis_url`` / ``settings`` / the environment
    (one per event loop, see :func:`agent_memory.connection.shared_async_client`).
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        *,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        settings: Settings | None = None,
        key_prefix: str | None = None,
        ttl: int | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.session_id = validate_id(session_id, "session_id")
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        settings = connection.resolve_settings(settings, redis_url)
        self._settings = settings
        self._options: dict[str, Any] = {"settings": settings, "key_prefix": key_prefix, "ttl": ttl}
        self._store: AsyncConversationStore | None = None
        if redis_client is not None:
            self._store = AsyncConversationStore(redis_client, **self._options)
        self._client_given = redis_client is not None
        self._plans: plans.SessionPlans | None = None
        self._unsettled: dict[str, str] = {}  # items digest -> token of a call of unknown outcome

    @classmethod
    def from_url(cls, session_id: str, url: str, **options: Any) -> RedisSession:
        """A session on the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``)."""
        return cls(session_id, redis_url=url, **options)

    @property
    def store(self) -> AsyncConversationStore:
        """The store the session runs on (call from a coroutine without an injected client)."""
        if not self._client_given:
            client = connection.shared_async_client(self._settings)
            if self._store is None or self._store.client is not client:
                self._store = AsyncConversationStore(client, **self._options)
        assert self._store is not None
        return self._store

    async def _run(self, plan: Plan[T]) -> T:
        return await self.store.run(plan)

    def _session_plans(self) -> plans.SessionPlans:
        if self._plans is None:
            self._plans = plans.SessionPlans(self.store.config)
        return self._plans

    # -- SessionABC -----------------------------------------------------------------------
    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The items, oldest first; the last ``limit`` (else ``session_settings.limit``) only
        are read when a limit is set."""
        limit = resolve_session_limit(limit, self.session_settings)
        items = await self._run(self._session_plans().get_items(self.session_id, limit))
        return cast(list[TResponseInputItem], items)

    async def add_items(
        self, items: list[TResponseInputItem], *, idempotency_key: str | None = None
    ) -> None:
        """Append ``items`` exactly as given, atomically, in one round trip; safe to retry
        (see the module's docstring for how a retry is recognised)."""
        if not items:
            return
        given = cast(list[dict[str, Any]], items)
        digest = plans.items_digest(given) if self._unsettled and not idempotency_key else None
        token = idempotency_key or self._unsettled.get(digest or "") or secrets.token_hex(12)
        plan = self._session_plans().add_items(self.session_id, given, token)
        try:
            await self._run(plan)
        except StoreUnavailable:
            if not idempotency_key:
                if len(self._unsettled) >= _UNSETTLED_KEPT:
                    self._unsettled.clear()
                self._unsettled[digest or plans.items_digest(given)] = token
            raise
        if digest is not None:
            self._unsettled.pop(digest, None)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (None when the session is empty); concurrent
        callers never get the same item."""
        item = await self._run(self._session_plans().pop_item(self.session_id))
        return cast(TResponseInputItem | None, item)

    async def clear_session(self) -> None:
        """Delete the session's conversation: its items, metadata and index entries."""
        await self._run(self._session_plans().clear_session(self.session_id))

    def __repr__(self) -> str:
        return f"RedisSession(session_id={self.session_id!r})"
