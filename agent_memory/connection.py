"""Redis clients built from Settings, and the translation of redis-py errors.

Timeouts and the retry policy are chosen on purpose: a dead server must surface as
StoreUnavailable within about a second (connect timeout 1 s, ``retries`` extra attempts with
jittered backoff of 50-500 ms), not after redis-py's defaults. Retrying an append is safe: every
append carries a token, so a retried call whose first attempt did reach Redis stores nothing
twice.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
)

from agent_memory.errors import AgentMemoryError, StoreUnavailable
from agent_memory.settings import Settings

_RETRY_ON = (ConnectionError, TimeoutError, BusyLoadingError)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url`` (sync or asyncio) from settings."""
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "health_check_interval": 30,
        "decode_responses": False,
    }
    if settings.redis_url is None:
        kwargs["db"] = settings.redis_db
    if settings.redis_username is not None:
        kwargs["username"] = settings.redis_username
    if settings.redis_password is not None:
        kwargs["password"] = settings.redis_password.get_secret_value()
    return kwargs


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=0.05, cap=0.5)


def sync_client(settings: Settings) -> redis.Redis:
    from redis.retry import Retry

    retry = Retry(_backoff(), settings.retries, supported_errors=_RETRY_ON)
    return redis.Redis.from_url(settings.url, retry=retry, **client_kwargs(settings))


def async_client(settings: Settings) -> redis.asyncio.Redis:
    from redis.asyncio.retry import Retry

    retry = Retry(_backoff(), settings.retries, supported_errors=_RETRY_ON)
    return redis.asyncio.Redis.from_url(settings.url, retry=retry, **client_kwargs(settings))


def translate(exc: RedisError) -> AgentMemoryError:
    """The agent-memory error for a redis-py error (raise it ``from exc``)."""
    if isinstance(exc, _RETRY_ON):
        return StoreUnavailable(f"Redis is unreachable or not answering: {exc}")
    if isinstance(exc, ReadOnlyError):
        return StoreUnavailable(f"Redis refuses writes (read-only replica?): {exc}")
    if isinstance(exc, ResponseError) and str(exc).startswith("OOM"):
        return StoreUnavailable(f"Redis is out of memory (maxmemory reached): {exc}")
    return AgentMemoryError(f"Redis error: {exc}")
