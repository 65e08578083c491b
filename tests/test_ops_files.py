"""The deployment files say what the docs promise: Redis with AOF, a volume, a healthcheck and
an eviction policy that cannot delete memory; the API waits for a healthy Redis; env.example
lists exactly the variables Settings reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_memory.settings import Settings
from tests.support.settings import environment_names

ROOT = Path(__file__).resolve().parent.parent
_ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _redis_args(compose: dict[str, Any]) -> list[str]:
    command = compose["services"]["redis"]["command"]
    return command.split() if isinstance(command, str) else [str(a) for a in command]


def _option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from the redis command {args}"
    return args[args.index(name) + 1]


def test_compose_redis_is_version_7_with_aof_on(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].split(":")[1].startswith("7")
    assert _option(_redis_args(compose), "--appendonly") == "yes"


def test_compose_redis_never_evicts_memory(compose: dict[str, Any]) -> None:
    assert _option(_redis_args(compose), "--maxmemory-policy") == "noeviction"


def test_compose_redis_keeps_data_on_a_named_volume(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["redis"]["volumes"]
    names = [v.split(":")[0] for v in volumes]
    assert any(
        name in compose["volumes"] and dest.endswith(":/data")
        for name, dest in zip(names, volumes, strict=True)
    )


def test_compose_redis_has_a_healthcheck(compose: dict[str, Any]) -> None:
    check = compose["services"]["redis"]["healthcheck"]
    assert "ping" in " ".join(check["test"])


def test_compose_api_is_built_and_waits_for_healthy_redis(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["build"] == "."
    assert (ROOT / "Dockerfile").is_file()
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["environment"]["REDIS_HOST"] == "redis"  # not the embedded server


def test_dockerfile_runs_serve_and_installs_the_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^CMD \["agent-memory", "serve"\]$', text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)


def _settings_env_names() -> dict[str, Any]:
    """Each variable Settings reads -> its default."""
    names = environment_names()
    return {names[name]: field.default for name, field in Settings.model_fields.items()}


def _env_example() -> dict[str, str]:
    found: dict[str, str] = {}
    lines = (ROOT / "env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        match = _ENV_LINE.match(line)
        if match:
            name = match.group(1)
            assert name not in found, f"{name} listed twice"
            assert lines[i - 1].startswith("#"), f"{name} has no comment line above it"
            found[name] = match.group(2).strip()
    return found


def test_env_example_lists_exactly_the_settings_variables() -> None:
    assert sorted(_env_example()) == sorted(_settings_env_names())


def test_env_example_defaults_are_the_settings_defaults() -> None:
    listed = _env_example()
    for name, default in _settings_env_names().items():
        if default is None:
            assert listed[name] == "", f"{name} has no default: leave it empty"
            continue
        parsed = Settings.model_validate({name: listed[name]})
        field = next(f for f, env in environment_names().items() if env == name)
        assert getattr(parsed, field) == default, name
