"""Request dependencies: the app's state, API-key authentication and the tenant's store.

With ``AGENT_MEMORY_API_KEYS`` (``key:tenant,...``), ``AGENT_MEMORY_ADMIN_KEYS`` or
``AGENT_MEMORY_METRICS_KEYS`` set, every path but ``/health`` needs ``Authorization: Bearer
<key>`` (the docs and schema too, unless ``AGENT_MEMORY_DOCS_PUBLIC``). Keys are compared in
constant time (``hmac.compare_digest`` against every configured key). Each tenant has its own
store under the key prefix ``<prefix>:t:<encoded tenant>``, so its conversations and indexes
are invisible to every other tenant (404). Admin keys open the cache routes and ``/metrics``;
metrics keys open ``/metrics`` only.

The key is looked up once per request, in :func:`caller_of`, which :mod:`api.guard` calls
before anything reads the body; the tenant's store (:data:`Store`) and the role checks
(:func:`require_admin`, :func:`require_metrics`) derive from the :class:`Caller`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from starlette.datastructures import Headers
from starlette.types import Scope

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
    metrics_keys: tuple[str, ...] = ()
    tenant_stores: dict[str, AsyncConversationStore] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, store: AsyncConversationStore, metrics: Metrics) -> ApiState:
        secret = settings.api_keys.get_secret_value() if settings.api_keys else None
        admin = settings.admin_keys.get_secret_value() if settings.admin_keys else None
        scrape = settings.metrics_keys.get_secret_value() if settings.metrics_keys else None
        state = cls(
            settings,
            store,
            metrics,
            parse_api_keys(secret),
            parse_admin_keys(admin),
            parse_admin_keys(scrape),
        )
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
        return bool(self.tenant_keys or self.admin_keys or self.metrics_keys)

    @property
    def all_stores(self) -> list[AsyncConversationStore]:
        return [self.store, *self.tenant_stores.values()]

    def identify(self, key: str) -> Caller | None:
        """The caller ``key`` belongs to (None if no configured key): one lookup that compares
        ``key`` with every configured key, each in constant time."""
        tenant = _match(key, self.tenant_keys)
        admin = bool(_match(key, dict.fromkeys(self.admin_keys, 1)))
        scrape = bool(_match(key, dict.fromkeys(self.metrics_keys, 1)))
        if tenant is None and not admin and not scrape:
            return None
        return Caller(self, tenant, admin, metrics=scrape)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request, resolved once from its API key: a tenant, an admin, or anyone
    (``keyless``) when no keys are configured. The store and the admin check derive from it."""

    state: ApiState
    tenant: str | None = None
    admin: bool = False
    keyless: bool = False
    metrics: bool = False

    @property
    def store(self) -> AsyncConversationStore:
        """The tenant's store (the base store when no keys are configured)."""
        if self.keyless:
            return self.state.store
        self.require_store()
        return self.state.tenant_stores[self.tenant]  # type: ignore[index]

    def require_store(self) -> None:
        if not self.keyless and self.tenant is None:
            raise ApiError(403, "this key opens no conversations; use a tenant's API key")

    def require_admin(self) -> None:
        if not (self.keyless or self.admin):
            raise ApiError(403, "the cache routes need an admin key (AGENT_MEMORY_ADMIN_KEYS)")

    def require_metrics(self) -> None:
        if not (self.keyless or self.admin or self.metrics):
            raise ApiError(
                403, "/metrics needs an admin key or a metrics key (AGENT_MEMORY_METRICS_KEYS)"
            )


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def _bearer(scope: Scope) -> str:
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
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


CALLER = "agent_memory.caller"
"""The scope entry that holds the request's :class:`Caller` once it is known."""


def caller_of(scope: Scope) -> Caller:
    """Who sent the request of ``scope``: its key looked up once per request (401 without a
    known key), kept in the scope for the dependencies."""
    caller: Caller | None = scope.get(CALLER)
    if caller is None:
        state: ApiState = scope["app"].state.api
        if not state.auth_enabled:
            caller = Caller(state, keyless=True)
        elif (caller := state.identify(_bearer(scope))) is None:
            raise ApiError(401, "invalid API key")
        scope[CALLER] = caller
    return caller


# The dependencies below are the only ones that call ``caller_of``, and a route has one of
# them. They are coroutines although they do no I/O: FastAPI runs a plain ``def`` dependency
# in a worker thread, a hand-off that cost more than the whole Redis round trip.
async def require_metrics(request: Request) -> None:
    """An admin or metrics key: the ``/metrics`` route."""
    caller_of(request.scope).require_metrics()


async def tenant_store(request: Request) -> AsyncConversationStore:
    """The caller's tenant store: the conversation and message routes."""
    return caller_of(request.scope).store


async def tenant_caller(request: Request) -> Caller:
    """The caller, known to have a tenant store: for the routes that need the store and the
    app's state (one dependency instead of two: each costs a few microseconds per request)."""
    caller = caller_of(request.scope)
    caller.require_store()
    return caller


async def require_admin(request: Request) -> None:
    """An admin key: the cache routes."""
    caller_of(request.scope).require_admin()


async def _state(request: Request) -> ApiState:
    return get_state(request)


Store = Annotated[AsyncConversationStore, Depends(tenant_store)]
Tenant = Annotated[Caller, Depends(tenant_caller)]
State = Annotated[ApiState, Depends(_state)]
