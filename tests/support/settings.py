"""Settings in tests are hermetic: only what the test says, never the developer's shell."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices

from agent_memory import Settings


def environment_names() -> dict[str, str]:
    """Each Settings field -> the environment variable it is read from (its upper-case alias)."""
    out: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        assert isinstance(alias, AliasChoices), name
        (env,) = [c for c in alias.choices if isinstance(c, str) and c.isupper()]
        out[name] = env
    return out


def make_settings(**values: Any) -> Settings:
    """Settings from the defaults and ``values`` only. The suite also clears every variable of
    :func:`environment_names` for its whole run (``tests/conftest.py``), so a ``Settings()``
    built by the library or a subprocess reads nothing from the shell either."""
    base: dict[str, Any] = {"redis_url": None, "redis_host": None, "ttl_seconds": 2_592_000}
    return Settings.model_validate({**base, **values})
