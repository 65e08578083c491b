"""Settings in tests are hermetic: only what the test says, never the developer's shell."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

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


class GivenSettings(Settings):
    """Settings from the values passed in and the defaults: no environment, no files."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def make_settings(**values: Any) -> Settings:
    """Settings from the defaults and ``values`` only, whatever the environment holds. (The
    suite also removes every variable of :func:`environment_names` for its whole run, see
    ``tests/conftest.py``, so a ``Settings()`` built by the library or a subprocess reads
    nothing from the shell either.)"""
    return GivenSettings.model_validate(values)
