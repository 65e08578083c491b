"""The key schema: injective, glob- and brace-safe encoding of ids, and that no id reaches
another conversation's keys on a real store."""

from __future__ import annotations

import re

import fakeredis
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent_memory import ConversationNotFound, ConversationStore, InvalidConversationId
from agent_memory.keys import (
    MAX_ID_LENGTH,
    KeySchema,
    decode_id,
    encode_id,
    glob_escape,
    validate_id,
)
from tests.support.backends import key_names
from tests.support.drivers import Driver
from tests.support.settings import make_settings

NASTY = ["*", "a*", "?", "a?", "[ab]", "a", "b", "ab", "{x}", "x", "}{", "{", "}", "%", "%2A"]
NASTY += ["\\", "a\\*", ":", "c:{x}:s", "x}:s", "*:*", "[^a]", "a-b", "ü{é}", "🙂*"]

ids = st.text(min_size=1, max_size=40)
special_heavy = st.text(alphabet=st.sampled_from("%{}*?[]\\:a-^bé🙂"), min_size=1, max_size=20)
GLOB_CHARS = set("*?[]\\")
valid_ids = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)


@given(st.one_of(ids, special_heavy))
@example("%")
@example("%25")
@example("*")
def test_decode_inverts_encode(raw: str) -> None:
    assert decode_id(encode_id(raw)) == raw


@given(st.one_of(ids, special_heavy), st.one_of(ids, special_heavy))
@example("%", "%25")
@example("%2A", "*")
def test_encode_is_injective(a: str, b: str) -> None:
    if a != b:
        assert encode_id(a) != encode_id(b)


def unescaped_glob(text: str) -> list[str]:
    """The glob characters of ``text`` that a SCAN MATCH would treat as special."""
    found, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in GLOB_CHARS:
            found.append(text[i])
        i += 1
    return found


@given(st.one_of(ids, special_heavy))
def test_a_key_has_one_hash_tag_and_no_glob_characters(raw: str) -> None:
    keys = KeySchema("agent_memory").conversation(raw)
    for key in keys.all:
        assert key.count("{") == 1
        assert key.count("}") == 1
        assert re.fullmatch(r"agent_memory:c:\{[^{}]+\}:[shit]", key)
        assert not GLOB_CHARS & set(key)
    schema = KeySchema("p")
    for key in (schema.index_user(raw), schema.index_agent(raw)):
        assert not GLOB_CHARS & set(key)
        assert "{" not in key
        assert "}" not in key


@given(st.text(min_size=1, max_size=30))
def test_glob_escape_leaves_nothing_special(text: str) -> None:
    assert unescaped_glob(glob_escape(text)) == []


def test_the_hash_tag_is_the_encoded_id() -> None:
    keys = KeySchema("agent_memory").conversation("chat:{1}*")
    assert keys.stream == "agent_memory:c:{chat%3A%7B1%7D%2A}:s"
    assert keys.meta.endswith(":h")
    assert keys.ids.endswith(":i")
    assert keys.tokens.endswith(":t")
    assert encode_id("plain-id_ü 1") == "plain-id_ü 1"


@pytest.mark.parametrize("good", ["x", "a" * MAX_ID_LENGTH, "héllo wörld", "🙂", "a b"])
def test_validate_id_accepts_any_printable_text(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("", "empty"),
        ("a" * (MAX_ID_LENGTH + 1), "257 characters"),
        ("a\nb", "U+000A"),
        ("\x00", "U+0000"),
        ("tab\t", "U+0009"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        (42, "string"),
        (None, "string"),
    ],
)
def test_validate_id_rejects_with_a_message_naming_the_problem(bad: object, words: str) -> None:
    with pytest.raises(InvalidConversationId, match=re.escape(words)) as info:
        validate_id(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.field == "conversation id"


# -- on a real store: no id reaches another conversation's keys ---------------------------


async def test_ids_with_glob_and_brace_characters_stay_apart(drv: Driver) -> None:
    for i, cid in enumerate(NASTY):
        await drv.create(cid, user_id=cid, title=f"t{i}")
        await drv.append(cid, [{"role": "user", "content": f"for {cid}", "id": "same"}])
    for i, cid in enumerate(NASTY):
        (only,) = await drv.get_messages(cid)
        assert only.record["content"] == f"for {cid}"
        assert (await drv.get_conversation(cid)).title == f"t{i}"
        assert [c.id for c in (await drv.list_conversations(user_id=cid)).items] == [cid]
    listed = (await drv.list_conversations(limit=100)).items
    assert sorted(c.id for c in listed) == sorted(NASTY)
    stream_keys = [k for k in key_names(drv.raw, "agent_memory:c:*") if k.endswith(":s")]
    assert len(stream_keys) == len(NASTY)


@pytest.mark.parametrize("victim", ["*", "a*", "[ab]", "{x}", "?", "\\"])
async def test_deleting_a_glob_like_id_deletes_only_that_conversation(
    drv: Driver, victim: str
) -> None:
    for cid in NASTY:
        await drv.create(cid, user_id=cid)
        await drv.append(cid, [{"role": "user", "content": cid}])
    assert await drv.delete_conversation(victim) is True
    assert await drv.delete_user(victim) == 0
    with pytest.raises(ConversationNotFound):
        await drv.get_conversation(victim)
    for cid in NASTY:
        if cid != victim:
            assert [m.record["content"] for m in await drv.get_messages(cid)] == [cid]
            assert (await drv.get_conversation(cid)).id == cid


async def test_delete_user_with_a_glob_like_id_erases_only_that_user(drv: Driver) -> None:
    for cid in NASTY:
        await drv.create(f"conv-{cid}", user_id=cid)
    assert await drv.delete_user("*") == 1
    assert await drv.delete_user("[ab]") == 1
    left = sorted(c.user_id or "" for c in (await drv.list_conversations(limit=100)).items)
    assert left == sorted(u for u in NASTY if u not in ("*", "[ab]"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(special_heavy, valid_ids), min_size=2, max_size=5, unique=True))
def test_generated_ids_never_touch_each_others_keys(conversation_ids: list[str]) -> None:
    client = fakeredis.FakeRedis(protocol=3)
    store = ConversationStore(client, settings=make_settings())
    for cid in conversation_ids:
        store.append(cid, [{"role": "user", "content": cid, "id": "same-id"}])
    victim, *others = conversation_ids
    assert store.delete_conversation(victim) is True
    assert store.get_messages(victim) == []
    for cid in others:
        assert [m.record["content"] for m in store.get_messages(cid)] == [cid]
    listed = {c.id for c in store.list_conversations(limit=10).items}
    assert listed == set(others)
    client.close()


def test_the_core_remembers_validated_ids_and_keys_within_a_bound() -> None:
    from agent_memory.core import _KEYS_CACHED, StoreConfig, StoreCore

    core = StoreCore(StoreConfig(KeySchema("p"), 1000))
    first = core.conversation_keys("a{b}*")
    assert core.conversation_keys("a{b}*") is first  # remembered
    assert first == KeySchema("p").conversation("a{b}*")
    with pytest.raises(InvalidConversationId):
        core.conversation_keys("bad\x00id")  # never remembered: refused every time
    with pytest.raises(InvalidConversationId):
        core.conversation_keys("bad\x00id")
    for i in range(_KEYS_CACHED + 10):
        core.conversation_keys(f"c{i}")
    assert len(core._keys) <= _KEYS_CACHED
