"""TTL: no key lives forever, writes slide the expiry of a whole conversation, reads do not
(unless touch_on_read), and an expired conversation vanishes as a whole, from listings too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from agent_memory import ConversationNotFound
from tests.support.backends import key_names
from tests.support.drivers import Driver

TTL_S = 1000


def ttls_ms(drv: Driver) -> dict[str, int]:
    return {k: int(drv.raw.pttl(k)) for k in key_names(drv.raw)}


def conversation_ttls(drv: Driver, cid: str) -> list[int]:
    return [int(drv.raw.pttl(k)) for k in drv.keys.conversation(cid).all if drv.raw.exists(k)]


async def test_every_key_has_a_ttl_after_a_workload(make_driver: Callable[..., Driver]) -> None:
    drv = make_driver(ttl_seconds=TTL_S)
    await drv.create("a", user_id="u1", agent_id="bot", title="t", metadata={"k": 1})
    await drv.append("a", [{"role": "user", "content": "hi", "id": "m1"}], idempotency_key="k1")
    await drv.append("a", [{"role": "assistant", "content": "yo"}])
    await drv.append("b", [{"role": "user", "content": "no create first"}])
    await drv.create("c", user_id="u2")
    await drv.create("d", user_id="u3", agent_id="bot")
    await drv.update_conversation("a", title="new", expected_version=1)
    await drv.update_conversation("c", metadata=None)
    await drv.list_conversations(user_id="u1")
    await drv.list_conversations(agent_id="bot", limit=1)
    await drv.get_messages("a", limit=1)
    await drv.delete_conversation("c")
    await drv.delete_user("u3")
    found = ttls_ms(drv)
    assert len(found) >= 9  # streams, hashes, ids, tokens and indexes
    assert all(0 < ttl <= TTL_S * 1000 for ttl in found.values()), found


async def test_a_write_refreshes_every_key_of_the_conversation(drv: Driver) -> None:
    await drv.create("c1", user_id="u")
    await drv.append("c1", [{"role": "user", "content": "x", "id": "m"}], idempotency_key="k")
    keys = drv.keys.conversation("c1").all
    for key in keys:
        drv.raw.pexpire(key, 5_000)
    await drv.append("c1", [{"role": "user", "content": "y"}])
    ttl_ms = 2_592_000_000
    assert all(ttl_ms - 60_000 < t <= ttl_ms for t in conversation_ttls(drv, "c1"))
    assert len(conversation_ttls(drv, "c1")) == 4
    for key in keys:
        drv.raw.pexpire(key, 5_000)
    await drv.update_conversation("c1", title="t")
    assert all(ttl_ms - 60_000 < t <= ttl_ms for t in conversation_ttls(drv, "c1"))


async def test_reads_do_not_extend_the_ttl(drv: Driver) -> None:
    await drv.create("c1", user_id="u")
    await drv.append("c1", [{"role": "user", "content": "x", "id": "m"}])
    for key in drv.keys.conversation("c1").all:
        drv.raw.pexpire(key, 50_000)
    await drv.get_messages("c1")
    await drv.get_messages("c1", limit=1)
    await drv.get_conversation("c1")
    await drv.list_conversations()
    await drv.list_conversations(user_id="u")
    ttls = conversation_ttls(drv, "c1")
    assert len(ttls) == 3  # stream, hash, ids (no tokens: the one message has an id)
    assert all(0 < t <= 50_000 for t in ttls)


async def test_touch_on_read_extends_the_ttl(make_driver: Callable[..., Driver]) -> None:
    drv = make_driver(touch_on_read=True, ttl_seconds=TTL_S)
    await drv.append("c1", [{"role": "user", "content": "x", "id": "m"}])
    for key in drv.keys.conversation("c1").all:
        drv.raw.pexpire(key, 50_000)
    await drv.get_messages("c1", limit=5)
    ttls = conversation_ttls(drv, "c1")
    assert ttls
    assert all(TTL_S * 1000 - 60_000 < t <= TTL_S * 1000 for t in ttls)


async def test_expires_at_is_the_keys_expiry(drv: Driver) -> None:
    await drv.create("c1")
    conversation = await drv.get_conversation("c1")
    assert conversation.expires_at is not None
    expire_ms = int(drv.raw.pexpiretime(drv.keys.conversation("c1").meta))
    assert int(conversation.expires_at.timestamp() * 1000) == expire_ms


async def wait_until_gone(drv: Driver, key: str, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while drv.raw.exists(key):
        assert time.monotonic() < deadline, f"{key} did not expire"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_conversation_expires_as_a_whole_and_leaves_the_listing(
    make_driver: Callable[..., Driver],
) -> None:
    short = make_driver(ttl_seconds=1)
    long = make_driver(ttl_seconds=TTL_S)
    await long.create("long", user_id="u", agent_id="bot")
    await short.create("short", user_id="u", agent_id="bot")
    await short.append("short", [{"role": "user", "content": "x", "id": "m"}], idempotency_key="k")
    assert sorted(c.id for c in (await long.list_conversations()).items) == ["long", "short"]
    await wait_until_gone(short, short.keys.conversation("short").meta)
    assert [k for k in short.keys.conversation("short").all if short.raw.exists(k)] == []
    with pytest.raises(ConversationNotFound):
        await short.get_conversation("short")
    assert await short.get_messages("short") == []
    keys = short.keys
    for index, kwargs in [
        (keys.index_all, {}),
        (keys.index_user("u"), {"user_id": "u"}),
        (keys.index_agent("bot"), {"agent_id": "bot"}),
    ]:
        assert short.raw.zscore(index, "short") is not None  # still indexed until listed
        page = await short.list_conversations(**kwargs)
        assert [c.id for c in page.items] == ["long"]
        assert short.raw.zscore(index, "short") is None  # pruned by the listing


def expiries(drv: Driver, cid: str) -> dict[str, int]:
    return {k: int(drv.raw.pexpiretime(k)) for k in drv.keys.conversation(cid).all}


async def test_appends_within_the_slack_leave_every_key_at_the_last_refresh(
    drv: Driver,
) -> None:
    """The tolerance of the sliding expiry (append.lua, 'refreshed'): a write whose keys
    expire no more than min(ttl / 100, 60 s) short of now + ttl leaves them so; a key the
    write creates (ids, tokens) makes it refresh all of them, so none is left without a TTL."""
    ttl_ms = 2_592_000_000
    await drv.append("c1", [{"role": "user", "content": "no id"}])  # stream, hash, tokens
    first = expiries(drv, "c1")
    assert first[drv.keys.conversation("c1").ids] == -2  # no ids yet
    await drv.append("c1", [{"role": "user", "content": "x", "id": "m1"}])  # creates ids
    second = expiries(drv, "c1")
    assert all(t > 0 for t in second.values()), second
    assert len(set(second.values())) == 1  # one absolute expiry for all
    for i in range(5):
        await drv.append("c1", [{"role": "user", "content": "x", "id": f"n{i}"}])
    assert expiries(drv, "c1") == second  # within the slack: left as they were
    now_ms = int(drv.raw.time()[0]) * 1000
    (at,) = set(second.values())
    assert now_ms + ttl_ms - 60_000 <= at <= now_ms + ttl_ms + 1000
    conversation = await drv.get_conversation("c1")
    assert conversation.message_count == 7


async def test_an_expiry_changed_by_hand_is_refreshed_by_the_next_write(drv: Driver) -> None:
    await drv.append("c1", [{"role": "user", "content": "x", "id": "m1"}])
    keys = drv.keys.conversation("c1")
    drv.raw.pexpire(keys.meta, 5_000)
    await drv.append("c1", [{"role": "user", "content": "y", "id": "m2"}])
    ttls = conversation_ttls(drv, "c1")
    assert len(ttls) == 3
    assert all(t > 2_592_000_000 - 60_000 for t in ttls), ttls


@pytest.mark.parametrize("removed", ["stream", "ids", "tokens"])
async def test_a_key_removed_since_the_last_refresh_gets_a_ttl_when_written_again(
    drv: Driver, removed: str
) -> None:
    """A key that vanished since the last full refresh (a pop that removed the last id, a
    copy_thread, a hand-made DEL, eviction) and is written again by an append, within the
    slack and with the hash's expiry untouched, gets the TTL like every other key."""
    keys = drv.keys.conversation("c1")
    await drv.append("c1", [{"role": "user", "content": "x", "id": "m1"}], idempotency_key="a")
    key = {"stream": keys.stream, "ids": keys.ids, "tokens": keys.tokens}[removed]
    assert int(drv.raw.pttl(key)) > 0
    drv.raw.delete(key)
    await drv.append("c1", [{"role": "user", "content": "y", "id": "m2"}], idempotency_key="b")
    assert int(drv.raw.pttl(key)) > 2_592_000_000 - 60_000
    assert all(t > 2_592_000_000 - 60_000 for t in conversation_ttls(drv, "c1"))


async def test_a_short_ttl_refreshes_on_every_write_past_its_slack(
    make_driver: Callable[..., Driver],
) -> None:
    drv = make_driver(ttl_seconds=2)  # slack: 20 ms
    await drv.append("c1", [{"role": "user", "content": "x", "id": "m1"}])
    before = expiries(drv, "c1")
    await asyncio.sleep(0.1)
    await drv.append("c1", [{"role": "user", "content": "y", "id": "m2"}])
    after = expiries(drv, "c1")
    assert all(after[k] >= before[k] + 80 for k in before if before[k] > 0), (before, after)


async def test_an_index_removed_by_hand_comes_back_with_a_ttl(drv: Driver) -> None:
    await drv.create("c1", user_id="u")
    await drv.append("c1", [{"role": "user", "content": "x", "id": "m1"}])
    drv.raw.delete(drv.keys.index_user("u"), drv.keys.index_all)
    await drv.append("c1", [{"role": "user", "content": "y", "id": "m2"}])
    for index in (drv.keys.index_user("u"), drv.keys.index_all):
        assert drv.raw.zscore(index, "c1") is not None
        assert int(drv.raw.pttl(index)) > 0
    assert [c.id for c in (await drv.list_conversations(user_id="u")).items] == ["c1"]
