"""The store's behaviour, written once and run four ways: {fakeredis, real redis-server} x
{ConversationStore, AsyncConversationStore} (see ``drivers.py``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_memory import (
    ConversationExists,
    ConversationNotFound,
    InvalidCursor,
    InvalidInput,
    InvalidMessage,
    VersionConflict,
)
from tests.support.backends import key_names
from tests.support.drivers import Driver


def msg(i: int, **extra: Any) -> dict[str, Any]:
    return {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}", **extra}


def contents(stored: list[Any]) -> list[str]:
    return [m.record["content"] for m in stored]


async def test_ping(drv: Driver) -> None:
    assert await drv.ping() is True


# -- create / get / update / delete ---------------------------------------------------------


async def test_create_then_get_returns_what_was_created(drv: Driver) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    made = await drv.create(
        "c1", user_id="u1", agent_id="a1", title="Trip", metadata={"lang": "fr", "n": [1, 2]}
    )
    got = await drv.get_conversation("c1")
    assert got.model_dump(exclude={"expires_at"}) == made.model_dump(exclude={"expires_at"})
    assert (got.id, got.user_id, got.agent_id, got.title) == ("c1", "u1", "a1", "Trip")
    assert got.metadata == {"lang": "fr", "n": [1, 2]}
    assert (got.version, got.message_count) == (1, 0)
    assert got.created_at >= before
    assert got.expires_at is not None
    ttl = got.expires_at - got.created_at
    assert timedelta(days=30, seconds=-5) <= ttl <= timedelta(days=30, seconds=1)


async def test_create_without_id_makes_a_fresh_one(drv: Driver) -> None:
    first = await drv.create()
    second = await drv.create()
    assert first.id
    assert second.id
    assert first.id != second.id
    assert (await drv.get_conversation(first.id)).id == first.id


async def test_create_with_a_taken_id_raises_conversation_exists(drv: Driver) -> None:
    await drv.create("c1", title="original")
    with pytest.raises(ConversationExists):
        await drv.create("c1", title="other")
    assert (await drv.get_conversation("c1")).title == "original"


async def test_get_missing_conversation_raises_not_found(drv: Driver) -> None:
    with pytest.raises(ConversationNotFound) as info:
        await drv.get_conversation("nope")
    assert isinstance(info.value, KeyError)


async def test_update_sets_and_removes_fields_and_bumps_version(drv: Driver) -> None:
    await drv.create("c1", title="old", metadata={"a": 1})
    updated = await drv.update_conversation("c1", title="new", metadata={"b": 2})
    assert (updated.title, updated.metadata, updated.version) == ("new", {"b": 2}, 2)
    assert await drv.get_conversation("c1") == updated
    cleared = await drv.update_conversation("c1", title=None)
    assert (cleared.title, cleared.metadata, cleared.version) == (None, {"b": 2}, 3)


async def test_update_with_expected_version_detects_a_conflict(drv: Driver) -> None:
    await drv.create("c1", title="v1")
    ok = await drv.update_conversation("c1", title="v2", expected_version=1)
    assert ok.version == 2
    with pytest.raises(VersionConflict) as info:
        await drv.update_conversation("c1", title="stale", expected_version=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    with pytest.raises(VersionConflict):
        await drv.update_conversation("c1", title="never", expected_version=0)
    got = await drv.get_conversation("c1")
    assert (got.title, got.version) == ("v2", 2)


async def test_update_missing_conversation_raises_not_found(drv: Driver) -> None:
    with pytest.raises(ConversationNotFound):
        await drv.update_conversation("nope", title="x")
    assert drv.raw.keys("*") == []


async def test_delete_removes_every_key_of_the_conversation(drv: Driver) -> None:
    await drv.create("c1", user_id="u1", agent_id="a1")
    await drv.append("c1", [msg(0, id="m0"), msg(1)])
    await drv.create("c2", user_id="u1")
    assert await drv.delete_conversation("c1") is True
    assert await drv.delete_conversation("c1") is False
    with pytest.raises(ConversationNotFound):
        await drv.get_conversation("c1")
    assert await drv.get_messages("c1") == []
    keys = key_names(drv.raw)
    assert not any("{c1}" in k for k in keys)
    assert [c.id for c in (await drv.list_conversations()).items] == ["c2"]
    assert [c.id for c in (await drv.list_conversations(agent_id="a1")).items] == []


# -- listing ------------------------------------------------------------------------------


async def make_in_order(drv: Driver, ids: list[str], **kw: Any) -> None:
    """Create conversations with strictly increasing activity times (1 ms apart at least)."""
    for cid in ids:
        await drv.create(cid, **kw)
        await asyncio.sleep(0.002)


async def test_list_is_newest_activity_first(drv: Driver) -> None:
    await make_in_order(drv, ["c0", "c1", "c2", "c3"])
    await drv.append("c1", [msg(0)])
    page = await drv.list_conversations()
    assert [c.id for c in page.items] == ["c1", "c3", "c2", "c0"]
    assert page.next_cursor is None


async def test_list_pages_cover_everything_once_even_with_equal_scores(drv: Driver) -> None:
    ids = [f"c{i:02}" for i in range(11)]
    for cid in ids:  # created as fast as possible: many share a millisecond
        await drv.create(cid)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await drv.list_conversations(limit=3, cursor=cursor)
        pages += 1
        assert len(page.items) <= 3
        seen += [c.id for c in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == ids
    assert len(seen) == len(set(seen))
    assert pages == 4
    whole = await drv.list_conversations(limit=100)
    assert [c.id for c in whole.items] == seen


async def test_list_filters_by_user_and_agent(drv: Driver) -> None:
    await make_in_order(drv, ["a"], user_id="u1", agent_id="bot1")
    await make_in_order(drv, ["b"], user_id="u1", agent_id="bot2")
    await make_in_order(drv, ["c"], user_id="u2", agent_id="bot1")
    await make_in_order(drv, ["d"])

    async def ids(**kw: Any) -> list[str]:
        return [c.id for c in (await drv.list_conversations(**kw)).items]

    assert await ids() == ["d", "c", "b", "a"]
    assert await ids(user_id="u1") == ["b", "a"]
    assert await ids(user_id="u2") == ["c"]
    assert await ids(agent_id="bot1") == ["c", "a"]
    assert await ids(user_id="u1", agent_id="bot1") == ["a"]
    assert await ids(user_id="nobody") == []


async def test_list_skips_and_prunes_conversations_whose_keys_are_gone(drv: Driver) -> None:
    await make_in_order(drv, ["gone", "live"], user_id="u1")
    await drv.append("gone", [msg(0)])
    drv.raw.delete(*drv.keys.conversation("gone").all)  # what expiry does to its keys
    index_all, index_user = drv.keys.index_all, drv.keys.index_user("u1")
    assert drv.raw.zscore(index_all, "gone") is not None
    assert [c.id for c in (await drv.list_conversations(user_id="u1")).items] == ["live"]
    assert drv.raw.zscore(index_user, "gone") is None
    assert [c.id for c in (await drv.list_conversations()).items] == ["live"]
    assert drv.raw.zscore(index_all, "gone") is None


async def test_list_page_is_full_when_dead_entries_are_skipped(drv: Driver) -> None:
    await make_in_order(drv, [f"c{i}" for i in range(6)])
    for dead in ("c5", "c4", "c2"):
        drv.raw.delete(*drv.keys.conversation(dead).all)
    page = await drv.list_conversations(limit=2)
    assert [c.id for c in page.items] == ["c3", "c1"]
    rest = await drv.list_conversations(limit=2, cursor=page.next_cursor)
    assert [c.id for c in rest.items] == ["c0"]
    assert rest.next_cursor is None
    assert drv.raw.zcard(drv.keys.index_all) == 3


@pytest.mark.parametrize("cursor", ["garbage", "", "W10", "WyJ4IiwxXQ"])
async def test_list_with_a_foreign_cursor_raises_invalid_cursor(drv: Driver, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await drv.list_conversations(cursor=cursor)


# -- append ---------------------------------------------------------------------------------


async def test_append_stores_in_order_and_creates_the_conversation(drv: Driver) -> None:
    stored = await drv.append("c1", [msg(0), msg(1, id="m1"), msg(2)])
    assert [m.added for m in stored] == [True, True, True]
    assert [m.record for m in stored] == [msg(0), msg(1, id="m1"), msg(2)]
    cursors = [m.cursor for m in stored]
    assert cursors == sorted(cursors, key=lambda c: tuple(map(int, c.split("-"))))
    assert len(set(cursors)) == 3
    read = await drv.get_messages("c1")
    assert [(m.cursor, m.record) for m in read] == [(m.cursor, m.record) for m in stored]
    conversation = await drv.get_conversation("c1")
    assert conversation.message_count == 3
    assert [c.id for c in (await drv.list_conversations()).items] == ["c1"]


async def test_append_of_nothing_stores_nothing(drv: Driver) -> None:
    assert await drv.append("c1", []) == []
    assert drv.raw.keys("*") == []


async def test_a_batch_with_one_bad_message_stores_nothing(drv: Driver) -> None:
    await drv.append("c1", [msg(0)])
    before = {k: drv.raw.type(k) for k in drv.raw.keys("*")}
    bad_batches: list[list[Any]] = [
        [msg(1), {"role": "robot", "content": "x"}],
        [msg(1), msg(2, additional_kwargs={"x": {1, 2}})],
        [msg(1), {"role": "tool", "content": "no tool_call_id"}],
        [msg(1), "not a message"],
    ]
    for batch in bad_batches:
        with pytest.raises(InvalidMessage):
            await drv.append("c1", batch)
        with pytest.raises(InvalidMessage):
            await drv.append("new", batch)
    assert contents(await drv.get_messages("c1")) == ["message 0"]
    assert {k: drv.raw.type(k) for k in drv.raw.keys("*")} == before


async def test_same_message_id_twice_is_stored_once(drv: Driver) -> None:
    (first,) = await drv.append("c1", [msg(0, id="m0")])
    (again,) = await drv.append("c1", [{"role": "user", "content": "changed", "id": "m0"}])
    assert again.added is False
    assert (again.cursor, again.record) == (first.cursor, first.record)
    assert contents(await drv.get_messages("c1")) == ["message 0"]
    assert (await drv.get_conversation("c1")).message_count == 1


async def test_duplicate_id_within_one_batch_is_stored_once(drv: Driver) -> None:
    out = await drv.append("c1", [msg(0, id="dup"), msg(1), msg(2, id="dup")])
    assert [m.added for m in out] == [True, True, False]
    assert out[2].cursor == out[0].cursor
    assert out[2].record == msg(0, id="dup")
    assert contents(await drv.get_messages("c1")) == ["message 0", "message 1"]
    assert (await drv.get_conversation("c1")).message_count == 2


async def test_same_idempotency_key_replays_the_first_call(drv: Driver) -> None:
    first = await drv.append("c1", [msg(0), msg(1)], idempotency_key="req-1")
    replay = await drv.append("c1", [msg(0), msg(1)], idempotency_key="req-1")
    assert [m.cursor for m in replay] == [m.cursor for m in first]
    assert [m.record for m in replay] == [m.record for m in first]
    assert [m.added for m in replay] == [False, False]
    other = await drv.append("c1", [msg(0), msg(1)], idempotency_key="req-2")
    assert [m.added for m in other] == [True, True]
    assert contents(await drv.get_messages("c1")) == ["message 0", "message 1"] * 2


async def test_message_ids_are_per_conversation(drv: Driver) -> None:
    await drv.append("c1", [msg(0, id="m")])
    (other,) = await drv.append("c2", [msg(1, id="m")])
    assert other.added is True
    assert contents(await drv.get_messages("c2")) == ["message 1"]


# -- reads ----------------------------------------------------------------------------------


async def ten(drv: Driver) -> list[str]:
    stored = await drv.append("c1", [msg(i) for i in range(10)])
    return [m.cursor for m in stored]


async def test_read_all_last_n_and_windows(drv: Driver) -> None:
    cursors = await ten(drv)
    assert contents(await drv.get_messages("c1")) == [f"message {i}" for i in range(10)]
    assert contents(await drv.get_messages("c1", limit=3)) == [f"message {i}" for i in (7, 8, 9)]
    assert len(await drv.get_messages("c1", limit=100)) == 10
    window = await drv.get_messages("c1", after=cursors[2], before=cursors[6])
    assert contents(window) == [f"message {i}" for i in (3, 4, 5)]
    assert contents(await drv.get_messages("c1", before=cursors[2])) == ["message 0", "message 1"]
    assert contents(await drv.get_messages("c1", after=cursors[7])) == ["message 8", "message 9"]


async def test_paging_backwards_with_before(drv: Driver) -> None:
    await ten(drv)
    pages: list[list[str]] = []
    page = await drv.get_messages("c1", limit=4)
    while page:
        pages.append(contents(page))
        page = await drv.get_messages("c1", limit=4, before=page[0].cursor)
    assert pages == [
        [f"message {i}" for i in (6, 7, 8, 9)],
        [f"message {i}" for i in (2, 3, 4, 5)],
        ["message 0", "message 1"],
    ]


async def test_paging_forwards_with_after(drv: Driver) -> None:
    cursors = await ten(drv)
    pages: list[list[str]] = []
    page = await drv.get_messages("c1", limit=4, after=cursors[0])
    while page:
        pages.append(contents(page))
        page = await drv.get_messages("c1", limit=4, after=page[-1].cursor)
    assert pages == [
        [f"message {i}" for i in (1, 2, 3, 4)],
        [f"message {i}" for i in (5, 6, 7, 8)],
        ["message 9"],
    ]


@pytest.mark.parametrize("bad", ["abc", "", "1-2-3", "-1-0", "12", "1-x", "1 -0", "(1-0"])
async def test_an_invalid_cursor_raises_invalid_cursor(drv: Driver, bad: str) -> None:
    await ten(drv)
    with pytest.raises(InvalidCursor):
        await drv.get_messages("c1", before=bad)
    with pytest.raises(InvalidCursor):
        await drv.get_messages("c1", after=bad, limit=2)


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "3"])
async def test_an_invalid_limit_raises_invalid_input(drv: Driver, limit: Any) -> None:
    with pytest.raises(InvalidInput):
        await drv.get_messages("c1", limit=limit)
    with pytest.raises(InvalidInput):
        await drv.list_conversations(limit=limit)


async def test_reading_a_missing_conversation(drv: Driver) -> None:
    assert await drv.get_messages("nope") == []
    with pytest.raises(ConversationNotFound):
        await drv.get_messages("nope", require_exists=True)
    await drv.create("empty")
    assert await drv.get_messages("empty", require_exists=True) == []


async def test_stored_message_rest_form(drv: Driver) -> None:
    (stored,) = await drv.append("c1", [msg(0, id="m0")])
    rest = stored.to_dict()
    assert rest["cursor"] == stored.cursor
    assert rest["id"] == stored.id == "m0"
    created = datetime.fromisoformat(rest["created_at"])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)
    assert stored.to_langchain().content == "message 0"


# -- bulk erase -----------------------------------------------------------------------------


async def test_delete_user_erases_only_that_users_conversations(drv: Driver) -> None:
    for cid in ("a", "b", "c"):
        await drv.create(cid, user_id="u1", agent_id="bot")
        await drv.append(cid, [msg(0, id="x")])
    await drv.create("d", user_id="u2", agent_id="bot")
    await drv.append("d", [msg(0)])
    assert await drv.delete_user("u1") == 3
    assert await drv.delete_user("u1") == 0
    for cid in ("a", "b", "c"):
        with pytest.raises(ConversationNotFound):
            await drv.get_conversation(cid)
        assert await drv.get_messages(cid) == []
    assert contents(await drv.get_messages("d")) == ["message 0"]
    assert [c.id for c in (await drv.list_conversations(agent_id="bot")).items] == ["d"]
    assert [c.id for c in (await drv.list_conversations()).items] == ["d"]
    left = key_names(drv.raw)
    assert not any(f"{{{cid}}}" in k for k in left for cid in "abc")
    assert drv.keys.index_user("u1") not in left


async def test_delete_user_with_many_conversations(drv: Driver) -> None:
    for i in range(130):  # more than one batch of 100
        await drv.create(f"c{i}", user_id="big")
    assert await drv.delete_user("big") == 130
    # only the prefix's TTL marker is left (it expires with the TTL it records)
    assert drv.raw.keys("*") == [drv.keys.ttl_marker.encode()]
    assert drv.raw.pttl(drv.keys.ttl_marker) > 0


async def test_clear_all_deletes_only_keys_under_the_prefix(make_driver: Any) -> None:
    drv = make_driver()
    other = make_driver(key_prefix="agent_memory_other")
    await drv.create("c1", user_id="u", agent_id="a")
    await drv.append("c1", [msg(0, id="m")], idempotency_key="k")
    await drv.append("c2", [msg(1)])
    await other.append("c1", [msg(2)])
    foreign = {
        "cache:model:1": "x",
        "agent_memory": "exactly the prefix, no separator",
        "agent_memoryX:c:{c1}:s": "a neighbour prefix",
        "search:{c1}": "y",
    }
    for key, value in foreign.items():
        drv.raw.set(key, value)
    ours = {k for k in drv.raw.keys("agent_memory:*")}
    assert len(ours) >= 8
    assert await drv.clear_all() == len(ours)
    assert drv.raw.keys("agent_memory:*") == []
    for key, value in foreign.items():
        assert drv.raw.get(key) == value.encode()
    assert contents(await other.get_messages("c1")) == ["message 2"]
    assert await drv.clear_all() == 0
