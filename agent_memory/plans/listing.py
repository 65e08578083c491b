"""Listing plans: conversations newest activity first, paged by cursor, dead entries pruned."""

from __future__ import annotations

import base64
import json
import logging
import math
from dataclasses import dataclass

from agent_memory import rules, scripts
from agent_memory.errors import InvalidCursor, InvalidInput, UnreadableRecord
from agent_memory.keys import validate_id
from agent_memory.models import Conversation
from agent_memory.plan import Batch, Call, Plan
from agent_memory.plans.context import PlanContext
from agent_memory.plans.conversations import parse_conversation
from agent_memory.replies import scored, texts

log = logging.getLogger("agent_memory")
Position = tuple[float, str]
"""An index entry: (score = last activity in ms, conversation id)."""


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of a conversation listing; pass ``next_cursor`` back for the next page."""

    items: list[Conversation]
    next_cursor: str | None


def encode_list_cursor(score: float, member: str) -> str:
    raw = json.dumps([score, member], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _member_bytes(member: str) -> bytes:
    """An index member as Redis holds it: members are read with ``surrogateescape``, so a
    member that is not UTF-8 (another writer's) still has one exact, comparable form."""
    return member.encode("utf-8", "surrogateescape")


def decode_list_cursor(cursor: object) -> Position:
    """The (score, member) position of a cursor :func:`encode_list_cursor` made; anything
    else (not a string, not base64 JSON of ``[finite number, member]``, a score beyond a
    float, a member with a lone surrogate) is InvalidCursor."""
    try:
        if not isinstance(cursor, str):
            raise TypeError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, member = json.loads(raw)
        if not isinstance(member, str) or type(score) not in (int, float):
            raise TypeError
        position = float(score)
        if not math.isfinite(position):
            raise ValueError
        _member_bytes(member)
        return position, member
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidCursor("cursor is not one this store produced", field="cursor") from exc


class ListingPlans(PlanContext):
    def list_conversations(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Plan[ConversationPage]:
        """Newest activity first; expired conversations are skipped and pruned from the index.
        With both ``user_id`` and ``agent_id``, the pair's own index is read (a page costs
        the same whatever else the user has)."""
        if rules.check_limit(limit) is None:
            raise InvalidInput("limit is required", field="limit")
        index = self._index_of(user_id, agent_id)
        after = decode_list_cursor(cursor) if cursor is not None else None
        items: list[Conversation] = []
        while True:
            need = limit - len(items)
            candidates = yield from self._index_page(index, after, need + 1)
            stop = yield from self._fill(index, candidates, items, limit)
            if stop is not None:
                return ConversationPage(items, encode_list_cursor(*stop))
            if len(candidates) <= need:  # the index has nothing more
                return ConversationPage(items, None)
            if len(items) == limit:
                return ConversationPage(items, encode_list_cursor(*candidates[-1]))
            after = candidates[-1]

    def _index_of(self, user_id: str | None, agent_id: str | None) -> str:
        keys = self.config.keys
        if user_id is not None and agent_id is not None:
            user, agent = validate_id(user_id, "user_id"), validate_id(agent_id, "agent_id")
            return keys.index_pair(user, agent)
        if user_id is not None:
            return keys.index_user(validate_id(user_id, "user_id"))
        if agent_id is not None:
            return keys.index_agent(validate_id(agent_id, "agent_id"))
        return keys.index_all

    def _index_page(self, index: str, after: Position | None, count: int) -> Plan[list[Position]]:
        """Up to ``count`` (score, member) index entries after ``after``, newest first."""
        if after is None:
            (reply,) = yield [Call(("ZREVRANGE", index, 0, count - 1, "WITHSCORES"))]
            return [(s, m) for m, s in scored(reply, "surrogateescape")]
        score, member = after
        ties, reply = yield [
            Call(("ZREVRANGEBYSCORE", index, repr(score), repr(score))),
            Call(
                ("ZREVRANGEBYSCORE", index, f"({score!r}", "-inf", "WITHSCORES", "LIMIT", 0, count)
            ),
        ]
        below = _member_bytes(member)
        later = [(score, t) for t in texts(ties, "surrogateescape") if _member_bytes(t) < below]
        return (later + [(s, m) for m, s in scored(reply, "surrogateescape")])[:count]

    def _prune(self, index: str, dead: list[str]) -> Plan[None]:
        """Remove ``dead`` ids from ``index`` if their metadata hash is still missing: one
        script on a single server; in cluster mode (index and hashes in different slots)
        EXISTS then ZREM, so an id re-created between the two misses the index until its
        next write. Members that are no conversation id of this store (another writer's) are
        removed as they are."""
        foreign = [m for m in dead if not _is_id(m)]
        dead = [m for m in dead if _is_id(m)]
        if foreign:
            yield [Call(("ZREM", index, *map(_member_bytes, foreign)))]
        if not dead:
            return
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
        candidates: list[Position],
        items: list[Conversation],
        limit: int,
    ) -> Plan[Position | None]:
        """Add live candidates to ``items``; prune dead ones (and members that are no id of
        this store); skip, with a logged warning, a conversation whose metadata this store
        cannot read. Returns the cursor position when the page is full and more candidates
        remain, else None."""
        if not candidates:
            return None
        batch: Batch = []
        readable = [m for _, m in candidates if _is_id(m)]
        for member in readable:
            meta_key = self.config.keys.conversation(member).meta
            batch += [Call(("HGETALL", meta_key)), Call(("PEXPIRETIME", meta_key))]
        replies = iter((yield batch) if batch else [])
        dead: list[str] = []
        stop: Position | None = None
        for i, (_, member) in enumerate(candidates):
            if len(items) == limit:
                stop = candidates[i - 1]
                break
            if not _is_id(member):
                dead.append(member)
                continue
            meta, expiry = next(replies), next(replies)
            if not meta:
                dead.append(member)
                continue
            try:
                items.append(parse_conversation(meta, expiry))
            except UnreadableRecord as exc:
                log.warning("listing skipped conversation %r: %s", member, exc)
        if dead:
            yield from self._prune(index, dead)
        return stop


def _is_id(member: str) -> bool:
    """True for a member this store could have written: a valid conversation id."""
    try:
        validate_id(member)
    except InvalidInput:
        return False
    return True
