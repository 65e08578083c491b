"""What a shared Redis needs from the store: a full Redis is StoreUnavailable (and said in
/health and doctor), a failed write says its outcome is unknown and how to retry, writes prune
index entries that have certainly expired (listing is not needed for that), and filtering by
user and agent together costs a page, not the user's whole index."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio

from agent_memory import (
    AsyncConversationStore,
    ConversationStore,
    Settings,
    StoreUnavailable,
    doctor,
)
from agent_memory.core import StoreCore
from agent_memory.embedded import RedisProcess
from agent_memory.plan import Batch, Plan
from api.app import create_app


def settings_of(**values: Any) -> Settings:
    return Settings.model_validate({"redis_url": None, "redis_host": None, **values})


def user(content: str, **fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **fields}


# -- 3. a full Redis ------------------------------------------------------------------------


@pytest.fixture
def full_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server with a 4 MiB maxmemory and noeviction (the policy the docs demand)."""
    server = RedisProcess(
        tmp_path / "full", extra_args=["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]
    ).start()
    yield server
    server.stop()


def _fill(store: ConversationStore) -> StoreUnavailable:
    for i in range(1000):
        try:
            store.append(f"fill-{i % 7}", [user("x" * 100_000)])
        except StoreUnavailable as exc:
            return exc
    raise AssertionError("maxmemory was never reached")


async def test_a_full_redis_is_store_unavailable_503_and_a_warning(
    full_server: RedisProcess,
) -> None:
    client = full_server.client(db=2)
    store = ConversationStore(client, settings=settings_of())
    error = _fill(store)
    assert "full" in str(error)
    assert "maxmemory" in str(error)
    assert "retrying with the same message ids / idempotency key is safe" in str(error)
    assert store.get_messages("fill-0", limit=1)  # reads still work

    findings = {f.check: f for f in doctor.diagnose(client, "agent_memory")}
    assert findings["memory"].level in ("warning", "risk")  # used_memory leaves out buffers
    assert "writes will be refused" in findings["memory"].message or "refuses writes" in (
        findings["memory"].message
    )

    config = settings_of(redis_url=f"{full_server.url}/2")
    aclient = redis.asyncio.Redis.from_url(full_server.url, db=2)
    app = create_app(config, AsyncConversationStore(aclient, settings=config))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                answer = await http.post(
                    "/api/v1/conversations/c/messages", json={"messages": [user("y" * 50_000)]}
                )
                assert answer.status_code == 503
                assert answer.headers["Retry-After"]
                health = (await http.get("/health")).json()
                assert health["status"] == "degraded"
                assert any("maxmemory" in w for w in health["warnings"])
    finally:
        await aclient.aclose()

    for i in range(7):  # freeing memory is allowed when full, and writes work again
        store.delete_conversation(f"fill-{i}")
    assert store.append("after", [user("fits again")])[0].added


def test_memory_near_maxmemory_is_a_warning_in_server_info() -> None:
    from agent_memory.serverinfo import ServerInfo

    def risks(used: int, limit: int) -> list[str]:
        info = {"used_memory": used, "maxmemory": limit, "maxmemory_policy": "noeviction"}
        info |= {"aof_enabled": 1}
        return ServerInfo.parse(info, {"appendfsync": "everysec"}, 0, 0).risks()

    assert risks(50, 100) == []
    assert risks(50, 0) == []  # no limit: doctor's business, not a /health warning
    assert any("close to the limit" in r for r in risks(95, 100))
    assert any("Redis is full" in r for r in risks(100, 100))


# -- 10. a failed write says its outcome is unknown -------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_store_unavailable_on_a_write_says_the_outcome_is_unknown_and_retry_is_safe() -> None:
    url = f"redis://127.0.0.1:{_free_port()}/2"
    with ConversationStore.from_settings(
        settings_of(redis_url=url, retries=0, connect_timeout=0.2)
    ) as store:
        with pytest.raises(StoreUnavailable, match="outcome of this write is unknown") as write:
            store.append("c", [user("x", id="m1")])
        assert "same message ids / idempotency key is safe" in str(write.value)
        with pytest.raises(StoreUnavailable) as read:
            store.get_messages("c")
        assert "outcome" not in str(read.value)


# -- 5. writes prune what has certainly expired ---------------------------------------------


def _index_sizes(store: ConversationStore) -> dict[str, int]:
    keys = store.keys
    names = {
        "all": keys.index_all,
        "user": keys.index_user("u"),
        "agent": keys.index_agent("a"),
        "pair": keys.index_pair("u", "a"),
    }
    return {name: int(store.client.zcard(key)) for name, key in names.items()}


def test_a_write_prunes_index_entries_of_expired_conversations(backend: Any) -> None:
    store = ConversationStore(backend.client, settings=settings_of(ttl_seconds=2))
    started = time.monotonic()
    for i in range(320):
        store.create(f"c{i}", user_id="u", agent_id="a")
    created = time.monotonic()
    time.sleep(max(0.0, 1.0 - (created - started)))
    alive = [f"c{i}" for i in range(0, 320, 8)]  # 40 of them written again
    for cid in alive:
        store.append(cid, [user("still here")])
    time.sleep(2.2 - (time.monotonic() - created))  # the other 280 have expired
    assert _index_sizes(store) == dict.fromkeys(("all", "user", "agent", "pair"), 320)
    assert store.count_conversations() == 40  # certainly-expired entries are not counted

    store.append(alive[0], [user("one write")])  # no listing anywhere

    assert _index_sizes(store) == dict.fromkeys(("all", "user", "agent", "pair"), 40)
    page = store.list_conversations(user_id="u", agent_id="a", limit=100)
    assert sorted(c.id for c in page.items) == sorted(alive)


def test_a_short_ttl_writer_does_not_prune_a_longer_ttl_writers_conversation(
    backend: Any,
) -> None:
    long_store = ConversationStore(backend.client, settings=settings_of(ttl_seconds=3600))
    short_store = ConversationStore(backend.client, settings=settings_of(ttl_seconds=1))
    long_store.create("long", user_id="u")
    short_store.create("short", user_id="u")
    time.sleep(1.2)
    short_store.append("new", [user("x")])  # the TTL marker says 3600 s: "long" is kept
    members = {m.decode() for m in backend.client.zrange(short_store.keys.index_all, 0, -1)}
    assert "long" in members
    assert [c.id for c in short_store.list_conversations(user_id="u").items] == ["long"]


def test_an_import_keeps_its_entries_from_being_pruned_by_later_writes(backend: Any) -> None:
    from agent_memory.transfer import import_jsonl

    store = ConversationStore(backend.client, settings=settings_of(ttl_seconds=60))
    now = int(time.time() * 1000)
    head = {
        "type": "conversation",
        "id": "old",
        "meta": {
            "created_at": str(now - 500_000),
            "updated_at": str(now - 500_000),
            "user_id": "u",
            "agent_id": "a",
        },
        "expires_at_ms": now + 600_000,
    }
    lines = [json.dumps(head)]
    import_jsonl(store, lines)
    store.append("fresh", [user("x")])  # the imported entry is 500 s old, its TTL 60 s here
    assert store.client.zscore(store.keys.index_all, "old") is not None
    assert [c.id for c in store.list_conversations(user_id="u", agent_id="a").items] == ["old"]


# -- 7. user_id and agent_id together cost a page -----------------------------------------


def _counted(plan: Plan[Any], calls: list[int]) -> Plan[Any]:
    """``plan``, counting the Redis commands of every batch it sends."""
    batch: Batch = next(plan)
    while True:
        calls.append(len(batch))
        reply = yield batch
        try:
            batch = plan.send(reply)
        except StopIteration as done:
            return done.value


def _commands_to_filter(store: ConversationStore, **filters: Any) -> int:
    calls: list[int] = []
    store.run(_counted(StoreCore(store.config).list_conversations(**filters), calls))
    return sum(calls)


def test_filtering_by_user_and_agent_costs_the_same_whatever_the_user_has(backend: Any) -> None:
    store = ConversationStore(backend.client, settings=settings_of())
    counts: list[int] = []
    for total in (10, 300):
        for i in range(len(counts) * 10, total):
            store.create(f"c{i}", user_id="u", agent_id="a")
        counts.append(_commands_to_filter(store, user_id="u", agent_id="nobody", limit=1))
    assert counts == [1, 1]  # one ZREVRANGE of the (u, nobody) index; was 3 per conversation
    store.create("mine", user_id="u", agent_id="nobody")
    assert _commands_to_filter(store, user_id="u", agent_id="nobody", limit=1) == 3
    assert [c.id for c in store.list_conversations(user_id="u", agent_id="nobody").items] == [
        "mine"
    ]
    if backend.name == "real":  # the server agrees: one command (plus the INFO that asks)
        before = int(backend.client.info("stats")["total_commands_processed"])
        store.list_conversations(user_id="u", agent_id="other", limit=1)
        after = int(backend.client.info("stats")["total_commands_processed"])
        assert after - before == 2


def test_the_pair_index_follows_deletes_and_pages(backend: Any) -> None:
    store = ConversationStore(backend.client, settings=settings_of())
    for i in range(5):
        store.create(f"p{i}", user_id="u", agent_id="a")
    store.create("q", user_id="u", agent_id="b")
    first = store.list_conversations(user_id="u", agent_id="a", limit=3)
    rest = store.list_conversations(user_id="u", agent_id="a", limit=3, cursor=first.next_cursor)
    assert [c.id for c in first.items + rest.items] == [f"p{i}" for i in range(4, -1, -1)]
    assert store.delete_conversation("p4")
    assert backend.client.zscore(store.keys.index_pair("u", "a"), "p4") is None
    assert store.delete_user("u") == 5
    assert backend.client.zcard(store.keys.index_pair("u", "a")) == 0
    assert store.list_conversations(user_id="u", agent_id="b").items == []
