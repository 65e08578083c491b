"""Plans run without Redis through ``tests.support.drive`` (paging, pruning, cluster fan-out):
what a plan sends, given what Redis answers, and the harness's own rules (every reply used,
the plan always closed)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import redis

from agent_memory import ConversationNotFound, ConversationStore, StoreUnavailable
from agent_memory.plan import Batch, Call
from tests.support.drive import commands, drive
from tests.support.settings import make_settings

CREATED_MS = 1_700_000_000_000


def core_of(**settings: Any) -> Any:
    """The pure core of a store whose client is never used (constructing one does no I/O)."""
    return ConversationStore(redis.Redis(), settings=make_settings(**settings))._core


@pytest.fixture
def core() -> Any:
    return core_of()


def meta(conversation_id: str, **fields: str) -> dict[bytes, bytes]:
    values = {"id": conversation_id, "created_at": str(CREATED_MS), **fields}
    return {k.encode(): v.encode() for k, v in values.items()}


def test_ping_is_one_call(core: Any) -> None:
    result, sent = drive(core.ping(), [[True]])
    assert result is True
    assert sent == [[Call(("PING",))]]


def test_get_conversation_reads_hash_and_expiry_in_one_round_trip(core: Any) -> None:
    keys = core.conversation_keys("c1")
    expiry = CREATED_MS + 60_000
    conversation, sent = drive(core.get_conversation("c1"), [[meta("c1", title="t"), expiry]])
    assert sent == [[Call(("HGETALL", keys.meta)), Call(("PEXPIRETIME", keys.meta))]]
    assert (conversation.id, conversation.title) == ("c1", "t")
    assert conversation.expires_at is not None
    assert int(conversation.expires_at.timestamp() * 1000) == expiry


def test_a_missing_hash_is_not_found(core: Any) -> None:
    with pytest.raises(ConversationNotFound):
        drive(core.get_conversation("gone"), [[{}, -2]])


def test_listing_skips_and_prunes_expired_entries_then_pages_on(core: Any) -> None:
    index = core.config.keys.index_all
    entries = [b"c3", b"3", b"gone", b"2", b"c1", b"1"]  # ZREVRANGE ... WITHSCORES
    page, sent = drive(
        core.list_conversations(limit=2),
        [
            [entries],
            [meta("c3"), -1, {}, -2, meta("c1"), -1],
            [1],  # the PRUNE script removed "gone"
        ],
    )
    assert [c.id for c in page.items] == ["c3", "c1"]
    assert page.next_cursor is not None  # the page is full: the listing cannot know more
    assert commands(sent) == [
        ["ZREVRANGE"],
        ["HGETALL", "PEXPIRETIME"] * 3,
        ["prune"],
    ]
    assert sent[0][0].args == ("ZREVRANGE", index, 0, 2, "WITHSCORES")
    assert sent[2][0].args[-1] == "gone"

    rest, sent = drive(core.list_conversations(limit=2, cursor=page.next_cursor), [[[], []]])
    assert (rest.items, rest.next_cursor) == ([], None)
    ties, after = sent[0]
    assert ties.args == ("ZREVRANGEBYSCORE", index, "1.0", "1.0")  # same score, later members
    assert after.args == ("ZREVRANGEBYSCORE", index, "(1.0", "-inf", "WITHSCORES", "LIMIT", 0, 3)


def test_too_few_or_too_many_scripted_replies_fail_the_test(core: Any) -> None:
    with pytest.raises(AssertionError, match="only 0 were scripted"):
        drive(core.ping(), [])
    with pytest.raises(AssertionError, match="1 scripted replies were not used"):
        drive(core.ping(), [[True], [True]])
    with pytest.raises(AssertionError, match="2 calls but 1 scripted replies"):
        drive(core.get_conversation("c1"), [[{}]])


def test_the_plan_is_closed_when_a_round_trip_fails() -> None:
    closed: list[bool] = []

    def plan() -> Generator[Batch, list[Any], int]:
        try:
            (n,) = yield [Call(("DBSIZE",))]
            return int(n)
        finally:
            closed.append(True)

    with pytest.raises(StoreUnavailable):
        drive(plan(), [StoreUnavailable("down")])
    assert closed == [True]
    assert drive(plan(), [lambda batch: [len(batch)]]) == (1, [[Call(("DBSIZE",))]])


def test_pruning_on_a_cluster_checks_each_hash_before_removing_the_index_entry() -> None:
    core = core_of(redis_cluster=True)
    page, sent = drive(
        core.list_conversations(limit=5),
        [
            [[b"c2", b"2", b"gone", b"1"]],
            [meta("c2"), -1, {}, -2],
            [0],  # EXISTS: still gone (a separate slot from the index: no script)
            [1],  # ZREM
        ],
    )
    assert [c.id for c in page.items] == ["c2"]
    assert commands(sent) == [["ZREVRANGE"], ["HGETALL", "PEXPIRETIME"] * 2, ["EXISTS"], ["ZREM"]]
    assert sent[3][0].args == ("ZREM", core.config.keys.index_all, "gone")
