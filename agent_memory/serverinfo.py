"""What a Redis server says about itself, for ``/health``, ``/api/v1/cache/stats`` and
``agent-memory doctor``: parsed from INFO and CONFIG replies, pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_memory.replies import config_value
from agent_memory.replies import text as _text


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What the server says about itself (``None`` where it does not say, e.g. when INFO or
    CONFIG is disabled), plus the store's own counts."""

    version: str | None
    aof_enabled: bool | None
    appendfsync: str | None
    maxmemory_policy: str | None
    maxmemory: int | None
    used_memory: int | None
    used_memory_human: str | None
    keyspace_hits: int | None
    keyspace_misses: int | None
    total_commands_processed: int | None
    connected_clients: int | None
    keys: int
    conversations: int

    @classmethod
    def parse(
        cls, info: Mapping[str, Any] | None, fsync: Any, keys: int, conversations: int
    ) -> ServerInfo:
        info = info or {}

        def num(name: str) -> int | None:
            value = info.get(name)
            return int(value) if isinstance(value, int | float) else None

        def text(name: str) -> str | None:
            value = info.get(name)
            return None if value is None else _text(value)

        aof = num("aof_enabled")
        return cls(
            version=text("valkey_version") or text("redis_version"),
            aof_enabled=None if aof is None else bool(aof),
            appendfsync=config_value(fsync, "appendfsync"),
            maxmemory_policy=text("maxmemory_policy"),
            maxmemory=num("maxmemory"),
            used_memory=num("used_memory"),
            used_memory_human=text("used_memory_human"),
            keyspace_hits=num("keyspace_hits"),
            keyspace_misses=num("keyspace_misses"),
            total_commands_processed=num("total_commands_processed"),
            connected_clients=num("connected_clients"),
            keys=int(keys),
            conversations=int(conversations),
        )

    @property
    def hit_rate(self) -> float | None:
        """Keyspace hits in percent of lookups (0.0 before any lookup; None if not reported)."""
        hits, misses = self.keyspace_hits, self.keyspace_misses
        if hits is None:
            return None
        lookups = hits + (misses or 0)
        return round(100 * hits / lookups, 2) if lookups else 0.0

    def cache_stats(self) -> dict[str, Any]:
        """The original integration guide's stats fields, plus the store's own counts."""
        return {
            "connected": True,
            "memory_used": self.used_memory_human,
            "keyspace_hits": self.keyspace_hits,
            "keyspace_misses": self.keyspace_misses,
            "hit_rate": self.hit_rate,
            "total_commands_processed": self.total_commands_processed,
            "connected_clients": self.connected_clients,
            "conversations": self.conversations,
            "keys": self.keys,
        }

    def risks(self) -> list[str]:
        """Plain-words warnings: how stored memory could be evicted or lost (the same checks
        as ``agent-memory doctor``, in :mod:`agent_memory.doctor`)."""
        from agent_memory import doctor

        findings = (
            doctor.check_eviction(self.maxmemory_policy),
            doctor.check_aof(self.aof_enabled, self.appendfsync),
            doctor.check_headroom(self.used_memory, self.maxmemory),
        )
        return [f.message for f in findings if f.level != "ok"]


_SUMMED_INFO = (
    "used_memory",
    "keyspace_hits",
    "keyspace_misses",
    "total_commands_processed",
    "connected_clients",
)


def merge_infos(per_node: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any] | None:
    """One INFO for a cluster from ``{node: INFO}``: the counters of ``_SUMMED_INFO`` summed,
    ``aof_enabled`` only if on everywhere, everything else from the first node by name."""
    if not per_node:
        return None
    nodes = [per_node[name] for name in sorted(per_node)]
    merged = dict(nodes[0])
    for name in _SUMMED_INFO:
        values = [node.get(name) for node in nodes]
        if all(isinstance(v, int | float) for v in values):
            merged[name] = sum(values)
    merged["used_memory_human"] = f"{merged.get('used_memory', 0) / 1048576:.2f}M"
    merged["aof_enabled"] = min(int(node.get("aof_enabled", 0)) for node in nodes)
    return merged
