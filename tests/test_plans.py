"""The sans-IO core on its own: plans driven by scripted replies (no server), and the drivers'
side of the protocol (NOSCRIPT resends, plans closed on every path) on fakeredis and a real
redis-server."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
import redis

from agent_memory import (
    AgentMemoryError,
    AsyncConversationStore,
    ConversationStore,
    InvalidCursor,
    InvalidInput,
    scripts,
)
from agent_memory._base import noscript
from agent_memory.core import StoreConfig, StoreCore
from agent_memory.keys import KeySchema
from agent_memory.plan import PRIMARIES, Batch, Call, Plan
from agent_memory.plans.listing import decode_list_cursor, encode_list_cursor
from agent_memory.transfer import import_jsonl
from tests.support.drive import drive

PREFIX = "am"
KEYS = KeySchema(PREFIX)


def core(*, cluster: bool = False, key_slot: Any = None) -> StoreCore:
    return StoreCore(StoreConfig(KEYS, 60_000, cluster=cluster), key_slot=key_slot)


def meta(cid: str, updated: int) -> dict[bytes, bytes]:
    return {b"id": cid.encode(), b"created_at": b"1000", b"updated_at": str(updated).encode()}


def commands(batch: Batch) -> list[tuple[Any, ...]]:
    return [call.args for call in batch]


# -- listing: paging ----------------------------------------------------------------------


def test_a_listing_pages_by_cursor_newest_first() -> None:
    index = KEYS.index_all
    page, sent = drive(
        core().list_conversations(limit=2),
        [
            [[b"c3", b"3", b"c2", b"2", b"c1", b"1"]],  # RESP2: flat member, score pairs
            [meta("c3", 3), 9, meta("c2", 2), 9, meta("c1", 1), 9],
        ],
    )
    assert commands(sent[0]) == [("ZREVRANGE", index, 0, 2, "WITHSCORES")]
    assert [c.id for c in page.items] == ["c3", "c2"]
    assert page.next_cursor is not None
    assert decode_list_cursor(page.next_cursor) == (2.0, "c2")

    page, sent = drive(
        core().list_conversations(limit=2, cursor=page.next_cursor),
        [
            [[b"c2"], [[b"c1", 1.0]]],  # ties at the cursor's score; RESP3 nested pairs
            [meta("c1", 1), 9],
        ],
    )
    assert commands(sent[0]) == [
        ("ZREVRANGEBYSCORE", index, "2.0", "2.0"),
        ("ZREVRANGEBYSCORE", index, "(2.0", "-inf", "WITHSCORES", "LIMIT", 0, 3),
    ]
    assert [c.id for c in page.items] == ["c1"]
    assert page.next_cursor is None


def test_a_listing_keeps_members_that_tie_on_score_after_the_cursor() -> None:
    cursor = encode_list_cursor(5.0, "b")
    page, _ = drive(
        core().list_conversations(limit=5, cursor=cursor),
        [[[b"c", b"b", b"a"], []], [meta("a", 5), 9]],  # "a" < "b": after the cursor
    )
    assert [c.id for c in page.items] == ["a"]


# -- listing: pruning ---------------------------------------------------------------------


def test_a_listing_prunes_dead_entries_with_one_script_on_a_single_server() -> None:
    page, sent = drive(
        core().list_conversations(limit=5),
        [[[b"dead", b"2", b"c1", b"1"]], [{}, -2, meta("c1", 1), 9], [1]],
    )
    assert [c.id for c in page.items] == ["c1"]
    (prune,) = sent[2]
    assert prune.script is scripts.PRUNE
    assert prune.args[2:] == (2, KEYS.index_all, KEYS.conversation("dead").meta, "dead")


def test_a_listing_prunes_in_cluster_mode_only_what_is_still_missing() -> None:
    page, sent = drive(
        core(cluster=True).list_conversations(limit=5),
        [
            [[b"gone", b"3", b"back", b"2"]],
            [{}, -2, {}, -2],
            [0, 1],  # EXISTS: "back" was re-created meanwhile
            [1],
        ],
    )
    assert page.items == []
    assert commands(sent[2]) == [
        ("EXISTS", KEYS.conversation("gone").meta),
        ("EXISTS", KEYS.conversation("back").meta),
    ]
    assert commands(sent[3]) == [("ZREM", KEYS.index_all, "gone")]


# -- cluster fan-out ----------------------------------------------------------------------


def test_clear_all_on_a_cluster_scans_every_primary_and_unlinks_per_slot() -> None:
    slots = {b"k1": 1, b"k2": 2, b"k3": 1, b"k4": 4}
    deleted, sent = drive(
        core(cluster=True, key_slot=slots.__getitem__).clear_all(),
        [
            [{"n1:1": (7, [b"k1", b"k2"]), "n2:2": (0, [b"k3"])}],
            [2, 1],
            [(0, [b"k4"])],
            [1],
        ],
    )
    assert deleted == 4
    (first,) = sent[0]
    assert first.target == PRIMARIES
    assert commands(sent[1]) == [("UNLINK", b"k1", b"k3"), ("UNLINK", b"k2")]
    (more,) = sent[2]
    assert more.target == "n1:1"  # only the node whose scan is not finished
    assert more.args[:2] == ("SCAN", 7)


def test_without_a_slot_function_each_key_is_unlinked_alone() -> None:
    scans = {"n1:1": (0, [b"a"]), "n2:2": (0, [b"b"])}
    deleted, sent = drive(core(cluster=True).clear_all(), [[scans], [1, 1]])
    assert deleted == 2
    assert commands(sent[1]) == [("UNLINK", b"a"), ("UNLINK", b"b")]


def test_server_info_on_a_cluster_merges_the_primaries() -> None:
    infos = {
        "n1:1": {"redis_version": "7.4.0", "aof_enabled": 1, "keyspace_hits": 3},
        "n2:2": {"redis_version": "7.4.0", "aof_enabled": 0, "keyspace_hits": 4},
    }
    info, sent = drive(
        core(cluster=True).server_info(),
        [
            [{"n1:1": 5, "n2:2": 7}],
            [[b"1700000000", b"0"], b"60000"],
            [5],
            [infos],
            [{"n1:1": {"appendfsync": "always"}}],
        ],
    )
    assert [batch[0].target for batch in sent] == [PRIMARIES, None, None, PRIMARIES, PRIMARIES]
    assert (info.keys, info.conversations, info.keyspace_hits) == (12, 5, 7)
    assert info.aof_enabled is False  # on only if on everywhere
    assert info.appendfsync == "always"


def test_an_optional_call_refused_by_the_server_reads_as_unknown() -> None:
    info, sent = drive(
        core().server_info(), [[3], [[b"1700000000", b"0"], None], [1], [None], [None]]
    )
    assert all(batch[0].optional for batch in sent[3:])
    assert (info.version, info.aof_enabled, info.keys) == (None, None, 3)


# -- the drivers' side: NOSCRIPT ---------------------------------------------------------


def _fresh_script() -> scripts.Script:
    """A script no server has cached yet (its source is unique)."""
    source = f"-- {uuid.uuid4()}\nreturn redis.call('INCR', KEYS[1])"
    return scripts.Script("t", source, hashlib.sha1(source.encode()).hexdigest())


def _batch_around(script: scripts.Script) -> Plan[list[Any]]:
    replies = yield [
        Call(("INCR", "t:before")),
        Call.run(script, ["t:n"], []),
        Call(("GET", "t:n")),
    ]
    return replies


def test_after_noscript_the_driver_resends_the_script_and_what_follows_it_only(
    store: ConversationStore,
) -> None:
    replies = store.run(_batch_around(_fresh_script()))
    assert replies[:2] == [1, 1]
    assert replies[2] in (b"1", "1")  # the read after the script sees what it wrote
    assert store.client.get("t:before") in (b"1", "1")  # the call before it ran once


async def test_after_noscript_the_async_driver_resends_the_same_calls(
    astore: AsyncConversationStore,
) -> None:
    replies = await astore.run(_batch_around(_fresh_script()))
    assert replies[:2] == [1, 1]
    assert await astore.client.get("t:before") in (b"1", "1")


def test_on_a_cluster_scripts_that_ran_on_other_nodes_are_not_resent() -> None:
    delete = scripts.DELETE
    batch = [Call.run(delete, [f"k{i}"], [f"c{i}"]) for i in range(3)]
    replies: list[Any] = [1, redis.exceptions.NoScriptError("NOSCRIPT"), 1]
    assert noscript(batch, replies) == [1]
    reads_after = [*batch, Call(("GET", "x"))]
    assert noscript(reads_after, [*replies, None]) == [1, 3]
    assert noscript(batch, [1, 1, 1]) == []


# -- the drivers' side: plans are closed --------------------------------------------------


class _Watched:
    def __init__(self) -> None:
        self.closed = False

    def plan(self, calls: list[Call]) -> Plan[Any]:
        try:
            yield calls
            yield calls
        finally:
            self.closed = True


def test_the_driver_closes_a_plan_when_redis_refuses_a_call(store: ConversationStore) -> None:
    watched = _Watched()
    plan = watched.plan([Call(("NO-SUCH-COMMAND",))])
    with pytest.raises(AgentMemoryError):
        store.run(plan)
    assert watched.closed  # cleanup in the plan ran, though ``plan`` is still referenced


async def test_the_async_driver_closes_a_plan_on_every_path(
    astore: AsyncConversationStore,
) -> None:
    watched = _Watched()
    plan = watched.plan([Call(("NO-SUCH-COMMAND",))])
    with pytest.raises(AgentMemoryError):
        await astore.run(plan)
    assert watched.closed
    done = _Watched()
    plan = done.plan([Call(("PING",))])
    assert await astore.run(plan) is None
    assert done.closed


# -- one rule everywhere: the importer's cursors are the core's --------------------------


@pytest.mark.parametrize("cursor", ["\u0661\u0662-0", "0-0", f"{2**64}-0", "1-0 "])
def test_the_importer_refuses_what_the_core_refuses_as_a_cursor(
    store: ConversationStore, cursor: str
) -> None:
    head = json.dumps(
        {"type": "conversation", "id": "c", "meta": {"created_at": "1"}, "expires_at_ms": 10**13}
    )
    line = json.dumps(
        {
            "type": "message",
            "conversation": "c",
            "cursor": cursor,
            "message": {"role": "user", "content": "x"},
        }
    )
    with pytest.raises(InvalidInput, match="line 2: cursor"):
        import_jsonl(store, [head, line])
    if cursor != "0-0":  # 0-0 is a cursor (reads accept it), but no entry can have it
        with pytest.raises(InvalidCursor):
            store.get_messages("c", after=cursor)


# -- conversations: what an update sends --------------------------------------------------


def test_an_update_leaves_unset_fields_alone_and_removes_those_given_as_none() -> None:
    updated = [[1, 2], {**meta("c", 5), b"version": b"2"}, 9]
    conversation, sent = drive(core().update_conversation("c", title=None), [updated])
    script, *reads = sent[0]
    assert script.script is scripts.UPDATE
    keys = script.args[2]
    assert script.args[3 + keys :] == (60_000, "c", "", 0, "title")  # nothing set, title removed
    assert [call.args[0] for call in reads] == ["HGETALL", "PEXPIRETIME"]
    assert conversation.version == 2
    _, sent = drive(
        core().update_conversation("c", metadata={"a": 1}, expected_version=0), [updated]
    )
    assert sent[0][0].args[3 + keys :] == (60_000, "c", 0, 1, "metadata", '{"a": 1}')
