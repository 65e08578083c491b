"""Shared fixtures: one behaviour suite, two backends.

``backend`` is parametrised over ``fake`` (fakeredis with its Lua extra, speaking RESP3 as
redis-py 8 does by default with a real server) and ``real`` (a redis-server the tests start
themselves: own free port, own temp dir, AOF on). A missing server binary makes the ``real``
tests fail, never skip. Each test gets an empty database 2 on the shared real server
(FLUSHDB there is the test's own business; the store itself never flushes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from agent_memory import AsyncConversationStore, ConversationStore, Settings
from agent_memory.embedded import RedisProcess

DB = 2

# The sync/async adapter of the behaviour suite (fixtures `make_driver` and `drv`).
pytest_plugins = ["drivers"]


def make_settings(**values: Any) -> Settings:
    """Settings that ignore the developer's environment: only what the test says."""
    base: dict[str, Any] = {"redis_url": None, "redis_host": None, "ttl_seconds": 2_592_000}
    return Settings.model_validate({**base, **values})


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One real redis-server for the whole session (AOF on, everysec)."""
    server = RedisProcess(tmp_path_factory.mktemp("redis-shared")).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A real redis-server of this test's own, for tests that kill or restart it."""
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def durable_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A real redis-server of this test's own with ``appendfsync always``: every write it
    acknowledged is on disk, so a ``kill -9`` may lose nothing."""
    server = RedisProcess(tmp_path / "durable-redis", appendfsync="always").start()
    yield server
    server.stop()


def snapshot(
    client: redis.Redis, prefix: str = "agent_memory", *, tokens: bool = True
) -> dict[bytes, Any]:
    """Every key under the prefix: its type, exact content and absolute expiry (PEXPIRETIME).
    ``tokens=False`` leaves out the append-token lists (transient retry state)."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = client.type(key)
        if kind == b"stream":
            value: Any = client.xrange(key)
        elif kind == b"hash":
            value = client.hgetall(key)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif tokens:
            value = client.lrange(key, 0, -1)
        else:
            continue
        out[key] = (kind, value, client.pexpiretime(key))
    return out


@dataclass
class Backend:
    """A Redis to test against: a sync client, and a factory for asyncio clients."""

    name: str
    client: redis.Redis
    _fake_server: fakeredis.FakeServer | None = None
    _url: str | None = None

    def async_client(self) -> redis.asyncio.Redis:
        if self._fake_server is not None:
            return fakeredis.FakeAsyncRedis(server=self._fake_server, protocol=3)
        assert self._url is not None
        return redis.asyncio.Redis.from_url(self._url, db=DB)


@pytest.fixture(params=["fake", "real"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "fake":
        server = fakeredis.FakeServer()
        client = fakeredis.FakeRedis(server=server, protocol=3)
        yield Backend("fake", client, _fake_server=server)
        client.close()
        return
    real: RedisProcess = request.getfixturevalue("redis_server")
    client = real.client(db=DB)
    client.flushdb()
    yield Backend("real", client, _url=real.url)
    client.close()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def store(backend: Backend, settings: Settings) -> ConversationStore:
    return ConversationStore(backend.client, settings=settings)


@pytest.fixture
async def astore(backend: Backend, settings: Settings) -> AsyncIterator[AsyncConversationStore]:
    client = backend.async_client()
    yield AsyncConversationStore(client, settings=settings)
    await client.aclose()
