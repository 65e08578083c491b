"""API keys and tenants: no key -> 401, another tenant's conversation -> 404 on every route,
cache routes for admin keys only. Run on fakeredis and on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.deps import ApiState, parse_api_keys
from tests.support.api import ADMIN_KEYS, AUTH_A, AUTH_ADMIN, AUTH_B, TENANT_KEYS, api_client
from tests.support.backends import Backend, key_names

BASE = "/api/v1/conversations"
MESSAGES = {"messages": [{"role": "user", "content": "secret of A", "id": "m1"}]}

# Every conversation route, with what it does to conversation "c".
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", f"{BASE}/c", {}),
    ("PATCH", f"{BASE}/c", {"json": {"title": "hijacked"}}),
    ("DELETE", f"{BASE}/c", {}),
    ("GET", f"{BASE}/c/messages", {}),
]


@pytest.fixture
async def client(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(backend, api_keys=TENANT_KEYS, admin_keys=ADMIN_KEYS) as c:
        yield c


async def seed_tenant_a(client: httpx.AsyncClient) -> None:
    made = await client.post(BASE, json={"id": "c", "user_id": "u"}, headers=AUTH_A)
    assert made.status_code == 201
    appended = await client.post(f"{BASE}/c/messages", json=MESSAGES, headers=AUTH_A)
    assert appended.status_code == 201


@pytest.mark.parametrize(("method", "path", "kw"), ROUTES)
async def test_other_tenant_gets_404_on_every_conversation_route(
    client: httpx.AsyncClient, method: str, path: str, kw: dict[str, Any]
) -> None:
    await seed_tenant_a(client)
    response = await client.request(method, path, headers=AUTH_B, **kw)
    assert response.status_code == 404, response.text
    assert "secret" not in response.text
    owner = await client.get(f"{BASE}/c/messages", headers=AUTH_A)  # untouched for A
    assert [m["content"] for m in owner.json()["messages"]] == ["secret of A"]
    assert (await client.get(f"{BASE}/c", headers=AUTH_A)).json()["title"] is None


async def test_other_tenant_sees_nothing_in_lists_and_writes_its_own_conversation(
    client: httpx.AsyncClient,
) -> None:
    await seed_tenant_a(client)
    assert (await client.get(BASE, headers=AUTH_B)).json()["items"] == []
    by_user = await client.get(BASE, params={"user_id": "u"}, headers=AUTH_B)
    assert by_user.json()["items"] == []
    erased = await client.delete(BASE, params={"user_id": "u"}, headers=AUTH_B)
    assert erased.json() == {"deleted": 0}
    # B appending to "c" (same id, or same message id) makes B's own conversation
    mine = await client.post(f"{BASE}/c/messages", json=MESSAGES, headers=AUTH_B)
    assert mine.status_code == 201
    dup = await client.post(BASE, json={"id": "c"}, headers=AUTH_B)
    assert dup.status_code == 409  # B's own "c" now exists
    a_msgs = (await client.get(f"{BASE}/c/messages", headers=AUTH_A)).json()["messages"]
    b_msgs = (await client.get(f"{BASE}/c/messages", headers=AUTH_B)).json()["messages"]
    assert len(a_msgs) == 1
    assert len(b_msgs) == 1
    assert [c["id"] for c in (await client.get(BASE, headers=AUTH_A)).json()["items"]] == ["c"]


ALL_ROUTES = [
    *ROUTES,
    ("POST", BASE, {"json": {"id": "x"}}),
    ("GET", BASE, {}),
    ("DELETE", BASE, {"params": {"user_id": "u"}}),
    ("POST", f"{BASE}/c/messages", {"json": MESSAGES}),
    ("GET", "/api/v1/cache/stats", {}),
    ("DELETE", "/api/v1/cache/clear", {}),
    ("GET", "/metrics", {}),
]


@pytest.mark.parametrize(("method", "path", "kw"), ALL_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "key-a"},
        {"Authorization": "Basic a"},
    ],
)
async def test_every_route_but_health_needs_a_valid_key(
    client: httpx.AsyncClient,
    backend: Backend,
    method: str,
    path: str,
    kw: dict[str, Any],
    headers: dict[str, str],
) -> None:
    await seed_tenant_a(client)
    keys_before = backend.client.dbsize()
    response = await client.request(method, path, headers=headers, **kw)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert backend.client.dbsize() == keys_before


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200


@pytest.mark.parametrize(("method", "path"), [("GET", "/stats"), ("DELETE", "/clear")])
async def test_cache_routes_are_for_admin_keys(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    await seed_tenant_a(client)
    url = "/api/v1/cache" + path
    denied = await client.request(method, url, headers=AUTH_A)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"
    assert (await client.get(f"{BASE}/c", headers=AUTH_A)).status_code == 200
    assert (await client.request(method, url, headers=AUTH_ADMIN)).status_code == 200


async def test_admin_clear_and_stats_cover_every_tenant(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await seed_tenant_a(client)
    await client.post(BASE, json={"id": "b1"}, headers=AUTH_B)
    stats = (await client.get("/api/v1/cache/stats", headers=AUTH_ADMIN)).json()
    assert stats["conversations"] == 2
    before = backend.client.dbsize()
    cleared = await client.delete("/api/v1/cache/clear", headers=AUTH_ADMIN)
    assert cleared.json() == {"deleted": before}
    assert backend.client.dbsize() == 0
    assert (await client.get(f"{BASE}/c", headers=AUTH_A)).status_code == 404


async def test_admin_key_is_not_a_tenant_key(client: httpx.AsyncClient) -> None:
    response = await client.get(BASE, headers=AUTH_ADMIN)
    assert response.status_code == 403


async def test_tenant_keys_live_under_their_own_prefix(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await seed_tenant_a(client)
    keys = key_names(backend.client)
    assert keys
    assert all(k.startswith("agent_memory:t:tenant-a:") for k in keys)


@pytest.mark.parametrize(
    ("method", "path", "kw", "headers"),
    [
        ("POST", f"{BASE}/c/messages", {"json": MESSAGES}, AUTH_A),  # the store and the state
        ("GET", f"{BASE}/c", {}, AUTH_A),
        ("GET", "/api/v1/cache/stats", {}, AUTH_ADMIN),
        ("GET", "/metrics", {}, AUTH_ADMIN),
    ],
)
async def test_a_key_is_looked_up_once_per_request(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    kw: dict[str, Any],
    headers: dict[str, str],
) -> None:
    await seed_tenant_a(client)
    lookups: list[str] = []
    identify = ApiState.identify

    def counted(self: ApiState, key: str) -> Any:
        lookups.append(key)
        return identify(self, key)

    monkeypatch.setattr(ApiState, "identify", counted)
    response = await client.request(method, path, headers=headers, **kw)
    assert response.status_code < 300, response.text
    assert lookups == [headers["Authorization"].removeprefix("Bearer ")]


def test_api_keys_setting_is_parsed_and_malformed_entries_rejected() -> None:
    assert parse_api_keys(" k1:ta , k2:tb ,") == {"k1": "ta", "k2": "tb"}
    with pytest.raises(ValueError, match="key:tenant"):
        parse_api_keys("k1")


async def test_without_keys_the_api_is_open_and_warns_at_startup(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="agent_memory.api"):
        async with api_client(backend) as client:
            assert (await client.get(BASE)).status_code == 200
    assert any("WITHOUT authentication" in r.getMessage() for r in caplog.records)


async def test_with_keys_there_is_no_startup_warning(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="agent_memory.api"):
        async with api_client(backend, api_keys=TENANT_KEYS):
            pass
    assert not any("WITHOUT authentication" in r.getMessage() for r in caplog.records)


# -- authentication before the body; docs, schema and metrics behind keys --------------------
async def test_without_a_key_invalid_json_and_oversized_bodies_get_401(
    client: httpx.AsyncClient,
) -> None:
    url = f"{BASE}/c/messages"
    bad = await client.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 401, bad.text
    huge = await client.post(url, content=b"x" * 5_000_000)
    assert huge.status_code == 401
    assert huge.headers["connection"] == "close"


async def test_docs_schema_and_metrics_need_the_right_key(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await client.get(path)).status_code == 401, path
        assert (await client.get(path, headers=AUTH_A)).status_code == 200, path
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers=AUTH_A)).status_code == 403
    assert (await client.get("/metrics", headers=AUTH_ADMIN)).status_code == 200
    assert (await client.get("/health")).status_code == 200


async def test_a_metrics_key_opens_metrics_only_and_docs_can_be_opened(backend: Backend) -> None:
    settings = {"api_keys": TENANT_KEYS, "metrics_keys": "scrape", "docs_public": True}
    async with api_client(backend, **settings) as client:
        scrape = {"Authorization": "Bearer scrape"}
        assert (await client.get("/metrics", headers=scrape)).status_code == 200
        assert (await client.get(BASE, headers=scrape)).status_code == 403
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get(BASE)).status_code == 401
