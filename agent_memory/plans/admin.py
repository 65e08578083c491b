"""Server-wide plans: ping, server info and counts, clear every key under the prefix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent_memory.plan import PRIMARIES, Call, Plan
from agent_memory.plans.context import SCAN_COUNT, PlanContext
from agent_memory.serverinfo import ServerInfo, merge_infos


class AdminPlans(PlanContext):
    def ping(self) -> Plan[bool]:
        """True when the server answers PING."""
        (reply,) = yield [Call(("PING",))]
        return bool(reply)

    def server_info(self) -> Plan[ServerInfo]:
        """Server version, persistence (AOF, fsync), eviction policy, memory and command
        stats, keys in the database and conversations in this prefix's index. In cluster mode
        counters are summed over the primaries (see :func:`merge_infos`)."""
        if self.config.cluster:
            return (yield from self._cluster_server_info())
        (keys,) = yield [Call(("DBSIZE",))]
        conversations = yield from self.count_conversations()
        (info,) = yield [Call(("INFO",), optional=True)]
        (fsync,) = yield [Call(("CONFIG", "GET", "appendfsync"), optional=True)]
        return ServerInfo.parse(info, fsync, keys, conversations)

    def _cluster_server_info(self) -> Plan[ServerInfo]:
        (sizes,) = yield [Call(("DBSIZE",), target=PRIMARIES)]
        keys = sum(int(n) for n in sizes.values())
        conversations = yield from self.count_conversations()
        (infos,) = yield [Call(("INFO",), optional=True, target=PRIMARIES)]
        (fsyncs,) = yield [Call(("CONFIG", "GET", "appendfsync"), optional=True, target=PRIMARIES)]
        fsync = next(iter(fsyncs.values())) if isinstance(fsyncs, Mapping) and fsyncs else None
        return ServerInfo.parse(merge_infos(infos), fsync, keys, conversations)

    def count_conversations(self) -> Plan[int]:
        """Conversations in this prefix's index that may be alive: entries older than now
        minus the TTL marker (the longest TTL a write used, see ``lua/_prelude.lua``) have
        certainly expired and are not counted, pruned or not."""
        keys = self.config.keys
        clock, longest = yield [Call(("TIME",)), Call(("ZSCORE", keys.ttl_marker, "ttl"))]
        now = int(clock[0]) * 1000 + int(clock[1]) // 1000
        ttl = int(float(longest)) if longest is not None else self.config.ttl_ms
        (n,) = yield [Call(("ZCOUNT", keys.index_all, now - ttl, "+inf"))]
        return int(n)

    def clear_all(self) -> Plan[int]:
        """Delete every key under the prefix in this database (SCAN + UNLINK; no FLUSHDB); in
        cluster mode on every primary."""
        if self.config.cluster:
            return (yield from self._clear_cluster())
        pattern = self.config.keys.scan_pattern
        cursor: Any = 0
        deleted = 0
        while True:
            ((cursor, found),) = yield [
                Call(("SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT))
            ]
            if found:
                (n,) = yield [Call(("UNLINK", *found))]
                deleted += n
            if int(cursor) == 0:
                return deleted

    def _clear_cluster(self) -> Plan[int]:
        """SCAN every primary at once, then each node on to its end; UNLINK grouped by hash
        slot (a multi-key command stays in one slot)."""
        scan = ("SCAN", 0, "MATCH", self.config.keys.scan_pattern, "COUNT", SCAN_COUNT)
        (scans,) = yield [Call(scan, target=PRIMARIES)]
        deleted = yield from self._unlink_by_slot([k for _, keys in scans.values() for k in keys])
        for node, (cursor, _) in sorted(scans.items()):
            while int(cursor) != 0:
                ((cursor, found),) = yield [Call(("SCAN", cursor, *scan[2:]), target=node)]
                deleted += yield from self._unlink_by_slot(found)
        return deleted

    def _unlink_by_slot(self, found: Sequence[Any]) -> Plan[int]:
        """UNLINK ``found`` in one pipelined round trip, a command per hash slot (per key
        when the context has no ``key_slot``)."""
        groups: dict[Any, list[Any]] = {}
        for i, key in enumerate(found):
            group = self.key_slot(key) if self.key_slot is not None else i
            groups.setdefault(group, []).append(key)
        if not groups:
            return 0
        replies = yield [Call(("UNLINK", *keys)) for keys in groups.values()]
        return sum(replies)
