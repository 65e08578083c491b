"""Settings: the integration guide's names and defaults, explicit values win, nothing at import."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from pydantic import ValidationError

from agent_memory import ConversationStore, InvalidInput, Settings
from agent_memory.settings import get_settings
from tests.support.backends import key_names
from tests.support.settings import environment_names, make_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for env in environment_names().values():
        monkeypatch.delenv(env, raising=False)
    return monkeypatch


def test_defaults_are_the_guides(clean_env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.redis_port, s.redis_db, s.ttl_seconds) == (6379, 2, 2_592_000)
    assert s.key_prefix == "agent_memory"
    assert s.touch_on_read is False
    assert s.embedded is True
    assert s.url == "redis://localhost:6379/2"


def test_the_guides_environment_names_are_read(clean_env: pytest.MonkeyPatch) -> None:
    for env, value in {
        "REDIS_HOST": "cache.internal",
        "REDIS_PORT": "6380",
        "REDIS_DB_AI_AGENTS": "7",
        "CACHE_TTL_AGENT_MEMORY": "60",
        "REDIS_USERNAME": "agent",
        "REDIS_PASSWORD": "s3cret",
        "AGENT_MEMORY_PREFIX": "mem:",
        "AGENT_MEMORY_TOUCH_ON_READ": "true",
        "AGENT_MEMORY_MAX_MESSAGE_BYTES": "1234",
        "AGENT_MEMORY_MAX_MESSAGES_PER_REQUEST": "5",
    }.items():
        clean_env.setenv(env, value)
    s = Settings()
    assert (s.redis_host, s.redis_port, s.redis_db, s.ttl_seconds) == (
        "cache.internal",
        6380,
        7,
        60,
    )
    assert s.redis_username == "agent"
    assert s.redis_password is not None
    assert s.redis_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.key_prefix == "mem"
    assert s.touch_on_read is True
    assert (s.max_message_bytes, s.max_messages_per_request) == (1234, 5)
    assert s.embedded is False
    assert s.url == "redis://cache.internal:6380/7"


def test_explicit_values_win_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CACHE_TTL_AGENT_MEMORY", "60")
    clean_env.setenv("AGENT_MEMORY_PREFIX", "from_env")
    s = Settings(ttl_seconds=5, key_prefix="explicit")
    assert (s.ttl_seconds, s.key_prefix) == (5, "explicit")


def test_redis_url_overrides_host_port_and_db(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REDIS_HOST", "ignored")
    clean_env.setenv("REDIS_URL", "redis://elsewhere:1234/9")
    s = Settings()
    assert s.url == "redis://elsewhere:1234/9"
    assert s.embedded is False


@pytest.mark.parametrize("bad", ["", ":", "a{b}", "a*", "x?", "[x]", "a\\b", "a\nb", "a\x7f"])
def test_a_bad_prefix_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="key prefix"):
        Settings(key_prefix=bad)


@pytest.mark.parametrize(
    "values",
    [{"ttl_seconds": 0}, {"ttl_seconds": -5}, {"redis_port": 0}, {"max_message_bytes": 0}],
)
def test_out_of_range_values_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**values)


def test_the_store_takes_its_configuration_from_settings() -> None:
    client = fakeredis.FakeRedis(protocol=3)
    store = ConversationStore(client, settings=Settings(key_prefix="svc:", ttl_seconds=10))
    assert store.keys.prefix == "svc"
    assert store.config.ttl_ms == 10_000
    store.append("c", [{"role": "user", "content": "x"}])
    assert key_names(client) >= {"svc:c:{c}:s", "svc:c:{c}:h", "svc:x:all"}
    assert 0 < client.pttl("svc:c:{c}:s") <= 10_000
    override = ConversationStore(client, settings=Settings(), key_prefix="other", ttl=3)
    assert (override.keys.prefix, override.config.ttl_ms) == ("other", 3000)
    with pytest.raises(InvalidInput, match="ttl must be a positive number"):
        ConversationStore(client, settings=Settings(), ttl=0)


def test_importing_the_library_reads_no_environment() -> None:
    env = {**os.environ, "REDIS_PORT": "not-a-number", "CACHE_TTL_AGENT_MEMORY": "-1"}
    code = (
        "import sys, agent_memory, agent_memory.store, agent_memory.aio, agent_memory.langchain\n"
        "assert 'fastapi' not in sys.modules, 'the library must not import FastAPI'\n"
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_no_setting_of_the_developers_shell_reaches_a_test() -> None:
    leaked = {env: os.environ[env] for env in environment_names().values() if env in os.environ}
    assert leaked == {}
    defaults = {name: info.default for name, info in Settings.model_fields.items()}
    assert Settings().model_dump() == defaults
    assert make_settings().model_dump() == defaults


SHELL = {
    "REDIS_CLUSTER": "true",
    "AGENT_MEMORY_FSYNC_ACK": "true",
    "CACHE_TTL_AGENT_MEMORY": "5",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "AGENT_MEMORY_PREFIX": "leaked",
}


def test_make_settings_ignores_the_environment_even_when_it_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for env, value in SHELL.items():
        monkeypatch.setenv(env, value)
    assert Settings().redis_cluster is True  # the variables are there...
    defaults = {name: info.default for name, info in Settings.model_fields.items()}
    assert make_settings().model_dump() == defaults  # ...and make_settings reads none of them
    assert make_settings(ttl_seconds=7).ttl_seconds == 7


def test_the_suite_is_hermetic_when_the_shell_sets_the_store_up_differently() -> None:
    """The first test above, run by a pytest whose environment sets cluster mode, fsync acks, a TTL
    and a URL: it must still see none of them."""
    test = f"{__file__}::test_no_setting_of_the_developers_shell_reaches_a_test"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        env={**os.environ, **SHELL},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


# -- framework objects built per request read the environment once -----------------------------


def _framework_objects() -> dict[str, Callable[..., Settings]]:
    """Each framework object built as its users build it (no ``settings=``), and the settings
    it runs on."""
    from agent_memory.langgraph import AsyncRedisSaver, AsyncRedisStore, RedisSaver, RedisStore
    from agent_memory.openai_agents import RedisSession

    return {
        "RedisSession": lambda **kw: RedisSession("s", **kw)._settings,
        "RedisSaver": lambda **kw: RedisSaver(**kw).store.settings,
        "AsyncRedisSaver": lambda **kw: AsyncRedisSaver(**kw).store.settings,
        "RedisStore": lambda **kw: RedisStore(**kw).settings,
        "AsyncRedisStore": lambda **kw: AsyncRedisStore(**kw).settings,
    }


@pytest.mark.parametrize("name", list(_framework_objects()))
def test_framework_objects_read_the_environment_once(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = _framework_objects()[name]
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("CACHE_TTL_AGENT_MEMORY", "111")
        assert build(redis_url="redis://127.0.0.1:1/2").ttl_seconds == 111
        monkeypatch.setenv("CACHE_TTL_AGENT_MEMORY", "222")
        monkeypatch.setenv("REDIS_PORT", "not-a-port")  # read again, construction would fail
        assert build(redis_url="redis://127.0.0.1:1/2").ttl_seconds == 111
        monkeypatch.delenv("REDIS_PORT")
        get_settings(reload=True)
        assert build(redis_url="redis://127.0.0.1:1/2").ttl_seconds == 222
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("name", list(_framework_objects()))
def test_framework_objects_take_the_url_schemes_the_history_takes(name: str) -> None:
    """``redis_url=`` means what it means for the stores and the LangChain history: a
    sentinel URL names the sentinel, its master and database (no I/O at construction)."""
    settings = _framework_objects()[name](
        redis_url="redis+sentinel://:pw@127.0.0.1:26390/primary/2"
    )
    assert settings.sentinels == [("127.0.0.1", 26390)]
    assert settings.redis_sentinel_master == "primary"
    assert settings.redis_db == 2
