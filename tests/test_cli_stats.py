"""`agent-memory stats`: the integration guide's stats from a live server, as JSON."""

from __future__ import annotations

import json

from langchain_core.messages import HumanMessage
from typer.testing import CliRunner

from agent_memory import ConversationStore
from agent_memory.cli import app
from agent_memory.embedded import RedisProcess, free_port
from tests.support.backends import DB
from tests.support.settings import make_settings


def test_stats_reports_the_guide_fields_and_our_counts(redis_server: RedisProcess) -> None:
    client = redis_server.client(db=DB)
    client.flushdb()
    store = ConversationStore(client, settings=make_settings())
    store.append("c1", [HumanMessage("hi")])
    store.append("c2", [HumanMessage("hi"), HumanMessage("again")])
    client.set("other-service:key", "x")  # another service's key in the same DB

    result = CliRunner().invoke(app, ["stats", "--url", f"{redis_server.url}/{DB}"])

    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["connected"] is True
    assert stats["conversations"] == 2
    assert stats["keys"] == client.dbsize()
    assert stats["total_commands_processed"] > 0
    assert stats["connected_clients"] >= 1
    assert isinstance(stats["memory_used"], str)
    hits, misses = stats["keyspace_hits"], stats["keyspace_misses"]
    assert stats["hit_rate"] == round(100 * hits / (hits + misses), 2)
    client.close()


def test_stats_on_an_unreachable_redis_fails_with_a_message() -> None:
    url = f"redis://127.0.0.1:{free_port()}/2"
    result = CliRunner().invoke(app, ["stats", "--url", url])
    assert result.exit_code == 1
    assert "unreachable" in result.output.lower()
