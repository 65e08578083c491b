"""GET /health: is Redis reachable, and can it lose or evict memory?"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agent_memory.errors import StoreUnavailable
from api.deps import State
from api.errors import RETRY_AFTER_SECONDS
from api.schemas import Health, RedisHealth

router = APIRouter(tags=["health"])
log = logging.getLogger("agent_memory.api")
UNREACHABLE = "Redis did not answer (unreachable or too slow); details are in the server log"


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "Redis is unreachable"}},
)
async def health(state: State) -> Health | JSONResponse:
    """Redis reachability, AOF state and fsync policy, eviction policy, server version, and
    warnings when stored memory could be evicted or lost. No API key needed: it reveals no
    address and no internal error text (those go to the server log)."""
    try:
        with state.metrics.timed("server_info"):
            info = await state.store.server_info()
    except StoreUnavailable as exc:
        log.warning("health: Redis unavailable: %s", exc)
        body = Health(
            status="unavailable",
            redis=RedisHealth(reachable=False, error=UNREACHABLE),
            warnings=["Redis is unreachable: nothing can be read or stored"],
        )
        return JSONResponse(
            body.model_dump(), status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    warnings = info.risks()
    return Health(
        status="degraded" if warnings else "ok",
        redis=RedisHealth(
            reachable=True,
            version=info.version,
            aof_enabled=info.aof_enabled,
            appendfsync=info.appendfsync,
            maxmemory_policy=info.maxmemory_policy,
        ),
        warnings=warnings,
    )
