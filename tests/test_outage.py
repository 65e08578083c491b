"""Redis down: the library raises StoreUnavailable and the API answers 503 + Retry-After,
within the configured timeouts (never a 500, never a hang); Redis back on the same port: both
recover by themselves, and appends retried with the same message ids are not duplicated."""

from __future__ import annotations

import os
import signal
import time

import pytest
from fastapi.testclient import TestClient

from agent_memory import ConversationStore, StoreUnavailable
from agent_memory.embedded import RedisProcess
from api.app import create_app
from tests.support.settings import make_settings

pytestmark = [pytest.mark.redis_server]
# A generous bound on "does not hang": connect timeout 1 s, 2 retries with <= 0.5 s backoff.
NO_HANG = 5.0


def _msgs(*ids: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"text of {i}", "id": i} for i in ids]


def test_library_raises_store_unavailable_then_recovers_by_itself(
    durable_server: RedisProcess,
) -> None:
    store = ConversationStore.from_settings(make_settings(redis_url=f"{durable_server.url}/2"))
    store.append("c", _msgs("m1", "m2"))
    durable_server.kill()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.append("c", _msgs("m2", "m3"))
    with pytest.raises(StoreUnavailable):
        store.get_messages("c")
    assert time.monotonic() - started < NO_HANG
    durable_server.start()  # same port, same data directory
    retried = store.append("c", _msgs("m2", "m3"))  # the same client object, no reconnect call
    assert [m.added for m in retried] == [False, True]
    assert [m.id for m in store.get_messages("c")] == ["m1", "m2", "m3"]
    store.close()


def test_a_frozen_server_gives_store_unavailable_after_one_socket_timeout(
    durable_server: RedisProcess,
) -> None:
    # Timeouts are not retried (connection errors are): 1 s here, not (1 + retries) x 1 s.
    settings = make_settings(redis_url=f"{durable_server.url}/2", socket_timeout=1.0, retries=2)
    store = ConversationStore.from_settings(settings)
    store.append("c", _msgs("m1"))
    assert durable_server.pid is not None
    os.kill(durable_server.pid, signal.SIGSTOP)  # accepts connections (kernel) but never answers
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get_messages("c")
        assert 1.0 <= time.monotonic() - started < 1.9
    finally:
        os.kill(durable_server.pid, signal.SIGCONT)
    assert [m.id for m in store.get_messages("c")] == ["m1"]
    store.close()


def test_api_answers_503_while_redis_is_down_and_recovers_without_restart(
    durable_server: RedisProcess,
) -> None:
    app = create_app(make_settings(redis_url=f"{durable_server.url}/2"))
    url = "/api/v1/conversations/chat-1/messages"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post(url, json={"messages": _msgs("m1", "m2")}).status_code == 201
        durable_server.kill()
        for request in (
            lambda: client.post(url, json={"messages": _msgs("m2", "m3")}),
            lambda: client.get(url),
            lambda: client.get("/api/v1/conversations"),
            lambda: client.get("/health"),
        ):
            started = time.monotonic()
            response = request()
            assert time.monotonic() - started < NO_HANG
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) >= 1
        down = client.post(url, json={"messages": _msgs("m2", "m3")})
        assert down.json()["error"]["code"] == "store_unavailable"
        durable_server.start()
        again = client.post(url, json={"messages": _msgs("m2", "m3")})  # the client's retry
        assert again.status_code == 201
        listed = client.get(url).json()["messages"]
        assert [m["id"] for m in listed] == ["m1", "m2", "m3"]
        assert client.get("/health").status_code == 200


def test_requests_during_a_crash_get_201_or_503_and_nothing_acknowledged_is_lost(
    durable_server: RedisProcess,
) -> None:
    app = create_app(make_settings(redis_url=f"{durable_server.url}/2", retries=0))
    url = "/api/v1/conversations/busy/messages"
    acknowledged: list[str] = []
    statuses: list[int] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for i in range(60):
            if i == 20:
                durable_server.kill()
            if i == 40:
                durable_server.start()
            response = client.post(url, json={"messages": _msgs(f"m{i}")})
            statuses.append(response.status_code)
            if response.status_code == 201:
                acknowledged.append(f"m{i}")
        assert set(statuses[:20]) == {201}
        assert set(statuses[20:40]) == {503}
        assert set(statuses[40:]) == {201}
        stored = [m["id"] for m in client.get(url).json()["messages"]]
    assert stored == acknowledged
    assert len(stored) == 40
