"""Run one behaviour suite on both stores: a small adapter that makes every store call awaitable.

``await drv.append(...)`` calls ``ConversationStore.append`` directly (sync) or awaits
``AsyncConversationStore.append`` (async), so each assertion is written once.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from agent_memory import AsyncConversationStore, ConversationStore
from tests.support.backends import Backend
from tests.support.settings import make_settings


class Driver:
    """A sync or async store behind one awaitable interface; ``raw`` is a sync client on the
    same database, for looking at keys directly."""

    def __init__(
        self, store: ConversationStore | AsyncConversationStore, raw: redis.Redis, mode: str
    ) -> None:
        self.store = store
        self.raw = raw
        self.mode = mode

    @property
    def keys(self) -> Any:
        return self.store.keys

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return call


@pytest.fixture(params=["sync", "async"])
async def make_driver(
    request: pytest.FixtureRequest, backend: Backend
) -> AsyncIterator[Callable[..., Driver]]:
    """Makes drivers on ``backend``: ``make_driver(ttl_seconds=5, ...)`` takes Settings values."""
    opened: list[redis.asyncio.Redis] = []

    def make(**settings_values: Any) -> Driver:
        settings = make_settings(**settings_values)
        store: ConversationStore | AsyncConversationStore
        if request.param == "sync":
            store = ConversationStore(backend.client, settings=settings)
            return Driver(store, backend.client, "sync")
        client = backend.async_client()
        opened.append(client)
        store = AsyncConversationStore(client, settings=settings)
        return Driver(store, backend.client, "async")

    yield make
    for client in opened:
        await client.aclose()


@pytest.fixture
def drv(make_driver: Callable[..., Driver]) -> Driver:
    """A driver with the default settings (30-day TTL, prefix ``agent_memory``)."""
    return make_driver()
