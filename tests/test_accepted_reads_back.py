"""The property behind "nothing stored can make a read fail": whatever the write path accepts
(a message of arbitrary JSON-like content, metadata and tool-call arguments, conversation
metadata and title, surrogates, NaN, big integers and deep nesting included) reads back equal
through the library, REST (the app in-process) and export; whatever it refuses, REST refuses
with a 4xx. On fakeredis and a real redis-server."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_memory import AsyncConversationStore, ConversationStore, InvalidInput, Settings
from agent_memory.transfer import iter_export
from api.app import create_app

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=8)  # lone surrogates too
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=12,
)


def _nest(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value} if levels % 2 else [value]
    return value


OBJECTS = st.dictionaries(ANY_TEXT, JSON | st.integers(1, 90).map(_nest), max_size=3)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    content = draw(
        ANY_TEXT
        | st.lists(
            st.fixed_dictionaries({"type": st.just("text"), "text": ANY_TEXT}) | ANY_TEXT,
            max_size=2,
        )
    )
    if draw(st.booleans()):
        return {"role": "user", "content": content, "metadata": draw(OBJECTS)}
    call = {"id": draw(st.none() | ANY_TEXT), "name": draw(ANY_TEXT), "args": draw(OBJECTS)}
    return {"role": "assistant", "content": content, "tool_calls": [call]}


def settings_of() -> Settings:
    return Settings.model_validate({"redis_url": None, "redis_host": None})


def _body(value: Any) -> bytes:
    """The JSON a client would send (NaN and lone surrogates written as JSON allows them)."""
    return json.dumps(value).encode()


def _exported(store: ConversationStore, cid: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in iter_export(store))
    return [ln["message"] for ln in lines if ln["type"] == "message" and ln["conversation"] == cid]


def test_what_an_append_accepts_reads_back_equal_everywhere(backend: Any) -> None:
    config = settings_of()
    store = ConversationStore(backend.client, settings=config)
    aclient = backend.async_client()
    app = create_app(config, AsyncConversationStore(aclient, settings=config))
    headers = {"content-type": "application/json"}
    with TestClient(app) as http:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(message=messages())
        def check(message: dict[str, Any]) -> None:
            cid = uuid.uuid4().hex
            body = _body({"messages": [message]})
            try:
                (stored,) = store.append(cid, [message])
            except InvalidInput:
                answer = http.post(
                    f"/api/v1/conversations/{cid}/messages", content=body, headers=headers
                )
                assert 400 <= answer.status_code < 500, answer.text
                return
            (read,) = store.get_messages(cid)
            assert read.record == stored.record == message
            assert store.get_langchain_messages(cid)[0] == read.to_langchain()
            answer = http.get(f"/api/v1/conversations/{cid}/messages")
            assert answer.status_code == 200, answer.text
            (served,) = answer.json()["messages"]
            assert {k: served[k] for k in message} == json.loads(_body(message))
            assert _exported(store, cid) == [json.loads(_body(message))]
            assert (
                http.post(
                    "/api/v1/conversations",
                    content=_body({"id": cid + "x", "title": "t"}),
                    headers=headers,
                ).status_code
                == 201
            )

        check()
        assert http.portal is not None
        http.portal.call(aclient.aclose)  # on the app's own loop


def test_what_create_accepts_reads_back_equal_everywhere(backend: Any) -> None:
    config = settings_of()
    store = ConversationStore(backend.client, settings=config)
    aclient = backend.async_client()
    app = create_app(config, AsyncConversationStore(aclient, settings=config))
    headers = {"content-type": "application/json"}
    with TestClient(app) as http:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(metadata=OBJECTS, title=st.none() | ANY_TEXT)
        def check(metadata: dict[str, Any], title: str | None) -> None:
            cid = uuid.uuid4().hex
            body = _body({"id": cid, "title": title, "metadata": metadata})
            try:
                created = store.create(cid, title=title, metadata=metadata)
            except InvalidInput:
                answer = http.post("/api/v1/conversations", content=body, headers=headers)
                assert 400 <= answer.status_code < 500, answer.text
                return
            assert store.get_conversation(cid).metadata == created.metadata == metadata
            answer = http.get(f"/api/v1/conversations/{cid}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["metadata"] == json.loads(_body(metadata))
            listing = http.get("/api/v1/conversations", params={"limit": 1000})
            assert listing.status_code == 200, listing.text
            (line,) = (json.loads(ln) for ln in iter_export(store) if f'"id":"{cid}"' in ln)
            assert json.loads(line["meta"]["metadata"]) == metadata

        check()
        assert http.portal is not None
        http.portal.call(aclient.aclose)  # on the app's own loop
