"""The OpenAPI document states every bound the server enforces on what a client sends, taken
from the rules and the running app's settings (not copied numbers): id lengths and the
control-character rule, cursor patterns, page size, messages per call, title length, version
range, the role enum, the role-dependent fields, the Idempotency-Key and If-Match headers. A
walk over every operation also finds no string parameter without a bound, so a route added
later cannot slip through unstated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent_memory import rules
from agent_memory.keys import MAX_ID_LENGTH
from api.app import create_app
from api.params import IF_MATCH_PATTERN
from api.schemas import CURSOR_PATTERN
from tests.support.settings import make_settings

PAGE, PER_CALL = 77, 33  # not the defaults: the document must follow the settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # the document is built without touching Redis: an unreachable URL is enough
    config = make_settings(
        redis_url="redis://127.0.0.1:1/0", max_page_size=PAGE, max_messages_per_request=PER_CALL
    )
    with TestClient(create_app(config)) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def branch(schema: dict[str, Any], kind: str) -> dict[str, Any]:
    """The ``kind`` branch of an optional value's schema (``anyOf: [X, null]``)."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == kind:
            found: dict[str, Any] = option
            return found
    raise AssertionError(f"no {kind} in {schema}")


def parameters(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(operation, parameter name, parameter) of every operation."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                yield f"{method.upper()} {path}", parameter["name"], parameter


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_every_string_parameter_is_bounded(document: dict[str, Any]) -> None:
    unbounded = [
        (where, name)
        for where, name, parameter in parameters(document)
        for option in parameter["schema"].get("anyOf", [parameter["schema"]])
        if option.get("type") == "string" and not {"maxLength", "pattern", "enum"} & option.keys()
    ]
    assert unbounded == []


def test_ids_in_paths_and_filters_state_the_id_rule(document: dict[str, Any]) -> None:
    seen = 0
    for where, name, parameter in parameters(document):
        if name in ("conversation_id", "user_id", "agent_id"):
            schema = branch(parameter["schema"], "string")
            assert schema["minLength"] == 1, where
            assert schema["maxLength"] == MAX_ID_LENGTH, where
            assert schema["pattern"] == rules.ID_PATTERN, where
            seen += 1
    assert seen >= 8


def test_paging_parameters_state_the_settings_and_cursor_rules(document: dict[str, Any]) -> None:
    limits = [p for _, name, p in parameters(document) if name == "limit"]
    assert len(limits) == 2
    for limit in limits:
        schema = branch(limit["schema"], "integer")
        assert (schema["minimum"], schema["maximum"]) == (1, PAGE)
    cursors = [p for _, name, p in parameters(document) if name in ("before", "after")]
    assert len(cursors) == 2
    assert {branch(p["schema"], "string")["pattern"] for p in cursors} == {CURSOR_PATTERN}
    (listing,) = [p for _, name, p in parameters(document) if name == "cursor"]
    assert branch(listing["schema"], "string")["maxLength"] > 0


def test_the_headers_state_their_rules(document: dict[str, Any]) -> None:
    headers = {name: p for _, name, p in parameters(document) if p["in"] == "header"}
    assert branch(headers["if-match"]["schema"], "string")["pattern"] == IF_MATCH_PATTERN
    key = branch(headers["idempotency-key"]["schema"], "string")
    assert (key["minLength"], key["maxLength"]) == (1, MAX_ID_LENGTH)
    assert "422" in headers["idempotency-key"]["description"]  # the reused-key rule is stated


def test_message_bodies_state_their_rules(document: dict[str, Any]) -> None:
    messages = component(document, "MessagesIn")["properties"]["messages"]
    assert (messages["minItems"], messages["maxItems"]) == (1, PER_CALL)
    message = component(document, "Message")
    props = message["properties"]
    assert set(props["role"]["enum"]) == rules.ROLES
    mid = branch(props["id"], "string")
    assert (mid["minLength"], mid["maxLength"]) == (1, rules.MAX_MESSAGE_ID_LENGTH)
    required_by_role = {
        rule["if"]["properties"]["role"]["const"]: rule["then"]["required"]
        for rule in message["allOf"]
        if "const" in rule["if"]["properties"]["role"]
    }
    assert required_by_role == {
        "tool": ["tool_call_id"],
        "function": ["name"],
        "chat": ["chat_role"],
    }


def test_conversation_bodies_state_their_rules(document: dict[str, Any]) -> None:
    create = component(document, "ConversationCreate")
    assert create.get("additionalProperties") is False
    for name in ("id", "user_id", "agent_id"):
        schema = branch(create["properties"][name], "string")
        assert (schema["maxLength"], schema["pattern"]) == (MAX_ID_LENGTH, rules.ID_PATTERN)
    update = component(document, "ConversationUpdate")
    assert update.get("additionalProperties") is False
    for body in (create, update):
        assert branch(body["properties"]["title"], "string")["maxLength"] == rules.MAX_TITLE_LENGTH
        assert branch(body["properties"]["metadata"], "object")
    version = branch(update["properties"]["version"], "integer")
    assert (version["minimum"], version["maximum"]) == (0, 2**53)


def test_every_route_addressing_a_conversation_documents_404(document: dict[str, Any]) -> None:
    """A conversation id containing `/` (which a create accepts) matches no route when put in a
    path: the answer is 404, so every such route documents it (found by scripts/fuzz-api)."""
    addressed = [
        (path, method, operation)
        for path, item in document["paths"].items()
        if "{conversation_id}" in path
        for method, operation in item.items()
    ]
    assert len(addressed) == 5
    assert [(p, m) for p, m, operation in addressed if "404" not in operation["responses"]] == []
