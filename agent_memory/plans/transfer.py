"""Export/import plans: scan a prefix, read a conversation in chunks, restore an absent one.

The JSON Lines format and the import rules are in :mod:`agent_memory.transfer`, which runs
these plans through a store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_memory import scripts
from agent_memory.errors import UnreadableRecord
from agent_memory.keys import decode_id, glob_escape
from agent_memory.plan import Batch, Call, Plan
from agent_memory.plans.context import SCAN_COUNT, PlanContext
from agent_memory.replies import entries as stream_entries
from agent_memory.replies import string_map, texts

CHUNK = 500  # messages per XRANGE / per restore call
INDEX_FIELDS = ("index_user", "index_agent", "index_pair")  # key names: made for the new prefix
STORE_FIELDS = (*INDEX_FIELDS, "id", "refreshed")
"""Fields of the metadata hash that the store writes for itself: not exported, not imported
(``refreshed`` describes this server's keys: see append.lua)."""


class TransferPlans(PlanContext):
    def export_scan(self, cursor: int = 0) -> Plan[tuple[int, list[str]]]:
        """One SCAN step over this prefix's metadata hashes: (next cursor, conversation ids)."""
        pattern = glob_escape(self.config.keys.prefix) + ":c:*:h"
        ((nxt, found),) = yield [Call(("SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT))]
        ids = [decode_id(key[key.index("{") + 1 : key.rindex("}")]) for key in texts(found)]
        return int(nxt), list(dict.fromkeys(ids))

    def export_head(self, conversation_id: str) -> Plan[dict[str, Any] | None]:
        """The conversation line of an export, or None if it no longer exists."""
        meta_key = self.conversation_keys(conversation_id).meta
        meta, expiry = yield [Call(("HGETALL", meta_key)), Call(("PEXPIRETIME", meta_key))]
        if not meta:
            return None
        try:
            fields = string_map(meta)
        except UnicodeDecodeError:
            raise UnreadableRecord(
                f"the metadata of conversation {conversation_id!r} is not UTF-8 (not written by "
                "agent-memory?)",
                field="metadata",
            ) from None
        for name in STORE_FIELDS:
            fields.pop(name, None)
        return {
            "type": "conversation",
            "id": conversation_id,
            "meta": fields,
            "expires_at_ms": expiry,
        }

    def export_chunk(
        self, conversation_id: str, after: str | None, count: int = CHUNK
    ) -> Plan[list[tuple[str, bytes | str]]]:
        """Up to ``count`` (cursor, payload) stream entries after ``after``, oldest first;
        reading does not extend the conversation's TTL."""
        stream = self.conversation_keys(conversation_id).stream
        low = "-" if after is None else "(" + after
        (found,) = yield [Call(("XRANGE", stream, low, "+", "COUNT", count))]
        return stream_entries(found)

    def import_chunk(
        self,
        conversation_id: str,
        meta: Mapping[str, str],
        expires_at_ms: int,
        entries: list[tuple[str, str, bytes]],
        final: bool,
    ) -> Plan[tuple[int, int]]:
        """Restore one chunk of (cursor, message id or '', payload) entries of an absent
        conversation; with ``final``, also its metadata and index entries. Returns (status,
        added): status 1 restored, 0 exists (skipped), -1 expired (skipped)."""
        named = self._index_names(meta.get("user_id"), meta.get("agent_id"))
        argv: list[Any] = [expires_at_ms, conversation_id, int(final), *named]
        argv.append(len(meta))
        for name, value in meta.items():
            argv += (name, value)
        for entry in entries:
            argv += entry
        script = Call.run(scripts.RESTORE, self._script_keys(conversation_id), argv)
        ((status, added),) = yield [script]
        if final and status == 1 and self.config.cluster:
            yield self._restored_index_calls(conversation_id, meta, expires_at_ms, *named)
        return int(status), int(added)

    def _restored_index_calls(
        self, cid: str, meta: Mapping[str, str], expires_at_ms: int, *named: str
    ) -> Batch:
        """Cluster mode: the index entries of a restored conversation, at its last activity,
        each index living at least until the conversation expires."""
        score = int(meta.get("updated_at", meta.get("created_at", "0")))
        marker = self.config.keys.ttl_marker
        batch: Batch = [  # the TTL marker covers this entry (see restore.lua)
            Call(("ZADD", marker, "GT", expires_at_ms - score, "ttl")),
            Call(("PEXPIREAT", marker, expires_at_ms, "NX")),
            Call(("PEXPIREAT", marker, expires_at_ms, "GT")),
        ]
        for key in (self.config.keys.index_all, *named):
            if key:
                batch += [
                    Call(("ZADD", key, score, cid)),
                    Call(("PEXPIREAT", key, expires_at_ms, "NX")),
                    Call(("PEXPIREAT", key, expires_at_ms, "GT")),
                ]
        return batch
