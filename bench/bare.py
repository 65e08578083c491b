"""The baseline: what a user writes by hand to put agent-memory behind FastAPI.

Plain FastAPI routes with the API's paths: a pydantic request body (the library's public
``Message`` model, so both servers parse and check the same fields), the same store calls on
the same Redis (``AsyncConversationStore.append`` / ``get_messages(require_exists=True)``:
the same Lua script, keys and commands as ``agent-memory serve``), and the stored messages
returned as plain dicts (FastAPI's default JSON encoding). No authentication, body limit,
metrics, response models or error handlers: everything ``agent-memory serve`` adds around
the same writes.

Served by ``uvicorn bench.bare:app --workers 1`` (uvicorn's defaults, as ``agent-memory serve``
uses them) with ``REDIS_URL`` naming the server and database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from agent_memory import AsyncConversationStore, Message

_stores: list[AsyncConversationStore] = []


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    _stores.append(AsyncConversationStore.from_url(os.environ["REDIS_URL"]))
    try:
        yield
    finally:
        await _stores.pop().aclose()


app = FastAPI(lifespan=_lifespan)


class AppendBody(BaseModel):
    messages: list[Message] = Field(min_length=1)


@app.post("/api/v1/conversations/{conversation_id}/messages", status_code=201)
async def append(conversation_id: str, body: AppendBody) -> dict[str, Any]:
    stored = await _stores[0].append(conversation_id, [m.to_record() for m in body.messages])
    return {"messages": [m.to_dict() for m in stored]}


@app.get("/api/v1/conversations/{conversation_id}/messages")
async def read(conversation_id: str, limit: int = 20) -> dict[str, Any]:
    stored = await _stores[0].get_messages(conversation_id, limit=limit, require_exists=True)
    return {"messages": [m.to_dict() for m in stored]}
