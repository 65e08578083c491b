"""Request dependencies: the app's state, API-key authentication and the tenant's store.

With ``AGENT_MEMORY_API_KEYS`` (``key:tenant,...``) or ``AGENT_MEMORY_ADMIN_KEYS`` set, every
route but ``/health`` needs ``Authorization: Bearer <key>``. Keys are compared in constant time
(``hmac.compare_digest`` against every configured key). Each tenant has its own store under the
key prefix ``<prefix>:t:<encoded tenant>``, so its conversations and indexes are invisible to
every other tenant (404). Admin keys open the cache routes only.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from agent_memory.aio import AsyncConversationStore
from agent_memory.keys import tenant_prefix
from agent_memory.settings import Settings
from api.errors import ApiError
from api.telemetry import Metrics

T = TypeVar("T")


def parse_api_keys(raw: str | None) -> dict[str, str]:
    """``"key1:tenantA,key2:tenantB"`` -> ``{"key1": "tenantA", "key2": "tenantB"}``."""
    keys: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        key, sep, tenant = item.strip().partition(":")
        if not sep or not key or not tenant:
            raise ValueError(
                "AGENT_MEMORY_API_KEYS must be 'key:tenant' pairs separated by commas "
                "(an entry lacks its key or tenant)"
            )
        keys[key] = tenant
    return keys


def parse_admin_keys(raw: str | None) -> tuple[str, ...]:
    return tuple(k.strip() for k in (raw or "").split(",") if k.strip())


@dataclass
class ApiState:
    """Everything the routes need, built once in the app's lifespan."""

    settings: Settings
    store: AsyncConversationStore  # the base prefix: open mode, health, cache routes
    metrics: Metrics
    tenant_keys: dict[str, str] = field(default_factory=dict)
    admin_keys: tuple[str, ...] = ()
    tenant_stores: dict[str, AsyncConversationStore] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, store: AsyncConversationStore, metrics: Metrics) -> ApiState:
        secret = settings.api_keys.get_secret_value() if settings.api_keys else None
        admin = settings.admin_keys.get_secret_value() if settings.admin_keys else None
        state = cls(settings, store, metrics, parse_api_keys(secret), parse_admin_keys(admin))
        for tenant in sorted(set(state.tenant_keys.values())):
            state.tenant_stores[tenant] = AsyncConversationStore(
                store.client,
                settings=settings,
                key_prefix=tenant_prefix(store.keys.prefix, tenant),
                ttl=store.config.ttl_ms // 1000,
            )
        return state

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tenant_keys or self.admin_keys)

    @property
    def all_stores(self) -> list[AsyncConversationStore]:
        return [self.store, *self.tenant_stores.values()]


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    return token.strip()


def _match(presented: str, candidates: Mapping[str, T]) -> T | None:
    """The value of the candidate key equal to ``presented``; every key is compared, each in
    constant time."""
    found: T | None = None
    given = presented.encode()
    for key, value in candidates.items():
        if hmac.compare_digest(given, key.encode()):
            found = value
    return found


async def tenant_store(request: Request) -> AsyncConversationStore:
    state = get_state(request)
    if not state.auth_enabled:
        return state.store
    key = _bearer(request)
    tenant = _match(key, state.tenant_keys)
    if tenant is not None:
        return state.tenant_stores[tenant]
    if _match(key, dict.fromkeys(state.admin_keys, True)):
        raise ApiError(403, "admin keys open the cache routes only; use a tenant's API key")
    raise ApiError(401, "invalid API key")


async def require_admin(request: Request) -> None:
    state = get_state(request)
    if not state.auth_enabled:
        return
    key = _bearer(request)
    if _match(key, dict.fromkeys(state.admin_keys, True)):
        return
    if _match(key, state.tenant_keys) is not None:
        raise ApiError(403, "the cache routes need an admin key (AGENT_MEMORY_ADMIN_KEYS)")
    raise ApiError(401, "invalid API key")


async def require_any_key(request: Request) -> None:
    state = get_state(request)
    if not state.auth_enabled:
        return
    key = _bearer(request)
    known = {**dict.fromkeys(state.admin_keys, True), **dict.fromkeys(state.tenant_keys, True)}
    if not _match(key, known):
        raise ApiError(401, "invalid API key")


Store = Annotated[AsyncConversationStore, Depends(tenant_store)]


async def _state(request: Request) -> ApiState:
    return get_state(request)


# The dependencies are coroutines although they do no I/O: FastAPI runs a plain ``def``
# dependency in a worker thread, a hand-off that cost more than the whole Redis round trip.
State = Annotated[ApiState, Depends(_state)]
