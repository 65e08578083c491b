"""The OpenAI Agents SDK session (agent_memory.openai_agents.RedisSession), on fakeredis and on
a redis-server the tests start: a real ``Runner.run`` with a scripted model of our own (no
network) over several turns and across processes, every item type of the SDK read back equal,
concurrency of pop_item / add_items, retries, round trips, TTLs, and REST / LangChain reads of
a session."""

from __future__ import annotations

import asyncio
import collections.abc
import io
import json
import os
import random
import sys
import types
import typing
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.cluster
import typing_extensions
from agents import Agent, RunConfig, Runner, function_tool
from agents.items import ModelResponse
from agents.memory import SessionABC, SQLiteSession
from agents.memory.session_settings import SessionSettings
from agents.models.interface import Model
from agents.usage import Usage
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseInputItemParam,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)
from openai.types.responses.response_reasoning_item import Summary

from agent_memory import (
    AsyncConversationStore,
    ConversationStore,
    IdempotencyKeyReused,
    InvalidConversationId,
    InvalidInput,
    InvalidMessage,
    MessageTooLarge,
    RedisChatMessageHistory,
    Settings,
    StoreUnavailable,
    scripts,
)
from agent_memory.core import StoreConfig
from agent_memory.openai_agents import RedisSession
from agent_memory.plans import sessions as plans
from agent_memory.replies import text as reply_text
from agent_memory.transfer import export_jsonl, import_jsonl
from tests.support.api import api_client
from tests.support.drive import commands, drive
from tests.support.servers import redis_cluster
from tests.support.settings import make_settings

RUN = RunConfig(tracing_disabled=True)


# -- a model of our own: scripted, no network ----------------------------------------------
class ScriptedModel(Model):
    """Asks for the weather tool when the user says "weather", answers with the tool's output
    after a call, else says how many user messages it has seen (so history is visible). Each
    answer has a reasoning item. ``inputs`` keeps every input it was given."""

    def __init__(self) -> None:
        self.inputs: list[list[dict[str, Any]]] = []

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        self.inputs.append(json.loads(json.dumps(items)))
        n = len(self.inputs)
        last = items[-1]
        reasoning = ResponseReasoningItem(
            id=f"rs_{n}", type="reasoning", summary=[Summary(text=f"step {n}", type="summary_text")]
        )
        output: list[Any] = [reasoning]
        if last.get("type") == "function_call_output":
            output.append(_message(n, f"The weather: {last['output']}"))
        elif "weather" in str(last.get("content", "")):
            output.append(
                ResponseFunctionToolCall(
                    id=f"fc_{n}",
                    call_id=f"call_{n}",
                    name="get_weather",
                    arguments=json.dumps({"city": "Paris"}),
                    type="function_call",
                    status="completed",
                )
            )
        else:
            users = [i for i in items if i.get("role") == "user"]
            output.append(_message(n, f"I have seen {len(users)} user messages"))
        return ModelResponse(output=output, usage=Usage(), response_id=f"resp_{n}")

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def _message(n: int, text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{n}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def make_agent(model: Model) -> Agent[Any]:
    return Agent(name="assistant", instructions="Be brief.", model=model, tools=[get_weather])


# -- one of each item type the SDK's TResponseInputItem union defines -----------------------
_REQUIRED: tuple[Any, ...] = (typing.Required, typing_extensions.Required)
_WRAPPERS: tuple[Any, ...] = (
    *_REQUIRED,
    typing.NotRequired,
    typing_extensions.NotRequired,
    typing.Annotated,
)


def _unwrap(hint: Any) -> Any:
    while typing.get_origin(hint) in _WRAPPERS:
        hint = typing.get_args(hint)[0]
    return hint


def _sample(tp: Any, depth: int = 0) -> Any:
    """A value of type ``tp``: required keys of TypedDicts (optional ones too near the top)."""
    tp = _unwrap(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)), depth)
    if typing_extensions.is_typeddict(tp):
        hints = typing_extensions.get_type_hints(tp, include_extras=True)
        return {
            k: _sample(_unwrap(hint), depth + 1)
            for k, hint in hints.items()
            if typing.get_origin(hint) in _REQUIRED or depth < 2
        }
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable):
        return [_sample(args[0], depth + 1)] if args and depth < 4 else []
    if origin in (dict, collections.abc.Mapping) or tp in (dict, object) or tp is Any:
        return {"key": "value"}
    return {str: "text", int: 7, float: 0.5, bool: True}.get(tp, "text")


def every_item_type() -> list[dict[str, Any]]:
    return [_sample(member) for member in typing.get_args(ResponseInputItemParam)]


REALISTIC: list[dict[str, Any]] = [
    {"role": "user", "content": "Hi, I am Ada."},
    {"role": "developer", "content": "Answer in French."},
    {"role": "system", "content": "You are helpful."},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is in "},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
        ],
    },
    {
        "id": "__fake_id__",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Bonjour", "annotations": [], "logprobs": []}],
    },
    {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris", "days": 3}',
        "id": "__fake_id__",
        "status": "completed",
    },
    {"type": "function_call", "call_id": "call_2", "name": "f", "arguments": "{not json"},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    {
        "type": "function_call_output",
        "call_id": "call_2",
        "output": [{"type": "input_text", "text": "done"}],
    },
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "thinking"}],
        "encrypted_content": "gAAAA" + "x" * 100,
    },
    {"type": "item_reference", "id": "msg_123"},
    {"role": "user", "content": "unicode: ñ 中文 🎉 \u2028", "type": "message"},
    {"role": "user", "content": "big int", "n": 2**70, "f": 1.5, "none": None, "empty": {}},
]


def test_every_member_of_the_sdk_item_union_has_a_sample() -> None:
    samples = every_item_type()
    members = typing.get_args(ResponseInputItemParam)
    assert len(samples) == len(members) >= 30
    kinds = Counter(s.get("type", s.get("role")) for s in samples)
    assert {"function_call", "function_call_output", "reasoning", "message"} <= set(kinds)


def test_the_session_is_an_sdk_session() -> None:
    session = RedisSession("s", redis_url="redis://127.0.0.1:1/2")
    assert isinstance(session, SessionABC)
    assert session.session_settings == SessionSettings()


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture
async def aclient(backend: Any) -> AsyncIterator[redis.asyncio.Redis]:
    client = backend.async_client()
    yield client
    await client.aclose()


@pytest.fixture
def new_session(aclient: redis.asyncio.Redis, settings: Settings) -> Callable[..., Any]:
    def make(session_id: str = "sess-1", **options: Any) -> RedisSession:
        options.setdefault("redis_client", aclient)
        return RedisSession(session_id, settings=settings, **options)

    return make


def _keys(client: redis.Redis, prefix: str = "agent_memory") -> list[bytes]:
    return sorted(client.scan_iter(match=f"{prefix}:*"))


# -- items read back exactly ----------------------------------------------------------------
async def test_items_of_every_type_read_back_equal(
    new_session: Callable[..., Any],
) -> None:
    session = new_session()
    items = every_item_type() + REALISTIC
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.get_items(3) == items[-3:]
    assert await session.pop_item() == items[-1]
    assert await session.get_items() == items[:-1]


async def test_each_item_alone_reads_back_equal(new_session: Callable[..., Any]) -> None:
    session = new_session()
    for item in every_item_type() + REALISTIC:
        await session.add_items([item])
        assert await session.get_items(1) == [item]
        assert await session.pop_item() == item
    assert await session.get_items() == []


async def test_plain_text_messages_are_stored_as_they_are(
    new_session: Callable[..., Any], backend: Any
) -> None:
    """A plain role + text item is its own record; anything else keeps the item beside it."""
    session = new_session()
    await session.add_items([{"role": "user", "content": "hi"}, REALISTIC[4]])
    entries = backend.client.xrange("agent_memory:c:{sess-1}:s")
    records = [json.loads(fields[b"m"]) for _, fields in entries]
    assert records[0] == {"role": "user", "content": "hi"}
    assert records[1]["metadata"] == {"openai_item": REALISTIC[4]}
    assert records[1]["content"] == "Bonjour"


async def test_an_image_is_stored_once(
    new_session: Callable[..., Any], backend: Any, settings: Settings
) -> None:
    """Only an item's text is repeated as the record's content: an image of 60% of the size
    limit fits (its bytes are in the kept item only)."""
    url = "data:image/png;base64," + "A" * int(settings.max_message_bytes * 0.6)
    item = {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": url, "detail": "auto"},
        ],
    }
    session = new_session()
    await session.add_items([item])
    assert await session.get_items() == [item]
    (entry,) = backend.client.xrange("agent_memory:c:{sess-1}:s")
    assert json.loads(entry[1][b"m"])["content"] == "What is this?"


async def test_items_that_cannot_read_back_exactly_are_refused(
    new_session: Callable[..., Any], backend: Any, settings: Settings
) -> None:
    session = new_session()
    with pytest.raises(InvalidMessage) as bad:
        await session.add_items([{"role": "user", "content": "a"}, {"type": "x", "t": (1, 2)}])
    assert bad.value.field == "items[1]"
    assert str(bad.value).startswith("items[1]")
    with pytest.raises(InvalidMessage):
        await session.add_items(["not an item"])
    with pytest.raises(InvalidMessage):
        await session.add_items([{"type": "x", 1: "non-string key"}])
    big = "x" * (settings.max_message_bytes + 1)
    with pytest.raises(MessageTooLarge) as large:
        await session.add_items(
            [{"role": "user", "content": "a"}, {"role": "user", "content": big}]
        )
    assert large.value.field == "items[1]"
    too_many = [{"role": "user", "content": "a"}] * (settings.max_messages_per_request + 1)
    with pytest.raises(InvalidInput, match="items in one call") as many:
        await session.add_items(too_many)
    assert many.value.field == "items"
    assert _keys(backend.client) == []  # nothing of any refused call was stored


async def test_bad_session_ids_are_refused() -> None:
    with pytest.raises(InvalidConversationId):
        RedisSession("", redis_url="redis://127.0.0.1:1/2")
    with pytest.raises(InvalidConversationId):
        RedisSession("a\x00b", redis_url="redis://127.0.0.1:1/2")


@pytest.mark.parametrize("seed", range(4))
async def test_the_sdk_sqlite_session_is_the_oracle(
    new_session: Callable[..., Any], seed: int
) -> None:
    """Random add / get(limit) / pop / clear sequences give what the SDK's own SQLiteSession
    gives for the same calls."""
    rng = random.Random(seed)
    pool = every_item_type() + REALISTIC
    ours = new_session(f"oracle-{seed}")
    oracle: Any = SQLiteSession(f"oracle-{seed}")  # typed for TypedDict items; ours are dicts
    try:
        for _ in range(120):
            op = rng.choices(["add", "get", "pop", "clear"], weights=[5, 4, 3, 0.2])[0]
            if op == "add":
                batch = rng.sample(pool, rng.randint(1, 4))
                await ours.add_items(batch)
                await oracle.add_items(batch)
            elif op == "get":
                limit = rng.choice([None, 0, 1, 3, 10, 1000])
                assert await ours.get_items(limit) == await oracle.get_items(limit)
            elif op == "pop":
                assert await ours.pop_item() == await oracle.pop_item()
            else:
                await ours.clear_session()
                await oracle.clear_session()
        assert await ours.get_items() == await oracle.get_items()
    finally:
        oracle.close()


# -- a real Runner over several turns -------------------------------------------------------
async def test_runner_keeps_history_over_turns_with_a_tool_call(
    new_session: Callable[..., Any],
) -> None:
    model = ScriptedModel()
    agent = make_agent(model)
    session = new_session("runner-1")
    first = await Runner.run(agent, "Hello, I am Ada", session=session, run_config=RUN)
    assert first.final_output == "I have seen 1 user messages"
    second = await Runner.run(agent, "What is the weather?", session=session, run_config=RUN)
    assert second.final_output == "The weather: sunny in Paris"
    third = await Runner.run(agent, "Thanks", session=session, run_config=RUN)
    assert third.final_output == "I have seen 3 user messages"

    items = await session.get_items()
    kinds = [i.get("type", "message") for i in items]
    assert kinds.count("function_call") == 1
    assert kinds.count("function_call_output") == 1
    assert kinds.count("reasoning") == 4  # one per model call
    # what the model saw on the last turn is the whole stored history (plus nothing else)
    assert model.inputs[-1] == json.loads(json.dumps(items))[: len(model.inputs[-1])]
    assert items[-1]["content"][0]["text"] == "I have seen 3 user messages"


WORKER = """
import asyncio, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("agents_test_module", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from agents import Runner
from agent_memory.openai_agents import RedisSession
from agent_memory.transfer import export_jsonl, import_jsonl

async def main():
    model = module.ScriptedModel()
    session = RedisSession.from_url(sys.argv[3], sys.argv[2])
    result = await Runner.run(module.make_agent(model), sys.argv[4], session=session,
                              run_config=module.RUN)
    print(json.dumps({"final": result.final_output, "input": model.inputs[0]}))

asyncio.run(main())
"""


@pytest.mark.redis_server
async def test_a_new_process_continues_the_session(redis_server: Any, tmp_path: Path) -> None:
    url = f"{redis_server.url}/2"
    redis_server.client(db=2).flushdb()
    session: Any = RedisSession.from_url("cross-process", url)
    model = ScriptedModel()
    await Runner.run(make_agent(model), "What is the weather?", session=session, run_config=RUN)
    before = await session.get_items()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "AGENT_MEMORY_"))}
    here = Path(__file__).parent  # the worker imports this module, and it imports its helpers
    env["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parent)])
    worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", WORKER, __file__, url, "cross-process", "Hello again"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(worker.communicate(), timeout=120)
    assert worker.returncode == 0, err.decode()
    answer = json.loads(out.decode().strip().splitlines()[-1])
    assert answer["final"] == "I have seen 2 user messages"
    assert answer["input"][: len(before)] == json.loads(json.dumps(before))

    after = await session.get_items()
    assert after[: len(before)] == before
    assert after[-1]["content"][0]["text"] == "I have seen 2 user messages"
    third = await Runner.run(make_agent(ScriptedModel()), "Bye", session=session, run_config=RUN)
    assert third.final_output == "I have seen 3 user messages"


@pytest.mark.redis_server
async def test_the_session_on_a_redis_cluster(tmp_path: Path) -> None:
    """Cluster mode: the scripts touch the conversation's slot only, the plans update the
    indexes (in other slots) themselves; every key on every node has a TTL."""
    with redis_cluster(tmp_path) as nodes:
        url = f"redis://127.0.0.1:{nodes[0].port}"
        settings = make_settings(redis_url=url, redis_cluster=True)
        session: Any = RedisSession("on-cluster", settings=settings)
        assert session.store.config.cluster
        items = every_item_type() + REALISTIC
        await session.add_items(items)
        assert await session.get_items() == items
        assert await session.get_items(2) == items[-2:]
        popped = await asyncio.gather(*(session.pop_item() for _ in range(5)))
        assert sorted(map(json.dumps, popped)) == sorted(map(json.dumps, items[-5:]))
        assert await session.get_items() == items[:-5]
        clients = [n.client() for n in nodes]
        try:
            with redis.cluster.RedisCluster(host="127.0.0.1", port=nodes[0].port) as routed:
                assert routed.zscore("agent_memory:x:all", "on-cluster") is not None
            keys = [(c, k) for c in clients for k in c.scan_iter(match="agent_memory:*")]
            assert len(keys) == 5  # stream, hash, tokens, index, the prefix's TTL marker
            assert all(c.pttl(k) > 0 for c, k in keys)
            await session.clear_session()
            left = [k for c in clients for k in c.scan_iter(match="agent_memory:*")]
            assert left == [b"agent_memory:x:ttl"]  # it expires with the TTL it records
        finally:
            for c in clients:
                c.close()
            await session.store.client.aclose()


# -- REST and LangChain read a session ------------------------------------------------------
async def test_rest_reads_a_session_written_by_the_runner(
    new_session: Callable[..., Any], backend: Any, settings: Settings
) -> None:
    session = new_session("rest-1")
    agent = make_agent(ScriptedModel())
    await Runner.run(agent, "What is the weather?", session=session, run_config=RUN)
    async with api_client(backend) as http:
        reply = await http.get("/api/v1/conversations/rest-1/messages")
    assert reply.status_code == 200, reply.text
    messages = reply.json()["messages"]
    assert [m["role"] for m in messages] == [
        "user", "assistant", "assistant", "tool", "assistant", "assistant",
    ]  # fmt: skip
    user, _, call, output, _, answer = messages
    assert user["content"] == "What is the weather?"
    assert call["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}
    ]  # call_<number of the model call>
    assert output["tool_call_id"] == "call_1"
    assert output["content"] == "sunny in Paris"
    assert answer["content"] == "The weather: sunny in Paris"
    assert answer["metadata"]["openai_item"]["type"] == "message"
    assert messages[1]["metadata"]["openai_item"]["type"] == "reasoning"
    history = RedisChatMessageHistory("rest-1", redis_client=backend.client, settings=settings)
    human, reasoning, call, output, reasoning_2, answer = history.messages
    assert (type(human), type(call), type(output), type(answer)) == (
        HumanMessage, AIMessage, ToolMessage, AIMessage,
    )  # fmt: skip
    assert reasoning.content == reasoning_2.content == ""
    assert isinstance(call, AIMessage)
    assert call.tool_calls[0]["args"] == {"city": "Paris"}
    assert answer.content == "The weather: sunny in Paris"


async def test_rest_and_langchain_read_every_item_type(
    new_session: Callable[..., Any], backend: Any, settings: Settings
) -> None:
    items = every_item_type() + REALISTIC
    await new_session("all-types").add_items(items)
    async with api_client(backend) as http:
        reply = await http.get("/api/v1/conversations/all-types/messages", params={"limit": 500})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["messages"]) == len(items)
    history = RedisChatMessageHistory("all-types", redis_client=backend.client, settings=settings)
    assert len(history.messages) == len(items)


async def test_export_and_import_carry_a_session_exactly(
    new_session: Callable[..., Any], backend: Any, settings: Settings
) -> None:
    items = every_item_type() + REALISTIC
    await new_session("moved").add_items(items)
    out = io.StringIO()
    export_jsonl(ConversationStore(backend.client, settings=settings), out)
    target = ConversationStore(backend.client, settings=settings, key_prefix="copy")
    import_jsonl(target, io.StringIO(out.getvalue()))  # as a file reads: lines end at \n only
    assert await new_session("moved", key_prefix="copy").get_items() == items


async def test_a_conversation_written_over_rest_reads_as_items(
    new_session: Callable[..., Any], backend: Any, settings: Settings
) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "hi", "id": "m1"},
            {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            {"role": "tool", "content": "42", "tool_call_id": "t1"},
        ]
    }
    async with api_client(backend) as http:
        assert (await http.post("/api/v1/conversations/rest-2/messages", json=body)).is_success
    items = await new_session("rest-2").get_items()
    assert items == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"type": "function_call_output", "call_id": "t1", "output": "42"},
    ]


async def test_a_popped_message_id_can_be_appended_again(
    new_session: Callable[..., Any], aclient: redis.asyncio.Redis, settings: Settings
) -> None:
    store = AsyncConversationStore(aclient, settings=settings)
    await store.append("ids", [{"role": "user", "content": "hi", "id": "m1"}])
    assert await new_session("ids").pop_item() == {"role": "user", "content": "hi"}
    (again,) = await store.append("ids", [{"role": "user", "content": "hi", "id": "m1"}])
    assert again.added
    assert len(await store.get_messages("ids")) == 1
    assert (await store.get_conversation("ids")).message_count == 1


async def test_pop_is_refused_on_a_langgraph_thread_whose_checkpoints_refer_to_it(
    new_session: Callable[..., Any], aclient: redis.asyncio.Redis, settings: Settings
) -> None:
    """A session id that is also a LangGraph thread: removing a stream entry its checkpoints
    refer to would make the thread unreadable, so pop_item removes nothing and says why; once
    the thread is deleted, the id is a session like any other."""
    from langgraph.graph import START, MessagesState, StateGraph

    from agent_memory.langgraph import AsyncRedisSaver

    def reply(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("back", id=f"ai-{len(state['messages'])}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    saver = AsyncRedisSaver(aclient, settings=settings)
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "t1"}}
    await graph.ainvoke({"messages": [HumanMessage("hello", id="h1")]}, config)
    session = new_session("t1")
    with pytest.raises(InvalidInput, match="LangGraph thread") as caught:
        await session.pop_item()
    assert caught.value.field == "session_id"
    fresh = builder.compile(checkpointer=AsyncRedisSaver(aclient, settings=settings))
    state = await fresh.aget_state(config)  # still readable, nothing removed
    assert [m.content for m in state.values["messages"]] == ["hello", "back"]
    assert len(await session.get_items()) == 2
    await saver.adelete_thread("t1")  # the thread is the conversation: both are gone
    await session.add_items([{"role": "user", "content": "later"}])
    assert await session.pop_item() == {"role": "user", "content": "later"}


# -- limits, round trips, settings ----------------------------------------------------------
class Spy:
    """Every command an asyncio client sends through execute_command."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[Any, ...]] = []
        send = client.execute_command

        async def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(args)
            return await send(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", spy)


async def test_get_items_with_a_limit_reads_only_the_last_items(
    new_session: Callable[..., Any],
    aclient: redis.asyncio.Redis,
    backend: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = new_session()
    items = [{"role": "user", "content": f"m{i}"} for i in range(200)]
    await session.add_items(items)
    spy = Spy(aclient, monkeypatch)
    if backend.real:
        backend.client.config_resetstat()
    assert await session.get_items(5) == items[-5:]
    assert len(spy.calls) == 1  # one round trip: one command
    command, _, high, low, count, n = spy.calls[0]
    assert (reply_text(command), high, low, count, n) == ("XREVRANGE", "+", "-", "COUNT", 5)
    if backend.real:
        stats = backend.client.info("commandstats")
        assert stats["cmdstat_xrevrange"]["calls"] == 1
        assert "cmdstat_xrange" not in stats


async def test_the_default_limit_of_session_settings_is_honoured(
    new_session: Callable[..., Any],
) -> None:
    session = new_session(session_settings=SessionSettings(limit=3))
    items = [{"role": "user", "content": f"m{i}"} for i in range(10)]
    await session.add_items(items)
    assert await session.get_items() == items[-3:]
    assert await session.get_items(limit=5) == items[-5:]
    assert await new_session(session_settings={"limit": 2}).get_items() == items[-2:]
    assert await session.get_items(limit=0) == []


def test_the_get_items_plan_is_one_batch_of_one_xrevrange() -> None:
    session_plans = plans.SessionPlans(StoreConfig.from_settings(make_settings()))
    entry = (b"1-0", {b"m": b'{"role":"user","content":"x"}'})
    items, sent = drive(session_plans.get_items("s", 7), [[[entry]]])
    assert items == [{"role": "user", "content": "x"}]
    assert commands(sent) == [["XREVRANGE"]]
    assert sent[0][0].args[-2:] == ("COUNT", 7)


def test_pop_on_a_cluster_updates_the_indexes_itself() -> None:
    """Cluster mode: the script gets the conversation's keys only (one hash slot) and returns
    what the plan needs to update the indexes, in a second batch."""
    core = plans.SessionPlans(StoreConfig.from_settings(make_settings(), cluster=True))
    popped = [b"1-0", b'{"role":"user","content":"x"}', 1000, b"", b"P:x:a:bot", b""]
    ones = lambda batch: [1] * len(batch)  # noqa: E731
    item, sent = drive(core.pop_item("s"), [[popped], ones, ones])
    assert item == {"role": "user", "content": "x"}
    assert sent[0][0].args[2:7] == (4, *core.conversation_keys("s").all)
    touch = ["ZADD", "PEXPIRE", "PEXPIRE"]
    assert commands(sent) == [["pop"], touch * 3 + ["ZSCORE"], ["ZREMRANGEBYSCORE"] * 2]
    marker, everything = "agent_memory:x:ttl", "agent_memory:x:all"
    assert [c.args[1] for c in sent[1]] == [marker] * 3 + [everything] * 3 + ["P:x:a:bot"] * 3 + [
        marker
    ]
    assert [c.args[1] for c in sent[2]] == [everything, "P:x:a:bot"]
    assert drive(core.pop_item("s"), [[[]]]) == (None, sent[:1])


async def test_add_items_is_one_round_trip_whatever_the_count(
    new_session: Callable[..., Any],
    aclient: redis.asyncio.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = new_session()
    await session.add_items([{"role": "user", "content": "warm the script cache"}])
    spy = Spy(aclient, monkeypatch)
    await session.add_items(every_item_type() + REALISTIC)
    assert [c[:2] for c in spy.calls] == [("EVALSHA", scripts.APPEND.sha)]


async def test_prefix_and_ttl_are_those_given(
    new_session: Callable[..., Any], backend: Any
) -> None:
    session = new_session(key_prefix="my_app", ttl=120)
    await session.add_items([{"role": "user", "content": "hi"}])
    keys = _keys(backend.client, "my_app")
    assert keys
    assert _keys(backend.client) == []
    for key in keys:
        assert 110_000 < backend.client.pttl(key) <= 120_000


async def test_every_key_has_a_ttl_and_writes_slide_it(
    new_session: Callable[..., Any], backend: Any
) -> None:
    session = new_session(ttl=1000)
    await Runner.run(make_agent(ScriptedModel()), "weather?", session=session, run_config=RUN)
    client = backend.client
    keys = _keys(client)
    assert len(keys) >= 4  # stream, hash, tokens, index
    for key in keys:
        client.pexpire(key, 50_000)
    await session.pop_item()
    for key in _keys(client):
        assert 990_000 < client.pttl(key) <= 1_000_000, key
    await session.get_items()  # reads do not extend
    assert all(client.pttl(k) > 0 for k in _keys(client))


async def test_clear_session_deletes_every_key(
    new_session: Callable[..., Any], backend: Any
) -> None:
    session = new_session()
    await session.add_items(REALISTIC)
    await session.clear_session()
    # only the prefix's TTL marker is left (it expires with the TTL it records)
    assert _keys(backend.client) == [b"agent_memory:x:ttl"]
    assert await session.get_items() == []
    assert await session.pop_item() is None


# -- concurrency ----------------------------------------------------------------------------
async def test_concurrent_pops_lose_nothing_and_pop_nothing_twice(
    backend: Any, settings: Settings, aclient: redis.asyncio.Redis
) -> None:
    other = backend.async_client()  # a second client: a second connection pool
    try:
        sessions: list[Any] = [
            RedisSession("shared", redis_client=c, settings=settings) for c in (aclient, other)
        ]
        items = [{"role": "user", "content": f"m{i}"} for i in range(60)]
        await sessions[0].add_items(items)

        async def drain(session: RedisSession) -> list[Any]:
            got = []
            while (item := await session.pop_item()) is not None:
                got.append(item)
            return got

        results = await asyncio.gather(*(drain(sessions[i % 2]) for i in range(8)))
        popped = [item for result in results for item in result]
        assert sorted(map(json.dumps, popped)) == sorted(map(json.dumps, items))
        for result in results:  # each popper saw newest first
            assert [int(i["content"][1:]) for i in result] == sorted(
                (int(i["content"][1:]) for i in result), reverse=True
            )
        assert await sessions[1].get_items() == []
        meta = backend.client.hgetall("agent_memory:c:{shared}:h")
        assert meta[b"message_count"] == b"0"
    finally:
        await other.aclose()


async def test_concurrent_adds_and_pops_keep_every_item_once(
    backend: Any, settings: Settings, aclient: redis.asyncio.Redis
) -> None:
    other = backend.async_client()
    try:
        sessions: list[Any] = [
            RedisSession("mix", redis_client=c, settings=settings) for c in (aclient, other)
        ]

        async def writer(w: int) -> list[Any]:
            batches = [
                [{"role": "user", "content": f"w{w}-b{b}-{k}"} for k in range(3)] for b in range(8)
            ]
            for batch in batches:
                await sessions[w % 2].add_items(batch)
            return [item for batch in batches for item in batch]

        async def popper(p: int) -> list[Any]:
            got = []
            for _ in range(10):
                if (item := await sessions[p % 2].pop_item()) is not None:
                    got.append(item)
                await asyncio.sleep(0)
            return got

        results = await asyncio.gather(
            *(writer(w) for w in range(6)), *(popper(p) for p in range(4))
        )
        added = [i for r in results[:6] for i in r]
        popped = [i for r in results[6:] for i in r]
        left = await sessions[0].get_items()
        assert sorted(map(json.dumps, popped + left)) == sorted(map(json.dumps, added))
        assert len({json.dumps(i) for i in popped}) == len(popped)
        # appends are atomic: the items of one call are adjacent in what is left
        positions = {i["content"]: n for n, i in enumerate(left)}
        for item in left:
            w, b, k = item["content"].split("-")
            if k == "0" and f"{w}-{b}-2" in positions:
                assert positions[f"{w}-{b}-2"] - positions[item["content"]] == 2
        meta = backend.client.hgetall("agent_memory:c:{mix}:h")
        assert int(meta[b"message_count"]) == len(left)
    finally:
        await other.aclose()


# -- retries --------------------------------------------------------------------------------
class LoseReplies:
    """Make the next ``times`` EVALSHA calls of a client fail after (``after=True``: the write
    happened, its reply was lost) or before reaching the server."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.times = 0
        self.after = True
        send = client.execute_command

        async def flaky(*args: Any, **kwargs: Any) -> Any:
            if args[0] in ("EVALSHA", "EVAL") and self.times:
                if self.after:
                    await send(*args, **kwargs)  # NOSCRIPT (a first use) is not a loss
                self.times -= 1
                raise redis.ConnectionError("connection lost")
            return await send(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", flaky)


TURN = [
    {"role": "user", "content": "hi"},
    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
]


@pytest.mark.parametrize("after", [True, False], ids=["reply-lost", "never-sent"])
async def test_retrying_a_failed_add_items_stores_it_once(
    new_session: Callable[..., Any],
    aclient: redis.asyncio.Redis,
    monkeypatch: pytest.MonkeyPatch,
    after: bool,
) -> None:
    session = new_session()
    await session.add_items([{"role": "user", "content": "before"}])
    lose = LoseReplies(aclient, monkeypatch)
    lose.times, lose.after = 1, after
    with pytest.raises(StoreUnavailable):
        await session.add_items(list(TURN))
    await session.add_items(list(TURN))  # the retry
    assert await session.get_items() == [{"role": "user", "content": "before"}, *TURN]
    await session.add_items(list(TURN))  # a new call: stored again
    assert await session.get_items() == [{"role": "user", "content": "before"}, *TURN, *TURN]


async def test_the_same_idempotency_key_adds_once_from_any_session_object(
    new_session: Callable[..., Any],
    aclient: redis.asyncio.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lose = LoseReplies(aclient, monkeypatch)
    lose.times = 1
    with pytest.raises(StoreUnavailable):
        await new_session().add_items(list(TURN), idempotency_key="turn-7")
    fresh = new_session()  # e.g. another process after a crash
    await fresh.add_items(list(TURN), idempotency_key="turn-7")
    await fresh.add_items(list(TURN), idempotency_key="turn-7")
    assert await fresh.get_items() == TURN
    await fresh.add_items(list(TURN), idempotency_key="turn-8")
    assert await fresh.get_items() == TURN + TURN


async def test_an_idempotency_key_reused_with_other_items_is_refused(
    new_session: Callable[..., Any],
) -> None:
    session = new_session()
    await session.add_items(list(TURN), idempotency_key="turn-9")
    with pytest.raises(IdempotencyKeyReused) as caught:
        await session.add_items([{"role": "user", "content": "other"}], idempotency_key="turn-9")
    assert caught.value.field == "idempotency_key"
    assert await session.get_items() == TURN


async def test_equal_items_in_separate_calls_are_both_kept(
    new_session: Callable[..., Any],
) -> None:
    session = new_session()
    for _ in range(3):
        await session.add_items([{"role": "user", "content": "again"}])
    assert await session.get_items() == [{"role": "user", "content": "again"}] * 3


# -- construction ---------------------------------------------------------------------------
async def test_construction_does_no_io_and_an_outage_is_store_unavailable() -> None:
    session: Any = RedisSession.from_url("s", "redis://127.0.0.1:1/2", settings=make_settings())
    other = RedisSession("s", redis_url="redis://127.0.0.1:1/2", key_prefix="p", ttl=60)
    assert repr(other) == "RedisSession(session_id='s')"
    with pytest.raises(StoreUnavailable):
        await session.get_items()
    with pytest.raises(StoreUnavailable):
        await session.add_items([{"role": "user", "content": "x"}])
    with pytest.raises(StoreUnavailable):
        await other.pop_item()
