"""The MCP tools through the official SDK's own client (``mcp.ClientSession``).

Over streamable HTTP against the REST app in-process (``/mcp``, the API's keys and tenants), on
fakeredis and on a real redis-server; over stdio against a real ``agent-memory mcp`` process
on a real redis-server (and on the embedded server it starts when no Redis is configured)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from agent_memory import AsyncConversationStore, ConversationStore, Settings
from agent_memory.embedded import RedisProcess, free_port
from agent_memory.mcp import HttpEndpoint, create_server
from api.app import create_app
from tests.support.settings import make_settings

EXE = Path(sys.executable).with_name("agent-memory")
KEYS = "key-a:tenant-a,key-b:tenant-b"
MAX_PAGE = 50
MAX_MESSAGES = 10
MAX_BYTES = 4096
TOOLS = {
    "list_conversations",
    "get_messages",
    "append_messages",
    "create_conversation",
    "get_conversation",
    "update_conversation",
    "delete_conversation",
}
TIMEOUT = 30.0


def make_config(**values: Any) -> Settings:
    """The tests' keys and limits, plus ``values`` (nothing from the environment)."""
    base = {
        "api_keys": KEYS,
        "admin_keys": "key-admin",
        "max_page_size": MAX_PAGE,
        "max_messages_per_request": MAX_MESSAGES,
        "max_message_bytes": MAX_BYTES,
    }
    return make_settings(**{**base, **values})


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- the app and its clients ----------------------------------------------------------------
@asynccontextmanager
async def app_on(redis: Any, **settings: Any) -> AsyncIterator[FastAPI]:
    config = make_config(**settings)
    app = create_app(config, AsyncConversationStore(redis, settings=config))
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        await redis.aclose()


@pytest.fixture
def serve(backend: Any) -> Any:
    """``async with serve() as app``: the app on the test's backend, its lifespan running."""
    return lambda: app_on(backend.async_client())


@asynccontextmanager
async def rest(app: FastAPI, key: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=auth(key)
    ) as client:
        yield client


@asynccontextmanager
async def over_http(app: Any, key: str | None) -> AsyncIterator[ClientSession]:
    """An MCP session with the app's ``/mcp``, in-process (the SDK's HTTP client on an ASGI
    transport), sending ``key`` as the bearer token."""
    headers = auth(key) if key else {}
    transport = httpx2.ASGITransport(app=app)
    async with (
        httpx2.AsyncClient(transport=transport, base_url="http://test", headers=headers) as http,
        streamable_http_client("http://test/mcp", http_client=http) as (read, write),
        ClientSession(read, write, read_timeout_seconds=TIMEOUT) as session,
    ):
        await session.initialize()
        yield session


async def ok(session: ClientSession, tool: str, **arguments: Any) -> Any:
    """The structured result of a successful call (and its text is the same JSON)."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert json.loads(text_of(result)) == result.structured_content
    return result.structured_content


async def error(session: ClientSession, tool: str, **arguments: Any) -> str:
    """The text of a call that ended in a tool error (``isError``, not a protocol error)."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return text_of(result)


def text_of(result: CallToolResult) -> str:
    (block,) = result.content
    assert block.type == "text"
    return block.text


# -- the tools --------------------------------------------------------------------------------
async def test_tools_are_listed_with_descriptions_schemas_and_the_configured_limits(
    serve: Any,
) -> None:
    async with serve() as app:
        async with over_http(app, "key-a") as session:
            listed = {t.name: t for t in (await session.list_tools()).tools}
        assert set(listed) == TOOLS
        for tool in listed.values():
            assert len(tool.description or "") > 40, tool.name
            assert tool.input_schema["type"] == "object"
            assert tool.output_schema is not None, tool.name
        props = listed["get_messages"].input_schema["properties"]
        assert props["limit"]["maximum"] == MAX_PAGE
        assert props["limit"]["minimum"] == 1
        assert props["conversation_id"]["maxLength"] == 256
        canonical = r"^(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})$"  # as the store prints one
        assert props["before"]["anyOf"][0]["pattern"] == canonical
        assert listed["get_messages"].input_schema["required"] == ["conversation_id"]
        messages = listed["append_messages"].input_schema["properties"]["messages"]
        assert (messages["minItems"], messages["maxItems"]) == (1, MAX_MESSAGES)
        hints = {name: tool.annotations for name, tool in listed.items()}
        assert all(hints.values())
        assert getattr(hints["get_messages"], "read_only_hint", None) is True
        assert getattr(hints["append_messages"], "idempotent_hint", None) is True
        assert getattr(hints["delete_conversation"], "destructive_hint", None) is True


async def test_every_tool_over_http(serve: Any) -> None:
    async with serve() as app, over_http(app, "key-a") as s:
        made = await ok(s, "create_conversation", conversation_id="c", user_id="u", title="t")
        assert (made["id"], made["user_id"], made["title"], made["version"]) == (
            "c",
            "u",
            "t",
            1,
        )
        await ok(s, "create_conversation", conversation_id="other", agent_id="bot")
        turns = [{"role": "user", "content": f"turn {i}", "id": f"m{i}"} for i in range(5)]
        stored = (await ok(s, "append_messages", conversation_id="c", messages=turns))["messages"]
        assert [m["content"] for m in stored] == [f"turn {i}" for i in range(5)]
        # re-sending the same ids stores nothing new and returns the stored messages
        again = await ok(s, "append_messages", conversation_id="c", messages=turns[3:])
        assert again["messages"] == stored[3:]

        last = (await ok(s, "get_messages", conversation_id="c", limit=2))["messages"]
        assert [m["id"] for m in last] == ["m3", "m4"]
        older = await ok(s, "get_messages", conversation_id="c", limit=2, before=last[0]["cursor"])
        assert [m["id"] for m in older["messages"]] == ["m1", "m2"]
        newer = await ok(s, "get_messages", conversation_id="c", after=stored[0]["cursor"])
        assert [m["id"] for m in newer["messages"]] == ["m1", "m2", "m3", "m4"]

        meta = await ok(s, "get_conversation", conversation_id="c")
        assert (meta["message_count"], meta["version"]) == (5, 1)
        assert meta["expires_at"] is not None
        updated = await ok(
            s, "update_conversation", conversation_id="c", metadata={"k": 1}, version=1
        )
        assert (updated["metadata"], updated["title"], updated["version"]) == ({"k": 1}, "t", 2)
        removed = await ok(s, "update_conversation", conversation_id="c", remove=["title"])
        assert (removed["title"], removed["metadata"]) == (None, {"k": 1})

        by_user = await ok(s, "list_conversations", user_id="u")
        assert [c["id"] for c in by_user["items"]] == ["c"]
        by_agent = await ok(s, "list_conversations", agent_id="bot")
        assert [c["id"] for c in by_agent["items"]] == ["other"]
        first = await ok(s, "list_conversations", limit=1)
        rest_ = await ok(s, "list_conversations", limit=1, cursor=first["next_cursor"])
        assert [c["id"] for c in first["items"] + rest_["items"]] == ["c", "other"]
        assert rest_["next_cursor"] is None

        assert await ok(s, "delete_conversation", conversation_id="c") == {"deleted": True}
        gone = await error(s, "get_conversation", conversation_id="c")
        assert gone.startswith("not_found (field conversation_id)")
        again_gone = await error(s, "delete_conversation", conversation_id="c")
        assert again_gone.startswith("not_found (field conversation_id)")


async def test_a_stale_version_is_a_version_conflict_naming_version(serve: Any) -> None:
    async with serve() as app, over_http(app, "key-a") as s:
        await ok(s, "create_conversation", conversation_id="c")
        await ok(s, "update_conversation", conversation_id="c", title="first")
        stale = await error(s, "update_conversation", conversation_id="c", title="x", version=1)
        assert stale.startswith("version_conflict (field version)")
        assert "version 2" in stale
        assert (await ok(s, "get_conversation", conversation_id="c"))["title"] == "first"


async def test_an_idempotency_key_reused_with_other_messages_is_a_tool_error(
    serve: Any,
) -> None:
    async with serve() as app, over_http(app, "key-a") as s:
        first = [{"role": "user", "content": "a"}]
        one = await ok(
            s, "append_messages", conversation_id="c", messages=first, idempotency_key="k"
        )
        assert (
            await ok(s, "append_messages", conversation_id="c", messages=first, idempotency_key="k")
            == one
        )
        other = [{"role": "user", "content": "b"}]
        reused = await error(
            s, "append_messages", conversation_id="c", messages=other, idempotency_key="k"
        )
        assert reused.startswith("invalid_input (field idempotency_key)")
        assert len((await ok(s, "get_messages", conversation_id="c"))["messages"]) == 1


BAD_ARGUMENTS = [
    ("get_messages", {"conversation_id": "c", "limit": 0}, "limit"),
    ("get_messages", {"conversation_id": "c", "limit": MAX_PAGE + 1}, "limit"),
    ("get_messages", {"conversation_id": "c", "before": "yesterday"}, "before"),
    ("get_messages", {"conversation_id": "c", "after": "1-2-3"}, "after"),
    ("get_messages", {}, "conversation_id"),
    ("get_messages", {"conversation_id": ""}, "conversation_id"),
    ("get_messages", {"conversation_id": "a\x00b"}, "conversation_id"),
    ("get_messages", {"conversation_id": "x" * 257}, "conversation_id"),
    ("list_conversations", {"limit": MAX_PAGE + 1}, "limit"),
    ("list_conversations", {"cursor": "not-a-cursor"}, "cursor"),
    ("list_conversations", {"user_id": ""}, "user_id"),
    ("append_messages", {"conversation_id": "c", "messages": []}, "messages"),
    ("append_messages", {"conversation_id": "c", "messages": "hello"}, "messages"),
    (
        "append_messages",
        {"conversation_id": "c", "messages": [{"role": "user", "content": "x"}] * 11},
        "messages",
    ),
    (
        "append_messages",
        {"conversation_id": "c", "messages": [{"role": "robot", "content": "x"}]},
        "messages[0].role",
    ),
    (
        "append_messages",
        {"conversation_id": "c", "messages": [{"role": "tool", "content": "x"}]},
        "messages[0]",
    ),
    (
        "append_messages",
        {"conversation_id": "c", "messages": [{"role": "user", "content": "x", "id": ""}]},
        "messages[0].id",
    ),
    (
        "append_messages",
        {
            "conversation_id": "c",
            "messages": [
                {"role": "user", "content": "fine"},
                {"role": "user", "content": "x" * (MAX_BYTES + 1)},
            ],
        },
        "messages[1]",
    ),
    ("update_conversation", {"conversation_id": "c", "version": -1}, "version"),
    ("update_conversation", {"conversation_id": "c", "remove": ["owner"]}, "remove[0]"),
    ("update_conversation", {"conversation_id": "c", "title": "t", "remove": ["title"]}, "remove"),
    ("update_conversation", {"conversation_id": "c", "title": "t" * 1025}, "title"),
    ("create_conversation", {"metadata": "not an object"}, "metadata"),
]


@pytest.mark.parametrize(("tool", "arguments", "field"), BAD_ARGUMENTS)
async def test_bad_arguments_are_tool_errors_naming_the_field(
    serve: Any, tool: str, arguments: dict[str, Any], field: str
) -> None:
    async with serve() as app, over_http(app, "key-a") as s:
        await ok(s, "create_conversation", conversation_id="c")
        text = await error(s, tool, **arguments)
        code = "too_large" if field == "messages[1]" else "invalid_input"  # REST's 413 code
        assert text.startswith(f"{code} (field {field}):"), text
        messages = (await ok(s, "get_messages", conversation_id="c"))["messages"]
        assert messages == []  # nothing of a refused append was stored


# -- keys and tenants -------------------------------------------------------------------------
async def test_mcp_without_a_key_is_401_and_a_wrong_or_admin_key_is_refused(
    serve: Any,
) -> None:
    async with serve() as app:
        hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            anonymous = await client.post("/mcp", json=hello)
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"] == "Bearer"
            assert anonymous.json()["error"]["code"] == "unauthorized"
            wrong = await client.post("/mcp", json=hello, headers=auth("key-nope"))
            assert wrong.status_code == 401
            admin = await client.post("/mcp", json=hello, headers=auth("key-admin"))
            assert admin.status_code == 403
        with pytest.raises(BaseException, match="unhandled errors"):  # the SDK's client gives up
            async with over_http(app, None):
                pass


async def test_one_tenant_sees_nothing_of_another_over_mcp_and_over_rest(serve: Any) -> None:
    async with serve() as app:
        secret = [{"role": "user", "content": "secret of A", "id": "m1"}]
        async with over_http(app, "key-a") as a:
            await ok(a, "create_conversation", conversation_id="c", user_id="u", title="A's")
            await ok(a, "append_messages", conversation_id="c", messages=secret)
        async with over_http(app, "key-b") as b:
            for tool, extra in [
                ("get_conversation", {}),
                ("get_messages", {}),
                ("update_conversation", {"title": "hijacked"}),
                ("delete_conversation", {}),
            ]:
                text = await error(b, tool, conversation_id="c", **extra)
                assert text.startswith("not_found"), (tool, text)
                assert "secret" not in text
            assert (await ok(b, "list_conversations"))["items"] == []
            assert (await ok(b, "list_conversations", user_id="u"))["items"] == []
            # B writing to "c" makes B's own conversation
            mine = [{"role": "user", "content": "B's own", "id": "m1"}]
            await ok(b, "append_messages", conversation_id="c", messages=mine)
        async with rest(app, "key-b") as b_rest:
            got = (await b_rest.get("/api/v1/conversations/c/messages")).json()["messages"]
            assert [m["content"] for m in got] == ["B's own"]
        async with rest(app, "key-a") as a_rest:
            got = (await a_rest.get("/api/v1/conversations/c/messages")).json()["messages"]
            assert [m["content"] for m in got] == ["secret of A"]
            assert (await a_rest.get("/api/v1/conversations/c")).json()["title"] == "A's"
        async with over_http(app, "key-a") as a:
            kept = await ok(a, "get_messages", conversation_id="c")
            assert [m["content"] for m in kept["messages"]] == ["secret of A"]


async def test_without_api_keys_mcp_is_open_and_shares_the_open_apis_conversations(
    backend: Any,
) -> None:
    redis = backend.async_client()
    async with app_on(redis, api_keys=None, admin_keys=None) as app:
        async with over_http(app, None) as s:
            message = [{"role": "user", "content": "open", "id": "m1"}]
            await ok(s, "append_messages", conversation_id="c", messages=message)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            got = (await client.get("/api/v1/conversations/c/messages")).json()["messages"]
    assert [m["content"] for m in got] == ["open"]


# -- one store, two interfaces ---------------------------------------------------------------
TURN = [
    {"role": "system", "content": "be brief", "id": "s1"},
    {"role": "user", "content": [{"type": "text", "text": "weather?"}], "id": "u1", "name": "ada"},
    {
        "role": "assistant",
        "content": "",
        "id": "a1",
        "tool_calls": [{"id": "call-1", "name": "weather", "args": {"city": "Paris"}}],
        "metadata": {"model": "m-1"},
    },
    {"role": "tool", "content": "sunny", "tool_call_id": "call-1", "id": "t1"},
]
WRITTEN = {"role", "content", "id", "name", "tool_calls", "tool_call_id", "metadata"}


def written(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k in WRITTEN}


async def test_a_message_appended_over_mcp_reads_the_same_over_rest_and_back(
    serve: Any,
) -> None:
    async with serve() as app:
        async with over_http(app, "key-a") as s:
            over_mcp = (await ok(s, "append_messages", conversation_id="c", messages=TURN))[
                "messages"
            ]
        async with rest(app, "key-a") as client:
            read = (await client.get("/api/v1/conversations/c/messages")).json()["messages"]
            assert [written(m) for m in read] == TURN
            assert read == over_mcp  # the same shape, cursors and times
            posted = await client.post(
                "/api/v1/conversations/c/messages",
                json={
                    "messages": [{"role": "assistant", "content": "Sunny in Paris.", "id": "a2"}]
                },
            )
            assert posted.status_code == 201
        async with over_http(app, "key-a") as s:
            back = (await ok(s, "get_messages", conversation_id="c"))["messages"]
        assert [written(m) for m in back] == [
            *TURN,
            {"role": "assistant", "content": "Sunny in Paris.", "id": "a2"},
        ]
        assert back[-1] == posted.json()["messages"][0]


# -- an outage ---------------------------------------------------------------------------------
async def test_redis_down_is_a_tool_error_saying_retrying_with_the_same_ids_is_safe() -> None:
    from agent_memory import connection

    dead_url = f"redis://127.0.0.1:{free_port()}/2"
    dead = connection.async_client(make_config(redis_url=dead_url, retries=0))
    async with app_on(dead, retries=0) as app, over_http(app, "key-a") as s:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("append_messages", {"conversation_id": "c", "messages": TURN}),
            ("get_messages", {"conversation_id": "c"}),
            ("list_conversations", {}),
        ]
        for tool, arguments in calls:
            text = await error(s, tool, **arguments)
            assert text.startswith("store_unavailable: the memory store is unavailable"), text
            assert "retrying it with the same message ids" in text
            assert "is safe" in text


# -- stdio: a real `agent-memory mcp` process ----------------------------------------------------
def clean_env(**values: str) -> dict[str, str]:
    """The test's environment without any Redis / agent-memory setting, plus ``values``."""
    ours = ("REDIS_", "AGENT_MEMORY_", "CACHE_TTL_")
    return {k: v for k, v in os.environ.items() if not k.startswith(ours)} | values


@asynccontextmanager
async def over_stdio(env: dict[str, str], log: Path, *args: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=str(EXE), args=["mcp", *args], env=env)
    with log.open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, read_timeout_seconds=TIMEOUT) as session,
        ):
            await session.initialize()
            yield session


@pytest.fixture
def real_db(redis_server: RedisProcess) -> ConversationStore:
    """DB 2 of the session's real redis-server, emptied, with a store on it."""
    client = redis_server.client(db=2)
    client.flushdb()
    return ConversationStore(client, settings=make_config(api_keys=None, admin_keys=None))


async def test_every_tool_over_stdio_on_a_real_redis(
    redis_server: RedisProcess, real_db: ConversationStore, tmp_path: Path
) -> None:
    env = clean_env(REDIS_URL=f"{redis_server.url}/2", AGENT_MEMORY_MAX_PAGE_SIZE="7")
    log = tmp_path / "mcp.log"
    async with over_stdio(env, log) as s:
        listed = {t.name: t for t in (await s.list_tools()).tools}
        assert set(listed) == TOOLS
        assert listed["get_messages"].input_schema["properties"]["limit"]["maximum"] == 7
        await ok(s, "create_conversation", conversation_id="c", user_id="u", agent_id="bot")
        stored = (await ok(s, "append_messages", conversation_id="c", messages=TURN))["messages"]
        assert (await ok(s, "append_messages", conversation_id="c", messages=TURN[:1]))[
            "messages"
        ] == stored[:1]
        page = await ok(
            s, "get_messages", conversation_id="c", limit=2, before=stored[-1]["cursor"]
        )
        assert [m["id"] for m in page["messages"]] == ["u1", "a1"]
        assert [c["id"] for c in (await ok(s, "list_conversations", agent_id="bot"))["items"]] == [
            "c"
        ]
        await ok(s, "update_conversation", conversation_id="c", title="weather", version=1)
        assert (await ok(s, "get_conversation", conversation_id="c"))["message_count"] == 4
        bad = await error(s, "get_messages", conversation_id="c", limit=8)
        assert bad.startswith("invalid_input (field limit)")
        # the library (and so REST and export) reads what the MCP tools wrote
        assert [written(m.to_dict()) for m in real_db.get_messages("c")] == TURN
        assert real_db.get_conversation("c").title == "weather"
        assert await ok(s, "delete_conversation", conversation_id="c") == {"deleted": True}
    assert real_db.list_conversations(limit=10).items == []
    assert "using Redis at" in log.read_text()  # said on stderr: stdout is the protocol's


async def test_stdio_with_a_tenant_serves_what_that_tenants_api_key_sees(
    redis_server: RedisProcess, real_db: ConversationStore, tmp_path: Path
) -> None:
    env = clean_env(REDIS_URL=f"{redis_server.url}/2")
    message = [{"role": "user", "content": "from stdio", "id": "m1"}]
    async with over_stdio(env, tmp_path / "mcp.log", "--tenant", "tenant-a") as s:
        await ok(s, "append_messages", conversation_id="c", messages=message)
    assert real_db.list_conversations(limit=10).items == []  # not under the bare prefix
    async with app_on(_async(redis_server)) as app:
        async with rest(app, "key-a") as a:
            got = (await a.get("/api/v1/conversations/c/messages")).json()["messages"]
            assert [m["content"] for m in got] == ["from stdio"]
        async with rest(app, "key-b") as b:
            assert (await b.get("/api/v1/conversations/c/messages")).status_code == 404
        async with over_http(app, "key-a") as a_mcp:
            read = await ok(a_mcp, "get_messages", conversation_id="c")
            assert [m["content"] for m in read["messages"]] == ["from stdio"]


def _async(server: RedisProcess) -> Any:
    import redis.asyncio

    return redis.asyncio.Redis.from_url(f"{server.url}/2")


async def test_stdio_without_redis_configured_starts_an_embedded_server_that_keeps_the_data(
    tmp_path: Path,
) -> None:
    env = clean_env(AGENT_MEMORY_DATA_DIR=str(tmp_path / "data"))
    log = tmp_path / "mcp.log"
    message = [{"role": "user", "content": "remember me", "id": "m1"}]
    async with over_stdio(env, log) as s:
        await ok(s, "append_messages", conversation_id="c", messages=message)
    assert "embedded Redis at" in log.read_text()
    assert "embedded Redis stopped" in log.read_text()
    async with over_stdio(env, log) as s:  # a new process, a new server, the same AOF
        read = await ok(s, "get_messages", conversation_id="c")
    assert [m["content"] for m in read["messages"]] == ["remember me"]


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}


def test_sigterm_stops_stdio_and_its_embedded_server_with_exit_0(tmp_path: Path) -> None:
    env = clean_env(AGENT_MEMORY_DATA_DIR=str(tmp_path / "data"))
    log = tmp_path / "mcp.log"
    pipe = subprocess.PIPE
    with (
        log.open("wb") as errlog,
        subprocess.Popen(
            [str(EXE), "mcp"], env=env, stdin=pipe, stdout=pipe, stderr=errlog
        ) as proc,
    ):
        try:
            deadline = time.monotonic() + TIMEOUT
            while "embedded Redis at" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.05)
            lock = tmp_path / "data" / "redis" / "serve.lock"
            server_pid = int(lock.read_text().split()[0])
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
            proc.stdin.flush()
            assert json.loads(proc.stdout.readline())["id"] == 1  # serving: reading stdin
            proc.send_signal(signal.SIGTERM)  # with stdin still open
            assert proc.wait(timeout=TIMEOUT) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "embedded Redis stopped" in log.read_text()
    assert not Path(f"/proc/{server_pid}").exists()


# -- in-process (the SDK's in-memory transport): which store a call uses ------------------------
async def test_an_http_request_the_host_did_not_bind_a_store_to_is_refused() -> None:
    """Over HTTP the tools never fall back to the stdio store: a host that forgot to
    authenticate a request gets a refusal, not the default tenant's data."""
    import fakeredis
    from starlette.applications import Starlette
    from starlette.routing import Route

    redis = fakeredis.FakeAsyncRedis(protocol=3)
    default = AsyncConversationStore(redis, settings=make_config())
    await default.append("c", [{"role": "user", "content": "default's", "id": "m1"}])
    endpoint = HttpEndpoint(create_server(default))

    class Unbound:  # an ASGI app (Starlette would wrap a function as a request handler)
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await endpoint.server.session_manager.handle_request(scope, receive, send)

    host = Starlette(routes=[Route("/mcp", Unbound())])
    async with endpoint.running(), over_http(host, None) as s:
        for tool, arguments in [
            ("list_conversations", {}),
            ("get_messages", {"conversation_id": "c"}),
        ]:
            text = await error(s, tool, **arguments)
            assert text.startswith("unauthorized"), text
            assert "default's" not in text
    await redis.aclose()


async def test_a_server_without_a_store_refuses_calls_instead_of_guessing_one() -> None:
    from mcp import Client

    server = create_server(settings=make_config())
    async with Client(server) as client:  # in-memory: no HTTP request, no stdio store
        result = await client.call_tool("list_conversations", {})
    assert result.is_error
    assert text_of(result).startswith("unauthorized")
