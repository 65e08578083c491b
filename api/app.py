"""The app factory (work in progress)."""

from __future__ import annotations

from fastapi import FastAPI

from agent_memory.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return FastAPI(title="agent-memory")
