"""Property-based fuzzing of the API from its own OpenAPI schema (Schemathesis, in-process ASGI,
fakeredis): no 5xx on any generated input, and every response conforms to the schema (status
codes, content types, headers, bodies). Both modes: open (no API keys) and keyed (API keys
configured, every request carrying a key: a tenant key, the admin key on the admin routes), each
per operation and in the stateful phase (call sequences chained by the links Schemathesis infers
from the schema: a created conversation's id fed to the routes that take one).

A longer run (thousands of cases, ``agent-memory serve`` on a real redis-server) is
``scripts/fuzz-api``: it points this module at running servers (AGENT_MEMORY_FUZZ_OPEN_URL,
AGENT_MEMORY_FUZZ_KEYED_URL) and reads the calls made from AGENT_MEMORY_FUZZ_STATS."""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import fakeredis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from agent_memory import AsyncConversationStore
from api.app import create_app
from tests.support.settings import make_settings

# 25 per operation keeps the run short; set AGENT_MEMORY_FUZZ_EXAMPLES for a deeper run.
MAX_EXAMPLES = int(os.environ.get("AGENT_MEMORY_FUZZ_EXAMPLES", "25"))
STATEFUL_EXAMPLES = int(os.environ.get("AGENT_MEMORY_FUZZ_STATEFUL_EXAMPLES", "15"))
TENANT_KEY = {"Authorization": "Bearer fuzz-key"}
ADMIN_KEY = {"Authorization": "Bearer fuzz-admin"}
# Every check but positive_data_acceptance: some schema-valid inputs are rightly refused with
# 4xx for rules JSON Schema cannot express (opaque listing cursors, role-dependent message
# fields, encoded-size limits, a stale version -> 412, an Idempotency-Key reused with another
# body -> 422).
EXCLUDED: list[Any] = [positive_data_acceptance]
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def fuzz_app(**values: Any) -> FastAPI:
    config = make_settings(
        max_page_size=50, max_message_bytes=4096, max_messages_per_request=20, **values
    )
    store = AsyncConversationStore(fakeredis.FakeAsyncRedis(protocol=3), settings=config)
    return create_app(config, store)


def key_for(case: schemathesis.Case[Any]) -> dict[str, str]:
    """The key a client of this operation holds: the admin key on the admin routes."""
    path = case.operation.path
    return ADMIN_KEY if path.startswith(("/api/v1/cache", "/metrics")) else TENANT_KEY


KEYED = {"api_keys": "fuzz-key:tenant-f", "admin_keys": "fuzz-admin"}
"""The keyed mode's settings (scripts/fuzz-api gives its keyed server the same)."""
CALLS: Counter[str] = Counter()
"""Calls made, by mode and status class (written to AGENT_MEMORY_FUZZ_STATS at exit)."""
if os.environ.get("AGENT_MEMORY_FUZZ_STATS"):
    atexit.register(
        lambda: Path(os.environ["AGENT_MEMORY_FUZZ_STATS"]).write_text(json.dumps(CALLS))
    )


def count(mode: str, response: Any) -> None:
    CALLS[f"{mode} {response.status_code // 100}xx"] += 1


def load(url: str | None, **values: Any) -> OpenApiSchema:
    """The schema of a running server at ``url``, else of an in-process app on fakeredis."""
    headers = ADMIN_KEY if values else {}  # the schema is behind a key when keys are set
    if url:
        return schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers)
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app(**values), headers=headers)


open_schema = load(os.environ.get("AGENT_MEMORY_FUZZ_OPEN_URL"))
keyed_schema = load(os.environ.get("AGENT_MEMORY_FUZZ_KEYED_URL"), **KEYED)


@open_schema.parametrize()
@SETTINGS
def test_open_no_server_errors_and_responses_match_the_schema(
    case: schemathesis.Case[Any],
) -> None:
    count("open", case.call_and_validate(excluded_checks=EXCLUDED))


@keyed_schema.parametrize()
@SETTINGS
def test_keyed_no_server_errors_and_responses_match_the_schema(
    case: schemathesis.Case[Any],
) -> None:
    count("keyed", case.call_and_validate(headers=key_for(case), excluded_checks=EXCLUDED))


def clear(schema: Any) -> None:
    """Start a scenario on an empty store: the same calls then get the same answers, as
    Hypothesis needs when it replays a scenario (else FlakyStrategyDefinition)."""
    response = schema["/api/v1/cache/clear"]["DELETE"].Case().call(headers=ADMIN_KEY)
    assert response.status_code == 200, response.text


class OpenMachine(open_schema.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        clear(open_schema)

    def validate_response(self, response: Any, case: schemathesis.Case[Any], **kwargs: Any) -> None:
        count("open stateful", response)
        case.validate_response(response, excluded_checks=EXCLUDED)


class KeyedMachine(keyed_schema.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        clear(keyed_schema)

    def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
        return {"headers": key_for(case)}

    def validate_response(self, response: Any, case: schemathesis.Case[Any], **kwargs: Any) -> None:
        count("keyed stateful", response)
        case.validate_response(response, excluded_checks=EXCLUDED)


STATEFUL = settings(
    max_examples=STATEFUL_EXAMPLES,
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def test_the_stateful_phase_has_links_to_follow() -> None:
    """The state machines chain calls (else the stateful tests below would test nothing):
    the conversation routes take the id a create answered."""
    for machine in (OpenMachine, KeyedMachine):
        links = [name for name in dir(machine) if name.startswith("POST_api_v1_conversations__")]
        assert any("GET_api_v1_conversations_conversation_id_messages" in n for n in links)
        assert any("DELETE_api_v1_conversations_conversation_id_" in n for n in links)


def test_open_stateful_no_server_errors_and_responses_match_the_schema() -> None:
    OpenMachine.run(settings=STATEFUL)


def test_keyed_stateful_no_server_errors_and_responses_match_the_schema() -> None:
    KeyedMachine.run(settings=STATEFUL)
