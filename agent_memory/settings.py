"""Configuration from the environment, with the original integration guide's names.

Nothing is read at import: build ``Settings()`` (reads the environment then) or pass values
explicitly (``Settings(redis_url=..., ttl_seconds=...)``); explicit values win over the
environment. Every variable is listed with its default in ``env.example``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TTL_SECONDS = 2_592_000  # 30 days


def _env(name: str, field: str) -> AliasChoices:
    return AliasChoices(field, name)


class Settings(BaseSettings):
    """All settings of agent-memory. Field names are the keyword arguments; the environment
    variable of each field is given by ``validation_alias``."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    # -- Redis connection (the integration guide's names) --------------------------------
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL", "redis_url"))
    redis_host: str | None = Field(None, validation_alias=_env("REDIS_HOST", "redis_host"))
    redis_port: int = Field(6379, ge=1, le=65535, validation_alias=_env("REDIS_PORT", "redis_port"))
    redis_db: int = Field(2, ge=0, validation_alias=_env("REDIS_DB_AI_AGENTS", "redis_db"))
    redis_username: str | None = Field(
        None, validation_alias=_env("REDIS_USERNAME", "redis_username")
    )
    redis_password: SecretStr | None = Field(
        None, validation_alias=_env("REDIS_PASSWORD", "redis_password")
    )
    ttl_seconds: int = Field(
        DEFAULT_TTL_SECONDS, gt=0, validation_alias=_env("CACHE_TTL_AGENT_MEMORY", "ttl_seconds")
    )

    # -- the store's own settings --------------------------------------------------------
    key_prefix: str = Field(
        "agent_memory", validation_alias=_env("AGENT_MEMORY_PREFIX", "key_prefix")
    )
    touch_on_read: bool = Field(
        False, validation_alias=_env("AGENT_MEMORY_TOUCH_ON_READ", "touch_on_read")
    )
    max_message_bytes: int = Field(
        1_048_576,
        gt=0,
        validation_alias=_env("AGENT_MEMORY_MAX_MESSAGE_BYTES", "max_message_bytes"),
    )
    max_messages_per_request: int = Field(
        1000,
        gt=0,
        validation_alias=_env("AGENT_MEMORY_MAX_MESSAGES_PER_REQUEST", "max_messages_per_request"),
    )
    max_page_size: int = Field(
        1000, gt=0, validation_alias=_env("AGENT_MEMORY_MAX_PAGE_SIZE", "max_page_size")
    )
    socket_timeout: float = Field(
        2.0, gt=0, validation_alias=_env("AGENT_MEMORY_SOCKET_TIMEOUT", "socket_timeout")
    )
    connect_timeout: float = Field(
        1.0, gt=0, validation_alias=_env("AGENT_MEMORY_CONNECT_TIMEOUT", "connect_timeout")
    )
    retries: int = Field(2, ge=0, le=10, validation_alias=_env("AGENT_MEMORY_RETRIES", "retries"))
    fsync_ack: bool = Field(False, validation_alias=_env("AGENT_MEMORY_FSYNC_ACK", "fsync_ack"))
    """Each append also waits (same round trip) for ``WAITAOF 1 0`` so it is acknowledged only
    once fsynced to the AOF; needs Redis >= 7.2 or Valkey (else ServerUnsupported)."""
    data_dir: Path = Field(
        Path("~/.local/share/agent-memory").expanduser(),
        validation_alias=_env("AGENT_MEMORY_DATA_DIR", "data_dir"),
    )

    # -- REST API (`agent-memory serve`) -------------------------------------------------
    api_keys: SecretStr | None = Field(
        None, validation_alias=_env("AGENT_MEMORY_API_KEYS", "api_keys")
    )
    """``key1:tenantA,key2:tenantB``: each API key and the tenant it belongs to."""
    admin_keys: SecretStr | None = Field(
        None, validation_alias=_env("AGENT_MEMORY_ADMIN_KEYS", "admin_keys")
    )
    """Comma-separated keys allowed on the cache routes (stats, clear)."""
    host: str = Field("127.0.0.1", validation_alias=_env("AGENT_MEMORY_HOST", "host"))
    port: int = Field(8000, ge=1, le=65535, validation_alias=_env("AGENT_MEMORY_PORT", "port"))

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        value = value.rstrip(":")
        bad = set("{}*?[]\\") & set(value)
        if not value or bad or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(
                "key prefix must be non-empty, without braces, glob characters or control "
                f"characters (got {value!r})"
            )
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def embedded(self) -> bool:
        """True when neither REDIS_URL nor REDIS_HOST is set: `serve` runs its own server."""
        return self.redis_url is None and self.redis_host is None

    @property
    def url(self) -> str:
        """The Redis URL to connect to (REDIS_URL wins over host/port/db)."""
        if self.redis_url:
            return self.redis_url
        return f"redis://{self.redis_host or 'localhost'}:{self.redis_port}/{self.redis_db}"
