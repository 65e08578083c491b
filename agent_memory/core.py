"""The pure core shared by the sync and async stores: every operation as a *plan*.

Each public method of :class:`StoreCore` is a generator that yields batches of Redis calls and
receives their replies (the protocol is in :mod:`agent_memory.plan`); it holds all the logic
(keys, validation, encoding, parsing) while ``store.py`` and ``aio.py`` only carry batches to
Redis and back, so no logic exists twice::

    def get_conversation(...) -> Plan[Conversation]:
        meta, expiry = yield [Call(("HGETALL", k)), Call(("PEXPIRETIME", k))]
        return parse(meta, expiry)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from langchain_core.messages import BaseMessage
from redis.crc import key_slot

from agent_memory import scripts
from agent_memory.codec import (
    StoredMessage,
    decode_payload,
    encode_record,
    message_from_payload,
    record_from_input,
)
from agent_memory.errors import (
    ConversationExists,
    ConversationNotFound,
    InvalidCursor,
    InvalidInput,
    ServerUnsupported,
    StoreUnavailable,
    VersionConflict,
)
from agent_memory.keys import ConversationKeys, KeySchema, validate_id
from agent_memory.models import Conversation, ms_to_datetime
from agent_memory.plan import PRIMARIES, Batch, Call, Plan
from agent_memory.plan import text as _text
from agent_memory.serverinfo import ServerInfo, merge_infos
from agent_memory.settings import Settings, check_prefix

T = TypeVar("T")
InputMessage = BaseMessage | Mapping[str, Any]

_CURSOR = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")  # ASCII digits only (\d is Unicode)
_MAX_U64 = 2**64 - 1
_LAST_ID = f"{_MAX_U64}-{_MAX_U64}"
_UNSET: Any = object()
MAX_TITLE_LENGTH = 1024
_KEYS_CACHED = 4096


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of a conversation listing; pass ``next_cursor`` back for the next page."""

    items: list[Conversation]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """What the core needs to know: key schema, TTL and limits."""

    keys: KeySchema
    ttl_ms: int
    max_message_bytes: int = 1_048_576
    max_messages_per_request: int = 1000
    touch_on_read: bool = False
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
        try:
            prefix = settings.key_prefix if key_prefix is None else check_prefix(key_prefix)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="key_prefix") from None
        ttl_ms = settings.ttl_seconds * 1000 if ttl is None else ttl_to_ms(ttl)
        return cls(
            keys=KeySchema(prefix),
            ttl_ms=ttl_ms,
            max_message_bytes=settings.max_message_bytes,
            max_messages_per_request=settings.max_messages_per_request,
            touch_on_read=settings.touch_on_read,
            cluster=cluster or settings.redis_cluster,
            fsync_ack=settings.fsync_ack,
            # answered by the server before the client's socket timeout gives up
            fsync_timeout_ms=max(1, int(settings.socket_timeout * 500)),
        )


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


def _payload(fields: Any) -> bytes | str:
    """The ``m`` field of a stream entry, whatever shape the client parsed it into."""
    if type(fields) is dict:  # redis-py's parse of a stream entry (bytes keys unless decoded)
        value = fields.get(b"m") or fields.get("m")
    else:
        value = fields.get(b"m", fields.get("m")) if isinstance(fields, Mapping) else fields[1]
    if value is None:
        raise InvalidInput("stream entry without a message field")
    return value  # type: ignore[no-any-return]


def _stored(entries: Iterable[Any]) -> list[StoredMessage]:
    return [
        StoredMessage(_text(cursor), decode_payload(_payload(fields))) for cursor, fields in entries
    ]


def _pairs(reply: Sequence[Any]) -> list[tuple[str, float]]:
    """(member, score) pairs of a WITHSCORES reply, flat (RESP2) or nested (RESP3)."""
    if reply and isinstance(reply[0], list | tuple):
        return [(_text(m), float(s)) for m, s in reply]
    return [(_text(reply[i]), float(reply[i + 1])) for i in range(0, len(reply), 2)]


def _check_cursor(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not _CURSOR.fullmatch(value)
        or any(int(part) > _MAX_U64 for part in value.split("-"))
    ):
        raise InvalidCursor(f"{name} must be a message cursor like '1700000000000-0'", field=name)
    return value


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise InvalidInput(f"limit must be a positive integer, not {limit!r}", field="limit")
    return limit


def idempotency_token(key: str) -> str:
    """A fixed-size token for a client's idempotency key (any string)."""
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def encode_list_cursor(score: float, member: str) -> str:
    raw = json.dumps([score, member], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_list_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, member = json.loads(raw)
        if not isinstance(member, str) or not isinstance(score, int | float):
            raise TypeError
        return float(score), member
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("cursor is not one this store produced", field="cursor") from exc


def parse_conversation(meta: Mapping[Any, Any], expire_at_ms: int | None) -> Conversation:
    """A Conversation from its metadata hash and absolute expiry (PEXPIRETIME)."""
    m = {_text(k): _text(v) for k, v in meta.items()}
    return Conversation(
        id=m["id"],
        user_id=m.get("user_id"),
        agent_id=m.get("agent_id"),
        title=m.get("title"),
        metadata=json.loads(m["metadata"]) if "metadata" in m else {},
        created_at=ms_to_datetime(int(m["created_at"])),
        updated_at=ms_to_datetime(int(m.get("updated_at", m["created_at"]))),
        message_count=int(m.get("message_count", 0)),
        version=int(m.get("version", 1)),
        expires_at=ms_to_datetime(expire_at_ms) if expire_at_ms and expire_at_ms > 0 else None,
    )


class StoreCore:
    """Every store operation as a plan; shared by ConversationStore and AsyncConversationStore."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._keys: dict[str, ConversationKeys] = {}

    # -- keys -----------------------------------------------------------------------------
    def conversation_keys(self, conversation_id: str) -> ConversationKeys:
        """The keys of a conversation; validated ids and their keys are remembered (up to
        _KEYS_CACHED; validating and escaping an id costs ~2 us, an append ~150 us)."""
        keys = self._keys.get(conversation_id) if type(conversation_id) is str else None
        if keys is None:
            keys = self.config.keys.conversation(validate_id(conversation_id))
            if len(self._keys) >= _KEYS_CACHED:
                self._keys.clear()
            self._keys[conversation_id] = keys
        return keys

    def _script_keys(self, conversation_id: str) -> tuple[str, ...]:
        keys = self.conversation_keys(conversation_id).all
        return keys if self.config.cluster else (*keys, self.config.keys.index_all)

    # -- cluster mode: the index updates the scripts cannot make (other hash slots) -------
    def _touch_indexes(self, conversation_id: str, info: Sequence[Any]) -> Plan[None]:
        """ZADD the id at ``now`` to the global index and to the user/agent indexes named in
        ``info`` (a script's ``{now, user index, agent index}``), extending each index's TTL
        to at least the store's (PEXPIRE NX + GT, as the scripts' ``touch_index``)."""
        now, *named = info
        ttl = self.config.ttl_ms
        batch: Batch = []
        for key in (self.config.keys.index_all, *map(_text, named)):
            if key:
                batch += [
                    Call(("ZADD", key, int(now), conversation_id)),
                    Call(("PEXPIRE", key, ttl, "NX")),
                    Call(("PEXPIRE", key, ttl, "GT")),
                ]
        yield batch

    def _untouch_indexes(self, removals: Iterable[tuple[str, Sequence[Any]]]) -> Plan[None]:
        """ZREM each (conversation id, index names) pair from the global index and those."""
        batch = [
            Call(("ZREM", key, cid))
            for cid, named in removals
            for key in (self.config.keys.index_all, *map(_text, named))
            if key
        ]
        if batch:
            yield batch

    def ping(self) -> Plan[bool]:
        (reply,) = yield [Call(("PING",))]
        return bool(reply)

    def server_info(self) -> Plan[ServerInfo]:
        """Server version, persistence (AOF, fsync), eviction policy, memory and command
        stats, keys in the database and conversations in this prefix's index. In cluster mode
        counters are summed over the primaries (see :func:`merge_infos`)."""
        if self.config.cluster:
            return (yield from self._cluster_server_info())
        keys, conversations = yield [
            Call(("DBSIZE",)),
            Call(("ZCARD", self.config.keys.index_all)),
        ]
        (info,) = yield [Call(("INFO",), optional=True)]
        (fsync,) = yield [Call(("CONFIG", "GET", "appendfsync"), optional=True)]
        return ServerInfo.parse(info, fsync, keys, conversations)

    def _cluster_server_info(self) -> Plan[ServerInfo]:
        (keys,) = yield [Call(("DBSIZE",), target=PRIMARIES)]  # redis-py sums the nodes
        (conversations,) = yield [Call(("ZCARD", self.config.keys.index_all))]
        (infos,) = yield [Call(("INFO",), optional=True, target=PRIMARIES)]
        (fsyncs,) = yield [Call(("CONFIG", "GET", "appendfsync"), optional=True, target=PRIMARIES)]
        fsync = next(iter(fsyncs.values())) if isinstance(fsyncs, Mapping) and fsyncs else None
        return ServerInfo.parse(merge_infos(infos), fsync, keys, conversations)

    def count_conversations(self) -> Plan[int]:
        """Conversations in this prefix's index (expired ones not yet pruned included)."""
        (n,) = yield [Call(("ZCARD", self.config.keys.index_all))]
        return int(n)

    # -- messages -------------------------------------------------------------------------
    def encode_messages(
        self, messages: Sequence[InputMessage]
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        """Validate and encode a batch (all or nothing): records and the script's arguments."""
        if isinstance(messages, BaseMessage | Mapping | str | bytes):
            raise InvalidInput("messages must be a sequence of messages", field="messages")
        if len(messages) > self.config.max_messages_per_request:
            raise InvalidInput(
                f"{len(messages)} messages in one call; at most "
                f"{self.config.max_messages_per_request} are allowed "
                "(AGENT_MEMORY_MAX_MESSAGES_PER_REQUEST, or Settings(max_messages_per_request=))",
                field="messages",
            )
        records: list[dict[str, Any]] = []
        argv: list[Any] = []
        for i, message in enumerate(messages):
            rec = record_from_input(message, i)
            mid = rec.get("id")
            if mid is not None and (not isinstance(mid, str) or not mid or len(mid) > 256):
                raise InvalidInput(
                    f"messages[{i}].id must be a non-empty string of at most 256 characters",
                    field=f"messages[{i}].id",
                )
            argv += (mid or "", encode_record(rec, self.config.max_message_bytes, i))
            records.append(rec)
        return records, argv

    def append(
        self,
        conversation_id: str,
        messages: Sequence[InputMessage],
        *,
        idempotency_key: str | None = None,
    ) -> Plan[list[StoredMessage]]:
        keys = self._script_keys(conversation_id)
        records, argv = self.encode_messages(messages)
        if not records:
            return []
        # Every call carries a token, so a retry of this very call (by redis-py after a lost
        # reply, or by the caller with the same idempotency key) replays instead of re-adding.
        token = idempotency_token(idempotency_key) if idempotency_key else os.urandom(12).hex()
        argv = [self.config.ttl_ms, conversation_id, token, *argv]
        batch = [Call.run(scripts.APPEND, keys, argv)]
        if self.config.fsync_ack:
            batch.append(self._waitaof())
        reply, *fsynced = yield batch
        if fsynced and int(fsynced[0][0]) < 1:
            raise StoreUnavailable(
                f"the append was not confirmed fsynced to the AOF within "
                f"{self.config.fsync_timeout_ms} ms; retrying with the same message ids is safe"
            )
        if self.config.cluster:
            reply, info = reply[:-3], reply[-3:]
            yield from self._touch_indexes(conversation_id, info)
        out: list[StoredMessage] = []
        for i in range(0, len(reply), 2):
            cursor, stored = _text(reply[i]), reply[i + 1]
            if stored:
                out.append(StoredMessage(cursor, decode_payload(stored), added=False))
            else:
                out.append(StoredMessage(cursor, records[i // 2]))
        return out

    def _waitaof(self) -> Call:
        """WAITAOF 1 0 <timeout>: sent with the append, so it costs no extra round trip. A
        server without it (Redis < 7.2) or without AOF answers an error that the drivers
        turn into ServerUnsupported (see connection.translate)."""
        if self.config.cluster:
            raise ServerUnsupported(
                "AGENT_MEMORY_FSYNC_ACK is not supported with REDIS_CLUSTER (WAITAOF would not "
                "reach the conversation's node); use appendfsync always on the nodes"
            )
        return Call(("WAITAOF", 1, 0, self.config.fsync_timeout_ms))

    def get_messages(
        self,
        conversation_id: str,
        *,
        limit: int | None = None,
        before: str | None = None,
        after: str | None = None,
        require_exists: bool = False,
    ) -> Plan[list[StoredMessage]]:
        """Messages in order: all; the last ``limit``; or a page before/after a cursor."""
        entries = yield from self._read(conversation_id, limit, before, after, require_exists)
        return _stored(entries)

    def get_langchain_messages(
        self, conversation_id: str, *, limit: int | None = None
    ) -> Plan[list[BaseMessage]]:
        """The LangChain messages of :meth:`get_messages` (all, or the last ``limit``), built
        straight from the stored payloads (no StoredMessage, no cursor text): a chat
        history's read."""
        entries = yield from self._read(conversation_id, limit, None, None, False)
        return [message_from_payload(_payload(fields)) for _, fields in entries]

    def _read(
        self,
        conversation_id: str,
        limit: int | None,
        before: str | None,
        after: str | None,
        require_exists: bool,
    ) -> Plan[Sequence[Any]]:
        """The stream entries of a read, oldest first (one round trip)."""
        keys = self.conversation_keys(conversation_id)
        limit = _check_limit(limit)
        low = "(" + a if (a := _check_cursor(after, "after")) else "-"
        high = "(" + b if (b := _check_cursor(before, "before")) else "+"
        if a == _LAST_ID or b == "0-0":  # nothing lies beyond these; Redis would reject the bound
            low, high = "+", "-"  # an empty range
        newest_first = limit is not None and after is None
        if limit is None:
            read = Call(("XRANGE", keys.stream, low, high))
        elif newest_first:
            read = Call(("XREVRANGE", keys.stream, high, low, "COUNT", limit))
        else:
            read = Call(("XRANGE", keys.stream, low, high, "COUNT", limit))
        batch = [read]
        if require_exists:
            batch.append(Call(("EXISTS", keys.meta)))
        if self.config.touch_on_read:
            batch += [Call(("PEXPIRE", k, self.config.ttl_ms)) for k in keys.all]
        replies = yield batch
        if require_exists and not replies[1]:
            raise ConversationNotFound(conversation_id)
        entries: Sequence[Any] = replies[0]
        return entries[::-1] if newest_first else entries

    # -- conversations --------------------------------------------------------------------
    def create(
        self,
        conversation_id: str | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Plan[Conversation]:
        cid = uuid.uuid4().hex if conversation_id is None else conversation_id
        keys = self._script_keys(cid)
        fields = self._meta_fields(
            user_id=user_id, agent_id=agent_id, title=title, metadata=metadata
        )
        index_user = self.config.keys.index_user(user_id) if user_id is not None else ""
        index_agent = self.config.keys.index_agent(agent_id) if agent_id is not None else ""
        argv = [self.config.ttl_ms, cid, index_user, index_agent]
        for name, value in fields.items():
            argv += (name, value)
        (now,) = yield [Call.run(scripts.CREATE, keys, argv)]
        if not now:
            raise ConversationExists(cid)
        if self.config.cluster:
            yield from self._touch_indexes(cid, (now, index_user, index_agent))
        return Conversation(
            id=cid,
            user_id=user_id,
            agent_id=agent_id,
            title=title,
            metadata=dict(metadata or {}),
            created_at=ms_to_datetime(now),
            updated_at=ms_to_datetime(now),
            expires_at=ms_to_datetime(now + self.config.ttl_ms),
        )

    @staticmethod
    def _meta_fields(**values: Any) -> dict[str, str]:
        """Validated metadata-hash fields (None values are left out)."""
        out: dict[str, str] = {}
        for name in ("user_id", "agent_id"):
            if values.get(name) is not None:
                out[name] = validate_id(values[name], name)
        title = values.get("title")
        if title is not None:
            if not isinstance(title, str) or len(title) > MAX_TITLE_LENGTH:
                raise InvalidInput(
                    f"title must be a string of at most {MAX_TITLE_LENGTH} characters",
                    field="title",
                )
            out["title"] = title
        metadata = values.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise InvalidInput("metadata must be a JSON object", field="metadata")
            try:
                out["metadata"] = json.dumps(dict(metadata), ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"metadata cannot be stored as JSON: {exc}", field="metadata"
                ) from None
        return out

    def get_conversation(self, conversation_id: str) -> Plan[Conversation]:
        keys = self.conversation_keys(conversation_id)
        meta, expiry = yield [Call(("HGETALL", keys.meta)), Call(("PEXPIRETIME", keys.meta))]
        if not meta:
            raise ConversationNotFound(conversation_id)
        return parse_conversation(meta, expiry)

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = _UNSET,
        metadata: Mapping[str, Any] | None = _UNSET,
        expected_version: int | None = None,
    ) -> Plan[Conversation]:
        """Set title and/or metadata (None removes); with ``expected_version``, only if the
        conversation is still at that version (else VersionConflict)."""
        keys = self._script_keys(conversation_id)
        given = {k: v for k, v in (("title", title), ("metadata", metadata)) if v is not _UNSET}
        to_set = self._meta_fields(**given)
        to_delete = [name for name, value in given.items() if value is None]
        if expected_version is not None and (
            not isinstance(expected_version, int) or isinstance(expected_version, bool)
        ):
            raise InvalidInput("expected_version must be an integer", field="expected_version")
        check = "" if expected_version is None else expected_version  # 0 is a version too
        argv: list[Any] = [self.config.ttl_ms, conversation_id, check, len(to_set)]
        for name, value in to_set.items():
            argv += (name, value)
        argv += to_delete
        meta_key = keys[1]
        (status, version, *info), meta, expiry = yield [
            Call.run(scripts.UPDATE, keys, argv),
            Call(("HGETALL", meta_key)),
            Call(("PEXPIRETIME", meta_key)),
        ]
        if status == 1 and self.config.cluster:
            yield from self._touch_indexes(conversation_id, info)
        if status == -1:
            raise ConversationNotFound(conversation_id)
        if status == 0:
            raise VersionConflict(conversation_id, int(check), int(version))
        return parse_conversation(meta, expiry)

    def delete_conversation(self, conversation_id: str) -> Plan[bool]:
        (deleted,) = yield [
            Call.run(scripts.DELETE, self._script_keys(conversation_id), [conversation_id])
        ]
        if self.config.cluster:
            deleted, *named = deleted
            yield from self._untouch_indexes([(conversation_id, named)])
        return bool(deleted)

    def delete_user(self, user_id: str) -> Plan[int]:
        """Erase every conversation of one user; returns how many existed."""
        index = self.config.keys.index_user(validate_id(user_id, "user_id"))
        count = 0
        while True:
            (members,) = yield [Call(("ZRANGE", index, 0, 99))]
            if not members:
                return count
            ids = [_text(m) for m in members]
            if self.config.cluster:
                replies = yield [
                    Call.run(scripts.DELETE, self._script_keys(cid), [cid]) for cid in ids
                ]
                yield from self._untouch_indexes(
                    (cid, (index, *named)) for cid, (_, *named) in zip(ids, replies, strict=True)
                )
                replies = [reply[0] for reply in replies]
            else:
                replies = yield [
                    Call.run(scripts.DELETE, (*self._script_keys(cid), index), [cid]) for cid in ids
                ]
            count += sum(replies)

    def clear_all(self) -> Plan[int]:
        """Delete every key under the prefix in this database (SCAN + UNLINK; no FLUSHDB); in
        cluster mode on every primary."""
        if self.config.cluster:
            return (yield from self._clear_cluster())
        pattern = self.config.keys.scan_pattern
        cursor: Any = 0
        deleted = 0
        while True:
            ((cursor, found),) = yield [Call(("SCAN", cursor, "MATCH", pattern, "COUNT", 1000))]
            if found:
                (n,) = yield [Call(("UNLINK", *found))]
                deleted += n
            if int(cursor) == 0:
                return deleted

    def _clear_cluster(self) -> Plan[int]:
        """SCAN every primary (redis-py answers ``({node: cursor}, keys)``), then each node
        on to its end; UNLINK grouped by hash slot (a multi-key command stays in one slot)."""
        scan = ("SCAN", 0, "MATCH", self.config.keys.scan_pattern, "COUNT", 1000)
        ((cursors, found),) = yield [Call(scan, target=PRIMARIES)]
        deleted = yield from self._unlink_by_slot(found)
        for node, cursor in sorted(cursors.items()):
            while int(cursor) != 0:
                ((next_cursors, found),) = yield [Call(("SCAN", cursor, *scan[2:]), target=node)]
                cursor = next_cursors[node]
                deleted += yield from self._unlink_by_slot(found)
        return deleted

    def _unlink_by_slot(self, found: Sequence[Any]) -> Plan[int]:
        by_slot: dict[int, list[Any]] = {}
        for key in found:
            by_slot.setdefault(
                key_slot(key if isinstance(key, bytes) else key.encode()), []
            ).append(key)
        if not by_slot:
            return 0
        replies = yield [Call(("UNLINK", *keys)) for keys in by_slot.values()]
        return sum(replies)

    # -- listing --------------------------------------------------------------------------
    def list_conversations(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Plan[ConversationPage]:
        """Newest activity first; expired conversations are skipped and pruned from the index."""
        keys = self.config.keys
        if _check_limit(limit) is None:
            raise InvalidInput("limit is required", field="limit")
        if user_id is not None:
            index = keys.index_user(validate_id(user_id, "user_id"))
        elif agent_id is not None:
            index = keys.index_agent(validate_id(agent_id, "agent_id"))
        else:
            index = keys.index_all
        agent_filter = agent_id if user_id is not None else None
        after = decode_list_cursor(cursor) if cursor is not None else None
        items: list[Conversation] = []
        while True:
            need = limit - len(items)
            candidates = yield from self._index_page(index, after, need + 1)
            stop = yield from self._fill(index, candidates, items, limit, agent_filter)
            if stop is not None:
                return ConversationPage(items, encode_list_cursor(*stop))
            if len(candidates) <= need:  # the index has nothing more
                return ConversationPage(items, None)
            if len(items) == limit:
                return ConversationPage(items, encode_list_cursor(*candidates[-1]))
            after = candidates[-1]

    def _index_page(
        self, index: str, after: tuple[float, str] | None, count: int
    ) -> Plan[list[tuple[float, str]]]:
        """Up to ``count`` (score, member) index entries after ``after``, newest first."""
        if after is None:
            (reply,) = yield [Call(("ZREVRANGE", index, 0, count - 1, "WITHSCORES"))]
            return [(s, m) for m, s in _pairs(reply)]
        score, member = after
        ties, reply = yield [
            Call(("ZREVRANGEBYSCORE", index, repr(score), repr(score))),
            Call(
                ("ZREVRANGEBYSCORE", index, f"({score!r}", "-inf", "WITHSCORES", "LIMIT", 0, count)
            ),
        ]
        later = [(score, t) for t in map(_text, ties) if t.encode() < member.encode()]
        return (later + [(s, m) for m, s in _pairs(reply)])[:count]

    def _prune(self, index: str, dead: list[str]) -> Plan[None]:
        """Remove ``dead`` ids from ``index`` if their metadata hash is still missing: one
        script on a single server; in cluster mode (index and hashes in different slots)
        EXISTS then ZREM, so an id re-created between the two misses the index until its
        next write."""
        metas = [self.config.keys.conversation(m).meta for m in dead]
        if not self.config.cluster:
            yield [Call.run(scripts.PRUNE, [index, *metas], dead)]
            return
        exists = yield [Call(("EXISTS", meta)) for meta in metas]
        gone = [cid for cid, found in zip(dead, exists, strict=True) if not found]
        if gone:
            yield [Call(("ZREM", index, *gone))]

    def _fill(
        self,
        index: str,
        candidates: list[tuple[float, str]],
        items: list[Conversation],
        limit: int,
        agent_filter: str | None,
    ) -> Plan[tuple[float, str] | None]:
        """Add live candidates to ``items``; prune dead ones. Returns the cursor position when
        the page is full and more candidates remain, else None."""
        if not candidates:
            return None
        batch: Batch = []
        for _, member in candidates:
            meta_key = self.config.keys.conversation(member).meta
            batch += [Call(("HGETALL", meta_key)), Call(("PEXPIRETIME", meta_key))]
        replies = yield batch
        dead: list[str] = []
        stop: tuple[float, str] | None = None
        for i, (_, member) in enumerate(candidates):
            if len(items) == limit:
                stop = candidates[i - 1]
                break
            meta, expiry = replies[2 * i], replies[2 * i + 1]
            if not meta:
                dead.append(member)
                continue
            conversation = parse_conversation(meta, expiry)
            if agent_filter is None or conversation.agent_id == agent_filter:
                items.append(conversation)
        if dead:
            yield from self._prune(index, dead)
        return stop
