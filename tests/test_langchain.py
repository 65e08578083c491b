"""RedisChatMessageHistory as LangChain uses it: exact round trips of every message type through
each write path, a real chain with RunnableWithMessageHistory over several turns, a restart,
isolated sessions, and no warnings of our own."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.history import RunnableWithMessageHistory

from agent_memory import (
    AsyncConversationStore,
    ConversationStore,
    InvalidInput,
    RedisChatMessageHistory,
)
from tests.support.backends import Backend
from tests.support.samples import FIDELITY
from tests.support.settings import make_settings

HistoryFactory = Callable[..., RedisChatMessageHistory]


@pytest.fixture
async def history(backend: Backend) -> AsyncIterator[HistoryFactory]:
    """Histories on ``backend`` (the async client is given explicitly: fakeredis has no URL)."""
    opened: list[redis.asyncio.Redis] = []

    def make(session_id: str, **kwargs: Any) -> RedisChatMessageHistory:
        client = backend.async_client()
        opened.append(client)
        return RedisChatMessageHistory(
            session_id,
            redis_client=backend.client,
            async_redis_client=client,
            settings=make_settings(),
            **kwargs,
        )

    yield make
    for client in opened:
        await client.aclose()


WRITTEN = [w for _, w, _ in FIDELITY]
EXPECTED = [e for _, _, e in FIDELITY]


def same(got: list[BaseMessage], expected: list[BaseMessage]) -> None:
    assert got == expected
    assert [type(m) for m in got] == [type(m) for m in expected]


async def test_every_type_round_trips_through_add_message(history: HistoryFactory) -> None:
    h = history("s")
    for message in WRITTEN:
        h.add_message(message)
    same(h.messages, EXPECTED)
    same(await h.aget_messages(), EXPECTED)


async def test_every_type_round_trips_through_add_messages(history: HistoryFactory) -> None:
    h = history("s")
    h.add_messages(WRITTEN)
    same(h.messages, EXPECTED)
    same(history("s").messages, EXPECTED)


async def test_every_type_round_trips_through_aadd_messages(history: HistoryFactory) -> None:
    h = history("s")
    await h.aadd_messages(WRITTEN)
    same(await h.aget_messages(), EXPECTED)
    same(h.messages, EXPECTED)


async def test_add_messages_is_idempotent_on_message_ids(history: HistoryFactory) -> None:
    h = history("s")
    batch = [HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")]
    h.add_messages(batch)
    h.add_messages(batch)  # a retried turn
    await h.aadd_messages(batch)
    same(h.messages, batch)


async def test_clear_and_aclear(history: HistoryFactory) -> None:
    h = history("s")
    h.add_messages([HumanMessage("x")])
    h.clear()
    assert h.messages == []
    await h.aadd_messages([HumanMessage("y")])
    await h.aclear()
    assert await h.aget_messages() == []


async def test_window_reads_only_the_last_messages(history: HistoryFactory) -> None:
    h = history("s", window=2)
    h.add_messages([HumanMessage(str(i)) for i in range(5)])
    assert [m.content for m in h.messages] == ["3", "4"]
    assert [m.content for m in await h.aget_messages()] == ["3", "4"]
    with pytest.raises(InvalidInput):
        history("s", window=0)


# -- a real chain ---------------------------------------------------------------------------

PROMPT = ChatPromptTemplate.from_messages(
    [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{question}")]
)


def chain(
    replies: list[str], get_history: Callable[[str], RedisChatMessageHistory]
) -> RunnableWithMessageHistory:
    model = GenericFakeChatModel(messages=iter([AIMessage(r) for r in replies]))
    return RunnableWithMessageHistory(
        PROMPT | model,
        get_history,
        input_messages_key="question",
        history_messages_key="history",
    )


def texts(messages: list[BaseMessage]) -> list[tuple[str, Any]]:
    return [(m.type, m.content) for m in messages]


CONVERSATION = [
    ("human", "I'm Ada"),
    ("ai", "Hi Ada"),
    ("human", "What's my name?"),
    ("ai", "Ada"),
    ("human", "Thanks"),
    ("ai", "Bye"),
]


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_message_history_over_several_turns(backend: Backend) -> None:
    histories: dict[str, RedisChatMessageHistory] = {}

    def get_history(session_id: str) -> RedisChatMessageHistory:
        return histories.setdefault(
            session_id,
            RedisChatMessageHistory(
                session_id, redis_client=backend.client, settings=make_settings()
            ),
        )

    seen_by_model: list[list[BaseMessage]] = []
    bot = chain(["Hi Ada", "Ada", "Bye"], get_history)
    config: RunnableConfig = {"configurable": {"session_id": "ada"}}
    for question in ("I'm Ada", "What's my name?", "Thanks"):
        seen_by_model.append(list(get_history("ada").messages))
        reply = bot.invoke({"question": question}, config=config)
        assert isinstance(reply, AIMessage)
    assert texts(get_history("ada").messages) == CONVERSATION
    assert [len(h) for h in seen_by_model] == [0, 2, 4]

    # an agent restart: a new history object (and a new chain) sees the same history
    restarted = RedisChatMessageHistory(
        "ada", redis_client=backend.client, settings=make_settings()
    )
    assert texts(restarted.messages) == CONVERSATION
    assert restarted.messages == get_history("ada").messages

    # another session is isolated
    other = chain(["Who?"], get_history)
    other.invoke({"question": "Do you know me?"}, config={"configurable": {"session_id": "bob"}})
    assert texts(get_history("bob").messages) == [("human", "Do you know me?"), ("ai", "Who?")]
    assert texts(get_history("ada").messages) == CONVERSATION


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
async def test_runnable_with_message_history_async(history: HistoryFactory) -> None:
    histories: dict[str, RedisChatMessageHistory] = {}

    def get_history(session_id: str) -> RedisChatMessageHistory:
        return histories.setdefault(session_id, history(session_id))

    bot = chain(["Hi Ada", "Ada", "Bye"], get_history)
    config: RunnableConfig = {"configurable": {"session_id": "ada"}}
    for question in ("I'm Ada", "What's my name?", "Thanks"):
        await bot.ainvoke({"question": question}, config=config)
    restarted = history("ada")
    assert texts(await restarted.aget_messages()) == CONVERSATION
    assert texts(restarted.messages) == CONVERSATION
    assert await history("bob").aget_messages() == []


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_the_model_sees_the_stored_history(backend: Backend) -> None:
    prompts: list[list[BaseMessage]] = []

    class Recording(GenericFakeChatModel):
        def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
            prompts.append(list(messages))
            return super()._generate(messages, *args, **kwargs)

    model = Recording(messages=iter([AIMessage("one"), AIMessage("two")]))
    bot = RunnableWithMessageHistory(
        PROMPT | model,
        lambda sid: RedisChatMessageHistory(
            sid, redis_client=backend.client, settings=make_settings()
        ),
        input_messages_key="question",
        history_messages_key="history",
    )
    config: RunnableConfig = {"configurable": {"session_id": "s"}}
    bot.invoke({"question": "q1"}, config=config)
    bot.invoke({"question": "q2"}, config=config)
    assert prompts[1] == [
        SystemMessage("You are terse."),
        HumanMessage("q1"),
        AIMessage("one", id=prompts[1][2].id),
        HumanMessage("q2"),
    ]


# -- no warnings of our own -----------------------------------------------------------------


@pytest.fixture
def no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_sync_use_emits_no_warning(backend: Backend, no_warnings: None) -> None:
    h = RedisChatMessageHistory("w", redis_client=backend.client, settings=make_settings())
    h.add_message(HumanMessage("a"))
    h.add_messages([AIMessage("b")])
    assert len(h.messages) == 2
    h.clear()


async def test_async_use_emits_no_warning(backend: Backend) -> None:
    client = backend.async_client()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            h = RedisChatMessageHistory(
                "w",
                redis_client=backend.client,
                async_redis_client=client,
                settings=make_settings(),
            )
            await h.aadd_messages([HumanMessage("a"), AIMessage("b")])
            assert len(await h.aget_messages()) == 2
            await h.aclear()
    finally:
        await client.aclose()


def test_constructing_does_no_io_and_takes_peer_arguments() -> None:
    # a URL nobody listens on: constructing must not connect
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = RedisChatMessageHistory(
            "s",
            redis_url="redis://127.0.0.1:1/2",
            key_prefix="message_store:",
            ttl=60,
            index_name="ignored",
        )
    assert h.key_prefix == "message_store:"
    assert h.ttl == 60
    with pytest.raises(TypeError, match="bogus"):  # redis-py's own refusal, as for the peer
        RedisChatMessageHistory("s", redis_url="redis://127.0.0.1:1/2", bogus=1)


async def test_the_stores_read_langchain_messages_as_get_messages_then_to_langchain(
    store: ConversationStore, astore: AsyncConversationStore
) -> None:
    written = [w for _, w, _ in FIDELITY]
    store.append("lc", written)
    stored = store.get_messages("lc")
    expected = [m.to_langchain() for m in stored]
    for got in (store.get_langchain_messages("lc"), await astore.get_langchain_messages("lc")):
        assert got == expected
        assert [type(m) for m in got] == [type(m) for m in expected]
    last_two = store.get_langchain_messages("lc", limit=2)
    assert last_two == expected[-2:]
    assert await astore.get_langchain_messages("lc", limit=2) == expected[-2:]
    assert store.get_langchain_messages("missing") == []
    # two reads never share a dict
    again = store.get_langchain_messages("lc")
    pairs = zip(got, again, strict=True)
    assert all(a.response_metadata is not b.response_metadata for a, b in pairs)
