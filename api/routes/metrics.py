"""GET /metrics: Prometheus text format, from this app's own registry."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent_memory.errors import StoreUnavailable
from api.deps import State, require_metrics
from api.errors import error_responses as errors

router = APIRouter(tags=["metrics"], dependencies=[Depends(require_metrics)])


@router.get(
    "/metrics",
    response_class=Response,
    responses={**errors(401, 403), 200: {"content": {"text/plain": {}}, "description": "Metrics"}},
)
async def metrics(state: State) -> Response:
    """Request latency, errors, messages appended/read, store operation times, and a PING
    round trip to Redis measured now (``agent_memory_redis_ping_seconds``, ``..._up``)."""
    start = time.perf_counter()
    try:
        await state.store.ping()
    except StoreUnavailable:
        state.metrics.up.set(0)
    else:
        state.metrics.ping.set(time.perf_counter() - start)
        state.metrics.up.set(1)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
