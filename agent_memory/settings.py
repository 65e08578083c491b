"""Configuration from the environment, with the original integration guide's names.

Nothing is read at import: build ``Settings()`` (reads the environment then) or pass values
explicitly (``Settings(redis_url=..., ttl_seconds=...)``); explicit values win over the
environment. Every variable is listed with its default in ``env.example``.

Objects built without ``settings=`` (stores, LangChain histories) use :func:`get_settings`
(also ``Settings.cached()``): the environment read once per process, on first use, and again
only when asked (``get_settings(reload=True)`` or ``get_settings.cache_clear()``), so an object
built per request costs microseconds, not a parse of the environment.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_memory import rules

DEFAULT_TTL_SECONDS = 2_592_000  # 30 days
BODY_ENVELOPE_BYTES = 65_536
"""What a request body may carry beyond its payload: the JSON envelope and whitespace."""


_PREFIX_FORBIDDEN = frozenset("{}*?[]\\")


def check_prefix(value: str) -> str:
    """A key prefix as the store uses it (one trailing ``:`` dropped: the key schema adds the
    separator), or ValueError: non-empty, no braces, glob or control characters."""
    value = value.rstrip(":")
    if (
        not value
        or not _PREFIX_FORBIDDEN.isdisjoint(value)
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
    ):
        raise ValueError(
            "key prefix must be non-empty, without braces, glob characters or control "
            f"characters (got {value!r})"
        )
    return value


def _env(name: str, field: str) -> AliasChoices:
    return AliasChoices(field, name)


def _host_ports(text: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` as (host, port) pairs (ValueError naming a bad entry)."""
    out: list[tuple[str, int]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS entries must be host:port, not {item!r}")
        out.append((host.strip("[]"), int(port)))
    return out


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

    # -- scale-out and transport security (docs/scaling.md) ------------------------------
    redis_cluster: bool = Field(False, validation_alias=_env("REDIS_CLUSTER", "redis_cluster"))
    redis_sentinels: str | None = Field(
        None, validation_alias=_env("REDIS_SENTINELS", "redis_sentinels")
    )
    redis_sentinel_master: str = Field(
        "mymaster", validation_alias=_env("REDIS_SENTINEL_MASTER", "redis_sentinel_master")
    )
    redis_sentinel_password: SecretStr | None = Field(
        None, validation_alias=_env("REDIS_SENTINEL_PASSWORD", "redis_sentinel_password")
    )
    redis_tls: bool = Field(False, validation_alias=_env("REDIS_TLS", "redis_tls"))
    redis_tls_ca_cert: Path | None = Field(
        None, validation_alias=_env("REDIS_TLS_CA_CERT", "redis_tls_ca_cert")
    )
    redis_tls_cert: Path | None = Field(
        None, validation_alias=_env("REDIS_TLS_CERT", "redis_tls_cert")
    )
    redis_tls_key: Path | None = Field(
        None, validation_alias=_env("REDIS_TLS_KEY", "redis_tls_key")
    )

    # -- the store's own settings --------------------------------------------------------
    key_prefix: str = Field(
        "agent_memory", validation_alias=_env("AGENT_MEMORY_PREFIX", "key_prefix")
    )
    touch_on_read: bool = Field(
        False, validation_alias=_env("AGENT_MEMORY_TOUCH_ON_READ", "touch_on_read")
    )
    max_message_bytes: int = Field(
        rules.DEFAULT_MAX_MESSAGE_BYTES,
        gt=0,
        validation_alias=_env("AGENT_MEMORY_MAX_MESSAGE_BYTES", "max_message_bytes"),
    )
    max_messages_per_request: int = Field(
        rules.DEFAULT_MAX_MESSAGES_PER_REQUEST,
        gt=0,
        validation_alias=_env("AGENT_MEMORY_MAX_MESSAGES_PER_REQUEST", "max_messages_per_request"),
    )
    max_append_bytes: int = Field(
        rules.DEFAULT_MAX_APPEND_BYTES,
        gt=0,
        validation_alias=_env("AGENT_MEMORY_MAX_APPEND_BYTES", "max_append_bytes"),
    )
    """Encoded bytes of all messages of one append call (one script: Redis time)."""
    max_metadata_bytes: int = Field(
        rules.DEFAULT_MAX_METADATA_BYTES,
        gt=0,
        validation_alias=_env("AGENT_MEMORY_MAX_METADATA_BYTES", "max_metadata_bytes"),
    )
    max_json_depth: int = Field(
        rules.DEFAULT_MAX_JSON_DEPTH,
        ge=8,
        le=rules.MAX_JSON_DEPTH,
        validation_alias=_env("AGENT_MEMORY_MAX_JSON_DEPTH", "max_json_depth"),
    )
    idempotency_ttl_seconds: int = Field(
        rules.DEFAULT_IDEMPOTENCY_TTL_SECONDS,
        gt=0,
        validation_alias=_env("AGENT_MEMORY_IDEMPOTENCY_TTL_SECONDS", "idempotency_ttl_seconds"),
    )
    """How long an append's idempotency key is remembered (a retry within it replays; the same
    key with other messages is refused); never longer than the conversation lives."""
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
    metrics_keys: SecretStr | None = Field(
        None, validation_alias=_env("AGENT_MEMORY_METRICS_KEYS", "metrics_keys")
    )
    """Comma-separated keys that open ``/metrics`` only (admin keys open it too)."""
    docs_public: bool = Field(
        False, validation_alias=_env("AGENT_MEMORY_DOCS_PUBLIC", "docs_public")
    )
    """Serve ``/docs``, ``/redoc`` and ``/openapi.json`` without a key when keys are set."""
    max_body_bytes: int | None = Field(
        None, gt=0, validation_alias=_env("AGENT_MEMORY_MAX_BODY_BYTES", "max_body_bytes")
    )
    """Bytes of one request body (413 beyond, checked before it is read whole); unset:
    derived from the other limits (:attr:`body_limit`)."""
    host: str = Field("127.0.0.1", validation_alias=_env("AGENT_MEMORY_HOST", "host"))
    port: int = Field(8000, ge=1, le=65535, validation_alias=_env("AGENT_MEMORY_PORT", "port"))

    # -- MCP over stdio (`agent-memory mcp`) ---------------------------------------------
    mcp_tenant: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        validation_alias=_env("AGENT_MEMORY_MCP_TENANT", "mcp_tenant"),
    )
    """Serve this tenant's conversations (the prefix its API keys use); unset: the bare prefix."""

    @field_validator("redis_sentinels")
    @classmethod
    def _check_sentinels(cls, value: str | None) -> str | None:
        _host_ports(value or "")
        return value or None

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return check_prefix(value)

    @classmethod
    def cached(cls, *, reload: bool = False) -> Settings:
        """The process's settings from the environment (see :func:`get_settings`)."""
        return get_settings(reload=reload)

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def body_limit(self) -> int:
        """AGENT_MEMORY_MAX_BODY_BYTES, or the largest body a permitted request needs: the
        largest encoded payload one request may carry, times 3 (a client's JSON may escape
        UTF-8 text as ``\\uXXXX``: 2 bytes become 6), plus an envelope."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return 3 * self.max_message_bytes + BODY_ENVELOPE_BYTES

    @property
    def embedded(self) -> bool:
        """True when neither REDIS_URL nor REDIS_HOST is set: `serve` runs its own server."""
        return self.redis_url is None and self.redis_host is None and not self.sentinels

    @property
    def url(self) -> str:
        """The Redis URL to connect to (REDIS_URL wins over host/port/db)."""
        if self.redis_url:
            return self.redis_url
        scheme = "rediss" if self.redis_tls else "redis"
        db = "" if self.redis_cluster else f"/{self.redis_db}"  # a cluster has only DB 0
        return f"{scheme}://{self.redis_host or 'localhost'}:{self.redis_port}{db}"

    @property
    def tls(self) -> bool:
        """True when connections use TLS: REDIS_TLS, or a ``rediss://`` REDIS_URL."""
        return self.redis_tls or (self.redis_url or "").startswith("rediss://")

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """REDIS_SENTINELS (``host:port,host:port``) as (host, port) pairs."""
        return _host_ports(self.redis_sentinels or "")


class _Cached:
    """:func:`get_settings`: one ``Settings()`` per process, rebuilt on request."""

    def __init__(self) -> None:
        self._value: Settings | None = None
        self._lock = threading.Lock()

    def __call__(self, *, reload: bool = False) -> Settings:
        value = self._value
        if value is None or reload:
            with self._lock:
                if self._value is None or reload:
                    self._value = Settings()
                value = self._value
        return value

    def cache_clear(self) -> None:
        """Forget the settings read: the next call reads the environment again."""
        self._value = None


get_settings = _Cached()
"""``get_settings()``: the settings from the environment, read on the first call and kept for
the process; ``get_settings(reload=True)`` reads it again, ``get_settings.cache_clear()`` makes
the next call read it."""
