"""Export and import conversations as JSON Lines (``agent-memory export`` / ``import``).

One JSON object per line (UTF-8); each conversation's line comes first, then its messages,
oldest first::

    {"type":"conversation","id":"c1","meta":{"created_at":"1700000000000",...},"expires_at_ms":1702592000000}
    {"type":"message","conversation":"c1","cursor":"1700000000000-0","message":{"role":"user",...}}

``meta`` is the conversation's metadata hash (user/agent ids, title, metadata JSON,
created/updated times, message count, version); ``expires_at_ms`` its absolute expiry
(PEXPIRETIME), so an import keeps the remaining TTL instead of granting a fresh one.

Both directions stream in constant memory: export walks the prefix with SCAN (a pattern built
from the configured prefix only) and reads each stream in chunks (``XRANGE ... COUNT``); import
holds one chunk of messages at a time.

Import restores a conversation **only when it is absent** (no metadata hash): its messages get
their exported cursors (so ``created_at``, order and paging cursors are kept), message ids are
re-registered for idempotent appends, the expiry is the exported absolute one. A conversation
that exists is skipped whole (the live one wins; nothing is merged, since cursors cannot be kept
inside a stream that already has later entries), one that has expired meanwhile is skipped too.
Running the same import twice therefore adds nothing the second time, and an import that was
interrupted can simply be run again: the conversation it was in the middle of is completed (its
metadata is written last), the others are skipped.

The plans are in :mod:`agent_memory.plans.transfer` (pure); this module runs them through a
store and reads and writes the lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from agent_memory import rules
from agent_memory.codec import encode_record, readable_record
from agent_memory.errors import InvalidInput, UnreadableRecord
from agent_memory.items import ItemConfig, iter_item_lines, restore_item
from agent_memory.keys import validate_id
from agent_memory.plans.transfer import CHUNK, STORE_FIELDS

if TYPE_CHECKING:
    from agent_memory.store import ConversationStore

log = logging.getLogger("agent_memory")
CHUNK_BYTES = 4 * 1_048_576  # messages per restore call: CHUNK, or fewer when this large


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# -- export --------------------------------------------------------------------------------


@dataclass
class TransferStats:
    conversations: int = 0
    messages: int = 0
    skipped_existing: int = 0
    skipped_expired: int = 0
    lines: int = 0
    items: int = 0
    """LangGraph store items (agent_memory.items): exported, or restored by an import."""


def iter_export(store: ConversationStore, chunk: int = CHUNK) -> Iterator[str]:
    """The export's lines (without newline), conversation by conversation, then the LangGraph
    store's items."""
    cursor = 0
    while True:
        cursor, ids = store.export_scan(cursor)
        for cid in ids:
            yield from _export_one(store, cid, chunk)
        if cursor == 0:
            break
    for line in iter_item_lines(store.run, _item_config(store)):
        yield _dumps(line)


def _item_config(store: ConversationStore) -> ItemConfig:
    return ItemConfig(store.keys.prefix, store.config.ttl_ms, store.config.max_message_bytes)


def _export_one(store: ConversationStore, cid: str, chunk: int) -> Iterator[str]:
    try:
        head = store.export_head(cid)
    except UnreadableRecord as exc:  # another program's key: left out, said in the log
        log.warning("export skipped conversation %r: %s", cid, exc)
        return
    if head is None:  # deleted or expired since SCAN saw it
        return
    yield _dumps(head)
    after: str | None = None
    while True:
        entries = store.export_chunk(cid, after, chunk)
        for cursor, payload in entries:
            message = readable_record(payload)
            if message is None:
                log.warning("export skipped entry %s of conversation %r: unreadable", cursor, cid)
                continue
            yield _dumps(
                {"type": "message", "conversation": cid, "cursor": cursor, "message": message}
            )
        if len(entries) < chunk:
            return
        after = entries[-1][0]


def export_jsonl(
    store: ConversationStore, out: IO[str], *, chunk: int = CHUNK, progress: Any = None
) -> TransferStats:
    """Write every conversation under the store's prefix to ``out``; ``progress`` (optional)
    is called with (conversations, messages) after each conversation line."""
    stats = TransferStats()
    for line in iter_export(store, chunk):
        out.write(line + "\n")
        stats.lines += 1
        if line.startswith('{"type":"conversation"'):
            stats.conversations += 1
        elif line.startswith('{"type":"item"'):
            stats.items += 1
        else:
            stats.messages += 1
        if progress is not None:
            progress(stats)
    return stats


# -- import --------------------------------------------------------------------------------


@dataclass
class _Pending:
    """The conversation being imported: its line and the chunk not yet sent."""

    cid: str
    meta: dict[str, str]
    expires_at_ms: int
    entries: list[tuple[str, str, bytes]] = field(default_factory=list)
    size: int = 0
    skip: bool = False
    last_cursor: tuple[int, int] = (0, 0)


class _Importer:
    def __init__(self, store: ConversationStore, chunk: int) -> None:
        self.store = store
        self.chunk = chunk
        self.max_bytes = store.config.max_message_bytes
        self.stats = TransferStats()
        self.pending: _Pending | None = None

    def line(self, number: int, text: str) -> None:
        if not text.strip():
            return
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"line {number}: not JSON ({exc})", field=f"line {number}") from None
        kind = obj.get("type") if isinstance(obj, dict) else None
        self.stats.lines += 1
        if kind == "conversation":
            self.finish()
            self.pending = _head(number, obj)
        elif kind == "message":
            self.message(number, obj)
        elif kind == "item":
            self.finish()
            self.item(number, obj)
        else:
            raise InvalidInput(
                f"line {number}: expected an object with type 'conversation', 'message' or 'item'",
                field=f"line {number}",
            )

    def message(self, number: int, obj: dict[str, Any]) -> None:
        p = self.pending
        if p is None or obj.get("conversation") != p.cid:
            raise InvalidInput(
                f"line {number}: a message must follow its conversation's line",
                field=f"line {number}",
            )
        if p.skip:
            return
        cursor, mid, payload = _entry(number, obj, self.max_bytes)
        position = tuple(map(int, cursor.split("-")))
        if position <= p.last_cursor:
            raise InvalidInput(
                f"line {number}: cursors must increase within a conversation",
                field=f"line {number}",
            )
        p.last_cursor = (position[0], position[1])
        p.entries.append((cursor, mid, payload))
        p.size += len(payload)
        if len(p.entries) >= self.chunk or p.size >= CHUNK_BYTES:
            self.send(final=False)

    def item(self, number: int, obj: dict[str, Any]) -> None:
        plan = restore_item(_item_config(self.store), obj, f"line {number}")
        status = self.store.run(plan)
        if status == 1:
            self.stats.items += 1
        elif status == 0:
            self.stats.skipped_existing += 1
        else:
            self.stats.skipped_expired += 1

    def send(self, final: bool) -> None:
        p = self.pending
        assert p is not None
        status, added = self.store.import_chunk(p.cid, p.meta, p.expires_at_ms, p.entries, final)
        p.entries, p.size = [], 0
        self.stats.messages += added
        if status != 1:
            p.skip = True
            if status == 0:
                self.stats.skipped_existing += 1
            else:
                self.stats.skipped_expired += 1
        elif final:
            self.stats.conversations += 1

    def finish(self) -> None:
        if self.pending is not None and not self.pending.skip:
            self.send(final=True)
        self.pending = None


def _head(number: int, obj: dict[str, Any]) -> _Pending:
    where = f"line {number}"
    try:
        cid = validate_id(obj["id"])
        meta = obj.get("meta") or {}
        expires = obj["expires_at_ms"]
        if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise TypeError("meta must map names to strings")
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise TypeError("expires_at_ms must be an integer")
    except (KeyError, TypeError, InvalidInput) as exc:
        raise InvalidInput(f"{where}: bad conversation line: {exc}", field=where) from None
    clean = {k: v for k, v in meta.items() if k not in STORE_FIELDS}
    if "created_at" not in clean:
        raise InvalidInput(f"{where}: meta.created_at is missing", field=where)
    return _Pending(cid, clean, expires)


def _entry(number: int, obj: dict[str, Any], max_bytes: int) -> tuple[str, str, bytes]:
    where = f"line {number}"
    cursor, rec = obj.get("cursor"), obj.get("message")
    if not rules.is_cursor(cursor) or cursor == rules.FIRST_CURSOR:  # XADD refuses 0-0
        raise InvalidInput(f"{where}: cursor must look like '1700000000000-0'", field=where)
    if not isinstance(rec, dict) or rec.get("role") not in rules.ROLES or "content" not in rec:
        raise InvalidInput(f"{where}: message needs a known role and content", field=where)
    mid = rec.get("id")
    if mid is not None and not rules.is_message_id(mid):
        raise InvalidInput(
            f"{where}: message id must be a string of 1-{rules.MAX_MESSAGE_ID_LENGTH} chars",
            field=where,
        )
    return cursor, mid or "", encode_record(rec, max_bytes)


def import_jsonl(
    store: ConversationStore,
    lines: Iterable[str],
    *,
    chunk: int = CHUNK,
    progress: Any = None,
) -> TransferStats:
    """Restore the conversations of an export (see the module docstring for the rules);
    ``progress`` (optional) is called with each line read."""
    importer = _Importer(store, chunk)
    for number, text in enumerate(lines, 1):
        importer.line(number, text)
        if progress is not None:
            progress(text)
    importer.finish()
    return importer.stats
