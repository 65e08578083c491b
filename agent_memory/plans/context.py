"""What every plan shares: the store's config, the key cache, script keys, cluster index steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from agent_memory import rules
from agent_memory.errors import InvalidInput
from agent_memory.keys import ConversationKeys, KeySchema, validate_id
from agent_memory.plan import Batch, Call, Plan
from agent_memory.replies import text
from agent_memory.settings import Settings, check_prefix

KEYS_CACHED = 4096
SCAN_COUNT = 1000  # keys per SCAN step
KeySlot = Callable[[str | bytes], int]
"""A key's cluster hash slot; the drivers supply redis-py's (plans import no redis-py)."""


def ttl_to_ms(ttl: object) -> int:
    """A store TTL (seconds: int, or float / timedelta to the millisecond) in milliseconds,
    or InvalidInput: every key has a TTL, so zero, negative and None-like values are refused."""
    if isinstance(ttl, timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl * 1000 >= 1:
        raise InvalidInput(
            f"ttl must be a positive number of seconds (int, float or timedelta), not {ttl!r}; "
            "every key the store writes expires (the default, CACHE_TTL_AGENT_MEMORY, is 30 "
            "days)",
            field="ttl",
        )
    if ttl * 1000 > 2**62:
        raise InvalidInput(f"ttl {ttl!r} is too large", field="ttl")
    return round(ttl * 1000)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """What the core needs to know: key schema, TTL and limits."""

    keys: KeySchema
    ttl_ms: int
    max_message_bytes: int = rules.DEFAULT_MAX_MESSAGE_BYTES
    max_messages_per_request: int = rules.DEFAULT_MAX_MESSAGES_PER_REQUEST
    max_append_bytes: int = rules.DEFAULT_MAX_APPEND_BYTES
    max_metadata_bytes: int = rules.DEFAULT_MAX_METADATA_BYTES
    max_json_depth: int = rules.DEFAULT_MAX_JSON_DEPTH
    touch_on_read: bool = False
    idempotency_ttl_ms: int = rules.DEFAULT_IDEMPOTENCY_TTL_SECONDS * 1000
    """How long an append's idempotency key (and each call's retry token) is remembered."""
    fsync_ack: bool = False
    """Each append waits for ``WAITAOF 1 0 fsync_timeout_ms`` in the same round trip."""
    fsync_timeout_ms: int = 1000
    cluster: bool = False
    """Redis Cluster: scripts get one conversation's keys only (one hash slot); the plans
    update the indexes with separate commands (docs/scaling.md)."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        key_prefix: str | None = None,
        ttl: int | float | timedelta | None = None,
        cluster: bool = False,
    ) -> StoreConfig:
        try:  # a pure check: building Settings() here would read the environment each time
            prefix = settings.key_prefix if key_prefix is None else check_prefix(key_prefix)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="key_prefix") from None
        return cls(
            keys=KeySchema(prefix),
            ttl_ms=settings.ttl_seconds * 1000 if ttl is None else ttl_to_ms(ttl),
            max_message_bytes=settings.max_message_bytes,
            max_messages_per_request=settings.max_messages_per_request,
            max_append_bytes=settings.max_append_bytes,
            max_metadata_bytes=settings.max_metadata_bytes,
            max_json_depth=settings.max_json_depth,
            touch_on_read=settings.touch_on_read,
            idempotency_ttl_ms=settings.idempotency_ttl_seconds * 1000,
            cluster=cluster or settings.redis_cluster,
            fsync_ack=settings.fsync_ack,
            # answered by the server before the client's socket timeout gives up
            fsync_timeout_ms=max(1, int(settings.socket_timeout * 500)),
        )


class PlanContext:
    """The state the resource mixins share; constructing it does no I/O.

    ``key_slot`` groups multi-key commands by cluster hash slot; without one, each key is
    sent in a command of its own (always correct, just more commands)."""

    def __init__(self, config: StoreConfig, *, key_slot: KeySlot | None = None) -> None:
        self.config = config
        self.key_slot = key_slot
        self._keys: dict[str, ConversationKeys] = {}
        self._index_keys = () if config.cluster else (config.keys.index_all, config.keys.ttl_marker)

    def conversation_keys(self, conversation_id: str) -> ConversationKeys:
        """The keys of a conversation; validated ids and their keys are remembered (up to
        KEYS_CACHED; validating and escaping an id costs ~2 us, an append ~150 us)."""
        keys = self._keys.get(conversation_id) if type(conversation_id) is str else None
        if keys is None:
            keys = self.config.keys.conversation(validate_id(conversation_id))
            if len(self._keys) >= KEYS_CACHED:
                self._keys.clear()
            self._keys[conversation_id] = keys
        return keys

    def _index_names(self, user_id: str | None, agent_id: str | None) -> tuple[str, str, str]:
        """The user, agent and (user, agent) index keys of a conversation ('' where none)."""
        keys = self.config.keys
        both = user_id is not None and agent_id is not None
        return (
            keys.index_user(user_id) if user_id is not None else "",
            keys.index_agent(agent_id) if agent_id is not None else "",
            keys.index_pair(user_id, agent_id) if both else "",  # type: ignore[arg-type]
        )

    def _script_keys(self, conversation_id: str) -> tuple[str, ...]:
        """A script's keys: the conversation's, plus the global index and the TTL marker on a
        single server (see ``prune_cutoff`` in ``lua/_prelude.lua``)."""
        return (*self.conversation_keys(conversation_id).all, *self._index_keys)

    # -- cluster mode: the index updates the scripts cannot make (other hash slots) -------
    def _touch_indexes(self, conversation_id: str, info: Sequence[Any]) -> Plan[None]:
        """ZADD the id at ``now`` to the global index and to the user/agent/pair indexes
        named in ``info`` (a script's ``{now, user index, agent index, pair index}``),
        extending each index's TTL to at least the store's (PEXPIRE NX + GT, as the scripts'
        ``touch_index``); then remove the entries that have certainly expired (older than now
        minus the TTL marker, raised first: the scripts' ``prune_cutoff``). One more round
        trip than a single server's scripts need."""
        now, *named = info
        now = int(now)
        ttl = self.config.ttl_ms
        marker = self.config.keys.ttl_marker
        batch: Batch = [
            Call(("ZADD", marker, "GT", ttl, "ttl")),
            Call(("PEXPIRE", marker, ttl, "NX")),
            Call(("PEXPIRE", marker, ttl, "GT")),
        ]
        indexes = [k for k in (self.config.keys.index_all, *map(text, named)) if k]
        for key in indexes:
            batch += [
                Call(("ZADD", key, now, conversation_id)),
                Call(("PEXPIRE", key, ttl, "NX")),
                Call(("PEXPIRE", key, ttl, "GT")),
            ]
        batch.append(Call(("ZSCORE", marker, "ttl")))
        *_, longest = yield batch
        cutoff = f"({now - int(float(longest or ttl))}"
        yield [Call(("ZREMRANGEBYSCORE", key, "-inf", cutoff)) for key in indexes]

    def _untouch_indexes(self, removals: Iterable[tuple[str, Sequence[Any]]]) -> Plan[None]:
        """ZREM each (conversation id, index names) pair from the global index and those."""
        batch = [
            Call(("ZREM", key, cid))
            for cid, named in removals
            for key in (self.config.keys.index_all, *map(text, named))
            if key
        ]
        if batch:
            yield batch
