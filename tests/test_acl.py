"""The least-privilege ACL user of docs/scaling.md: enough for every store operation, nothing
more. The ``ACL SETUSER`` line is read from the docs, so the docs and this test cannot drift."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agent_memory import AsyncConversationStore, ConversationStore, Settings
from agent_memory.embedded import RedisProcess
from tests.support.servers import node
from tests.support.settings import make_settings

pytestmark = pytest.mark.redis_server
DOCS = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"
PASSWORD = "s3cret-for-tests"


def documented_setuser() -> list[str]:
    lines = [ln for ln in DOCS.read_text().splitlines() if ln.startswith("ACL SETUSER ")]
    assert len(lines) == 1, "docs/scaling.md must show exactly one ACL SETUSER line"
    return shlex.split(lines[0].replace(">CHANGE-ME", f">{PASSWORD}"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    proc = node(tmp_path_factory.mktemp("acl"))
    with proc.client() as admin:
        assert admin.execute_command(*documented_setuser()) == b"OK"
    yield proc
    proc.kill()


@pytest.fixture
def limited(server: RedisProcess) -> Iterator[redis.Redis]:
    with server.client(username="agent_memory", password=PASSWORD, db=2) as client:
        yield client


def _settings(server: RedisProcess) -> Settings:
    return make_settings(
        redis_url=f"redis://127.0.0.1:{server.port}/2",
        redis_username="agent_memory",
        redis_password=PASSWORD,
    )


def test_the_documented_user_can_run_every_store_operation(server: RedisProcess) -> None:
    with ConversationStore.from_settings(_settings(server)) as store:
        assert store.ping()
        store.create("c1", user_id="ada", agent_id="bot", title="t")
        store.append("c1", [{"role": "user", "content": "hi", "id": "m1"}], idempotency_key="k")
        store.append("c1", [{"role": "user", "content": "hi", "id": "m1"}], idempotency_key="k")
        assert [m.record["content"] for m in store.get_messages("c1", limit=5)] == ["hi"]
        assert store.get_conversation("c1").message_count == 1
        assert store.update_conversation("c1", title="u", expected_version=1).title == "u"
        assert [c.id for c in store.list_conversations(user_id="ada").items] == ["c1"]
        info = store.server_info()
        assert info.conversations == 1
        assert info.version is not None
        assert info.appendfsync is None  # CONFIG is refused: reported as unknown
        store.create("c2", user_id="ada")
        assert store.delete_conversation("c2")
        assert store.delete_user("ada") == 1
        store.append("c3", [{"role": "user", "content": "x"}])
        assert store.clear_all() == 5  # stream, meta, tokens, global index, TTL marker


async def test_the_documented_user_works_with_the_async_store(server: RedisProcess) -> None:
    settings = _settings(server)
    async with AsyncConversationStore.from_settings(settings) as store:
        await store.append("a1", [{"role": "user", "content": "x"}])
        assert len(await store.get_messages("a1")) == 1
        assert await store.delete_conversation("a1")


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("KEYS", "agent_memory:*"),
        ("CONFIG", "GET", "appendfsync"),
        ("CONFIG", "SET", "appendonly", "no"),
        ("SHUTDOWN", "NOSAVE"),
        ("EVAL", "return redis.call('FLUSHALL')", "0"),  # scripts run with the caller's ACL
        ("GET", "other_service:key"),  # outside the prefix
        ("EVAL", "return redis.call('GET', KEYS[1])", "1", "other_service:key"),
    ],
)
def test_the_documented_user_cannot_run_admin_commands_or_leave_its_prefix(
    limited: redis.Redis, command: tuple[str, ...]
) -> None:
    with pytest.raises(
        redis.exceptions.ResponseError,
        match=re.compile("NOPERM|permission|can.t run this command", re.I),
    ):
        limited.execute_command(*command)
