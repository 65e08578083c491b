"""Idempotency keys per the IETF Idempotency-Key draft, on fakeredis, redis-server and valkey:
the same key with the same messages replays the first answer, the same key with other messages
is refused (IdempotencyKeyReused / 422) and stores nothing, keys are remembered for a time (not
for a count of later calls), concurrent retries store once, and nothing outlives the
conversation (every key has a TTL; delete removes the remembered keys)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from agent_memory import (
    AsyncConversationStore,
    ConversationStore,
    IdempotencyKeyReused,
    InvalidInput,
)
from tests.support.api import AUTH_A, AUTH_B, TENANT_KEYS, api_client
from tests.support.backends import Backend, key_names
from tests.support.settings import make_settings


def msgs(*texts: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": t} for t in texts]


def token_fields(backend: Backend, store: ConversationStore, conversation_id: str) -> int:
    return int(backend.client.hlen(store.keys.conversation(conversation_id).tokens))


def test_the_same_key_and_messages_replay_the_first_answer(store: ConversationStore) -> None:
    first = store.append("c", msgs("a", "b"), idempotency_key="turn-1")
    again = store.append("c", msgs("a", "b"), idempotency_key="turn-1")
    assert [m.cursor for m in again] == [m.cursor for m in first]
    assert [m.record for m in again] == [m.record for m in first]
    assert store.count_messages("c") == 2


def test_the_same_key_with_other_messages_is_refused_and_stores_nothing(
    store: ConversationStore,
) -> None:
    store.append("c", msgs("a"), idempotency_key="turn-1")
    with pytest.raises(IdempotencyKeyReused) as caught:
        store.append("c", msgs("something else"), idempotency_key="turn-1")
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.field == "idempotency_key"
    assert caught.value.code == "invalid_input"
    assert "idempotency_key" in str(caught.value)
    with pytest.raises(IdempotencyKeyReused):  # one message more is other messages too
        store.append("c", msgs("a", "b"), idempotency_key="turn-1")
    assert [m.record["content"] for m in store.get_messages("c")] == ["a"]


def test_a_key_is_per_conversation(store: ConversationStore) -> None:
    store.append("c1", msgs("a"), idempotency_key="k")
    store.append("c2", msgs("other"), idempotency_key="k")  # another conversation: not reused
    assert store.count_messages("c2") == 1


def test_a_key_is_remembered_after_many_later_calls(
    backend: Backend, store: ConversationStore
) -> None:
    first = store.append("c", msgs("first"), idempotency_key="early")
    for i in range(40):  # the old list remembered 16 calls
        store.append("c", msgs(f"m{i}"), idempotency_key=f"later-{i}")
        store.append("c", msgs(f"n{i}"))  # calls without a key carry a token too
    again = store.append("c", msgs("first"), idempotency_key="early")
    assert [m.cursor for m in again] == [m.cursor for m in first]
    assert store.count_messages("c") == 81
    with pytest.raises(IdempotencyKeyReused):
        store.append("c", msgs("changed"), idempotency_key="early")


def test_a_key_is_forgotten_after_the_idempotency_ttl_and_pruned_by_later_writes(
    backend: Backend,
) -> None:
    store = ConversationStore(backend.client, settings=make_settings(idempotency_ttl_seconds=1))
    for i in range(5):
        store.append("c", msgs(f"m{i}"), idempotency_key=f"old-{i}")
    assert token_fields(backend, store, "c") == 2 * 5 + 1  # token + queue entry each, '.'
    time.sleep(1.1)
    # past the TTL the key is a new key: the same messages are appended again, other messages
    # are accepted, nothing is replayed or refused
    store.append("c", msgs("m0"), idempotency_key="old-0")
    store.append("c", msgs("new"), idempotency_key="old-1")
    assert [m.record["content"] for m in store.get_messages("c")][-2:] == ["m0", "new"]
    assert store.count_messages("c") == 7
    for i in range(5):  # each write forgets up to two expired calls
        store.append("c", msgs(f"x{i}"), idempotency_key=f"fresh-{i}")
    # 7 calls remembered now (two keys taken again, five fresh), the five old ones forgotten
    tokens = cast(dict[bytes, bytes], backend.client.hgetall(store.keys.conversation("c").tokens))
    assert sorted(int(f[1:]) for f in tokens if f.startswith(b"#")) == list(range(5, 12))
    assert len(tokens) == 2 * 7 + 1  # and the queue's state, '.'


def test_the_remembered_keys_live_no_longer_than_the_conversation(backend: Backend) -> None:
    store = ConversationStore(
        backend.client, settings=make_settings(ttl_seconds=60, idempotency_ttl_seconds=86_400)
    )
    store.append("c", msgs("a"), idempotency_key="k")
    keys = store.keys.conversation("c")
    assert backend.client.pexpiretime(keys.tokens) == backend.client.pexpiretime(keys.stream)
    assert 0 < backend.client.pttl(keys.tokens) <= 60_000


def test_every_key_has_a_ttl_after_keyed_calls(backend: Backend, store: ConversationStore) -> None:
    store.append("c", [{"role": "user", "content": "a", "id": "m1"}], idempotency_key="k1")
    store.append("c", msgs("b"), idempotency_key="k2")
    store.append("c", msgs("b"), idempotency_key="k2")
    store.append("d", msgs("c"))
    store.append("d", msgs("x"), idempotency_key="k3")
    with pytest.raises(IdempotencyKeyReused):
        store.append("d", msgs("y"), idempotency_key="k3")
    names = key_names(backend.client, "agent_memory:*")
    assert any(n.endswith("}:t") for n in names)
    assert {n: backend.client.pttl(n) for n in names if backend.client.pttl(n) <= 0} == {}


def test_delete_removes_the_remembered_keys(backend: Backend, store: ConversationStore) -> None:
    store.append("c", msgs("a"), idempotency_key="k")
    store.create("u", user_id="alice")
    store.append("u", msgs("b"), idempotency_key="k")
    assert store.delete_conversation("c")
    assert store.delete_user("alice") == 1
    assert not [n for n in key_names(backend.client, "agent_memory:c:*")]
    # the key is free again: a new conversation under the same id takes other messages
    store.append("c", msgs("other"), idempotency_key="k")
    assert [m.record["content"] for m in store.get_messages("c")] == ["other"]
    store.clear_all()
    assert key_names(backend.client, "agent_memory:*") == set()


def test_a_token_list_of_an_older_version_is_replaced(
    backend: Backend, store: ConversationStore
) -> None:
    keys = store.keys.conversation("c")
    backend.client.rpush(keys.tokens, "cursors", "0123abcd")  # the old layout: a list
    backend.client.pexpire(keys.tokens, 60_000)
    first = store.append("c", msgs("a"), idempotency_key="k")
    assert backend.client.type(keys.tokens) == b"hash"
    assert [m.cursor for m in store.append("c", msgs("a"), idempotency_key="k")] == [
        m.cursor for m in first
    ]


async def test_concurrent_retries_with_one_key_store_once(backend: Backend) -> None:
    client = backend.async_client()
    try:
        store = AsyncConversationStore(client, settings=make_settings())
        batch = msgs("a", "b", "c")
        answers = await asyncio.gather(
            *(store.append("c", batch, idempotency_key="same") for _ in range(20))
        )
        assert await store.count_messages("c") == 3
        assert len({tuple(m.cursor for m in a) for a in answers}) == 1
        assert sum(m.added for a in answers for m in a) == 3  # one call added, 19 replayed
    finally:
        await client.aclose()


# -- REST: the header ------------------------------------------------------------------------
URL = "/api/v1/conversations/c/messages"


async def test_rest_replays_the_first_answer_and_refuses_another_body(backend: Backend) -> None:
    async with api_client(backend) as api:
        body = {"messages": msgs("a", "b")}
        first = await api.post(URL, json=body, headers={"Idempotency-Key": '"turn-1"'})
        again = await api.post(URL, json=body, headers={"Idempotency-Key": "turn-1"})
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        other = await api.post(
            URL, json={"messages": msgs("c")}, headers={"Idempotency-Key": "turn-1"}
        )
        assert other.status_code == 422
        error = other.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["field"] == "idempotency-key"
        assert "Idempotency-Key" in error["message"]
        listed = await api.get(URL)
        assert [m["content"] for m in listed.json()["messages"]] == ["a", "b"]


@pytest.mark.parametrize(
    "header",
    ['""', "k" * 257, ""],
    ids=["empty-quoted", "too-long", "empty"],
)
async def test_rest_malformed_key_header_is_422_naming_the_header(
    backend: Backend, header: str
) -> None:
    async with api_client(backend) as api:
        answer = await api.post(
            URL, json={"messages": msgs("a")}, headers={"Idempotency-Key": header}
        )
        assert answer.status_code == 422
        assert answer.json()["error"]["field"] == "idempotency-key"
        assert (await api.get(URL)).status_code == 404  # nothing stored, not even the conversation


async def test_rest_keys_are_per_tenant(backend: Backend) -> None:
    async with api_client(backend, api_keys=TENANT_KEYS) as api:
        key = {"Idempotency-Key": "shared"}
        a = await api.post(URL, json={"messages": msgs("a")}, headers={**AUTH_A, **key})
        b = await api.post(URL, json={"messages": msgs("b")}, headers={**AUTH_B, **key})
        assert (a.status_code, b.status_code) == (201, 201)
        seen_b = await api.get(URL, headers=AUTH_B)
        assert [m["content"] for m in seen_b.json()["messages"]] == ["b"]


async def test_rest_concurrent_retries_store_once(backend: Backend) -> None:
    async with api_client(backend) as api:
        body = {"messages": msgs("a", "b")}
        answers = await asyncio.gather(
            *(api.post(URL, json=body, headers={"Idempotency-Key": "k"}) for _ in range(10))
        )
        assert {r.status_code for r in answers} == {201}
        assert len({r.text for r in answers}) == 1
        listed = await api.get(URL)
        assert len(listed.json()["messages"]) == 2
