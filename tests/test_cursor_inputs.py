"""Any cursor string a client can send (message ``before``/``after`` cursors, conversation
listing cursors) is either accepted or refused as bad input: InvalidInput through the library,
a 4xx through REST, never another exception or a 5xx. Hypothesis draws arbitrary text (lone
surrogates included), near-misses of the canonical ``<ms>-<seq>`` form (leading zeros, huge
numbers, Unicode digits) and listing cursors (base64 of arbitrary JSON: NaN, huge numbers,
nested values, surrogates); REST also gets arbitrary bytes, percent-encoded (not UTF-8 too)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import quote_from_bytes

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_memory import ConversationStore, InvalidInput
from agent_memory.embedded import RedisProcess
from agent_memory.plans.listing import encode_list_cursor
from api.app import create_app
from tests.support.backends import DB, Backend
from tests.support.settings import make_settings

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
digits = st.text(st.sampled_from("0123456789"), min_size=1, max_size=25)
near_cursors = st.builds(
    lambda a, sep, b: a + sep + b, digits, st.sampled_from(["-", "", "--"]), digits
)
unicode_digits = st.text(st.characters(categories=["Nd"]), min_size=1, max_size=5).map(
    lambda d: f"{d}-0"
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _json_cursor(value: object) -> str:
    raw = json.dumps(value, allow_nan=True, ensure_ascii=False)
    return _b64(raw.encode("utf-8", "surrogatepass"))


list_cursors = (
    st.builds(lambda s, m: _json_cursor([s, m]), json_values, json_values)
    | json_values.map(_json_cursor)
    | st.builds(lambda s, m: encode_list_cursor(s, m), st.floats(allow_nan=False), any_text)
    | st.binary(max_size=60).map(_b64)
    | st.builds(lambda n: _json_cursor([int("9" * n), "x"]), st.integers(300, 500))
)
message_cursors = any_text | near_cursors | unicode_digits | st.sampled_from(["000-0", "0-00"])
cursors = message_cursors | list_cursors

REST_DB = DB + 3
FEW = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def conversation(store: ConversationStore) -> ConversationStore:
    store.create("c", user_id="u", agent_id="a")
    store.append("c", [{"role": "user", "content": f"m{i}"} for i in range(3)])
    return store


@FEW
@given(cursor=cursors)
def test_a_message_cursor_is_accepted_or_invalid_input(
    conversation: ConversationStore, cursor: str
) -> None:
    for where in ("before", "after"):
        refused = None
        try:
            if where == "before":
                conversation.get_messages("c", limit=2, before=cursor)
            else:
                conversation.get_messages("c", limit=2, after=cursor)
        except InvalidInput as exc:
            refused = exc.field
        assert refused in (None, where)


@FEW
@given(cursor=cursors)
def test_a_listing_cursor_is_accepted_or_invalid_input(
    conversation: ConversationStore, cursor: str
) -> None:
    for filters in ({}, {"user_id": "u"}, {"user_id": "u", "agent_id": "a"}):
        refused = None
        try:
            conversation.list_conversations(limit=2, cursor=cursor, **filters)
        except InvalidInput as exc:
            refused = exc.field
        assert refused in (None, "cursor")


# -- REST, on a real redis-server ------------------------------------------------------
@pytest.fixture(scope="module")
def rest(redis_server: RedisProcess) -> Iterator[TestClient]:
    # a database of its own: the backend fixture flushes DB 2 before each test
    config = make_settings(redis_url=f"{redis_server.url}/{REST_DB}")
    with TestClient(create_app(config)) as client:
        assert client.post("/api/v1/conversations", json={"id": "rc", "user_id": "u"}).is_success
        body = {"messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/api/v1/conversations/rc/messages", json=body).is_success
        yield client


def _query(raw: str | bytes) -> str:
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    return quote_from_bytes(data, safe="")


@FEW
@given(cursor=cursors | st.binary(max_size=40))
def test_rest_cursors_are_accepted_or_a_4xx(rest: TestClient, cursor: str | bytes) -> None:
    value = _query(cursor)
    for url in (
        f"/api/v1/conversations/rc/messages?before={value}",
        f"/api/v1/conversations/rc/messages?after={value}&limit=2",
        f"/api/v1/conversations?cursor={value}",
        f"/api/v1/conversations?cursor={value}&user_id=u&agent_id=a",
    ):
        response = rest.get(url)
        assert response.status_code < 500, (url, response.text)
        if response.status_code >= 400:
            assert response.json()["error"]["field"] in ("before", "after", "cursor")


def test_the_strategies_reach_the_accepted_cases_too(backend: Backend) -> None:
    """A cursor the store handed out is accepted (the property is not vacuous)."""
    store = ConversationStore(backend.client, settings=make_settings())
    cursors = [m.cursor for m in store.append("c", [{"role": "user", "content": "a"}] * 3)]
    assert [m.cursor for m in store.get_messages("c", after=cursors[0])] == cursors[1:]
    store.create("d")
    page = store.list_conversations(limit=1)
    assert page.next_cursor is not None
    assert len(store.list_conversations(limit=1, cursor=page.next_cursor).items) == 1
