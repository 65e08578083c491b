"""Conversation plans: create, read, update (optimistic), delete one, erase a user's."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from agent_memory import rules, scripts
from agent_memory.codec import encode_metadata
from agent_memory.errors import (
    ConversationExists,
    ConversationNotFound,
    InvalidInput,
    UnreadableRecord,
    VersionConflict,
)
from agent_memory.keys import validate_id
from agent_memory.models import Conversation, ms_to_datetime
from agent_memory.plan import Batch, Call, Plan
from agent_memory.plans.context import PlanContext, StoreConfig
from agent_memory.replies import string_map, text, texts


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "leave this field as it is" (None removes it)."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


def parse_conversation(meta: Mapping[Any, Any], expire_at_ms: int | None) -> Conversation:
    """A Conversation from its metadata hash and absolute expiry (PEXPIRETIME);
    UnreadableRecord when the hash is not one this store wrote (another program's)."""
    try:
        m = string_map(meta)
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
    except (KeyError, ValueError, TypeError, OverflowError, OSError, RecursionError) as exc:
        name = text(meta.get(b"id", meta.get("id", "?")), "replace")
        raise UnreadableRecord(
            f"the metadata of conversation {name!r} cannot be read (not written by "
            f"agent-memory?): {type(exc).__name__}",
            field="metadata",
        ) from None


def meta_fields(config: StoreConfig, **values: Any) -> dict[str, str]:
    """Validated metadata-hash fields (None values are left out)."""
    out: dict[str, str] = {}
    for name in ("user_id", "agent_id"):
        if values.get(name) is not None:
            out[name] = validate_id(values[name], name)
    if values.get("title") is not None:
        out["title"] = rules.check_title(values["title"])
    metadata = values.get("metadata")
    if metadata is not None:
        out["metadata"] = encode_metadata(
            metadata, max_bytes=config.max_metadata_bytes, max_depth=config.max_json_depth
        )
    return out


def _check_version(expected_version: int | None) -> int | Literal[""]:
    if expected_version is None:
        return ""
    if not isinstance(expected_version, int) or isinstance(expected_version, bool):
        raise InvalidInput("expected_version must be an integer", field="expected_version")
    return expected_version  # 0 is a version too


class ConversationPlans(PlanContext):
    def create(
        self,
        conversation_id: str | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Plan[Conversation]:
        """Create a conversation (a random id when none is given); ConversationExists if the
        id is taken."""
        cid = uuid.uuid4().hex if conversation_id is None else conversation_id
        keys = self._script_keys(cid)
        fields = meta_fields(
            self.config, user_id=user_id, agent_id=agent_id, title=title, metadata=metadata
        )
        named = self._index_names(user_id, agent_id)
        argv = [self.config.ttl_ms, cid, *named]
        for name, value in fields.items():
            argv += (name, value)
        (now,) = yield [Call.run(scripts.CREATE, keys, argv)]
        if not now:
            raise ConversationExists(cid)
        if self.config.cluster:
            yield from self._touch_indexes(cid, (now, *named))
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

    def get_conversation(self, conversation_id: str) -> Plan[Conversation]:
        """A conversation's metadata, message count and expiry; ConversationNotFound if none."""
        keys = self.conversation_keys(conversation_id)
        meta, expiry = yield [Call(("HGETALL", keys.meta)), Call(("PEXPIRETIME", keys.meta))]
        if not meta:
            raise ConversationNotFound(conversation_id)
        return parse_conversation(meta, expiry)

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset | None = UNSET,
        expected_version: int | None = None,
    ) -> Plan[Conversation]:
        """Set title and/or metadata (None removes); with ``expected_version``, only if the
        conversation is still at that version (else VersionConflict)."""
        keys = self._script_keys(conversation_id)
        given = {k: v for k, v in (("title", title), ("metadata", metadata)) if v is not UNSET}
        to_set = meta_fields(self.config, **given)
        to_delete = [name for name, value in given.items() if value is None]
        check = _check_version(expected_version)
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

    def _deleting_threads(self, ids: Sequence[str], batch: Batch) -> Plan[list[Any]]:
        """``batch`` (a DELETE script call per id) with a DEL of each id's LangGraph checkpoint
        keys (agent_memory.langgraph) in the same round trip; returns the scripts' replies."""
        replies = yield batch + [Call(("DEL", *self.conversation_keys(c).thread)) for c in ids]
        return replies[: len(batch)]

    def delete_conversation(self, conversation_id: str) -> Plan[bool]:
        """Delete all of a conversation's keys and index entries; False if it did not exist."""
        (deleted,) = yield from self._deleting_threads(
            [conversation_id],
            [Call.run(scripts.DELETE, self._script_keys(conversation_id), [conversation_id])],
        )
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
            ids = texts(members)
            if self.config.cluster:
                replies = yield from self._deleting_threads(
                    ids, [Call.run(scripts.DELETE, self._script_keys(cid), [cid]) for cid in ids]
                )
                yield from self._untouch_indexes(
                    (cid, (index, *named)) for cid, (_, *named) in zip(ids, replies, strict=True)
                )
                replies = [reply[0] for reply in replies]
            else:
                batch = [Call.run(scripts.DELETE, (*self._script_keys(c), index), [c]) for c in ids]
                replies = yield from self._deleting_threads(ids, batch)
            count += sum(replies)
