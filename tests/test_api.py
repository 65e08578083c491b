"""The REST API's behaviour, run on fakeredis and on a real redis-server (``backend``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from agent_memory import AsyncConversationStore
from agent_memory.embedded import RedisProcess
from api.app import create_app
from tests.support.api import api_client, running
from tests.support.backends import Backend
from tests.support.samples import FIDELITY
from tests.support.settings import make_settings

BASE = "/api/v1/conversations"


@pytest.fixture
async def client(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(backend) as c:
        yield c


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **extra}


async def post_messages(
    client: httpx.AsyncClient, cid: str, messages: list[dict[str, Any]], **kw: Any
) -> httpx.Response:
    return await client.post(f"{BASE}/{cid}/messages", json={"messages": messages}, **kw)


def assert_error(response: httpx.Response, status: int, code: str, field: str | None = None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field


# -- conversations --------------------------------------------------------------------------


async def test_create_get_and_duplicate_conversation(client: httpx.AsyncClient) -> None:
    body = {"id": "c1", "user_id": "u1", "agent_id": "a1", "title": "T", "metadata": {"k": [1]}}
    created = await client.post(BASE, json=body)
    assert created.status_code == 201
    assert created.headers["etag"] == '"1"'
    got = await client.get(f"{BASE}/c1")
    assert got.status_code == 200
    data = got.json()
    assert {k: data[k] for k in body} == body
    assert data["message_count"] == 0
    assert data["version"] == 1
    assert data["expires_at"]
    assert_error(await client.post(BASE, json={"id": "c1"}), 409, "conflict")


async def test_create_without_id_picks_one(client: httpx.AsyncClient) -> None:
    created = await client.post(BASE, json={})
    assert created.status_code == 201
    cid = created.json()["id"]
    assert (await client.get(f"{BASE}/{cid}")).status_code == 200


async def test_list_newest_activity_first_with_filters_and_paging(
    client: httpx.AsyncClient,
) -> None:
    for i in range(5):
        await client.post(BASE, json={"id": f"c{i}", "user_id": "u" if i % 2 else "v"})
    await asyncio.sleep(0.002)  # activity is kept in ms: a bump in the same ms would tie with c4
    await post_messages(client, "c0", [user("bump")])  # c0 becomes the most recent
    first = (await client.get(BASE, params={"limit": 3})).json()
    assert [c["id"] for c in first["items"]] == ["c0", "c4", "c3"]
    rest = (await client.get(BASE, params={"limit": 3, "cursor": first["next_cursor"]})).json()
    assert [c["id"] for c in rest["items"]] == ["c2", "c1"]
    assert rest["next_cursor"] is None
    mine = (await client.get(BASE, params={"user_id": "u"})).json()
    assert [c["id"] for c in mine["items"]] == ["c3", "c1"]


async def test_list_limit_beyond_page_size_is_422(backend: Backend) -> None:
    async with api_client(backend, max_page_size=5) as client:
        assert_error(await client.get(BASE, params={"limit": 6}), 422, "invalid_input", "limit")
        assert (await client.get(BASE, params={"limit": 5})).status_code == 200
        bad = await client.get(BASE, params={"cursor": "not-a-cursor"})
        assert_error(bad, 422, "invalid_input", "cursor")


async def test_patch_with_if_match_and_body_version(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json={"id": "c", "title": "old", "metadata": {"a": 1}})
    ok = await client.patch(f"{BASE}/c", json={"title": "new"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200
    assert ok.headers["etag"] == '"2"'
    assert ok.json()["title"] == "new"
    assert ok.json()["metadata"] == {"a": 1}
    stale = await client.patch(f"{BASE}/c", json={"title": "x"}, headers={"If-Match": '"1"'})
    assert_error(stale, 412, "version_conflict")
    assert_error(await client.patch(f"{BASE}/c", json={"version": 1}), 412, "version_conflict")
    cleared = await client.patch(f"{BASE}/c", json={"title": None, "version": 2})
    assert cleared.status_code == 200
    assert cleared.json()["title"] is None
    assert cleared.json()["version"] == 3
    unconditional = await client.patch(f"{BASE}/c", json={"metadata": {"b": 2}})
    assert unconditional.json()["metadata"] == {"b": 2}
    bad = await client.patch(f"{BASE}/c", json={}, headers={"If-Match": "abc"})
    assert_error(bad, 422, "invalid_input", "if-match")
    assert_error(await client.patch(f"{BASE}/nope", json={"title": "x"}), 404, "not_found")


async def test_delete_one_and_a_users_conversations(client: httpx.AsyncClient) -> None:
    for cid, uid in (("a", "u1"), ("b", "u1"), ("c", "u2")):
        await post_messages(client, cid, [user("x")])
        await client.post(BASE, json={"id": f"{cid}-meta", "user_id": uid})
    assert (await client.delete(f"{BASE}/a")).status_code == 204
    assert_error(await client.delete(f"{BASE}/a"), 404, "not_found")
    assert_error(await client.get(f"{BASE}/a/messages"), 404, "not_found")
    erased = await client.delete(BASE, params={"user_id": "u1"})
    assert erased.json() == {"deleted": 2}
    left = [c["id"] for c in (await client.get(BASE)).json()["items"]]
    assert sorted(left) == ["b", "c", "c-meta"]
    assert_error(await client.delete(BASE), 422, "invalid_input", "user_id")


# -- messages -------------------------------------------------------------------------------


async def test_append_creates_conversation_and_returns_stored_messages(
    client: httpx.AsyncClient,
) -> None:
    call = {"id": "t1", "name": "lookup", "args": {"q": "x"}}
    sent = [
        {"role": "system", "content": "be brief"},
        user("hi", id="m1", metadata={"lang": "en"}),
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "42", "tool_call_id": "t1", "name": "lookup"},
    ]
    response = await post_messages(client, "new", sent)
    assert response.status_code == 201
    stored = response.json()["messages"]
    for given, got in zip(sent, stored, strict=True):
        assert {k: got[k] for k in given} == given
        assert got["cursor"]
        assert got["created_at"]
    conversation = (await client.get(f"{BASE}/new")).json()
    assert conversation["message_count"] == 4
    read = (await client.get(f"{BASE}/new/messages")).json()["messages"]
    assert read == stored


async def test_resent_message_id_and_idempotency_key_store_nothing_twice(
    client: httpx.AsyncClient,
) -> None:
    first = (await post_messages(client, "c", [user("one", id="m1")])).json()["messages"]
    again = (await post_messages(client, "c", [user("changed", id="m1")])).json()["messages"]
    assert again == first  # the stored message, not the new text
    key = {"Idempotency-Key": "req-7"}
    a = (await post_messages(client, "c", [user("no id")], headers=key)).json()
    b = (await post_messages(client, "c", [user("no id")], headers=key)).json()
    assert a == b
    assert (await client.get(f"{BASE}/c")).json()["message_count"] == 2


async def test_read_last_n_and_page_both_ways(client: httpx.AsyncClient) -> None:
    await post_messages(client, "c", [user(f"m{i}") for i in range(10)])

    async def page(**params: Any) -> list[dict[str, Any]]:
        response = await client.get(f"{BASE}/c/messages", params=params)
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    last = await page(limit=3)
    assert [m["content"] for m in last] == ["m7", "m8", "m9"]
    older = await page(limit=3, before=last[0]["cursor"])
    assert [m["content"] for m in older] == ["m4", "m5", "m6"]
    newer = await page(limit=2, after=older[-1]["cursor"])
    assert [m["content"] for m in newer] == ["m7", "m8"]
    assert len(await page()) == 10
    bad = await client.get(f"{BASE}/c/messages", params={"before": "x"})
    assert_error(bad, 422, "invalid_input", "before")


async def test_limits_from_settings(backend: Backend) -> None:
    settings = {"max_message_bytes": 200, "max_messages_per_request": 3, "max_page_size": 4}
    async with api_client(backend, **settings) as client:
        big = await post_messages(client, "c", [user("x" * 300)])
        assert_error(big, 413, "too_large", "messages[0]")
        many = await post_messages(client, "c", [user("x")] * 4)
        assert_error(many, 422, "invalid_input", "messages")
        page = await client.get(f"{BASE}/c/messages", params={"limit": 5})
        assert_error(page, 422, "invalid_input", "limit")
        assert (await client.get(f"{BASE}/c")).status_code == 404  # nothing stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x", "bogus": 1}]}, "messages[0].bogus"),
        ({"messages": []}, "messages"),
        ({"message": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
    ],
)
async def test_bad_messages_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post(f"{BASE}/c/messages", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"].startswith(field)
    assert (await client.get(f"{BASE}/c")).status_code == 404


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{BASE}/c/messages", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize("cid", ["héllo 🙂", "*", "{x}", "a%2Fb", "[a-z]?", "x" * 256, "a:b:{c}"])
async def test_odd_ids_in_paths_are_their_own_conversations(
    client: httpx.AsyncClient, cid: str
) -> None:
    path = f"{BASE}/{quote(cid, safe='')}"
    response = await client.post(f"{path}/messages", json={"messages": [user("x")]})
    assert response.status_code == 201, response.text
    assert (await client.get(path)).json()["id"] == cid
    assert (await client.get(f"{BASE}/other")).status_code == 404
    listed = (await client.get(BASE)).json()["items"]
    assert [c["id"] for c in listed] == [cid]


async def test_encoded_slash_in_a_path_id_stores_nothing(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.post(f"{BASE}/a%2Fb/messages", json={"messages": [user("x")]})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert backend.client.dbsize() == 0


@pytest.mark.parametrize("cid", ["/", "a/", "/a", "a//b"])
async def test_an_id_with_a_slash_is_404_in_a_path_never_a_redirect(
    client: httpx.AsyncClient, cid: str
) -> None:
    """Such an id exists (created through a body) but cannot be addressed in a path: its
    encoded slashes decode into the path, which must not be redirected to another route or to
    the conversation without the slash."""
    assert (await client.post(BASE, json={"id": "a"})).status_code == 201
    assert (await client.post(BASE, json={"id": cid})).status_code == 201
    for suffix in ("", "/messages"):
        response = await client.get(f"{BASE}/{quote(cid, safe='')}{suffix}")
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("sent", "location"),
    [
        (f"{BASE}/", BASE),
        (f"{BASE}/x1/", f"{BASE}/x1"),
        (f"{BASE}/x1/messages/?limit=2", f"{BASE}/x1/messages?limit=2"),
        ("/health/", "/health"),
    ],
)
async def test_a_trailing_slash_the_client_wrote_is_redirected(
    client: httpx.AsyncClient, sent: str, location: str
) -> None:
    response = await client.get(sent)
    assert response.status_code == 307, response.text
    assert response.headers["location"] == location


@pytest.mark.parametrize("cid", ["x" * 257, "a%00b", "tab%09"])
async def test_bad_ids_in_paths_are_4xx_and_store_nothing(
    client: httpx.AsyncClient, backend: Backend, cid: str
) -> None:
    response = await client.post(f"{BASE}/{cid}/messages", json={"messages": [user("x")]})
    assert response.status_code == 422, response.text
    assert (await client.get(f"{BASE}/{cid}")).status_code == 422
    assert backend.client.dbsize() == 0


# -- LangChain <-> REST -----------------------------------------------------------------------


async def test_langchain_written_reads_back_over_rest_and_rest_written_in_langchain(
    backend: Backend,
) -> None:
    settings = make_settings()
    redis = backend.async_client()
    store = AsyncConversationStore(redis, settings=settings)
    try:
        async with running(create_app(settings, store)) as client:
            written = [m for _, m, _ in FIDELITY]
            expected = [m for _, _, m in FIDELITY]
            await store.append("lc", written)
            over_rest = (await client.get(f"{BASE}/lc/messages")).json()["messages"]
            assert len(over_rest) == len(written)
            by_rest = [
                {k: v for k, v in m.items() if k not in ("cursor", "created_at")} for m in over_rest
            ]
            response = await post_messages(client, "rest", by_rest)
            assert response.status_code == 201, response.text
            back = [m.to_langchain() for m in await store.get_messages("rest")]
            assert back == expected
            assert [type(m) for m in back] == [type(m) for m in expected]
    finally:
        await redis.aclose()


async def test_rest_message_with_tool_calls_is_an_ai_message_in_langchain(
    backend: Backend,
) -> None:
    settings = make_settings()
    redis = backend.async_client()
    store = AsyncConversationStore(redis, settings=settings)
    try:
        async with running(create_app(settings, store)) as client:
            call = {"id": "c1", "name": "f", "args": {"x": 1}}
            await post_messages(
                client,
                "c",
                [user("hi", id="u1"), {"role": "assistant", "content": "", "tool_calls": [call]}],
            )
            got = [m.to_langchain() for m in await store.get_messages("c")]
            assert got[0] == HumanMessage("hi", id="u1")
            assert isinstance(got[1], AIMessage)
            assert got[1].tool_calls == [{**call, "type": "tool_call"}]
    finally:
        await redis.aclose()


# -- health, cache, metrics -----------------------------------------------------------------


async def test_health_reports_redis(client: httpx.AsyncClient, backend: Backend) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["redis"]["reachable"] is True
    if backend.real:  # the test servers run with AOF on, everysec, noeviction
        assert body["redis"]["aof_enabled"] is True
        assert body["redis"]["appendfsync"] == "everysec"
        assert body["redis"]["maxmemory_policy"] == "noeviction"
        assert body["redis"]["version"]
        assert body["status"] == "ok"
        assert body["warnings"] == []
    else:  # fakeredis has no INFO/CONFIG: it says so instead of guessing
        assert body["status"] == "degraded"
        assert body["warnings"]


async def test_health_warns_when_memory_can_be_evicted_or_lost(tmp_path: Path) -> None:
    server = RedisProcess(
        tmp_path / "r", appendonly=False, extra_args=["--maxmemory-policy", "allkeys-lru"]
    ).start()
    try:
        app = create_app(make_settings(redis_url=f"{server.url}/2"))
        async with running(app) as client:
            body = (await client.get("/health")).json()
        assert body["status"] == "degraded"
        assert body["redis"]["aof_enabled"] is False
        assert body["redis"]["maxmemory_policy"] == "allkeys-lru"
        text = " ".join(body["warnings"])
        assert "allkeys-lru" in text
        assert "AOF is off" in text
    finally:
        server.stop()


async def test_redis_down_is_503_with_retry_after_then_recovers(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "r").start()
    try:
        settings = make_settings(redis_url=f"{server.url}/2", retries=0, connect_timeout=0.5)
        async with running(create_app(settings)) as client:
            assert (await post_messages(client, "c", [user("before")])).status_code == 201
            server.stop()
            for response in (
                await client.get("/health"),
                await client.get(f"{BASE}/c/messages"),
                await post_messages(client, "c", [user("during")]),
            ):
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
                assert "Traceback" not in response.text
            assert_error(await client.get(f"{BASE}/c"), 503, "store_unavailable")
            server.start()
            after = await client.get(f"{BASE}/c/messages")
            assert after.status_code == 200
            assert [m["content"] for m in after.json()["messages"]] == ["before"]
    finally:
        server.stop()


async def test_cache_stats_and_clear_only_our_prefix(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await post_messages(client, "c1", [user("x")])
    await client.post(BASE, json={"id": "c2"})
    backend.client.set("other_service:key", "keep")
    stats = (await client.get("/api/v1/cache/stats")).json()
    assert stats["connected"] is True
    assert stats["conversations"] == 2
    assert stats["keys"] == backend.client.dbsize()
    if backend.real:
        for name in ("memory_used", "keyspace_hits", "total_commands_processed"):
            assert stats[name] is not None
        assert stats["connected_clients"] >= 1
        assert 0 <= stats["hit_rate"] <= 100
    cleared = (await client.delete("/api/v1/cache/clear")).json()
    assert cleared["deleted"] >= 4
    assert backend.client.keys("*") == [b"other_service:key"]


async def test_metrics_count_requests_appends_and_reads(client: httpx.AsyncClient) -> None:
    await post_messages(client, "c", [user("a", id="1"), user("b", id="2")])
    await post_messages(client, "c", [user("a", id="1")])  # a re-sent id: not appended
    await client.get(f"{BASE}/c/messages")
    await client.get(f"{BASE}/missing/messages")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "agent_memory_messages_appended_total 2.0" in text
    assert "agent_memory_messages_read_total 2.0" in text
    route = "/api/v1/conversations/{conversation_id}/messages"
    assert f'agent_memory_http_errors_total{{route="{route}",status="404"}} 1.0' in text
    assert f'route="{route}",status="201"' in text
    assert 'agent_memory_redis_operation_seconds_count{operation="append"} 2.0' in text
    assert "agent_memory_redis_up 1.0" in text


async def test_two_apps_in_one_process_have_their_own_registries(backend: Backend) -> None:
    async with api_client(backend) as one, api_client(backend) as two:
        await post_messages(one, "c", [user("x")])
        assert "agent_memory_messages_appended_total 1.0" in (await one.get("/metrics")).text
        assert "agent_memory_messages_appended_total 0.0" in (await two.get("/metrics")).text


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert f"{BASE}/{{conversation_id}}/messages" in schema["paths"]
    assert (await client.get("/docs")).status_code == 200
    json.dumps(schema)


async def test_the_document_lists_the_routes_in_their_declared_order(
    client: httpx.AsyncClient,
) -> None:
    """The message routes are matched first (they are the busiest), but documented after
    the health and conversation routes, as declared."""
    paths = list((await client.get("/openapi.json")).json()["paths"])
    assert paths[:4] == [
        "/health",
        BASE,
        f"{BASE}/{{conversation_id}}",
        f"{BASE}/{{conversation_id}}/messages",
    ]
    assert paths[-1] == "/metrics"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"before": "0-0"}, 200),
        ({"after": "18446744073709551615-18446744073709551615", "limit": 5}, 200),
        ({"after": "99999999999999999999-0"}, 422),
        ({"before": "١٢-٣"}, 422),
    ],
)
async def test_cursors_at_the_edges_of_the_id_space(
    client: httpx.AsyncClient, params: dict[str, Any], status: int
) -> None:
    await post_messages(client, "c", [user("x")])
    response = await client.get(f"{BASE}/c/messages", params=params)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == {"messages": []}
