"""Admin routes: Redis stats of the integration guide, and clearing every agent-memory key."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import State, require_admin
from api.errors import error_responses as errors
from api.schemas import CacheStats, Deleted

router = APIRouter(prefix="/api/v1/cache", tags=["cache"], dependencies=[Depends(require_admin)])


@router.get("/stats", response_model=CacheStats, responses=errors(401, 403))
async def cache_stats(state: State) -> CacheStats:
    """Memory, keyspace hits/misses (hit rate in percent), commands, clients; plus the number
    of conversations (every tenant) and of keys in the database."""
    with state.metrics.timed("server_info"):
        info = await state.store.server_info()
        tenants = [await s.count_conversations() for s in state.tenant_stores.values()]
    return CacheStats(**{**info.cache_stats(), "conversations": info.conversations + sum(tenants)})


@router.delete("/clear", response_model=Deleted, responses=errors(401, 403))
async def cache_clear(state: State) -> Deleted:
    """Delete every key under the configured prefix (every tenant) in the configured database,
    with SCAN + UNLINK: other services' keys and databases are untouched (no FLUSHDB)."""
    with state.metrics.timed("clear_all"):
        return Deleted(deleted=await state.store.clear_all())
