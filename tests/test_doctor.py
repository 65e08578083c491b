"""agent-memory doctor: the pure checks on server facts, and the command on live servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_memory import ConversationStore
from agent_memory import doctor as d
from agent_memory.cli import app
from agent_memory.embedded import RedisProcess, free_port
from tests.support.settings import make_settings

SAFE = {
    "redis_version": "7.2.4",
    "aof_enabled": 1,
    "maxmemory_policy": "noeviction",
    "used_memory": 10 * 1_048_576,
    "maxmemory": 100 * 1_048_576,
}


def _levels(facts: d.ServerFacts) -> dict[str, str]:
    return {f.check: f.level for f in d.assess(facts, "agent_memory")}


def test_a_safe_server_has_no_risk_and_exits_zero() -> None:
    findings = d.assess(d.ServerFacts(SAFE, appendfsync="always", waitaof=True), "p")
    assert {f.level for f in findings} == {"ok"}
    assert d.exit_code(findings) == 0


def test_aof_off_is_a_risk() -> None:
    facts = d.ServerFacts({**SAFE, "aof_enabled": 0}, appendfsync="everysec")
    assert _levels(facts)["persistence"] == "risk"
    assert d.exit_code(d.assess(facts, "p")) == 1


def test_fsync_left_to_the_os_is_a_warning_not_a_risk() -> None:
    facts = d.ServerFacts(SAFE, appendfsync="no")
    assert _levels(facts)["persistence"] == "warning"
    assert d.exit_code(d.assess(facts, "p")) == 0


@pytest.mark.parametrize(
    "policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"]
)
def test_every_evicting_policy_is_a_risk(policy: str) -> None:
    finding = d.check_eviction(policy)
    assert finding.level == "risk"
    assert "noeviction" in finding.message
    assert ("TTL" in finding.message) == policy.startswith("volatile")


def test_a_server_that_does_not_report_is_a_warning_not_ok() -> None:
    facts = d.ServerFacts({"redis_version": "7.2.4", "used_memory": 1, "maxmemory": 10})
    levels = _levels(facts)
    assert levels["persistence"] == levels["eviction"] == "warning"


def test_memory_headroom() -> None:
    assert d.check_memory(SAFE).level == "ok"
    assert d.check_memory({**SAFE, "used_memory": 95 * 1_048_576}).level == "warning"
    assert d.check_memory({**SAFE, "maxmemory": 0}).level == "warning"


def test_version_and_waitaof() -> None:
    assert d.parse_version("7.0.15") == (7, 0, 15)
    assert d.has_waitaof({"redis_version": "7.2.4"})
    assert not d.has_waitaof({"redis_version": "7.0.15"})
    assert d.check_version({"redis_version": "6.2.14"}, False).level == "risk"
    assert "no WAITAOF" in d.check_version({"redis_version": "7.0.15"}, False).message


def test_keys_without_ttl_are_a_risk() -> None:
    facts = d.ServerFacts(SAFE, "always", True, 10, 2, ["p:a", "p:b"])
    assert _levels(facts)["ttl"] == "risk"
    assert "2 of 10" in d.check_ttl(10, 2, ["p:a"], "p").message


runner = CliRunner()


@pytest.mark.redis_server
def test_doctor_on_a_healthy_store_exits_zero(fresh_server: RedisProcess) -> None:
    url = f"{fresh_server.url}/2"
    store = ConversationStore.from_settings(make_settings(redis_url=url))
    store.append("c1", [{"role": "user", "content": "hi"}])
    other_db = fresh_server.client(db=0)
    other_db.set("agent_memory:cache-of-another-service", 1)  # DB 0 is not ours
    result = runner.invoke(app, ["doctor", "--url", url])
    assert result.exit_code == 0, result.output
    # stream, metadata, append tokens, index, TTL marker (no ids hash: the message has no id)
    assert "all 5 keys under 'agent_memory:' have a TTL" in result.output
    store.close()


@pytest.mark.redis_server
def test_doctor_finds_a_key_without_ttl_aof_off_and_lru(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, appendonly=False).start()
    try:
        client = server.client(db=2)
        client.config_set("maxmemory-policy", "allkeys-lru")
        client.set("agent_memory:forever", 1)
        client.set("other_prefix:forever", 1)  # not under our prefix: not counted
        result = runner.invoke(app, ["doctor", "--url", f"{server.url}/2"])
        assert result.exit_code == 1
        out = " ".join(result.output.split())
        assert "1 of 1 keys under 'agent_memory:' have no TTL" in out
        assert "AOF is off" in out
        assert "maxmemory-policy is allkeys-lru" in out
    finally:
        server.stop()


def test_doctor_on_a_dead_server_exits_one_quickly() -> None:
    result = runner.invoke(app, ["doctor", "--url", f"redis://127.0.0.1:{free_port()}/2"])
    assert result.exit_code == 1
    assert "unreachable" in result.output
