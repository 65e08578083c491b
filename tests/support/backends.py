"""The Redis a behaviour test runs on, and a snapshot of what the store left in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import fakeredis
import redis
import redis.asyncio

DB = 2
BACKENDS = ("fake", "real", "valkey")
"""fakeredis (speed), a redis-server and a valkey-server (truth) the tests start themselves."""


@dataclass
class Backend:
    """A Redis to test against: a sync client, and a factory for asyncio clients."""

    name: str
    client: redis.Redis
    _fake_server: fakeredis.FakeServer | None = None
    _url: str | None = None

    @property
    def real(self) -> bool:
        """A server process (redis-server or valkey-server), not fakeredis."""
        return self._fake_server is None

    def async_client(self) -> redis.asyncio.Redis:
        if self._fake_server is not None:
            return fakeredis.FakeAsyncRedis(server=self._fake_server, protocol=3)
        assert self._url is not None
        return redis.asyncio.Redis.from_url(self._url, db=DB)


def key_names(client: redis.Redis, pattern: str = "*") -> set[str]:
    """The names of the keys matching ``pattern`` (KEYS: small test databases only)."""
    return {k.decode() if isinstance(k, bytes) else k for k in client.keys(pattern)}


def snapshot(
    client: redis.Redis, prefix: str = "agent_memory", *, tokens: bool = True
) -> dict[bytes, Any]:
    """Every key under the prefix: its type, exact content and absolute expiry (PEXPIRETIME).
    ``tokens=False`` leaves out the append-token hashes (``P:c:{E}:t``: transient retry
    state, remembered for the idempotency TTL) and the ``refreshed`` field of metadata hashes
    (this server's record of its last expiry refresh, see append.lua: not exported)."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        if not tokens and key.endswith(b"}:t"):
            continue
        kind = client.type(key)
        if kind == b"stream":
            value: Any = client.xrange(key)
        elif kind == b"hash":
            value = client.hgetall(key)
            if not tokens and key.endswith(b"}:h"):
                value.pop(b"refreshed", None)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = client.lrange(key, 0, -1)
        out[key] = (kind, value, client.pexpiretime(key))
    return out


def commands_since_reset(client: redis.Redis) -> dict[str, int]:
    """Commands run since CONFIG RESETSTAT (scripts' inner calls included), without the
    bookkeeping commands of the test itself."""
    stats: dict[str, Any] = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    }
