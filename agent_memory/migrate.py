"""Import the histories the peers left in Redis: ``agent-memory import --from langchain-community``.

langchain_community's ``RedisChatMessageHistory`` keeps a session as a Redis list at
``<key_prefix><session id>`` (``message_store:`` by default), newest message first (LPUSH),
each element the JSON of ``langchain_core.messages.message_to_dict``. The import reads every
such list (or one session's), oldest first in chunks, and appends its messages to the
conversation of the same id in the store, each chunk one atomic, idempotent append.

**Idempotent, resumable.** Every imported message is appended under an idempotency id: its
LangChain ``id`` when it has one, else one derived from what identifies it in the source, the
session, its position counted from the oldest (stable while the peer pushes newer messages at
the other end) and a hash of its stored JSON::

    lcc:<blake2b-96 of session id, NUL, position, NUL, the element's bytes, in hex>

The derived id is registered for idempotency only; the message itself is stored exactly as the
peer stored it (``id`` None reads back as None). Running the import again therefore adds
nothing (the summary counts those messages as already present), and an import that stopped
half-way (killed, Redis restarted, a failure) completes when run again: chunks are atomic and
in order, so what is stored is always a prefix of each session.

**Skipped, with reasons.** An element that is not a LangChain message dict, a message the store
refuses (over ``AGENT_MEMORY_MAX_MESSAGE_BYTES``, not storable exactly), a second message with
an id already used in its session (the store keeps the first: ids are unique per
conversation), a key that is not a list, a session id the store refuses (control characters,
over 256 characters): each is counted under its reason in :class:`ImportReport`.

**The source is read only** (LRANGE, LLEN, SCAN ... TYPE list), unless ``delete_source`` asks
for it: then a session's list is deleted once all of it is in the store, and only if it still
holds what was read (one script: LLEN then DEL); a session with skipped messages, or one that
received new messages during the import, is kept (run again to take the newer ones).

The conversations get the store's TTL from the import on (the peer's lists may have had none);
their messages' ``created_at`` is the time of the import (the peer stores no time). Import
before the application writes through agent-memory, or new turns would precede the imported
ones in the stream.

langchain-redis keeps RedisJSON documents behind a RediSearch index: see docs/operations.md.

The plans are in :mod:`agent_memory.plans.peers` (pure); this module runs them through two
stores' drivers: one on the source client, one (the target) on the store's.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis
from langchain_core.messages import BaseMessage, messages_from_dict

from agent_memory.errors import InvalidInput, MessageTooLarge
from agent_memory.keys import MAX_ID_LENGTH, validate_id
from agent_memory.store import ConversationStore

SOURCE_PREFIX = "message_store:"
"""langchain_community's default ``key_prefix``."""
CHUNK = 200
"""Messages per read of the source and per append (each append is one atomic step)."""
ID_TAG = "lcc:"


# -- the import -----------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did; ``skipped`` counts messages, ``skipped_sessions`` sessions, by
    reason."""

    dry_run: bool = False
    total_sessions: int = 0
    sessions: int = 0
    sessions_imported: int = 0
    messages_imported: int = 0
    messages_present: int = 0
    sources_deleted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_sessions: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        """The summary in plain words, one line per figure."""
        verb = "would import" if self.dry_run else "imported"
        out = [
            f"{self.sessions} sessions read; {verb} {self.messages_imported} messages into "
            f"{self.sessions_imported} conversations; {self.messages_present} already present",
        ]
        if self.sources_deleted:
            out.append(f"{self.sources_deleted} source lists deleted")
        out += [f"skipped {n} messages: {why}" for why, n in sorted(self.skipped.items())]
        out += [f"skipped {n} sessions: {why}" for why, n in sorted(self.skipped_sessions.items())]
        return out


def derived_id(session_id: str, position: int, raw: bytes) -> str:
    """The idempotency id of an id-less message (see the module docstring)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(session_id.encode() + b"\0" + str(position).encode() + b"\0")
    digest.update(raw)
    return ID_TAG + digest.hexdigest()


def _message(raw: bytes) -> BaseMessage:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise InvalidInput("not JSON") from None
    try:
        (message,) = messages_from_dict([obj])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise InvalidInput("not a LangChain message dict (type and data)") from None
    return message


@dataclass
class _Session:
    key: bytes
    session_id: str
    seen: set[str] = field(default_factory=set)
    read: int = 0
    skipped: int = 0
    imported: int = 0


class _Importer:
    def __init__(
        self,
        store: ConversationStore,
        source: ConversationStore,
        *,
        dry_run: bool,
        delete_source: bool,
        chunk: int,
    ) -> None:
        self.store = store
        self.source = source
        self.dry_run = dry_run
        self.delete_source = delete_source and not dry_run
        self.chunk = chunk
        self.report = ImportReport(dry_run=dry_run)

    def session(self, key: bytes, session_id: str) -> None:
        self.report.sessions += 1
        s = _Session(key, session_id)
        while True:
            length, items = self.source.peer_read(key, s.read, self.chunk)
            if items:
                self._chunk(s, items)
            if not items or s.read >= length:
                break
        if s.imported:
            self.report.sessions_imported += 1
        if self.delete_source and s.read:
            self._delete(s)

    def _chunk(self, s: _Session, items: list[bytes]) -> None:
        chunk: list[tuple[str, BaseMessage]] = []
        for raw in items:
            position = s.read
            s.read += 1
            try:
                message = _message(raw)
                mid = message.id if isinstance(message.id, str) and message.id else None
                if mid is not None and mid in s.seen:
                    raise InvalidInput("a second message with an id already used in its session")
            except InvalidInput as exc:
                self._skip(s, exc)
                continue
            mid = mid or derived_id(s.session_id, position, raw)
            s.seen.add(mid)
            chunk.append((mid, message))
        if not chunk:
            return
        done = self.store.peer_import(s.session_id, chunk, dry_run=self.dry_run)
        for i, error in done.refused:
            s.seen.discard(chunk[i][0])
            self._skip(s, error)
        s.imported += done.added
        self.report.messages_imported += done.added
        self.report.messages_present += done.present

    def _skip(self, s: _Session, exc: InvalidInput) -> None:
        self.report.skipped[self._reason(exc)] += 1
        s.skipped += 1

    def _reason(self, exc: InvalidInput) -> str:
        if isinstance(exc, MessageTooLarge):
            limit = self.store.config.max_message_bytes
            return f"larger than AGENT_MEMORY_MAX_MESSAGE_BYTES ({limit} bytes)"
        return str(exc).replace("messages[0]", "message").split(" (", 1)[0]

    def _delete(self, s: _Session) -> None:
        if s.skipped:
            self.report.skipped_sessions["source kept: some of its messages were skipped"] += 1
            return
        status = self.source.peer_delete(s.key, s.read)
        if status == 1:
            self.report.sources_deleted += 1
        elif status == -1:
            self.report.skipped_sessions[
                "source kept: it received messages during the import (run again)"
            ] += 1


def session_keys(source: ConversationStore, prefix: bytes, session: str | None) -> Iterator[bytes]:
    """The source lists to import: one session's key, or every list under ``prefix``."""
    if session is not None:
        yield prefix + session.encode()
        return
    cursor = 0
    while True:
        cursor, keys = source.peer_scan(prefix, cursor)
        yield from keys
        if cursor == 0:
            return


def import_langchain_community(
    store: ConversationStore,
    source_client: redis.Redis,
    *,
    source_prefix: str = SOURCE_PREFIX,
    session: str | None = None,
    dry_run: bool = False,
    delete_source: bool = False,
    chunk: int = CHUNK,
    progress: Callable[[ImportReport, str], object] | None = None,
) -> ImportReport:
    """Import langchain_community's histories from ``source_client`` (lists
    ``<source_prefix><session id>``) into ``store`` (see the module docstring for the rules);
    ``progress`` (optional) is called with the report and the session id after each session.
    The source may be another server or database than the store."""
    source = ConversationStore(source_client, settings=store.settings)
    importer = _Importer(store, source, dry_run=dry_run, delete_source=delete_source, chunk=chunk)
    prefix = source_prefix.encode()
    keys = sorted(set(session_keys(source, prefix, session)))
    importer.report.total_sessions = len(keys)
    for key in keys:
        session_id = _session_id(importer.report, key, prefix)
        if session_id is None:
            continue
        if session is not None and source.peer_type(key) != "list":
            importer.report.sessions += 1
            importer.report.skipped_sessions["no list at the session's key"] += 1
            continue
        importer.session(key, session_id)
        if progress is not None:
            progress(importer.report, session_id)
    return importer.report


def _session_id(report: ImportReport, key: bytes, prefix: bytes) -> str | None:
    """The session id of a source key, or None (counted as skipped, with the rule)."""
    try:
        session_id = key[len(prefix) :].decode()
    except UnicodeDecodeError:
        why = "not UTF-8"
    else:
        try:
            return validate_id(session_id, "session id")
        except InvalidInput:
            if not session_id:
                why = "empty"
            elif len(session_id) > MAX_ID_LENGTH:
                why = f"over {MAX_ID_LENGTH} characters"
            else:
                why = "holds control characters"
    report.sessions += 1
    report.skipped_sessions[f"session id refused ({why})"] += 1
    return None
