"""What the sync and async stores share besides the plans: construction and configuration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Generic, TypeVar

import redis.asyncio.cluster
import redis.cluster

from agent_memory.core import StoreConfig, StoreCore
from agent_memory.keys import KeySchema
from agent_memory.plan import PRIMARIES, Call
from agent_memory.settings import Settings, get_settings

ClientT = TypeVar("ClientT")


class StoreBase(Generic[ClientT]):
    """Holds the injected client and the pure core; constructing one does no I/O."""

    def __init__(
        self,
        client: ClientT,
        *,
        settings: Settings | None = None,
        key_prefix: str | None = None,
        ttl: int | float | timedelta | None = None,
    ) -> None:
        self._client = client
        self._settings = settings if settings is not None else get_settings()
        cluster = isinstance(
            client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster
        )
        self._core = StoreCore(
            StoreConfig.from_settings(
                self._settings, key_prefix=key_prefix, ttl=ttl, cluster=cluster
            )
        )

    def _route(self, call: Call) -> dict[str, Any]:
        """redis-py's ``target_nodes`` for a call with a cluster target (none otherwise)."""
        if call.target is None:
            return {}
        if call.target == PRIMARIES:
            return {"target_nodes": PRIMARIES}
        client: Any = self._client
        return {"target_nodes": client.get_node(node_name=call.target)}

    @property
    def client(self) -> ClientT:
        return self._client

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def config(self) -> StoreConfig:
        return self._core.config

    @property
    def keys(self) -> KeySchema:
        return self._core.config.keys

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.keys.prefix!r}, ttl_ms={self.config.ttl_ms})"
