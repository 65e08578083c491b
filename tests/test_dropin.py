"""RedisChatMessageHistory as a drop-in for langchain_community's and langchain_redis's classes:
constructed the ways their users construct them (positional, keywords, sentinel and unix URLs,
client arguments), the attributes and methods their users call (key, id, len, delete, clear,
ttl, key_prefix), one meaning per ttl value, one namespace per key_prefix, and the refusals
that name their rule. Against a real redis-server the tests start (a sentinel too), and on
fakeredis where a client is injected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from agent_memory import (
    ConversationStore,
    InvalidConversationId,
    InvalidInput,
    MessageTooLarge,
    RedisChatMessageHistory,
    Settings,
)
from agent_memory.embedded import RedisProcess
from agent_memory.langchain import history_prefix
from agent_memory.settings import check_prefix, get_settings
from tests.support.servers import Sentinel, node, wait_for

pytestmark = pytest.mark.redis_server

TURN: list[BaseMessage] = [
    SystemMessage("You are terse."),
    HumanMessage("Weather in Paris?", id="h-1"),
    AIMessage(
        "",
        id="a-1",
        tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "call-1"}],
        usage_metadata={"input_tokens": 9, "output_tokens": 4, "total_tokens": 13},
    ),
    ToolMessage("18C, sunny", tool_call_id="call-1", id="t-1"),
    AIMessage("18C and sunny. ☀", id="a-2", response_metadata={"model": "m"}),
]


@pytest.fixture
def url(redis_server: RedisProcess) -> str:
    """The URL of DB 2 on the shared real server, emptied for this test."""
    with redis_server.client(db=2) as control:
        control.flushdb()
    return f"{redis_server.url}/2"


@pytest.fixture
def control(redis_server: RedisProcess) -> Iterator[redis.Redis]:
    with redis_server.client(db=2) as client:
        yield client


# -- construction as the peers' users write it ---------------------------------------------


def _written_and_read(h: RedisChatMessageHistory) -> None:
    h.clear()
    h.add_messages(TURN)
    assert h.messages == TURN
    assert [type(m) for m in h.messages] == [type(m) for m in TURN]


def test_positional_like_langchain_community(url: str, control: redis.Redis) -> None:
    h = RedisChatMessageHistory("user-42", url, "custom:", 60)
    assert (h.session_id, h.key_prefix, h.ttl) == ("user-42", "custom:", 60)
    _written_and_read(h)
    assert control.type(h.key) == b"stream"
    assert 0 < control.pttl(h.key) <= 60_000


def test_keywords_like_langchain_community(url: str) -> None:
    h = RedisChatMessageHistory(session_id="user-42", url=url, key_prefix="message_store:", ttl=600)
    _written_and_read(h)
    assert RedisChatMessageHistory("user-42", url=url, key_prefix="message_store:").messages == TURN


def test_keywords_like_langchain_redis(url: str) -> None:
    h = RedisChatMessageHistory(
        session_id="user-42",
        redis_url=url,
        key_prefix="chat:",
        ttl=3600,
        index_name="idx:chat_history",
        overwrite_index=True,
    )
    assert (h.id, h.index_name, h.overwrite_index) == ("user-42", "idx:chat_history", True)
    _written_and_read(h)


def test_an_injected_client_like_langchain_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    h = RedisChatMessageHistory("user-42", redis_client=client, key_prefix="chat:")
    assert h.redis_client is client
    _written_and_read(h)
    client.close()


def test_the_database_is_the_urls(redis_server: RedisProcess, url: str) -> None:
    h = RedisChatMessageHistory("s", f"{redis_server.url}/5")
    h.add_messages([HumanMessage("in five")])
    with redis_server.client(db=5) as five:
        assert five.exists(h.key)
        five.flushdb()


def test_a_unix_socket_url(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server = RedisProcess(tmp_path / "unix", unix_socket=str(sock)).start()
    try:
        h = RedisChatMessageHistory("s", f"unix://{sock}?db=2")
        _written_and_read(h)
        assert h.redis_client.connection_pool.connection_kwargs["path"] == str(sock)
    finally:
        server.stop()


def test_a_rediss_url_makes_a_tls_client_without_connecting() -> None:
    h = RedisChatMessageHistory("s", "rediss://127.0.0.1:1/2", ssl_cert_reqs="none")
    assert issubclass(h.redis_client.connection_pool.connection_class, redis.SSLConnection)


@pytest.fixture
def sentinel_primary(tmp_path: Path) -> Iterator[tuple[RedisProcess, Sentinel]]:
    primary = node(tmp_path / "primary")
    sentinel = Sentinel(tmp_path / "sentinel", primary.port)
    with sentinel.client() as s:
        wait_for(lambda: s.sentinel_master("mymaster"), 10, "the sentinel to know its master")
    yield primary, sentinel
    sentinel.stop()
    primary.kill()


def test_a_sentinel_url_reaches_the_master_and_database(
    sentinel_primary: tuple[RedisProcess, Sentinel],
) -> None:
    primary, sentinel = sentinel_primary
    link = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/2"
    h = RedisChatMessageHistory("via-sentinel", link, socket_timeout=2)
    _written_and_read(h)
    with primary.client(db=2) as direct:
        assert direct.type(h.key) == b"stream"

    async def read_async() -> list[BaseMessage]:
        try:
            return await RedisChatMessageHistory("via-sentinel", redis_url=link).aget_messages()
        finally:
            from agent_memory import connection

            settings = connection.settings_for_url(get_settings(), link)
            await connection.shared_async_client(settings).aclose()

    assert asyncio.run(read_async()) == TURN
    with ConversationStore.from_url(link) as store:  # the stores take the same URLs
        assert len(store.get_messages("via-sentinel")) == len(TURN)


def test_sentinel_urls_parse_as_the_peers_parse_them() -> None:
    from agent_memory.connection import settings_for_url

    base = Settings(redis_url=None, redis_host=None)
    s = settings_for_url(base, "redis+sentinel://:secret@sentinel-a:26380/cache/2")
    assert (s.sentinels, s.redis_sentinel_master, s.redis_db) == (
        [("sentinel-a", 26380)],
        "cache",
        2,
    )
    assert s.redis_password is not None
    assert s.redis_password.get_secret_value() == "secret"
    assert s.redis_sentinel_password == s.redis_password
    bare = settings_for_url(base, "redis+sentinel://sentinel-a")
    assert (bare.sentinels, bare.redis_sentinel_master, bare.redis_db) == (
        [("sentinel-a", 26379)],
        "mymaster",
        0,
    )
    assert settings_for_url(base, "rediss+sentinel://h/m/1").tls
    configured = Settings(redis_sentinels="s1:26379")  # the URL wins over the environment's
    assert settings_for_url(configured, "redis://h:6379/2").sentinels == []


# -- client arguments ------------------------------------------------------------------------


def test_client_keyword_arguments_reach_the_client(url: str) -> None:
    h = RedisChatMessageHistory("s", redis_url=url, socket_timeout=5, client_name="app-7")
    kwargs = h.redis_client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["client_name"]) == (5, "app-7")
    h.add_messages([HumanMessage("hi")])
    names = [c["name"] for c in h.redis_client.client_list()]
    assert "app-7" in names


def test_decode_responses_true_reads_back_exactly(url: str) -> None:
    """The client then answers str, not bytes: the payloads are still read exactly, and the
    user's own calls on ``redis_client`` get str, as with the peer."""
    h = RedisChatMessageHistory("s", redis_url=url, decode_responses=True)
    _written_and_read(h)
    assert h.redis_client.type(h.key) == "stream"
    assert len(h) == len(TURN)

    async def read_async() -> list[BaseMessage]:
        return await h.aget_messages()

    assert asyncio.run(read_async()) == TURN


def test_decode_responses_true_on_an_injected_fakeredis_client() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    h = RedisChatMessageHistory("s", redis_client=client)
    _written_and_read(h)
    assert len(h) == len(TURN)


def test_an_unknown_client_argument_is_a_type_error_at_construction() -> None:
    with pytest.raises(TypeError, match="unexpected keyword arguments for the Redis client: bogus"):
        RedisChatMessageHistory("s", redis_url="redis://127.0.0.1:1/2", bogus=1)


def test_histories_with_the_same_arguments_share_one_store_and_client(url: str) -> None:
    a = RedisChatMessageHistory("a", redis_url=url, socket_timeout=5)
    b = RedisChatMessageHistory("b", url, socket_timeout=5)
    c = RedisChatMessageHistory("c", url, socket_timeout=6)
    assert a.store is b.store
    assert a.redis_client is b.redis_client
    assert c.redis_client is not a.redis_client


# -- attributes and methods the peers' users call ---------------------------------------------


def test_len_id_key_and_clear(url: str, control: redis.Redis) -> None:
    h = RedisChatMessageHistory("user-42", url)
    assert len(h) == 0
    assert h.messages == []
    h.add_user_message("hi")
    h.add_ai_message("hello")
    assert len(h) == 2
    assert h.id == h.session_id == "user-42"
    assert control.xlen(h.key) == 2
    h.clear()
    assert len(h) == 0
    assert not control.exists(h.key)


def test_delete_removes_every_session_under_its_prefix_only(url: str, control: redis.Redis) -> None:
    chat = [RedisChatMessageHistory(f"s{i}", url, "chat:") for i in range(3)]
    other = RedisChatMessageHistory("s0", url, "chat::")
    for h in [*chat, other]:
        h.add_user_message(f"hello from {h.key_prefix}")
    chat[0].delete()
    assert [len(h) for h in chat] == [0, 0, 0]
    assert [m.content for m in other.messages] == ["hello from chat::"]
    prefix = chat[0].store.keys.prefix
    assert not list(control.scan_iter(match=f"{prefix}:*"))


def test_the_redis_client_attribute_is_usable_directly(url: str) -> None:
    h = RedisChatMessageHistory("s", url)
    h.add_user_message("hi")
    assert h.redis_client.exists(h.key) == 1
    assert h.redis_client.ttl(h.key) > 0


# -- ttl: one meaning per value --------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "applied"),
    [
        (60, 60),
        (90.5, 90.5),
        (3600.0, 3600),
        (timedelta(hours=1), 3600),
        (timedelta(0, 1.25), 1.25),
    ],
)
def test_ttl_forms(url: str, control: redis.Redis, given: Any, applied: float) -> None:
    h = RedisChatMessageHistory("s", url, ttl=given)
    assert h.ttl == applied
    h.add_user_message("hi")
    assert applied * 1000 - 1000 < control.pttl(h.key) <= applied * 1000


def test_ttl_none_is_the_configured_ttl_never_forever(url: str, control: redis.Redis) -> None:
    h = RedisChatMessageHistory("s", url)
    assert h.ttl == get_settings().ttl_seconds == 2_592_000
    h.add_user_message("hi")
    assert control.ttl(h.key) > 2_591_000
    ours = RedisChatMessageHistory("s", url, settings=Settings(ttl_seconds=120))
    assert ours.ttl == 120


@pytest.mark.parametrize("never", [0, -1, 0.0, -3.5, timedelta(0), timedelta(seconds=-5)])
def test_the_peers_no_expiry_values_are_refused_naming_the_rule(never: Any) -> None:
    with pytest.raises(InvalidInput, match=r"never expire.*every key agent-memory writes expires"):
        RedisChatMessageHistory("s", "redis://127.0.0.1:1/2", ttl=never)


@pytest.mark.parametrize("bad", [True, "3600", float("nan"), float("inf"), [60]])
def test_other_ttl_values_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidInput, match="ttl"):
        RedisChatMessageHistory("s", "redis://127.0.0.1:1/2", ttl=bad)


# -- key_prefix: one namespace each ----------------------------------------------------------

PEER_PREFIXES = ["custom:", "myapp:", "myapp::", "", "message_store:", "chat:", "myapp"]


def test_each_prefix_is_its_own_namespace(url: str, control: redis.Redis) -> None:
    histories = [RedisChatMessageHistory("same-session", url, p) for p in PEER_PREFIXES]
    default = RedisChatMessageHistory("same-session", url)
    for h in [*histories, default]:
        h.add_user_message(f"under {h.key_prefix!r}")
    for h in histories:
        assert h.key_prefix in PEER_PREFIXES  # read back as given
        assert [m.content for m in h.messages] == [f"under {h.key_prefix!r}"]
    assert default.key_prefix == "agent_memory"
    assert len({h.key for h in histories}) == len(PEER_PREFIXES)
    # clearing one prefix's keys (SCAN of its pattern) leaves every other prefix's alone
    histories[1].delete()  # "myapp:"
    assert [len(h) for h in histories] == [1, 0, 1, 1, 1, 1, 1]


def test_plain_prefixes_are_the_stores_own_names() -> None:
    assert history_prefix("agent_memory") == "agent_memory"
    assert history_prefix("tenant-a") == "tenant-a"
    assert history_prefix("message_store:") == "message_store%3A"
    assert history_prefix("") == "%"


@given(st.text(max_size=12), st.text(max_size=12))
def test_the_prefix_mapping_is_one_to_one(a: str, b: str) -> None:
    bad = [c for c in a + b if ord(c) < 32 or ord(c) == 127]
    if bad:
        return
    mapped_a, mapped_b = history_prefix(a), history_prefix(b)
    assert (mapped_a == mapped_b) == (a == b)
    assert check_prefix(mapped_a) == mapped_a
    assert ":" not in mapped_a


def test_a_control_character_in_a_prefix_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"key_prefix .* control character"):
        RedisChatMessageHistory("s", "redis://127.0.0.1:1/2", "bad\n:")


# -- the store's refusals, naming their rule --------------------------------------------------


def test_refused_session_ids_say_which_rule() -> None:
    with pytest.raises(InvalidConversationId, match=r"control character U\+000A.*fixed rule"):
        RedisChatMessageHistory("a\nb", "redis://127.0.0.1:1/2")
    with pytest.raises(InvalidConversationId, match=r"257 characters.*fixed limit.*sha256"):
        RedisChatMessageHistory("x" * 257, "redis://127.0.0.1:1/2")
    with pytest.raises(ValueError, match="must not be empty"):  # the peer raises ValueError too
        RedisChatMessageHistory("", "redis://127.0.0.1:1/2")


def test_an_oversize_message_says_how_to_raise_the_limit(url: str) -> None:
    h = RedisChatMessageHistory("s", url, settings=Settings(max_message_bytes=100))
    with pytest.raises(MessageTooLarge, match=r"the limit is 100.*AGENT_MEMORY_MAX_MESSAGE_BYTES"):
        h.add_user_message("x" * 200)
    assert len(h) == 0


def test_a_message_id_given_twice_is_stored_once(url: str) -> None:
    h = RedisChatMessageHistory("s", url)
    h.add_message(HumanMessage("hi", id="m-1"))
    h.add_message(HumanMessage("hi again", id="m-1"))
    assert [m.content for m in h.messages] == ["hi"]


# -- settings: the environment read once --------------------------------------------------------


@pytest.fixture
def fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_environment_is_read_once_then_on_request(
    fresh_settings_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_TTL_AGENT_MEMORY", "111")
    first = RedisChatMessageHistory("s", "redis://127.0.0.1:1/2")
    assert first.ttl == 111
    assert Settings.cached() is get_settings()
    monkeypatch.setenv("CACHE_TTL_AGENT_MEMORY", "222")
    monkeypatch.setenv("REDIS_PORT", "not-a-port")  # read now, construction would fail
    assert RedisChatMessageHistory("s", "redis://127.0.0.1:1/2").ttl == 111
    monkeypatch.delenv("REDIS_PORT")
    assert get_settings(reload=True).ttl_seconds == 222
    assert RedisChatMessageHistory("s", "redis://127.0.0.1:1/2").ttl == 222
    monkeypatch.setenv("CACHE_TTL_AGENT_MEMORY", "333")
    get_settings.cache_clear()
    assert Settings.cached().ttl_seconds == 333


# -- behaviour the peers' users rely on, on our class ----------------------------------------
# Each runs on a real server through a URL (the drop-in form) and on fakeredis through an
# injected client: ``make(session_id, *args, **kwargs)`` builds a history on the backend.

Make = Callable[..., RedisChatMessageHistory]


@dataclass
class Backend:
    make: Make
    raw: redis.Redis


@pytest.fixture(params=["real-url", "fake-client"])
def on(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "real-url":
        link: str = request.getfixturevalue("url")
        raw = redis.Redis.from_url(link)
        yield Backend(lambda sid, *a, **kw: RedisChatMessageHistory(sid, link, *a, **kw), raw)
        raw.close()
        return
    server = fakeredis.FakeServer()
    raw = fakeredis.FakeRedis(server=server)

    def make(sid: str, *args: Any, **kwargs: Any) -> RedisChatMessageHistory:
        return RedisChatMessageHistory(
            sid,
            None,
            *args,
            redis_client=raw,
            async_redis_client=fakeredis.FakeAsyncRedis(server=server),
            **kwargs,
        )

    yield Backend(make, raw)
    raw.close()


def test_a_conversation_built_turn_by_turn_reads_back_in_order(on: Backend) -> None:
    h = on.make("conv")
    for i in range(60):
        h.add_user_message(f"question {i}")
        h.add_ai_message(f"answer {i}")
    contents = [m.content for m in h.messages]
    assert contents == [f"{kind} {i}" for i in range(60) for kind in ("question", "answer")]
    assert len(h) == 120


def test_two_sessions_do_not_see_each_other(on: Backend) -> None:
    a, b = on.make("a"), on.make("b")
    a.add_user_message("for a")
    b.add_user_message("for b")
    assert [m.content for m in a.messages] == ["for a"]
    a.clear()
    assert [m.content for m in b.messages] == ["for b"]


def test_a_new_object_for_the_same_session_sees_the_history(on: Backend) -> None:
    on.make("s").add_messages(TURN)
    assert on.make("s").messages == TURN
    assert on.make("s").messages == TURN


def test_clear_then_add_starts_a_fresh_history(on: Backend) -> None:
    h = on.make("s")
    h.add_user_message("old")
    h.clear()
    h.add_user_message("new")
    assert [m.content for m in h.messages] == ["new"]


def test_session_ids_with_separators_unicode_and_glob_characters(on: Backend) -> None:
    ids = ["user:42", "user:42:", "ユーザー🙂", "a*b?[c]", "{tag}", "with space", "back\\slash"]
    for sid in ids:
        on.make(sid, "chat:").add_user_message(f"I am {sid}")
    for sid in ids:
        assert [m.content for m in on.make(sid, "chat:").messages] == [f"I am {sid}"]


def test_additional_kwargs_and_tool_messages_survive(on: Backend) -> None:
    h = on.make("s")
    messages: list[BaseMessage] = [
        HumanMessage("x", additional_kwargs={"attachments": [{"name": "a.png", "size": 10}]}),
        ToolMessage("done", tool_call_id="c-9", status="error", artifact={"rows": 3}),
    ]
    h.add_messages(messages)
    assert h.messages == messages


def test_a_ttl_expires_the_history(on: Backend) -> None:
    h = on.make("s", ttl=timedelta(milliseconds=300))
    h.add_user_message("soon gone")
    assert len(h) == 1
    time.sleep(0.5)
    assert h.messages == []
    assert len(h) == 0


def test_a_write_refreshes_the_ttl(on: Backend) -> None:
    h = on.make("s", ttl=2)
    h.add_user_message("one")
    time.sleep(1.1)
    h.add_user_message("two")
    assert on.raw.pttl(h.key) > 1500


async def test_the_async_methods_against_the_same_data(on: Backend) -> None:
    h = on.make("async", "chat:")
    await h.aadd_messages(TURN)
    assert await h.aget_messages() == TURN
    assert on.make("async", "chat:").messages == TURN
    await h.aclear()
    assert len(h) == 0
    if h.store.settings.redis_url:  # the shared asyncio client of this loop (real server)
        from agent_memory import connection

        await connection.shared_async_client(h.store.settings).aclose()


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_a_history_per_request_in_runnable_with_message_history(on: Backend) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory

    seen: list[int] = []

    def factory(session_id: str) -> RedisChatMessageHistory:  # a new object per call
        h = on.make(session_id, "chat:")
        seen.append(len(h))
        return h

    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{question}")]
    )
    model = GenericFakeChatModel(messages=iter([AIMessage("Hi Ada"), AIMessage("Ada")]))
    bot = RunnableWithMessageHistory(
        prompt | model, factory, input_messages_key="question", history_messages_key="history"
    )
    config: Any = {"configurable": {"session_id": "ada"}}
    bot.invoke({"question": "I'm Ada"}, config=config)
    bot.invoke({"question": "What's my name?"}, config=config)
    contents = [m.content for m in on.make("ada", "chat:").messages]
    assert contents == ["I'm Ada", "Hi Ada", "What's my name?", "Ada"]
    assert seen == [0, 2]
