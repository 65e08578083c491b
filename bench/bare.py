"""The ceiling of the framework: bare FastAPI routes with the API's paths and no store.

Served by ``uvicorn bench.bare:app`` with the options ``agent-memory serve`` uses (one worker).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()

_PAGE = {
    "messages": [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": "Order A-1 left the warehouse this morning and is with the carrier now.",
            "cursor": f"1700000000000-{i}",
            "created_at": "2023-11-14T22:13:20+00:00",
        }
        for i in range(20)
    ]
}


@app.post("/api/v1/conversations/{conversation_id}/messages", status_code=201)
async def append(conversation_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"messages": body["messages"]}


@app.get("/api/v1/conversations/{conversation_id}/messages")
async def read(conversation_id: str, limit: int = 20) -> dict[str, Any]:
    return _PAGE
