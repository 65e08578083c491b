"""The store on a real 3-primary Redis Cluster (REDIS_CLUSTER=true).

Each conversation's keys share one hash slot, the indexes live in other slots, so the store's
scripts touch one slot and the index updates go as separate commands. These tests prove the
behaviour suite's essentials there, sync and async, and that conversations really spread over
all three primaries.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from agent_memory import (
    AgentMemoryError,
    AsyncConversationStore,
    ConversationNotFound,
    ConversationStore,
    StoreUnavailable,
    scripts,
)
from agent_memory.core import StoreConfig, StoreCore
from agent_memory.embedded import RedisProcess, free_port
from agent_memory.plan import Batch, Plan
from tests.support.servers import redis_cluster
from tests.support.settings import make_settings

pytestmark = pytest.mark.redis_server
PREFIX = "agent_memory"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisProcess]]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


@pytest.fixture
def store(cluster: list[RedisProcess]) -> Iterator[ConversationStore]:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{cluster[0].port}", redis_cluster=True)
    with ConversationStore.from_settings(settings) as s:
        s.clear_all()
        yield s


def _node_keys(cluster: list[RedisProcess]) -> list[list[bytes]]:
    out = []
    for n in cluster:
        with n.client() as c:
            out.append(sorted(c.scan_iter(match=f"{PREFIX}:*", count=1000)))
    return out


def test_settings_give_a_cluster_client_and_cluster_mode(store: ConversationStore) -> None:
    client: object = store.client
    assert isinstance(client, redis.cluster.RedisCluster)
    assert store.config.cluster


def test_conversations_spread_over_all_primaries_one_slot_each(
    store: ConversationStore, cluster: list[RedisProcess]
) -> None:
    for i in range(24):
        store.append(f"conv-{i}", [{"role": "user", "content": f"hello {i}"}])
    per_node = _node_keys(cluster)
    streams_per_node = [sum(k.endswith(b":s") for k in keys) for keys in per_node]
    assert all(n > 0 for n in streams_per_node), streams_per_node
    assert sum(streams_per_node) == 24
    with cluster[0].client() as c:
        keys = store.keys.conversation("conv-7").all
        slots = {c.execute_command("CLUSTER", "KEYSLOT", k) for k in keys}
        assert len(slots) == 1
        assert c.execute_command("CLUSTER", "KEYSLOT", store.keys.index_all) not in slots


def test_every_operation_on_the_cluster(store: ConversationStore) -> None:
    for i in range(6):
        store.create(f"c{i}", user_id="ada" if i < 4 else "bob", agent_id=f"agent-{i % 2}")
    time.sleep(0.002)  # activity scores are milliseconds: make the next write strictly later
    stored = store.append("c1", [{"role": "user", "content": "hi", "id": "m1"}])
    assert [m.added for m in stored] == [True]
    assert [m.record["content"] for m in store.get_messages("c1")] == ["hi"]

    first = store.list_conversations(limit=4)
    assert first.items[0].id == "c1"  # newest activity first, across slots
    second = store.list_conversations(limit=4, cursor=first.next_cursor)
    assert second.next_cursor is None
    assert {c.id for c in first.items + second.items} == {f"c{i}" for i in range(6)}
    assert store.list_conversations(user_id="ada").items[0].id == "c1"
    assert {c.id for c in store.list_conversations(agent_id="agent-0").items} == {"c0", "c2", "c4"}

    time.sleep(0.002)
    updated = store.update_conversation("c3", title="renamed", expected_version=1)
    assert (updated.title, updated.version) == ("renamed", 2)
    assert store.list_conversations(user_id="ada").items[0].id == "c3"  # update is activity

    assert store.delete_conversation("c1")
    assert not store.delete_conversation("c1")
    with pytest.raises(ConversationNotFound):
        store.get_conversation("c1")
    assert "c1" not in {c.id for c in store.list_conversations(user_id="ada").items}

    assert store.delete_user("ada") == 3
    assert store.list_conversations(user_id="ada").items == []
    assert {c.id for c in store.list_conversations().items} == {"c4", "c5"}
    assert store.count_conversations() == 2


def test_index_entries_and_keys_all_carry_a_ttl(
    store: ConversationStore, cluster: list[RedisProcess]
) -> None:
    for i in range(6):
        store.create(f"t{i}", user_id=f"u{i}", agent_id="a")
        store.append(f"t{i}", [{"role": "user", "content": "x"}])
    for n in cluster:
        with n.client() as c:
            for key in c.scan_iter(match=f"{PREFIX}:*"):
                assert c.pttl(key) > 0, key


def test_idempotent_append_on_the_cluster(store: ConversationStore) -> None:
    msgs = [{"role": "user", "content": "once", "id": "m-1"}, {"role": "assistant", "content": "a"}]
    first = store.append("idem", msgs, idempotency_key="call-1")
    again = store.append("idem", msgs, idempotency_key="call-1")  # a retried call replays
    assert [m.cursor for m in again] == [m.cursor for m in first]
    resent = store.append("idem", [msgs[0]])  # a re-sent message id stores nothing new
    assert resent[0].added is False
    assert resent[0].cursor == first[0].cursor
    assert len(store.get_messages("idem")) == 2
    assert store.get_conversation("idem").message_count == 2
    assert store.list_conversations().items[0].id == "idem"


def test_listing_skips_and_prunes_expired_conversations(
    store: ConversationStore, cluster: list[RedisProcess]
) -> None:
    for cid in ("live", "gone"):
        store.create(cid, user_id="u")
    rc: redis.cluster.RedisCluster = store.client  # type: ignore[assignment]
    rc.delete(*store.keys.conversation("gone").all)  # what expiry does
    assert [c.id for c in store.list_conversations(user_id="u").items] == ["live"]
    assert rc.zscore(store.keys.index_user("u"), "gone") is None
    assert rc.zscore(store.keys.index_all, "gone") is not None  # pruned where it was listed
    assert [c.id for c in store.list_conversations().items] == ["live"]
    assert rc.zscore(store.keys.index_all, "gone") is None


def test_clear_all_and_stats_cover_every_primary(
    store: ConversationStore, cluster: list[RedisProcess]
) -> None:
    for i in range(12):
        store.append(f"s{i}", [{"role": "user", "content": "x"}])
    rc: redis.cluster.RedisCluster = store.client  # type: ignore[assignment]
    rc.set("other_service:key", "kept")  # another prefix: never touched
    per_node = [len(keys) for keys in _node_keys(cluster)]
    info = store.server_info()
    assert info.conversations == 12
    assert info.keys == sum(per_node) + 1
    assert info.aof_enabled is False
    assert info.version
    assert store.clear_all() == sum(per_node)
    assert _node_keys(cluster) == [[], [], []]
    assert rc.get("other_service:key") == b"kept"
    rc.delete("other_service:key")


async def test_async_store_on_the_cluster(cluster: list[RedisProcess]) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{cluster[2].port}", redis_cluster=True)
    async with AsyncConversationStore.from_settings(settings) as store:
        client: object = store.client
        assert isinstance(client, redis.asyncio.cluster.RedisCluster)
        await store.clear_all()
        for i in range(9):
            await store.create(f"a{i}", user_id="ada")
            await store.append(f"a{i}", [{"role": "user", "content": str(i), "id": "m"}])
        page = await store.list_conversations(user_id="ada", limit=5)
        assert [c.id for c in page.items] == [f"a{i}" for i in range(8, 3, -1)]
        again = await store.append("a3", [{"role": "user", "content": "3", "id": "m"}])
        assert again[0].added is False
        assert [m.record["content"] for m in await store.get_messages("a3")] == ["3"]
        assert (await store.update_conversation("a0", title="t")).title == "t"
        assert await store.delete_conversation("a8")
        assert await store.delete_user("ada") == 8
        assert (await store.list_conversations()).items == []
        await store.append("left", [{"role": "user", "content": "x"}])
        assert await store.clear_all() == 5  # stream, meta, tokens, the global index, TTL marker


def test_an_unreachable_cluster_is_store_unavailable() -> None:
    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}", redis_cluster=True, connect_timeout=0.2
    )
    with pytest.raises(StoreUnavailable):
        ConversationStore.from_settings(settings)


def test_a_database_number_is_refused_in_cluster_mode() -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:7000/2", redis_cluster=True)
    with pytest.raises(AgentMemoryError, match="only database 0"):
        AsyncConversationStore.from_settings(settings)
    host_settings = make_settings(redis_host="127.0.0.1", redis_cluster=True)
    assert host_settings.url == "redis://127.0.0.1:6379"  # REDIS_DB_AI_AGENTS is ignored


def _batches(plan: Plan[Any], replies: list[list[Any]]) -> list[Batch]:
    """Drive a plan with canned replies; the batches it sent (one round trip each)."""
    sent = [next(plan)]
    with contextlib.suppress(StopIteration):
        for reply in replies:
            sent.append(plan.send(reply))
    return sent


@pytest.mark.parametrize("cluster", [False, True])
def test_round_trips_of_an_append(cluster: bool) -> None:
    core = StoreCore(StoreConfig.from_settings(make_settings(), cluster=cluster))
    msg = [{"role": "user", "content": "x"}]
    if not cluster:  # one script, the indexes updated inside it
        batches = _batches(core.append("c", msg), [[[b"1-0", b""]]])
        assert [[c.args[0] for c in b] for b in batches] == [["EVALSHA"]]
        assert batches[0][0].args[2] == 6  # the conversation's keys, global index, TTL marker
        return
    script_reply = [b"1-0", b"", 1700000000000, b"agent_memory:x:u:ada", b"", b""]
    touched = [1, 1, 0, 1, 1, 0, 1, 1, 0, b"2592000000"]
    batches = _batches(core.append("c", msg), [[script_reply], touched, [0, 0]])
    assert batches[0][0].args[2] == 4  # one hash slot: the conversation's keys only
    ttl = 2_592_000_000
    assert [c.args for c in batches[1]] == [
        ("ZADD", "agent_memory:x:ttl", "GT", ttl, "ttl"),
        ("PEXPIRE", "agent_memory:x:ttl", ttl, "NX"),
        ("PEXPIRE", "agent_memory:x:ttl", ttl, "GT"),
        ("ZADD", "agent_memory:x:all", 1700000000000, "c"),
        ("PEXPIRE", "agent_memory:x:all", ttl, "NX"),
        ("PEXPIRE", "agent_memory:x:all", ttl, "GT"),
        ("ZADD", "agent_memory:x:u:ada", 1700000000000, "c"),
        ("PEXPIRE", "agent_memory:x:u:ada", ttl, "NX"),
        ("PEXPIRE", "agent_memory:x:u:ada", ttl, "GT"),
        ("ZSCORE", "agent_memory:x:ttl", "ttl"),
    ]
    cutoff = f"({1700000000000 - ttl}"  # entries older than now - the longest TTL are gone
    assert [c.args for c in batches[2]] == [
        ("ZREMRANGEBYSCORE", "agent_memory:x:all", "-inf", cutoff),
        ("ZREMRANGEBYSCORE", "agent_memory:x:u:ada", "-inf", cutoff),
    ]
    assert len(batches) == 3


def test_after_one_node_lost_its_scripts_the_other_nodes_deletes_run_once(
    store: ConversationStore, cluster: list[RedisProcess]
) -> None:
    for i in range(12):
        store.create(f"u{i}", user_id="ada")
    assert all(_node_keys(cluster)), "the conversations should live on every primary"
    for node in cluster:  # every node knows the delete script; then the first forgets it
        with node.client() as c:
            c.script_load(scripts.DELETE.source)
    with cluster[0].client() as c:
        c.script_flush()
    assert store.delete_user("ada") == 12  # a resent batch would count the others' as 0
    assert store.list_conversations().items == []
