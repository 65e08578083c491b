"""Helpers for the API tests: an httpx client on an app (lifespan run) over a test backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from agent_memory import AsyncConversationStore
from api.app import create_app
from tests.support.backends import Backend
from tests.support.settings import make_settings

TENANT_KEYS = "key-a:tenant-a,key-b:tenant-b"
ADMIN_KEYS = "key-admin"
AUTH_A = {"Authorization": "Bearer key-a"}
AUTH_B = {"Authorization": "Bearer key-b"}
AUTH_ADMIN = {"Authorization": "Bearer key-admin"}


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` in-process, with its lifespan started and stopped."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def api_client(backend: Backend, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app on ``backend`` with the given settings (DB 2, default prefix)."""
    config = make_settings(**settings)
    redis = backend.async_client()
    store = AsyncConversationStore(redis, settings=config)
    try:
        async with running(create_app(config, store)) as client:
            yield client
    finally:
        await redis.aclose()
