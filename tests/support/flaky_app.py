"""An ASGI app factory for the supervisor's tests: it answers with its worker's pid, and
refuses to load (as a broken deploy does) once the file named by FLAKY_APP_FAIL exists."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def create() -> App:
    if Path(os.environ["FLAKY_APP_FAIL"]).exists():
        raise RuntimeError("a broken deploy")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = str(os.getpid()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app
