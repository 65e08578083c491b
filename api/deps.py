"""Request dependencies: the app's state, API-key authentication and the tenant's store.

With ``AGENT_MEMORY_API_KEYS`` (``key:tenant,...``) or ``AGENT_MEMORY_ADMIN_KEYS`` set, every
route but ``/health`` needs ``Authorization: Bearer <key>``. Keys are compared in constant time
(``hmac.compare_digest`` against every configured key). Each tenant has its own store under the
key prefix ``<prefix>:t:<encoded tenant>``, so its conversations and indexes are invisible to
every other tenant (404). Admin keys open the cache routes only.

The key is looked up once per request, in :func:`caller_of`; the tenant's store
(:data:`Store`) and the admin check (:func:`require_admin`) derive from the :class:`Caller`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from agent_memory.aio import AsyncConversationStore
from agent_memory.keys import encode_id
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


def tenant_prefix(prefix: str, tenant: str) -> str:
    return f"{prefix}:t:{encode_id(tenant)}"


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

    def identify(self, key: str) -> tuple[str | None, bool]:
        """The tenant of ``key`` (or None) and whether it is an admin key: one lookup that
        compares ``key`` with every configured key, each in constant time."""
        return _match(key, self.tenant_keys), bool(_match(key, dict.fromkeys(self.admin_keys, 1)))


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request, resolved once from its API key: a tenant, an admin, or anyone
    (``keyless``) when no keys are configured. The store and the admin check derive from it."""

    state: ApiState
    tenant: str | None = None
    admin: bool = False
    keyless: bool = False

    @property
    def store(self) -> AsyncConversationStore:
        """The tenant's store (the base store when no keys are configured)."""
        if self.keyless:
            return self.state.store
        if self.tenant is None:
            raise ApiError(403, "admin keys open the cache routes only; use a tenant's API key")
        return self.state.tenant_stores[self.tenant]

    def require_admin(self) -> None:
        if not (self.keyless or self.admin):
            raise ApiError(403, "the cache routes need an admin key (AGENT_MEMORY_ADMIN_KEYS)")


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


def caller_of(request: Request) -> Caller:
    """Who sent ``request``: its key looked up once (401 without a known key)."""
    state = get_state(request)
    if not state.auth_enabled:
        return Caller(state, keyless=True)
    tenant, admin = state.identify(_bearer(request))
    if tenant is None and not admin:
        raise ApiError(401, "invalid API key")
    return Caller(state, tenant, admin)


# The dependencies below are the only ones that call ``caller_of``, and a route has one of
# them. They are coroutines although they do no I/O: FastAPI runs a plain ``def`` dependency
# in a worker thread, a hand-off that cost more than the whole Redis round trip.
async def resolve_caller(request: Request) -> Caller:
    """Any known key (or none configured): the ``/metrics`` route."""
    return caller_of(request)


async def tenant_store(request: Request) -> AsyncConversationStore:
    """The caller's tenant store: the conversation and message routes."""
    return caller_of(request).store


async def require_admin(request: Request) -> None:
    """An admin key: the cache routes."""
    caller_of(request).require_admin()


async def _state(request: Request) -> ApiState:
    return get_state(request)


Store = Annotated[AsyncConversationStore, Depends(tenant_store)]
State = Annotated[ApiState, Depends(_state)]
