"""Histories built from connection settings share one client (pool) per process and settings;
async ones one asyncio client per running event loop."""

from __future__ import annotations

import asyncio

import pytest
import redis
from langchain_core.messages import AIMessage, HumanMessage

from agent_memory import RedisChatMessageHistory, connection
from agent_memory.embedded import RedisProcess
from tests.support.settings import make_settings

pytestmark = pytest.mark.redis_server


def _url(server: RedisProcess, db: int = 2) -> str:
    return f"redis://127.0.0.1:{server.port}/{db}"


def _connections_made(client: redis.Redis) -> int:
    pool = client.connection_pool
    return len(pool._available_connections) + len(pool._in_use_connections)


def test_histories_with_the_same_url_share_one_client_and_connection(
    redis_server: RedisProcess,
) -> None:
    settings = make_settings()
    url = _url(redis_server)
    first = RedisChatMessageHistory("shared-a", redis_url=url, settings=settings)
    # another prefix and TTL: store options, not connection settings
    second = RedisChatMessageHistory(
        "shared-a", url=url, settings=settings, key_prefix="other", ttl=60
    )
    assert first.redis_client is second.redis_client
    first.clear()
    first.add_messages([HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")])
    assert [m.content for m in RedisChatMessageHistory("shared-a", url=url).messages] == [
        "hi",
        "hello",
    ]
    assert second.messages == []  # its own prefix
    assert _connections_made(first.redis_client) == 1
    first.clear()


def test_other_database_url_or_credentials_get_other_clients(redis_server: RedisProcess) -> None:
    settings = make_settings()
    base = RedisChatMessageHistory("s", redis_url=_url(redis_server), settings=settings)
    other_db = RedisChatMessageHistory("s", redis_url=_url(redis_server, 3), settings=settings)
    other_host = RedisChatMessageHistory(
        "s", redis_url=f"redis://localhost:{redis_server.port}/2", settings=settings
    )
    other_timeout = RedisChatMessageHistory(
        "s", redis_url=_url(redis_server), settings=make_settings(socket_timeout=2.5)
    )
    clients = [h.redis_client for h in (base, other_db, other_host, other_timeout)]
    assert len({id(c) for c in clients}) == 4
    assert other_db.redis_client.connection_pool.connection_kwargs["db"] == 3


def test_an_injected_client_is_used_as_given(redis_server: RedisProcess) -> None:
    client = redis_server.client(db=2)
    h = RedisChatMessageHistory("s", redis_client=client, settings=make_settings())
    assert h.redis_client is client
    assert connection.shared_sync_client(make_settings(redis_url=_url(redis_server))) is not client
    client.close()


def test_async_histories_share_a_client_per_event_loop_never_across_loops(
    redis_server: RedisProcess,
) -> None:
    url = _url(redis_server)
    settings = make_settings()
    history = RedisChatMessageHistory("shared-async", redis_url=url, settings=settings)
    history.clear()
    seen: list[redis.asyncio.Redis] = []

    async def in_one_loop(text: str) -> list[str]:
        other = RedisChatMessageHistory("shared-async", redis_url=url, settings=settings)
        await history.aadd_messages([HumanMessage(text)])
        contents = [str(m.content) for m in await other.aget_messages()]
        client = connection.shared_async_client(make_settings(redis_url=url))
        assert client is connection.shared_async_client(make_settings(redis_url=url))
        seen.append(client)
        await client.aclose()  # the test's loops end here; nothing left open
        return contents

    assert asyncio.run(in_one_loop("one")) == ["one"]
    assert asyncio.run(in_one_loop("two")) == ["one", "two"]
    assert seen[0] is not seen[1]
    history.clear()


def test_shared_async_client_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        connection.shared_async_client(make_settings(redis_url="redis://127.0.0.1:1/2"))
