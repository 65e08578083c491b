"""Counted, not timed: round trips on the wire (every ``send_packed_command`` of redis-py, sync
and async) and commands executed by the server (``INFO commandstats`` after ``CONFIG
RESETSTAT``). An append is one round trip whatever its size; reading the last 20 messages of a
10,000-message conversation reads 20 entries and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection
import redis.connection

from agent_memory import AsyncConversationStore, ConversationStore, _base, scripts
from agent_memory.embedded import RedisProcess
from tests.support.backends import DB, commands_since_reset
from tests.support.drivers import Driver
from tests.support.settings import make_settings


@dataclass
class Wire:
    """What went out on every connection: one entry per round trip (the packed bytes)."""

    sent: list[bytes] = field(default_factory=list)

    def record(self, command: Any) -> None:
        chunks = [command] if isinstance(command, bytes | str) else list(command)
        self.sent.append(b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks))

    @property
    def round_trips(self) -> int:
        return len(self.sent)

    def reset(self) -> None:
        self.sent.clear()


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    seen = Wire()
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    def counted_sync(self: Any, command: Any, check_health: bool = True) -> None:
        seen.record(command)
        sync_send(self, command, check_health)

    async def counted_async(self: Any, command: Any, check_health: bool = True) -> None:
        seen.record(command)
        await async_send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted_sync)
    monkeypatch.setattr(
        redis.asyncio.connection.AbstractConnection, "send_packed_command", counted_async
    )
    return seen


def batch(n: int, tag: str = "m") -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": f"{tag} {i} " + "x" * 40, "id": f"{tag}-{i}"} for i in range(n)
    ]


async def warm_up(drv: Driver) -> None:
    """Open the connection and load the scripts, so later counts hold only the operation (the
    first use of a script on a server costs one more round trip: EVALSHA, NOSCRIPT, EVAL)."""
    for script in scripts.ALL:
        drv.raw.script_load(script.source)
    await drv.append("warm-up", batch(1, "w"))
    await drv.get_messages("warm-up", limit=1)


@pytest.mark.parametrize("size", [1, 10, 500])
async def test_an_append_is_one_round_trip_whatever_its_size(
    drv: Driver, wire: Wire, size: int
) -> None:
    await warm_up(drv)
    wire.reset()
    stored = await drv.append("c1", batch(size))
    assert wire.round_trips == 1
    assert b"EVALSHA" in wire.sent[0]
    assert len(stored) == size
    wire.reset()
    again = await drv.append("c1", batch(size))  # a full retry is one round trip too
    assert wire.round_trips == 1
    assert not any(m.added for m in again)
    assert len(await drv.get_messages("c1")) == size


async def test_reads_and_metadata_are_one_round_trip_each(drv: Driver, wire: Wire) -> None:
    await warm_up(drv)
    await drv.create("c1", user_id="u")
    await drv.append("c1", batch(30))
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_messages", {"limit": 20}),
        ("get_messages", {"limit": 20, "require_exists": True}),
        ("get_messages", {}),
        ("get_conversation", {}),
        ("update_conversation", {"title": "t"}),
        ("delete_conversation", {}),
    ]
    for call, kwargs in calls:
        wire.reset()
        await getattr(drv, call)("c1", **kwargs)
        assert wire.round_trips == 1, (call, kwargs)


# -- on the real server: what the server executes -------------------------------------------


@pytest.fixture
def real(redis_server: RedisProcess) -> Iterator[redis.Redis]:
    client = redis_server.client(db=DB)
    client.flushdb()
    yield client
    client.close()


def test_server_side_an_append_of_500_is_one_script_call(real: redis.Redis, wire: Wire) -> None:
    store = ConversationStore(real, settings=make_settings())
    store.append("warm-up", batch(1, "w"))
    real.config_resetstat()
    wire.reset()
    store.append("c1", batch(500))
    assert wire.round_trips == 1
    counts = commands_since_reset(real)
    assert counts.pop("evalsha") == 1
    assert "eval" not in counts
    assert counts["xadd"] == 500
    # the ids -> cursors map in one HSET, the metadata hash in another, its 'refreshed' field
    # (a new conversation's keys get their expiry) in a third; no call token: every message
    # has an id
    assert counts["hset"] == 3
    assert counts["pexpireat"] >= 3
    assert real.hlen(store.keys.conversation("c1").ids) == 500
    assert not real.exists(store.keys.conversation("c1").tokens)


def test_server_side_a_next_append_runs_ten_commands(real: redis.Redis) -> None:
    """The appends after the first (ids given, no idempotency key, within the TTL slack of the
    last refresh) run 10 commands in the script and set no expiry: their keys have it already
    (see the 'refreshed' field in append.lua). With a key, 4 more (the token's hash)."""
    store = ConversationStore(real, settings=make_settings())
    store.create("c1", user_id="u", agent_id="a")
    store.append("c1", batch(1, "first"))
    real.config_resetstat()
    store.append("c1", batch(1, "second"))
    assert commands_since_reset(real) == {
        "evalsha": 1,
        "time": 1,
        "hmget": 2,  # the metadata hash; the ids
        "xadd": 1,
        "hset": 2,  # the ids; the metadata hash
        "pexpiretime": 3,  # the hash, the stream and the ids still expire at the last refresh
        "zadd": 4,  # the activity in the global, user, agent and (user, agent) indexes
    }
    real.config_resetstat()
    store.append("c1", batch(10, "third"))
    counts = commands_since_reset(real)
    assert (counts["xadd"], counts["hset"], counts["zadd"]) == (10, 2, 4)
    assert "pexpireat" not in counts
    store.append("c1", batch(1, "keyed"), idempotency_key="k1")  # creates the tokens hash
    real.config_resetstat()
    store.append("c1", batch(1, "keyed again"), idempotency_key="k2")
    counts = commands_since_reset(real)
    assert (counts["hget"], counts["hset"]) == (2, 3)
    assert "pexpireat" not in counts


def test_an_append_of_more_ids_than_one_lua_unpack_takes(real: redis.Redis) -> None:
    """Ids are looked up and recorded 1000 per HMGET/HSET (Lua's unpack limit): 2500 ids,
    some already stored and some repeated across a chunk boundary, are all handled."""
    store = ConversationStore(real, settings=make_settings(max_messages_per_request=3000))
    store.append("c1", batch(10))
    messages = batch(2400) + batch(10) + [batch(1500)[1200]]  # 2411 ids, 2400 distinct
    out = store.append("c1", messages)
    assert sum(m.added for m in out) == 2390
    assert [m.added for m in out[:12]] == [False] * 10 + [True] * 2
    assert out[-1].cursor == out[1200].cursor
    assert not out[-1].added
    assert real.hlen(store.keys.conversation("c1").ids) == 2400
    assert store.get_conversation("c1").message_count == 2400
    assert len(store.get_messages("c1")) == 2400


@pytest.fixture(scope="module")
def big_conversation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A server of its own holding one 10,000-message conversation: (url, its payload bytes)."""
    server = RedisProcess(tmp_path_factory.mktemp("big"), appendonly=False).start()
    client = server.client(db=DB)
    store = ConversationStore(client, settings=make_settings())
    total = 0
    for chunk in range(10):
        stored = store.append("big", batch(1000, f"b{chunk}"))
        total += sum(len(str(m.record)) for m in stored)
    client.close()
    yield server.url, total
    server.stop()


def output_bytes(client: redis.Redis) -> int:
    return int(client.info("stats")["total_net_output_bytes"])


def test_last_20_of_10000_reads_only_20_sync(big_conversation: tuple[str, int], wire: Wire) -> None:
    url, total = big_conversation
    client = redis.Redis.from_url(url, db=DB)
    store = ConversationStore(client, settings=make_settings())
    store.get_messages("big", limit=1)
    client.config_resetstat()
    before = output_bytes(client)
    wire.reset()
    last = store.get_messages("big", limit=20)
    sent = list(wire.sent)
    after = output_bytes(client)
    assert [m.record["id"] for m in last] == [f"b9-{i}" for i in range(980, 1000)]
    assert len(sent) == 1
    assert sent[0].startswith(b"*6\r\n$9\r\nXREVRANGE\r\n")
    assert sent[0].endswith(b"$5\r\nCOUNT\r\n$2\r\n20\r\n")
    assert commands_since_reset(client) == {"xrevrange": 1}
    assert total > 500_000
    assert after - before < 20_000  # 20 entries and one INFO reply, not the whole stream
    client.close()


async def test_last_20_of_10000_reads_only_20_async(
    big_conversation: tuple[str, int], wire: Wire
) -> None:
    url, _ = big_conversation
    sync = redis.Redis.from_url(url, db=DB)
    client = redis.asyncio.Redis.from_url(url, db=DB)
    store = AsyncConversationStore(client, settings=make_settings())
    await store.get_messages("big", limit=1)
    sync.config_resetstat()
    wire.reset()
    last = await store.get_messages("big", limit=20)
    assert wire.round_trips == 1
    assert b"XREVRANGE" in wire.sent[0]
    assert len(last) == 20
    assert last[-1].record["id"] == "b9-999"
    assert commands_since_reset(sync) == {"xrevrange": 1}
    await client.aclose()
    sync.close()


def test_paging_back_from_the_end_reads_one_page_per_call(
    big_conversation: tuple[str, int],
) -> None:
    url, _ = big_conversation
    client = redis.Redis.from_url(url, db=DB)
    store = ConversationStore(client, settings=make_settings())
    page = store.get_messages("big", limit=50)
    client.config_resetstat()
    older = store.get_messages("big", limit=50, before=page[0].cursor)
    assert [m.record["id"] for m in older] == [f"b9-{i}" for i in range(900, 950)]
    assert commands_since_reset(client) == {"xrevrange": 1}
    client.close()


def test_a_cold_script_cache_costs_one_more_round_trip_once(real: redis.Redis, wire: Wire) -> None:
    store = ConversationStore(real, settings=make_settings())
    store.ping()
    real.script_flush()
    wire.reset()
    store.append("c1", batch(3))
    assert [s.split(b"\r\n")[2] for s in wire.sent] == [b"EVALSHA", b"EVAL"]
    wire.reset()
    store.append("c1", batch(3, "n"))
    assert wire.round_trips == 1
    assert len(store.get_messages("c1")) == 6


def direct(store: ConversationStore | AsyncConversationStore) -> bool:
    return store._direct


def _client_of(mode: str, url: str) -> redis.Redis | redis.asyncio.Redis:
    if mode == "sync":
        return redis.Redis.from_url(url, db=DB)
    return redis.asyncio.Redis.from_url(url, db=DB)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_scripts_and_reads_skip_execute_command_unless_it_is_wrapped(
    redis_server: RedisProcess, wire: Wire, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Both drivers send a lone script call, and a read by bytes name, straight on a pooled
    connection (one ``send_packed_command``, the bytes execute_command would send); a client
    whose ``execute_command`` is wrapped (tracing, a spy) sees every call through it
    instead, on the instance or on its class."""
    client: Any = _client_of(mode, redis_server.url)
    store: Any = (ConversationStore if mode == "sync" else AsyncConversationStore)(
        client, settings=make_settings()
    )
    drv = Driver(store, redis.Redis.from_url(redis_server.url, db=DB), mode)
    cid = f"direct-lane-{mode}"
    try:
        await drv.append("warm-up", batch(1, "w"))
        seen: list[tuple[Any, ...]] = []
        send = client.execute_command

        def spy(*args: Any, **kwargs: Any) -> Any:
            seen.append(args)
            return send(*args, **kwargs)

        assert direct(store)
        wire.reset()
        stored = await drv.append(cid, batch(3))
        read = await drv.get_messages(cid)
        assert wire.round_trips == 2
        assert b"EVALSHA" in wire.sent[0]
        assert b"XRANGE" in wire.sent[1]
        assert [m.record["id"] for m in stored] == [m.record["id"] for m in read]
        assert [m.record["id"] for m in read] == ["m-0", "m-1", "m-2"]
        monkeypatch.setattr(client, "execute_command", spy)
        assert not direct(store)
        await drv.append(cid, batch(4))
        assert len(await drv.get_langchain_messages(cid)) == 4
        assert [a[:2] for a in seen] == [
            ("EVALSHA", scripts.APPEND.sha),
            (b"XRANGE", store.keys.conversation(cid).stream),
        ]
        monkeypatch.undo()
        assert direct(store)
        monkeypatch.setattr(type(client), "execute_command", spy)
        assert not direct(store)
        monkeypatch.undo()
        metrics_on = SimpleNamespace(is_enabled=lambda: True)  # redis-py's own metrics on
        monkeypatch.setattr(_base, "_observability", lambda: metrics_on)
        assert not direct(store)
    finally:
        drv.raw.close()
        if mode == "sync":
            client.close()
        else:
            await client.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_single_connection_client_gets_every_call_through_execute_command(
    redis_server: RedisProcess, mode: str
) -> None:
    client: Any = (redis.Redis if mode == "sync" else redis.asyncio.Redis).from_url(
        redis_server.url, db=DB, single_connection_client=True
    )
    store: Any = (ConversationStore if mode == "sync" else AsyncConversationStore)(
        client, settings=make_settings()
    )
    assert not direct(store)
    if mode == "sync":
        client.close()
    else:
        await client.aclose()


@pytest.mark.parametrize("connection_class", [redis.Connection, redis.asyncio.Connection])
def test_a_direct_call_is_packed_as_redis_py_packs_it(connection_class: Any) -> None:
    """hiredis's packer, where the drivers use it, gives the bytes of redis-py's own."""
    from agent_memory._base import packed

    conn = connection_class()
    args = ("EVALSHA", "ab" * 20, 2, "k:{é}:s", b"k\0x", -17, 2**40, "", b"", "zürich \u2603")
    assert packed(conn, args) == [b"".join(conn.pack_command(*args))]
    assert packed(conn, (b"XRANGE", "k:{é}:s", "-", "+")) == conn.pack_command(
        b"XRANGE", "k:{é}:s", "-", "+"
    )
    with_float = (*args, 1.5)  # not one hiredis packs as redis-py does: redis-py's own
    assert packed(conn, with_float) == conn.pack_command(*with_float)


def test_without_hiredis_a_direct_call_is_packed_by_redis_py(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hiredis is a dependency, but an install without it still runs the direct lane, packed
    by the connection's own packer."""
    from agent_memory import _base

    monkeypatch.setattr(_base, "_hiredis_pack", None)
    conn = redis.Connection()
    args = ("EVALSHA", "ab" * 20, 1, "k:{x}:s", b"v", 7)
    assert _base.packed(conn, args) == conn.pack_command(*args)
