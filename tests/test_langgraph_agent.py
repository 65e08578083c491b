"""A real agent on our checkpointer: ``langchain.agents.create_agent`` with a scripted chat model
that calls tools and reports token usage, over several turns, in this process and in others.

What it proves, on redis-server and valkey-server processes the tests start (and on fakeredis
where no second process is involved):

* the agent's turns persist, sync and async savers on one thread, and a new process (this file
  run as a script) continues the thread;
* ``HumanInTheLoopMiddleware`` reviews (an edited tool call, approvals) keep the thread a
  conversation;
* a human-in-the-loop ``interrupt()`` survives ``kill -9`` of the agent process and of an AOF
  (``appendfsync always``) redis-server: after a restart on the same data directory, a new agent
  process resumes from the last checkpoint the first one was acknowledged, and the tool's side
  effect happens once;
* a thread is a conversation: its messages read over REST (the API in-process) and through
  ``RedisChatMessageHistory`` equal the graph state's messages, each stored once;
* every key these runs leave has a TTL.

The model answers from the conversation alone (never from a counter of its own), so every
process gives the same answers for the same thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    message_to_dict,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.types import Command, interrupt

from agent_memory import AsyncConversationStore, RedisChatMessageHistory
from agent_memory.codec import record_from_langchain
from agent_memory.embedded import RedisProcess
from agent_memory.keys import KeySchema
from agent_memory.langgraph import AsyncRedisSaver, RedisSaver
from api.app import create_app
from tests.support.api import running
from tests.support.backends import DB, Backend
from tests.support.settings import environment_names, make_settings

LEDGER_ENV = "AGENT_MEMORY_TEST_LEDGER"
THIS_FILE = Path(__file__).resolve()
ROOT = THIS_FILE.parent.parent

# -- the agent: a scripted model, two tools ------------------------------------------------------


class ScriptedChatModel(BaseChatModel):
    """A chat model whose answer depends only on the conversation it is given.

    A user message asking for a refund gets a ``refund`` tool call, any other user message an
    ``order_status`` tool call (for the number in it), a tool result a plain answer quoting it.
    Ids are a digest of the conversation so far, so they are unique within a thread and the
    same in every process."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=answer(messages))])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    @property
    def _llm_type(self) -> str:
        return "scripted"


def conversation_digest(messages: Sequence[BaseMessage]) -> str:
    """A digest of the conversation so far: the same in every process, and another one for
    any other conversation (a history rewritten by a summary gets new ids too, as a provider's
    response ids are)."""
    text = json.dumps([message_to_dict(m) for m in messages], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def answer(messages: Sequence[BaseMessage]) -> AIMessage:
    n = conversation_digest(messages)
    last = messages[-1]
    usage = {"input_tokens": 40 * len(messages), "output_tokens": 12, "total_tokens": 0}
    usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    meta = {"model_name": "scripted-1", "finish_reason": "stop"}
    if isinstance(last, ToolMessage):
        return AIMessage(
            f"Done: {last.content}", id=f"ai-{n}", usage_metadata=usage, response_metadata=meta
        )
    text = str(last.content)
    order = "".join(c for c in text if c.isdigit()) or "0"
    name = "refund" if "refund" in text.lower() else "order_status"
    return AIMessage(
        "",
        id=f"ai-{n}",
        tool_calls=[{"id": f"call-{n}", "name": name, "args": {"order_id": order}}],
        usage_metadata=usage,
        response_metadata={**meta, "finish_reason": "tool_calls"},
    )


@tool
def order_status(order_id: str) -> str:
    """Look up where an order is."""
    return f"order {order_id} arrives on Friday"


@tool
def refund(order_id: str) -> str:
    """Refund an order once a human approves it."""
    decision = interrupt({"action": "refund", "order_id": order_id})
    if not decision.get("approved"):
        return f"refund of order {order_id} declined"
    ledger = os.environ.get(LEDGER_ENV)
    if ledger:
        with open(ledger, "a", encoding="utf-8") as f:
            f.write(f"refund {order_id}\n")
    return f"order {order_id} refunded"


def agent(checkpointer: Any, middleware: Sequence[Any] = ()) -> Any:
    return create_agent(
        ScriptedChatModel(),
        tools=[order_status, refund],
        system_prompt="You are a support agent.",
        checkpointer=checkpointer,
        middleware=middleware,
    )


def config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def user(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


# -- checks -------------------------------------------------------------------------------------


def rest_form(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """What the REST API returns for these messages, without ``cursor`` and ``created_at``."""
    return [json.loads(json.dumps(record_from_langchain(m))) for m in messages]


async def rest_messages(client: redis.asyncio.Redis, thread: str) -> list[dict[str, Any]]:
    """The conversation's messages over REST (the app in-process, on ``client``)."""
    config_ = make_settings()
    app = create_app(config_, AsyncConversationStore(client, settings=config_))
    async with running(app) as http:
        response = await http.get(f"/api/v1/conversations/{thread}/messages?limit=1000")
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()["messages"]
    return [{k: v for k, v in m.items() if k not in ("cursor", "created_at")} for m in body]


async def assert_thread_is_the_conversation(
    sync_client: redis.Redis, async_client: redis.asyncio.Redis, thread: str, state: Any
) -> None:
    """REST, the LangChain history and the stream hold the graph state's messages, once each."""
    messages: list[BaseMessage] = state.values["messages"]
    assert await rest_messages(async_client, thread) == rest_form(messages)
    history = RedisChatMessageHistory(thread, redis_client=sync_client, settings=make_settings())
    assert history.messages == messages
    stream = KeySchema(make_settings().key_prefix).conversation(thread).stream
    assert sync_client.xlen(stream) == len(messages)


def keys_without_ttl(client: redis.Redis) -> list[bytes]:
    return [k for k in client.scan_iter(count=1000) if client.pttl(k) == -1]


def assert_every_key_has_a_ttl(server: RedisProcess) -> None:
    """Every key of every DB of the server (INFO keyspace: keys == expires)."""
    keyspace: dict[str, Any] = server.client().info("keyspace")
    assert keyspace, "the runs left no keys at all"
    for db, counts in keyspace.items():
        assert counts["keys"] == counts["expires"], (db, counts)


def kinds(messages: Sequence[BaseMessage]) -> list[str]:
    return [type(m).__name__ for m in messages]


TURN = ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
async def async_client(backend: Backend) -> AsyncIterator[redis.asyncio.Redis]:
    client = backend.async_client()
    yield client
    await client.aclose()


# -- tests --------------------------------------------------------------------------------------


async def test_agent_turns_sync_and_async_are_one_conversation_read_by_rest_and_history(
    backend: Backend, async_client: redis.asyncio.Redis
) -> None:
    sync_client = backend.client
    aio = agent(AsyncRedisSaver(redis_client=async_client, settings=make_settings()))
    for text in ("where is order 1?", "and order 2?"):
        await aio.ainvoke(user(text), config("support-1"))
    blocking = agent(RedisSaver(redis_client=sync_client, settings=make_settings()))
    await asyncio.to_thread(blocking.invoke, user("order 3, please"), config("support-1"))

    state = await aio.aget_state(config("support-1"))
    messages = state.values["messages"]
    assert kinds(messages) == TURN * 3
    assert [m.content for m in messages[3::4]] == [
        f"Done: order {n} arrives on Friday" for n in (1, 2, 3)
    ]
    assert all(m.usage_metadata for m in messages if isinstance(m, AIMessage))
    assert blocking.get_state(config("support-1")).values == state.values
    await assert_thread_is_the_conversation(sync_client, async_client, "support-1", state)
    assert keys_without_ttl(sync_client) == []


async def test_thread_stays_the_conversation_after_a_reviewer_edits_a_tool_call(
    backend: Backend, async_client: redis.asyncio.Redis
) -> None:
    """HumanInTheLoopMiddleware stops before each tool call; the reviewer edits the first one
    (the tool runs with the edited arguments), approves the others."""
    review = HumanInTheLoopMiddleware(interrupt_on={"order_status": True})
    graph = agent(AsyncRedisSaver(redis_client=async_client, settings=make_settings()), [review])
    edit = {"type": "edit", "edited_action": {"name": "order_status", "args": {"order_id": "2"}}}
    decisions = [edit, {"type": "approve"}, {"type": "approve"}]
    for text, decision in zip(
        ("where is order 1?", "order 3?", "order 4?"), decisions, strict=True
    ):
        await graph.ainvoke(user(text), config("support-4"))  # stops before the tool
        await graph.ainvoke(Command(resume={"decisions": [decision]}), config("support-4"))

    state = await graph.aget_state(config("support-4"))
    assert state.next == ()
    assert "order 2 arrives on Friday" in state.values["messages"][3].content
    await assert_thread_is_the_conversation(backend.client, async_client, "support-4", state)
    assert keys_without_ttl(backend.client) == []


@pytest.mark.redis_server
async def test_a_new_process_continues_the_thread(tmp_path: Path) -> None:
    with RedisProcess(tmp_path / "redis") as server:
        client = redis.asyncio.Redis.from_url(server.url, db=DB)
        try:
            aio = agent(AsyncRedisSaver(redis_client=client, settings=make_settings()))
            for text in ("where is order 1?", "and order 2?"):
                await aio.ainvoke(user(text), config("support-2"))

            other = await asyncio.to_thread(
                run_agent_process, server, "turn", "support-2", "what about order 3?"
            )
            assert other["messages"] == 12

            state = await aio.aget_state(config("support-2"))
            assert state.config["configurable"]["checkpoint_id"] == other["checkpoint_id"]
            assert state.values["messages"][-1].content == "Done: order 3 arrives on Friday"
            await aio.ainvoke(user("and order 4?"), config("support-2"))
            state = await aio.aget_state(config("support-2"))
            assert kinds(state.values["messages"]) == TURN * 4
            await assert_thread_is_the_conversation(
                server.client(db=DB), client, "support-2", state
            )
        finally:
            await client.aclose()
        assert_every_key_has_a_ttl(server)


@pytest.mark.redis_server
async def test_interrupt_resumes_after_kill_9_of_agent_and_aof_server(
    durable_server: RedisProcess, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    acknowledged = await asyncio.to_thread(
        ask_then_kill_9, durable_server, "support-3", "please refund order 7", ledger
    )
    assert acknowledged["interrupts"] == [{"action": "refund", "order_id": "7"}]
    assert acknowledged["next"] == ["tools"]

    durable_server.kill()  # kill -9
    durable_server.restart()  # same data directory, same port: the AOF is replayed

    resumed = await asyncio.to_thread(
        run_agent_process, durable_server, "resume", "support-3", "yes", ledger
    )
    assert resumed["before"] == acknowledged["checkpoint_id"]
    assert resumed["next_before"] == ["tools"]
    assert ledger.read_text(encoding="utf-8") == "refund 7\n"

    client = redis.asyncio.Redis.from_url(durable_server.url, db=DB)
    try:
        aio = agent(AsyncRedisSaver(redis_client=client, settings=make_settings()))
        state = await aio.aget_state(config("support-3"))
        messages = state.values["messages"]
        assert kinds(messages) == TURN
        assert messages[2].content == "order 7 refunded"
        assert messages[3].content == "Done: order 7 refunded"
        assert state.next == ()
        assert [message_to_dict(m) for m in messages] == resumed["messages"]
        await assert_thread_is_the_conversation(
            durable_server.client(db=DB), client, "support-3", state
        )
    finally:
        await client.aclose()
    assert_every_key_has_a_ttl(durable_server)


# -- the agent process (this file run as a script) ----------------------------------------------


def agent_env(ledger: Path | None = None) -> dict[str, str]:
    """The child's environment: none of the variables Settings reads, the repo importable."""
    unset = set(environment_names().values())
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if ledger is not None:
        env[LEDGER_ENV] = str(ledger)
    return env


def agent_command(server: RedisProcess, *args: str) -> list[str]:
    return [sys.executable, str(THIS_FILE), f"{server.url}/{DB}", *args]


def ask_then_kill_9(server: RedisProcess, thread: str, text: str, ledger: Path) -> Any:
    """Runs an agent process up to its interrupt, reads what it was acknowledged, kills it."""
    with subprocess.Popen(
        agent_command(server, "ask", thread, text),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=agent_env(ledger),
        cwd=ROOT,
    ) as asked:
        try:
            assert asked.stdout is not None
            return json.loads(asked.stdout.readline())
        finally:
            asked.kill()  # kill -9 while it waits for the human


def run_agent_process(
    server: RedisProcess, command: str, thread: str, text: str, ledger: Path | None = None
) -> dict[str, Any]:
    done = subprocess.run(
        agent_command(server, command, thread, text),
        env=agent_env(ledger),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _emit(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def _main(url: str, command: str, thread: str, text: str) -> None:
    graph = agent(RedisSaver.from_url(url))
    if command == "turn":
        graph.invoke(user(text), config(thread))
        state = graph.get_state(config(thread))
        _emit(
            {
                "messages": len(state.values["messages"]),
                "checkpoint_id": state.config["configurable"]["checkpoint_id"],
            }
        )
    elif command == "ask":
        graph.invoke(user(text), config(thread))
        state = graph.get_state(config(thread))
        _emit(
            {
                "checkpoint_id": state.config["configurable"]["checkpoint_id"],
                "next": list(state.next),
                "interrupts": [i.value for t in state.tasks for i in t.interrupts],
            }
        )
        sys.stdin.readline()  # waits for the human (the test kills it here)
    elif command == "resume":
        before = graph.get_state(config(thread))
        graph.invoke(Command(resume={"approved": text == "yes"}), config(thread))
        after = graph.get_state(config(thread))
        _emit(
            {
                "before": before.config["configurable"]["checkpoint_id"],
                "next_before": list(before.next),
                "messages": [message_to_dict(m) for m in after.values["messages"]],
            }
        )


if __name__ == "__main__":
    _main(*sys.argv[1:5])
