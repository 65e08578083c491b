"""``agent-memory doctor``: is this Redis safe to keep conversation memory in?

The checks are pure functions over what the server reports (``INFO``, ``CONFIG GET``), so they
are tested without a server; :func:`gather` is the only part that talks to Redis, and
:func:`diagnose` ties the two together. A finding is ``ok``, ``warning`` (worth knowing, no
memory at risk) or ``risk`` (memory can be lost or the store cannot work); any risk makes the
command exit non-zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from agent_memory.keys import KeySchema
from agent_memory.replies import decoded, text

Level = Literal["ok", "warning", "risk"]

MIN_VERSION = (7, 0)  # PEXPIRETIME, used to report absolute expiry
WAITAOF_VERSION = (7, 2)
HEADROOM_WARNING = 0.9  # used_memory / maxmemory above this is worth a warning
_SCAN_COUNT = 1000


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    check: str
    message: str


@dataclass(slots=True)
class ServerFacts:
    """What the checks look at, gathered from one server."""

    info: dict[str, Any]
    appendfsync: str | None = None  # None when CONFIG GET is not allowed
    waitaof: bool = False
    keys_scanned: int = 0
    keys_without_ttl: int = 0
    examples_without_ttl: list[str] = field(default_factory=list)


# -- the checks: pure ----------------------------------------------------------------------


def check_aof(aof_enabled: bool | None, appendfsync: str | None) -> Finding:
    """Persistence; ``aof_enabled`` None when the server does not say (INFO disabled)."""
    if aof_enabled is None:
        return Finding(
            "warning",
            "persistence",
            "the server does not report whether AOF is on (INFO unavailable): check it by hand.",
        )
    if not aof_enabled:
        return Finding(
            "risk",
            "persistence",
            "AOF is off: a restart or crash of Redis loses every conversation written since the "
            "last snapshot. Turn it on: CONFIG SET appendonly yes (and in redis.conf).",
        )
    if appendfsync == "always":
        return Finding("ok", "persistence", "AOF is on, fsync on every write (appendfsync always).")
    if appendfsync == "everysec":
        return Finding(
            "ok",
            "persistence",
            "AOF is on, fsync every second: a crash of the machine can lose up to ~1 s of "
            "acknowledged writes (use appendfsync always, or AGENT_MEMORY_FSYNC_ACK, for none).",
        )
    if appendfsync == "no":
        return Finding(
            "warning",
            "persistence",
            "AOF is on but fsync is left to the OS (appendfsync no): a machine crash can lose "
            "~30 s of writes. Prefer appendfsync everysec or always.",
        )
    return Finding("ok", "persistence", "AOF is on (fsync policy unknown: CONFIG GET refused).")


def check_eviction(policy: str | None) -> Finding:
    """Eviction; ``policy`` None when the server does not say (INFO disabled)."""
    if policy is None:
        return Finding(
            "warning",
            "eviction",
            "the server does not report its eviction policy (INFO unavailable): make sure it "
            "is noeviction.",
        )
    if policy == "noeviction":
        return Finding(
            "ok", "eviction", "maxmemory-policy is noeviction: Redis never deletes memory."
        )
    ttl_note = (
        " Every agent-memory key has a TTL, so volatile-* policies evict them too."
        if policy.startswith("volatile")
        else ""
    )
    return Finding(
        "risk",
        "eviction",
        f"maxmemory-policy is {policy}: when Redis is full it deletes keys of any database on "
        f"the instance, conversations included.{ttl_note} Use noeviction "
        "(CONFIG SET maxmemory-policy noeviction): a full Redis then refuses writes instead.",
    )


def check_memory(info: Mapping[str, Any]) -> Finding:
    used = int(info.get("used_memory", 0))
    limit = int(info.get("maxmemory", 0))
    if limit == 0:
        return Finding(
            "warning",
            "memory",
            f"no maxmemory limit ({_mib(used)} used): Redis grows until the machine runs out "
            "of memory. Set maxmemory with room for your data.",
        )
    return check_headroom(used, limit)


def check_headroom(used: int | None, limit: int | None) -> Finding:
    """Used memory against maxmemory (``ok`` when there is no limit or the server does not
    say): a warning from :data:`HEADROOM_WARNING` of it, a risk once it is reached (with
    noeviction, Redis then refuses every write: StoreUnavailable / 503)."""
    if not used or not limit:
        return Finding("ok", "memory", "no maxmemory limit reported.")
    share = used / limit
    text = f"{_mib(used)} used of maxmemory {_mib(limit)} ({share:.0%})"
    if share >= 1:
        return Finding(
            "risk",
            "memory",
            f"{text}: Redis is full; with noeviction it refuses writes (503) until memory is "
            "freed. Raise maxmemory or shorten CACHE_TTL_AGENT_MEMORY.",
        )
    if share >= HEADROOM_WARNING:
        return Finding(
            "warning",
            "memory",
            f"{text}: close to the limit; with noeviction, writes will be refused (503) when it "
            "is reached. Raise maxmemory or shorten CACHE_TTL_AGENT_MEMORY.",
        )
    return Finding("ok", "memory", f"{text}.")


def parse_version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def has_waitaof(info: Mapping[str, Any]) -> bool:
    """WAITAOF arrived in Redis 7.2 (Valkey reports redis_version 7.2.4 and has it)."""
    return parse_version(str(info.get("redis_version", "0"))) >= WAITAOF_VERSION


def check_version(info: Mapping[str, Any], waitaof: bool) -> Finding:
    name = str(info.get("server_name", "redis"))
    raw = str(info.get("valkey_version") or info.get("redis_version", "0"))
    version = parse_version(str(info.get("redis_version", "0")))
    label = f"{name} {raw}"
    if version < MIN_VERSION:
        return Finding(
            "risk",
            "version",
            f"{label} is too old: agent-memory needs Redis >= 7.0 (PEXPIRETIME).",
        )
    if waitaof:
        return Finding(
            "ok", "version", f"{label}; WAITAOF available (AGENT_MEMORY_FSYNC_ACK can be used)."
        )
    return Finding(
        "ok",
        "version",
        f"{label}; no WAITAOF (Redis >= 7.2 or Valkey), so AGENT_MEMORY_FSYNC_ACK cannot be "
        "used: rely on appendfsync always for a per-write fsync.",
    )


def check_ttl(scanned: int, without_ttl: int, examples: list[str], prefix: str) -> Finding:
    if without_ttl:
        shown = ", ".join(examples)
        return Finding(
            "risk",
            "ttl",
            f"{without_ttl} of {scanned} keys under '{prefix}:' have no TTL and will never "
            f"expire (e.g. {shown}). agent-memory always sets one: something else wrote these.",
        )
    return Finding("ok", "ttl", f"all {scanned} keys under '{prefix}:' have a TTL.")


def assess(facts: ServerFacts, prefix: str) -> list[Finding]:
    """Every finding about a reachable server."""
    return [
        check_version(facts.info, facts.waitaof),
        check_aof(_aof_enabled(facts.info), facts.appendfsync),
        check_eviction(_policy(facts.info)),
        check_memory(facts.info),
        check_ttl(facts.keys_scanned, facts.keys_without_ttl, facts.examples_without_ttl, prefix),
    ]


def _aof_enabled(info: Mapping[str, Any]) -> bool | None:
    value = info.get("aof_enabled")
    return None if value is None else str(value) == "1"


def _policy(info: Mapping[str, Any]) -> str | None:
    value = info.get("maxmemory_policy")
    return None if value is None else str(value)


def unreachable(error: Exception) -> Finding:
    return Finding("risk", "reachability", f"Redis is unreachable: {error}")


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.level == "risk" for f in findings) else 0


def _mib(n: int) -> str:
    return f"{n / 1_048_576:.1f} MiB"


# -- the I/O: thin -------------------------------------------------------------------------


def gather(client: redis.Redis, prefix: str) -> ServerFacts:
    """Ask the server (INFO, CONFIG GET, COMMAND INFO, SCAN over our prefix + PTTL)."""
    facts = ServerFacts(info=decoded(client.info("everything")))
    with contextlib.suppress(redis.ResponseError):
        facts.appendfsync = decoded(client.config_get("appendfsync")).get("appendfsync")
    facts.waitaof = has_waitaof(facts.info)
    _count_ttls(client, KeySchema(prefix).scan_pattern, facts)
    return facts


def _count_ttls(client: redis.Redis, pattern: str, facts: ServerFacts) -> None:
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match=pattern, count=_SCAN_COUNT)
        if keys:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.pttl(key)
            for key, ttl in zip(keys, pipe.execute(), strict=True):
                facts.keys_scanned += 1
                if ttl == -1:
                    facts.keys_without_ttl += 1
                    if len(facts.examples_without_ttl) < 3:
                        facts.examples_without_ttl.append(text(key, "replace"))
        if int(cursor) == 0:
            return


def diagnose(client: redis.Redis, prefix: str) -> list[Finding]:
    """Findings for the server behind ``client`` (one 'unreachable' risk if it does not answer)."""
    try:
        client.ping()
        facts = gather(client, prefix)
    except (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError) as exc:
        return [unreachable(exc)]
    return [Finding("ok", "reachability", "Redis answers."), *assess(facts, prefix)]


_STYLE: dict[Level, tuple[str, str]] = {
    "ok": ("green", "ok"),
    "warning": ("yellow", "warning"),
    "risk": ("red", "RISK"),
}


def render(findings: list[Finding], where: str) -> None:
    """Print the findings in plain words (colours on a terminal only)."""
    from rich.console import Console

    console = Console(highlight=False)
    console.print(f"agent-memory doctor: {where}")
    for f in findings:
        colour, label = _STYLE[f.level]
        console.print(f"  [{colour}]{label:>7}[/]  {f.check:<12} {f.message}", soft_wrap=True)
    risks = sum(f.level == "risk" for f in findings)
    if risks:
        console.print(f"[red]{risks} risk(s) that can lose memory or stop the store.[/]")
    else:
        console.print("[green]No risk to stored memory found.[/]")
