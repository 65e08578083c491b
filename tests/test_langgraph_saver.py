"""RedisSaver / AsyncRedisSaver behaviour beyond the conformance suite, on fakeredis, a
redis-server and a valkey-server (the ``backend`` fixture): a thread is a conversation whose
messages are stored once; values that are not extensions restore exactly (InMemorySaver is the
oracle); one round trip per put / put_writes / get_tuple; TTLs; deletion through the store;
concurrent writers;
errors."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypedDict

import fakeredis
import pytest
import redis
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import (
    REMOVE_ALL_MESSAGES,
    _messages_delta_reducer,
    add_messages,
)

from agent_memory import (
    ConversationStore,
    InvalidInput,
    RedisChatMessageHistory,
    Settings,
    StoreUnavailable,
)
from agent_memory.embedded import free_port
from agent_memory.langgraph import AsyncRedisSaver, RedisSaver
from tests.support.backends import DB, commands_since_reset
from tests.support.settings import make_settings

USAGE = {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: int


class DeltaState(TypedDict):
    messages: Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer)]


def _bot(state: Any) -> dict[str, Any]:
    last = state["messages"][-1]
    reply = AIMessage(
        f"echo {last.content}",
        tool_calls=[{"id": f"call-{uuid.uuid4().hex[:6]}", "name": "look", "args": {"q": "x"}}],
        usage_metadata=USAGE,
    )
    return {"messages": [reply], "turns": state.get("turns", 0) + 1}


def _graph(saver: Any, state: type = State) -> Any:
    builder: Any = StateGraph(state)
    builder.add_node("bot", _bot)
    builder.add_edge(START, "bot")
    builder.add_edge("bot", END)
    return builder.compile(checkpointer=saver)


@pytest.fixture
def saver(backend: Any, settings: Settings) -> RedisSaver:
    return RedisSaver(backend.client, settings=settings)


def _fresh(backend: Any, settings: Settings) -> RedisSaver:
    """Another saver on the same database: nothing remembered, as a new process."""
    return RedisSaver(backend.client, settings=settings)


def _own_client(backend: Any) -> Any:
    """A second, independent connection to the backend's database (another process's)."""
    if backend.name == "fake":
        return fakeredis.FakeRedis(server=backend._fake_server, protocol=3)
    return redis.Redis.from_url(backend._url, db=2)


def _config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}}


def _count_round_trips(saver: RedisSaver) -> list[int]:
    sent: list[int] = []
    store: Any = saver.store
    real = store._execute

    def spy(batch: Any) -> Any:
        sent.append(len(batch))
        return real(batch)

    store._execute = spy
    return sent


# -- a thread is a conversation ---------------------------------------------------------------
def test_a_threads_messages_are_stored_once_in_its_conversation_stream(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    graph = _graph(saver)
    for i in range(6):
        out = graph.invoke({"messages": [HumanMessage(f"turn {i}")]}, _config("t1"))
    keys = saver.store.keys.conversation("t1")
    assert backend.client.xlen(keys.stream) == len(out["messages"]) == 12
    values = {k: v for k, v in backend.client.hgetall(keys.data).items() if b"\0messages\0" in k}
    assert len(values) >= 6  # one value per version of the channel ...
    assert all(v.startswith(b"am.messages\0") for v in values.values())  # ... each a reference
    state = _graph(_fresh(backend, settings)).get_state(_config("t1")).values
    assert state["messages"] == out["messages"]
    assert [type(m) for m in state["messages"]] == [HumanMessage, AIMessage] * 6


def test_pending_writes_of_messages_refer_to_the_stream_and_read_back_equal(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    graph = _graph(saver)
    for i in range(3):
        graph.invoke({"messages": [HumanMessage(f"turn {i}", id=f"h{i}")]}, _config("w1"))
    keys = saver.store.keys.conversation("w1")
    members = backend.client.zrange(keys.writes, 0, -1)
    of_messages = [m.split(b"\0", 7) for m in members if m.split(b"\0")[5] == b"messages"]
    assert len(of_messages) == 6  # the input's and the bot's, per turn
    kinds = sorted((parts[2].split(b", ")[-1], parts[6]) for parts in of_messages)
    # the inputs (with ids) refer to their stream entries: no second copy. (The bot's replies
    # have no id until add_messages gives them one, which may be before or after LangGraph
    # saves the write: without an id a write cannot be found in the stream and stays in full.)
    assert kinds[:3] == [(b"__start__", b"am.ref")] * 3
    assert not [f for f in backend.client.hkeys(keys.data) if f.startswith(b"p\0")]
    fresh = _fresh(backend, settings)
    theirs = InMemorySaver()
    mem_graph = _graph(theirs)
    for i in range(3):
        mem_graph.invoke({"messages": [HumanMessage(f"turn {i}", id=f"h{i}")]}, _config("w1"))
    ours = [t.pending_writes or [] for t in fresh.list(_config("w1"))]
    expected = [t.pending_writes or [] for t in theirs.list(_config("w1"))]
    assert [[(c, type(v)) for _, c, v in w] for w in ours] == [
        [(c, type(v)) for _, c, v in w] for w in expected
    ]
    first_inputs = [v for w in ours for _, c, v in w if c == "messages" and v[0].id == "h0"]
    assert first_inputs == [[HumanMessage("turn 0", id="h0")]]


def test_pruning_a_checkpoint_drops_the_spec_of_its_message_writes(
    saver: RedisSaver, backend: Any
) -> None:
    graph = _graph(saver)
    graph.invoke({"messages": [HumanMessage("one", id="s1")]}, _config("spec"))
    older = list(saver.list(_config("spec")))[1]  # not the latest: no put will follow it
    # writes on it (as a fork would make) that no child checkpoint consumes
    saver.put_writes(older.config, [("messages", [HumanMessage("two", id="s2")])], "task-x")
    data = saver.store.keys.conversation("spec").data
    assert [f for f in backend.client.hkeys(data) if f.startswith(b"p\0")]
    graph.invoke({"messages": [HumanMessage("three", id="s3")]}, _config("spec"))
    saver.prune(["spec"])
    assert not [f for f in backend.client.hkeys(data) if f.startswith(b"p\0")]


def test_a_write_whose_message_differs_from_the_stream_is_stored_in_full(
    saver: RedisSaver, backend: Any
) -> None:
    graph = _graph(saver)
    graph.invoke({"messages": [HumanMessage("first", id="x1")]}, _config("w2"))
    latest = saver.get_tuple(_config("w2"))
    assert latest is not None
    edited = HumanMessage("edited", id="x1")  # the stream holds x1 as "first"
    saver.put_writes(latest.config, [("messages", [edited])], "task-1")
    got = saver.get_tuple(latest.config)
    assert got is not None
    assert [(c, v) for _, c, v in got.pending_writes or []] == [("messages", [edited])]
    members = backend.client.zrange(saver.store.keys.conversation("w2").writes, 0, -1)
    assert [m.split(b"\0", 7)[6] for m in members if b"task-1" in m] == [b"msgpack"]


def test_a_saver_reads_back_its_own_messages_as_new_equal_objects(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    graph = _graph(saver)
    graph.invoke({"messages": [HumanMessage("hi", id="c1")]}, _config("c"))
    one = saver.get_tuple(_config("c"))
    two = saver.get_tuple(_config("c"))
    assert one is not None
    assert two is not None
    first, second = (
        one.checkpoint["channel_values"]["messages"],
        two.checkpoint["channel_values"]["messages"],
    )
    assert first == second
    assert all(a is not b for a, b in zip(first, second, strict=True))
    first[1].tool_calls[0]["args"]["q"] = "changed"  # nested, in place, by the caller
    third = saver.get_tuple(_config("c"))
    assert third is not None
    assert third.checkpoint["channel_values"]["messages"] == second
    fresh = _fresh(backend, settings).get_tuple(_config("c"))
    assert fresh is not None
    assert fresh.checkpoint["channel_values"]["messages"] == second


def _put_changed_in_place(
    saver: RedisSaver, thread: str, message: Any, change: Callable[[Any], None]
) -> RunnableConfig:
    """Put ``[message]``, ``change`` it in place, put ``[message, a new one]``: the second
    checkpoint's config."""
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": [message]}
    checkpoint["channel_versions"] = {"messages": saver.get_next_version(None, None)}
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    config = saver.put(config, checkpoint, {}, checkpoint["channel_versions"])
    change(message)
    second = empty_checkpoint()
    second["channel_values"] = {"messages": [message, HumanMessage("next", id=f"{thread}-2")]}
    version = saver.get_next_version(checkpoint["channel_versions"]["messages"], None)
    second["channel_versions"] = {"messages": version}
    return saver.put(config, second, {}, second["channel_versions"])


def test_a_message_extra_changed_in_place_is_stored_again_and_never_shared(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    """Pydantic extras (fields a message class does not declare) count as the message: one
    changed in place after a put is sent again; reads return extras of their own."""
    message = AIMessage("a", id="x1", custom={"tags": ["one"]})

    def change(m: Any) -> None:
        m.custom["tags"].append("two")

    stored = _put_changed_in_place(saver, "extra", message, change)
    for reader in (saver, _fresh(backend, settings)):
        got = reader.get_tuple(stored)
        assert got is not None
        first = got.checkpoint["channel_values"]["messages"][0]
        assert first.custom == {"tags": ["one", "two"]}
        first.custom["tags"].append("mutated by the caller")
        again = reader.get_tuple(stored)
        assert again is not None
        assert again.checkpoint["channel_values"]["messages"][0].custom == {"tags": ["one", "two"]}


def test_a_message_changed_in_place_at_depth_is_stored_again(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    call = {"id": "k1", "name": "look", "args": {"q": "x"}}
    message = AIMessage("", id="deep", tool_calls=[call])

    def change(m: Any) -> None:
        m.tool_calls[0]["args"]["q"] = "changed"  # in place, two levels down

    stored = _put_changed_in_place(saver, "depth", message, change)
    for reader in (saver, _fresh(backend, settings)):
        got = reader.get_tuple(stored)
        assert got is not None
        messages = got.checkpoint["channel_values"]["messages"]
        assert messages[0].tool_calls[0]["args"] == {"q": "changed"}


def test_the_store_and_the_langchain_history_read_the_threads_messages(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    graph = _graph(saver)
    for i in range(3):
        out = graph.invoke({"messages": [HumanMessage(f"q{i}")]}, _config("shared"))
    store = ConversationStore(backend.client, settings=settings)
    assert store.get_langchain_messages("shared") == out["messages"]
    assert store.get_conversation("shared").message_count == 6
    history = RedisChatMessageHistory("shared", redis_client=backend.client, settings=settings)
    assert history.messages == out["messages"]


def test_every_message_class_round_trips_exactly_through_get_tuple(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    messages: list[BaseMessage] = [
        SystemMessage("be brief", id="s1"),
        HumanMessage([{"type": "text", "text": "blocks"}], id="h1", name="ann"),
        AIMessage(
            "",
            id="a1",
            tool_calls=[{"id": "c1", "name": "f", "args": {"x": [1, 2]}}],
            invalid_tool_calls=[{"id": "c2", "name": "g", "args": "{bad", "error": "json"}],
            usage_metadata=USAGE,
            response_metadata={"model": "m"},
            additional_kwargs={"k": {"n": 1}},
        ),
        ToolMessage("out", tool_call_id="c1", id="t1", status="error", artifact={"a": 1}),
        FunctionMessage(content="f out", name="f", id="f1"),
        ChatMessage(content="hi", role="critic", id="ch1"),
    ]
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": messages}
    checkpoint["channel_versions"] = {"messages": saver.get_next_version(None, None)}
    stored = saver.put(
        {"configurable": {"thread_id": "exact", "checkpoint_ns": ""}},
        checkpoint,
        {"source": "input", "step": -1},
        checkpoint["channel_versions"],
    )
    got = _fresh(backend, settings).get_tuple(stored)
    assert got is not None
    restored = got.checkpoint["channel_values"]["messages"]
    assert restored == messages
    assert [type(m) for m in restored] == [type(m) for m in messages]
    assert backend.client.xlen(saver.store.keys.conversation("exact").stream) == 6


def test_values_the_stream_cannot_hold_are_stored_in_full_and_restored_exactly(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    value = [AIMessageChunk(content="partial", id="x1"), {"role": "user", "content": "a dict"}]
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": value}
    checkpoint["channel_versions"] = {"messages": saver.get_next_version(None, None)}
    stored = saver.put(
        {"configurable": {"thread_id": "odd", "checkpoint_ns": ""}},
        checkpoint,
        {},
        checkpoint["channel_versions"],
    )
    got = _fresh(backend, settings).get_tuple(stored)
    assert got is not None
    assert got.checkpoint["channel_values"]["messages"] == value
    assert type(got.checkpoint["channel_values"]["messages"][0]) is AIMessageChunk
    assert backend.client.xlen(saver.store.keys.conversation("odd").stream) == 0


def _edits(graph: Any, config: RunnableConfig) -> Iterator[Any]:
    """A thread whose messages channel is removed from, edited and summarised: each step's
    state values."""
    for i in range(3):
        graph.invoke({"messages": [HumanMessage(f"m{i}", id=f"h{i}")]}, config)
        yield graph.get_state(config).values
    first = graph.get_state(config).values["messages"]
    graph.update_state(config, {"messages": [RemoveMessage(id=first[1].id)]})
    yield graph.get_state(config).values
    graph.update_state(config, {"messages": [HumanMessage("m0, edited", id="h0")]})
    yield graph.get_state(config).values
    graph.invoke({"messages": [HumanMessage("after the edit", id="h9")]}, config)
    yield graph.get_state(config).values
    summary = [RemoveMessage(id=REMOVE_ALL_MESSAGES), SystemMessage("summary", id="sum")]
    graph.update_state(config, {"messages": summary})
    yield graph.get_state(config).values
    graph.invoke({"messages": [HumanMessage("after the summary", id="h10")]}, config)
    yield graph.get_state(config).values


def _deterministic_bot(state: Any) -> dict[str, Any]:
    n = len(state["messages"])
    return {"messages": [AIMessage(f"reply {n}", id=f"ai-{n}-{state['messages'][-1].id}")]}


def _det_graph(saver: Any, state: type = State) -> Any:
    builder: Any = StateGraph(state)
    builder.add_node("bot", _deterministic_bot)
    builder.add_edge(START, "bot")
    builder.add_edge("bot", END)
    return builder.compile(checkpointer=saver)


def test_removed_edited_and_summarised_messages_restore_as_in_memory_saver(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    ours = list(_edits(_det_graph(saver), _config("edits")))
    oracle = list(_edits(_det_graph(InMemorySaver()), _config("edits")))
    assert ours == oracle
    fresh = _det_graph(_fresh(backend, settings)).get_state(_config("edits")).values
    assert fresh == oracle[-1]
    memory = InMemorySaver()
    list(_edits(_det_graph(memory), _config("edits")))
    expected = [t.checkpoint["channel_values"] for t in memory.list(_config("edits"))]
    history = list(_fresh(backend, settings).list(_config("edits")))
    assert [t.checkpoint["channel_values"] for t in history] == expected


def test_a_delta_channel_messages_graph_continues_in_a_new_saver(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    graph = _det_graph(saver, DeltaState)
    oracle = _det_graph(InMemorySaver(), DeltaState)
    for i in range(4):
        graph.invoke({"messages": [HumanMessage(f"d{i}", id=f"d{i}")]}, _config("delta"))
        oracle.invoke({"messages": [HumanMessage(f"d{i}", id=f"d{i}")]}, _config("delta"))
    again = _det_graph(_fresh(backend, settings), DeltaState)
    assert again.get_state(_config("delta")).values == oracle.get_state(_config("delta")).values
    out = again.invoke({"messages": [HumanMessage("more", id="more")]}, _config("delta"))
    expected = oracle.invoke({"messages": [HumanMessage("more", id="more")]}, _config("delta"))
    assert out == expected


async def test_the_async_saver_runs_a_graph_and_a_new_saver_continues_it(
    backend: Any, settings: Settings
) -> None:
    client = backend.async_client()
    graph = _graph(AsyncRedisSaver(client, settings=settings))
    for i in range(3):
        out = await graph.ainvoke({"messages": [HumanMessage(f"a{i}")]}, _config("async"))
    again = _graph(AsyncRedisSaver(client, settings=settings))
    state = await again.aget_state(_config("async"))
    assert state.values["messages"] == out["messages"]
    stream = RedisSaver(backend.client, settings=settings).store.keys.conversation("async").stream
    assert backend.client.xlen(stream) == 6
    await client.aclose()


# -- round trips, TTL, deletion -----------------------------------------------------------------
def test_put_put_writes_and_get_tuple_are_one_round_trip_each(
    saver: RedisSaver, backend: Any
) -> None:
    sent = _count_round_trips(saver)
    graph = _graph(saver)
    graph.invoke({"messages": [HumanMessage("warm")]}, _config("rt"))
    sent.clear()
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": [HumanMessage("x", id="x")], "other": 1}
    checkpoint["channel_versions"] = {"messages": "1", "other": "1"}
    config: RunnableConfig = {"configurable": {"thread_id": "rt", "checkpoint_ns": ""}}
    stored = saver.put(config, checkpoint, {"step": 1}, checkpoint["channel_versions"])
    assert sent == [1]
    saver.put_writes(stored, [("other", 2), ("messages", [])], "task-1")
    assert sent == [1, 1]
    assert saver.get_tuple(stored) is not None
    assert saver.get_tuple(_config("rt")) is not None
    assert sent == [1, 1, 1, 1]
    assert list(saver.list(_config("rt"), limit=2))
    assert sent == [1, 1, 1, 1, 1]


def test_every_key_of_a_thread_has_the_ttl_and_a_write_refreshes_it(
    backend: Any, settings: Settings
) -> None:
    saver = RedisSaver(backend.client, settings=settings, ttl=1000)
    graph = _graph(saver)
    graph.invoke({"messages": [HumanMessage("one")]}, _config("ttl"))
    keys = saver.store.keys.conversation("ttl")
    thread_keys = [*keys.all, *keys.thread]
    for key in thread_keys:
        if backend.client.exists(key):
            backend.client.pexpire(key, 5000)
    graph.invoke({"messages": [HumanMessage("two")]}, _config("ttl"))
    ttls = [backend.client.pttl(k) for k in thread_keys if backend.client.exists(k)]
    assert len(ttls) >= 6
    assert all(900_000 < t <= 1_000_000 for t in ttls), ttls


def test_an_append_through_the_store_refreshes_the_threads_checkpoint_keys(
    saver: RedisSaver, backend: Any
) -> None:
    _graph(saver).invoke({"messages": [HumanMessage("hi", id="a1")]}, _config("tt"))
    keys = saver.store.keys.conversation("tt")
    for key in (*keys.all, *keys.thread):  # as if the last write were long ago (the hash's
        backend.client.pexpire(key, 60_000)  # expiry moved too: see refresh_skippable)
    saver.store.append("tt", [{"role": "user", "content": "from REST", "id": "a2"}])
    present = [key for key in (*keys.all, *keys.thread) if backend.client.exists(key)]
    assert set(keys.thread[:3]) <= set(present)
    expiries = {backend.client.pexpiretime(key) for key in present}
    assert len(expiries) == 1  # one absolute expiry for all of them
    assert backend.client.pttl(keys.checkpoints) > 60_000


# -- the sliding expiry's tolerance (refresh_skippable in lua/_prelude.lua) -------------------
SLACK_MS = 60_000  # min(ttl / 100, 60 s) for the default TTL of 30 days


def _put(saver: RedisSaver, thread: str, n: int, parent: Any = None, run: str | None = None) -> Any:
    """A checkpoint of ``thread`` with a new message (id m<n>) and a counter, its parent's
    config or none, metadata naming ``run``; returns its config."""
    checkpoint = empty_checkpoint()
    version = f"{n:010d}"
    checkpoint["channel_values"] = {"messages": [HumanMessage(f"m{n}", id=f"m{n}")], "n": n}
    checkpoint["channel_versions"] = {"messages": version, "n": version}
    config = parent or _config(thread)
    metadata: Any = {"run_id": run} if run else {}
    return saver.put(config, checkpoint, metadata, {"messages": version, "n": version})


def _expiries(backend: Any, saver: RedisSaver, thread: str) -> dict[str, int]:
    """The absolute expiry of every key of the thread that exists, the run index's too."""
    keys = saver.store.keys.conversation(thread)
    names = [*keys.all, *keys.thread, saver.store.keys.index_runs]
    return {k: int(backend.client.pexpiretime(k)) for k in names if backend.client.exists(k)}


def _assert_all_expire_within_the_slack(backend: Any, saver: RedisSaver, thread: str) -> None:
    """Every key of the thread (and the run index) expires within SLACK of now + ttl: none
    without a TTL, none left at an older expiry."""
    expiries = _expiries(backend, saver, thread)
    now_ms = int(backend.client.time()[0]) * 1000
    ttl_ms = saver.store.config.ttl_ms
    low, high = now_ms + ttl_ms - SLACK_MS, now_ms + ttl_ms + 1000
    assert all(low <= at <= high for at in expiries.values()), expiries


def test_put_writes_creating_the_writes_key_after_a_put_gets_the_ttl(
    saver: RedisSaver, backend: Any
) -> None:
    """The first pending write of a thread creates its writes zset right after the put that
    refreshed every key (within the slack, same hash expiry): that call still gives it the
    TTL, not the skip."""
    stored = _put(saver, "w1", 1)
    keys = saver.store.keys.conversation("w1")
    assert not backend.client.exists(keys.writes)
    saver.put_writes(stored, [("n", 2)], "task")
    assert backend.client.exists(keys.writes)
    _assert_all_expire_within_the_slack(backend, saver, "w1")
    assert len(set(_expiries(backend, saver, "w1").values())) == 1  # one refresh, one expiry


def test_a_put_adding_a_run_within_the_slack_gives_the_runs_and_the_run_index_the_ttl(
    saver: RedisSaver, backend: Any
) -> None:
    """A first run on a thread whose keys were refreshed just before creates its runs zset and
    the run index entry: both get the TTL. So does a run index removed since (as
    delete_for_runs of its last entry leaves it) and written again by a skipped put."""
    first = _put(saver, "r1", 1)
    keys = saver.store.keys.conversation("r1")
    index = saver.store.keys.index_runs
    assert not backend.client.exists(keys.runs)
    second = _put(saver, "r1", 2, parent=first, run="run-1")
    assert backend.client.exists(keys.runs)
    assert backend.client.exists(index)
    _assert_all_expire_within_the_slack(backend, saver, "r1")
    backend.client.delete(index)
    _put(saver, "r1", 3, parent=second, run="run-1")
    assert backend.client.exists(index)
    _assert_all_expire_within_the_slack(backend, saver, "r1")
    assert int(backend.client.pexpiretime(index)) >= int(backend.client.pexpiretime(keys.meta))


@pytest.mark.parametrize("removed", ["prune", "delete_for_runs", "delete_thread", "evicted"])
def test_thread_keys_removed_since_the_last_refresh_get_the_ttl_when_written_again(
    saver: RedisSaver, backend: Any, removed: str
) -> None:
    """Keys that prune, delete_for_runs, delete_thread, eviction or a hand-made DEL removed
    after the last full refresh, created again by a put and a put_writes within the slack,
    get the TTL like every other key of the thread."""
    stored = _put(saver, "gone", 1, run="run-1")
    saver.put_writes(stored, [("n", 2)], "task")
    keys = saver.store.keys.conversation("gone")
    if removed == "prune":
        saver.prune(["gone"], strategy="delete")
    elif removed == "delete_for_runs":
        saver.delete_for_runs(["run-1"])
    elif removed == "delete_thread":
        saver.delete_thread("gone")
    else:
        backend.client.delete(*keys.thread)
    assert not backend.client.exists(keys.checkpoints)
    again = _put(saver, "gone", 2, run="run-2")
    saver.put_writes(again, [("n", 3)], "task")
    assert all(backend.client.exists(k) for k in keys.thread)
    _assert_all_expire_within_the_slack(backend, saver, "gone")


def test_copy_thread_to_a_new_target_gives_every_key_the_ttl_and_its_next_write_keeps_it(
    saver: RedisSaver, backend: Any
) -> None:
    """copy_thread creates the target thread (RESTORE, then the 'copied' refresh): every key
    has the TTL; the target's next put and put_writes, within the slack, leave them so."""
    stored = _put(saver, "src", 1, run="run-1")
    saver.put_writes(stored, [("n", 2)], "task")
    saver.copy_thread("src", "dst")
    copied = _expiries(backend, saver, "dst")
    assert len(copied) >= 8  # the thread's 8 keys (no tokens: every message has an id) + runs
    _assert_all_expire_within_the_slack(backend, saver, "dst")
    latest = saver.get_tuple(_config("dst"))
    assert latest is not None
    written = _put(saver, "dst", 2, parent=latest.config, run="run-2")
    saver.put_writes(written, [("n", 3)], "task")
    _assert_all_expire_within_the_slack(backend, saver, "dst")
    index = saver.store.keys.index_runs  # shared with other threads: not the thread's E
    after = _expiries(backend, saver, "dst")
    assert {k: at for k, at in after.items() if k != index} == {
        k: at for k, at in copied.items() if k != index
    }


@pytest.mark.parametrize("server", ["redis_server", "valkey_server"])
def test_a_graph_turn_within_the_slack_sets_no_expiry_and_runs_few_commands(
    request: pytest.FixtureRequest, server: str, settings: Settings
) -> None:
    """Server side (INFO commandstats), a turn after the first within the slack: 6 script
    calls (get_tuple, 3 puts, 2 put_writes) that check the keys they write still expire at
    the last refresh (PEXPIRETIME) and set no expiry, prune no index, read no TTL marker:
    at most 80 commands inside them (71 when the start task's writes come after the next put,
    whose messages they are; 121-125 when every write refreshed every key)."""
    process: Any = request.getfixturevalue(server)
    client = process.client(db=DB)
    client.flushdb()
    graph = _graph(RedisSaver(client, settings=settings))
    graph.invoke({"messages": [HumanMessage("warm", id="h0")]}, _config("count"))
    client.config_resetstat()
    graph.invoke({"messages": [HumanMessage("counted", id="h1")]}, _config("count"))
    counts = commands_since_reset(client)
    client.close()
    assert counts.pop("evalsha") == 6
    assert not {"pexpireat", "pexpire", "zscore", "zremrangebyscore"} & set(counts), counts
    assert counts["time"] == 5  # one per write, none in the read
    assert sum(counts.values()) <= 80, counts


def test_after_a_message_is_replaced_under_its_id_the_conversation_still_gets_new_ones(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    graph = _graph(saver)
    graph.invoke({"messages": [HumanMessage("first", id="r1")]}, _config("edit"))
    graph.update_state(_config("edit"), {"messages": [HumanMessage("edited", id="r1")]})
    out = graph.invoke({"messages": [HumanMessage("second", id="r2")]}, _config("edit"))
    assert out["messages"][0].content == "edited"  # the graph's state: the edit, exactly
    stored = ConversationStore(backend.client, settings=settings).get_messages("edit")
    # every message the graph added reaches the conversation; r1 keeps the content it was
    # first stored with (one entry per id: the edit lives in the checkpoint, stored in full)
    assert [m.id for m in stored] == [m.id for m in out["messages"]]
    contents = [m.record["content"] for m in stored]
    assert contents[0] == "first"
    assert contents[2] == "second"
    state = _graph(_fresh(backend, settings)).get_state(_config("edit")).values
    assert state["messages"] == out["messages"]


def test_deleting_the_conversation_deletes_the_threads_checkpoints(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    _graph(saver).invoke({"messages": [HumanMessage("bye")]}, _config("gone"))
    keys = saver.store.keys.conversation("gone")
    assert backend.client.exists(*keys.thread) >= 3
    assert ConversationStore(backend.client, settings=settings).delete_conversation("gone")
    assert backend.client.exists(*keys.all, *keys.thread) == 0
    assert _fresh(backend, settings).get_tuple(_config("gone")) is None


def test_delete_thread_deletes_the_conversation(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    _graph(saver).invoke({"messages": [HumanMessage("bye")]}, _config("gone2"))
    saver.delete_thread("gone2")
    keys = saver.store.keys.conversation("gone2")
    assert backend.client.exists(*keys.all, *keys.thread) == 0
    assert ConversationStore(backend.client, settings=settings).get_messages("gone2") == []


def test_copy_thread_copies_messages_and_checkpoints_into_a_new_conversation(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    out = _graph(saver).invoke({"messages": [HumanMessage("copy me")]}, _config("src"))
    saver.copy_thread("src", "dst")
    state = _graph(_fresh(backend, settings)).get_state(_config("dst")).values
    assert state["messages"] == out["messages"]
    store = ConversationStore(backend.client, settings=settings)
    assert store.get_langchain_messages("dst") == out["messages"]
    assert store.get_conversation("dst").message_count == 2
    assert {t.config["configurable"]["thread_id"] for t in saver.list(None)} == {"src", "dst"}


def test_prune_keeps_the_latest_checkpoint_and_the_conversations_messages(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    graph = _graph(saver)
    for i in range(3):
        out = graph.invoke({"messages": [HumanMessage(f"p{i}")]}, _config("prune"))
    saver.prune(["prune"])
    assert len(list(saver.list(_config("prune")))) == 1
    assert _graph(_fresh(backend, settings)).get_state(_config("prune")).values == out
    saver.prune(["prune"], strategy="delete")
    assert list(saver.list(_config("prune"))) == []
    assert (
        ConversationStore(backend.client, settings=settings).get_langchain_messages("prune")
        == out["messages"]
    )


# -- concurrency --------------------------------------------------------------------------------
def test_two_writers_on_one_thread_lose_no_checkpoint_and_never_mix_values(
    backend: Any, settings: Settings
) -> None:
    """Two savers (each with a client of its own) fork the same parent checkpoint and
    each writes a chain of 20 checkpoints concurrently: all 41 are stored, and each one reads
    back exactly the messages and counter its writer put."""
    root = empty_checkpoint()
    root["channel_values"] = {"messages": [HumanMessage("root", id="root")], "n": 0}
    root["channel_versions"] = {"messages": "1", "n": "1"}
    first = RedisSaver(backend.client, settings=settings)
    parent = first.put(
        {"configurable": {"thread_id": "race", "checkpoint_ns": ""}},
        root,
        {"step": 0},
        dict(root["channel_versions"]),
    )
    written: dict[str, tuple[list[BaseMessage], int]] = {}
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            saver = RedisSaver(_own_client(backend), settings=settings)
            config = parent
            messages: list[BaseMessage] = [HumanMessage("root", id="root")]
            versions = dict(root["channel_versions"])
            for i in range(20):
                messages = [*messages, AIMessage(f"{name} {i}", id=f"{name}-{i}")]
                versions = {ch: saver.get_next_version(v, None) for ch, v in versions.items()}
                checkpoint = empty_checkpoint()
                checkpoint["channel_values"] = {"messages": messages, "n": i}
                checkpoint["channel_versions"] = versions
                metadata: Any = {"writer": name}
                config = saver.put(config, checkpoint, metadata, dict(versions))
                written[checkpoint["id"]] = (messages, i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reader = _fresh(backend, settings)
    listed = list(reader.list(_config("race")))
    assert len(listed) == 41
    for tup in listed:
        cid = tup.checkpoint["id"]
        if cid in written:
            messages, n = written[cid]
            assert tup.checkpoint["channel_values"] == {"messages": messages, "n": n}
    assert backend.client.xlen(first.store.keys.conversation("race").stream) == 41


# -- errors -------------------------------------------------------------------------------------
def test_redis_down_is_store_unavailable(settings: Settings) -> None:
    url = f"redis://127.0.0.1:{free_port()}/2"
    down = settings.model_copy(update={"socket_timeout": 0.5, "socket_connect_timeout": 0.5})
    saver = RedisSaver.from_url(url, settings=down)
    with pytest.raises(StoreUnavailable):
        saver.get_tuple(_config("t"))
    with pytest.raises(StoreUnavailable):
        _graph(saver).invoke({"messages": [HumanMessage("x")]}, _config("t"))


async def test_redis_down_is_store_unavailable_async(settings: Settings) -> None:
    url = f"redis://127.0.0.1:{free_port()}/2"
    down = settings.model_copy(update={"socket_timeout": 0.5, "socket_connect_timeout": 0.5})
    saver = AsyncRedisSaver.from_url(url, settings=down)
    with pytest.raises(StoreUnavailable):
        await saver.aget_tuple(_config("t"))
    await saver.aclose()


def test_bad_configuration_and_values_are_clear_errors(saver: RedisSaver) -> None:
    with pytest.raises(InvalidInput, match="decode_responses"):
        RedisSaver(redis.Redis(decode_responses=True))
    with pytest.raises(InvalidInput, match="strategy"):
        saver.prune(["t"], strategy="keep_some")
    with pytest.raises(InvalidInput, match="thread_id"):
        saver.get_tuple({"configurable": {}})
    with pytest.raises(InvalidInput, match="checkpoint_ns"):
        saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": "a\0b"}})
    with pytest.raises(InvalidInput, match="RedisSaver"):
        AsyncRedisSaver(redis_url="redis://127.0.0.1:1").get_tuple(_config("t"))
    with pytest.raises(InvalidInput, match="RedisSaver"):
        AsyncRedisSaver(redis_url="redis://127.0.0.1:1").list(_config("t"))


async def test_the_sync_saver_in_an_async_graph_is_a_clear_error(saver: RedisSaver) -> None:
    with pytest.raises(InvalidInput, match="AsyncRedisSaver"):
        await _graph(saver).ainvoke({"messages": [HumanMessage("x")]}, _config("wrong"))


def test_versions_increase_and_never_repeat(saver: RedisSaver) -> None:
    versions = [saver.get_next_version(None, None)]
    for _ in range(20):
        versions.append(saver.get_next_version(versions[-1], None))
    assert versions == sorted(versions)
    assert len({saver.get_next_version(versions[3], None) for _ in range(20)}) == 20


def test_a_graph_turn_costs_one_round_trip_per_checkpointer_call(
    saver: RedisSaver,
) -> None:
    """A StateGraph turn (one node) calls get_tuple once, put three times (input, loop,
    after the node) and put_writes once per task: each is one batch."""
    graph = _graph(saver)
    graph.invoke({"messages": [HumanMessage("warm")]}, _config("turn"))
    sent = _count_round_trips(saver)
    graph.invoke({"messages": [HumanMessage("counted")]}, _config("turn"))
    assert set(sent) == {1}
    print(f"\nround trips per graph turn: {len(sent)}")
    assert len(sent) <= 6


def test_reads_refresh_the_ttl_when_configured(backend: Any) -> None:
    touching = make_settings(touch_on_read=True)
    saver = RedisSaver(backend.client, settings=touching, ttl=1000)
    _graph(saver).invoke({"messages": [HumanMessage("x")]}, _config("touch"))
    keys = saver.store.keys.conversation("touch")
    for key in (*keys.all, *keys.thread):
        backend.client.pexpire(key, 5000)
    assert saver.get_tuple(_config("touch")) is not None
    ttls = [backend.client.pttl(k) for k in (*keys.all, *keys.thread) if backend.client.exists(k)]
    assert all(t > 900_000 for t in ttls), ttls


class SnapshotState(TypedDict):
    messages: Annotated[
        list[AnyMessage], DeltaChannel(_messages_delta_reducer, snapshot_frequency=2)
    ]


def _history_shape(history: Any) -> dict[str, Any]:
    """Task ids depend on checkpoint ids (uuid6, different in two savers): channels, values."""
    return {
        ch: ([(c, v) for _, c, v in h["writes"]], h.get("seed", "no seed"))
        for ch, h in history.items()
    }


@pytest.mark.parametrize("state", [DeltaState, SnapshotState])
def test_delta_channel_history_is_in_memory_savers_in_one_round_trip(
    saver: RedisSaver, state: type
) -> None:
    memory = InMemorySaver()
    graphs = [_det_graph(saver, state), _det_graph(memory, state)]
    for i in range(5):
        for graph in graphs:
            graph.invoke({"messages": [HumanMessage(f"h{i}", id=f"h{i}")]}, _config("dh"))
    sent = _count_round_trips(saver)
    ours = [
        _history_shape(saver.get_delta_channel_history(config=t.config, channels=["messages"]))
        for t in saver.list(_config("dh"))
    ]
    theirs = [
        _history_shape(memory.get_delta_channel_history(config=t.config, channels=["messages"]))
        for t in memory.list(_config("dh"))
    ]
    assert ours == theirs
    sent.clear()
    saver.get_delta_channel_history(config=_config("dh"), channels=["messages", "nothing"])
    assert sent == [1]
    assert saver.get_delta_channel_history(config=_config("dh"), channels=[]) == {}


async def test_delta_channel_history_async(backend: Any, settings: Settings) -> None:
    client = backend.async_client()
    saver = AsyncRedisSaver(client, settings=settings)
    graph = _det_graph(saver, SnapshotState)
    memory = _det_graph(InMemorySaver(), SnapshotState)
    for i in range(3):
        await graph.ainvoke({"messages": [HumanMessage(f"x{i}", id=f"x{i}")]}, _config("adh"))
        await memory.ainvoke({"messages": [HumanMessage(f"x{i}", id=f"x{i}")]}, _config("adh"))
    ours = await saver.aget_delta_channel_history(config=_config("adh"), channels=["messages"])
    theirs = await memory.checkpointer.aget_delta_channel_history(
        config=_config("adh"), channels=["messages"]
    )
    assert _history_shape(ours) == _history_shape(theirs)
    await client.aclose()


def test_a_message_changed_in_place_after_a_checkpoint_is_restored_as_changed(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    checkpoint = empty_checkpoint()
    message = AIMessage("first", id="same")
    checkpoint["channel_values"] = {"messages": [message]}
    checkpoint["channel_versions"] = {"messages": saver.get_next_version(None, None)}
    config: RunnableConfig = {"configurable": {"thread_id": "inplace", "checkpoint_ns": ""}}
    config = saver.put(config, checkpoint, {}, checkpoint["channel_versions"])
    message.content = "changed"
    second = empty_checkpoint()
    second["channel_values"] = {"messages": [message, HumanMessage("next", id="n")]}
    version = saver.get_next_version(checkpoint["channel_versions"]["messages"], None)
    second["channel_versions"] = {"messages": version}
    stored = saver.put(config, second, {}, second["channel_versions"])
    got = _fresh(backend, settings).get_tuple(stored)
    assert got is not None
    assert [m.content for m in got.checkpoint["channel_values"]["messages"]] == [
        "changed",
        "next",
    ]


def test_from_conn_string_and_setup_as_other_savers_have_them(
    redis_server: Any, settings: Settings
) -> None:
    with RedisSaver.from_conn_string(f"{redis_server.url}/2", settings=settings) as saver:
        saver.setup()
        out = _graph(saver).invoke({"messages": [HumanMessage("hi")]}, _config("conn"))
        assert saver.get_tuple(_config("conn")) is not None
    assert len(out["messages"]) == 2


async def test_async_from_conn_string_and_asetup(redis_server: Any, settings: Settings) -> None:
    url = f"{redis_server.url}/2"
    async with AsyncRedisSaver.from_conn_string(url, settings=settings) as saver:
        await saver.asetup()
        await _graph(saver).ainvoke({"messages": [HumanMessage("hi")]}, _config("aconn"))
        assert await saver.aget_tuple(_config("aconn")) is not None


def test_erasing_a_user_erases_the_checkpoints_of_their_threads(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    store = ConversationStore(backend.client, settings=settings)
    store.create("users-thread", user_id="u1")
    _graph(saver).invoke({"messages": [HumanMessage("mine")]}, _config("users-thread"))
    assert store.delete_user("u1") == 1
    keys = saver.store.keys.conversation("users-thread")
    assert backend.client.exists(*keys.all, *keys.thread) == 0


def _subgraph_parent(saver: Any) -> Any:
    inner: Any = StateGraph(State)
    inner.add_node("inner_bot", _deterministic_bot)
    inner.add_edge(START, "inner_bot")
    inner.add_edge("inner_bot", END)
    outer: Any = StateGraph(State)
    outer.add_node("sub", inner.compile())
    outer.add_node("bot", _deterministic_bot)
    outer.add_edge(START, "sub")
    outer.add_edge("sub", "bot")
    outer.add_edge("bot", END)
    return outer.compile(checkpointer=saver)


def test_a_graph_with_a_subgraph_restores_as_in_memory_saver(
    saver: RedisSaver, backend: Any, settings: Settings
) -> None:
    ours, oracle = _subgraph_parent(saver), _subgraph_parent(InMemorySaver())
    for i in range(3):
        for graph in (ours, oracle):
            out = graph.invoke({"messages": [HumanMessage(f"s{i}", id=f"s{i}")]}, _config("sub"))
    again = _subgraph_parent(_fresh(backend, settings)).get_state(_config("sub"), subgraphs=True)
    assert again.values == oracle.get_state(_config("sub")).values == out
    namespaces = {
        t.config["configurable"]["checkpoint_ns"]
        for t in saver.list({"configurable": {"thread_id": "sub"}})
    }
    assert "" in namespaces
    assert any(ns.startswith("sub:") for ns in namespaces)


async def test_rest_reads_the_threads_messages_and_delete_deletes_the_thread(
    backend: Any, settings: Settings
) -> None:
    from tests.support.api import api_client

    client = backend.async_client()
    saver = AsyncRedisSaver(client, settings=settings)
    graph = _graph(saver)
    for i in range(2):
        out = await graph.ainvoke({"messages": [HumanMessage(f"r{i}")]}, _config("rest"))
    async with api_client(backend) as http:
        page = await http.get("/api/v1/conversations/rest/messages")
        assert page.status_code == 200
        body = page.json()
        items = body["messages"] if isinstance(body, dict) else body
        assert [m["content"] for m in items] == [m.content for m in out["messages"]]
        assert [m["role"] for m in items] == ["user", "assistant"] * 2
        assert (await http.delete("/api/v1/conversations/rest")).status_code == 204
    assert await saver.aget_tuple(_config("rest")) is None
    keys = saver.store.keys.conversation("rest")
    assert backend.client.exists(*keys.all, *keys.thread) == 0
    await client.aclose()
