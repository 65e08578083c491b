"""Plans of the import of the peers' histories (:mod:`agent_memory.migrate` runs them).

Two sides, each run by a store's driver on its own client: the source (langchain_community's
lists ``<prefix><session id>``, newest first; read with SCAN/LLEN/LRANGE and deleted only by
:meth:`PeerPlans.peer_delete`), and the target (this store: appends under given idempotency ids).
The source plans use no key of this store; keys there are bytes, as the peer wrote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage

from agent_memory import scripts
from agent_memory.errors import InvalidInput
from agent_memory.plan import Call, Plan
from agent_memory.plans.context import SCAN_COUNT
from agent_memory.plans.idempotency import call_token
from agent_memory.plans.messages import MessagePlans
from agent_memory.replies import text

_GLOB = frozenset(b"*?[]\\")


def _glob_escape(raw: bytes) -> bytes:
    return b"".join(b"\\" + bytes([c]) if c in _GLOB else bytes([c]) for c in raw)


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


@dataclass(frozen=True, slots=True)
class PeerChunk:
    """What :meth:`PeerPlans.peer_import` did with one chunk."""

    added: int
    present: int
    """Stored before (an earlier run, or the same id earlier in the session)."""
    refused: list[tuple[int, InvalidInput]]
    """(position in the chunk, the store's error) of each message left out."""


class PeerPlans(MessagePlans):
    # -- the source --------------------------------------------------------------------------
    def peer_scan(self, prefix: bytes, cursor: int = 0) -> Plan[tuple[int, list[bytes]]]:
        """One SCAN step over the lists named ``prefix...``: (next cursor, their names)."""
        pattern = _glob_escape(prefix) + b"*"
        scan = ("SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT, "TYPE", "list")
        ((nxt, found),) = yield [Call(scan)]
        return int(nxt), [_as_bytes(k) for k in found]

    def peer_type(self, key: bytes) -> Plan[str]:
        """The type of the value at ``key`` (``none`` when absent)."""
        (kind,) = yield [Call(("TYPE", key))]
        return text(kind)

    def peer_read(self, key: bytes, start: int, count: int) -> Plan[tuple[int, list[bytes]]]:
        """(the list's length, its elements ``start`` to ``start + count - 1`` counted from
        the oldest): the list is newest first, so they are read from its tail and reversed.
        Positions from the tail stay put while the peer pushes newer messages at the head."""
        length, items = yield [
            Call(("LLEN", key)),
            Call(("LRANGE", key, -(start + count), -(start + 1))),
        ]
        return int(length), [_as_bytes(i) for i in items][::-1]

    def peer_delete(self, key: bytes, length: int) -> Plan[int]:
        """Delete the list if it still holds ``length`` elements (one script: nothing pushed
        since it was read is lost): 1 deleted, 0 already gone, -1 changed and kept."""
        script = scripts.DELETE_IF_LENGTH
        (status,) = yield [Call(("EVALSHA", script.sha, 1, key, length), script)]
        return int(status)

    # -- the target ---------------------------------------------------------------------------
    def peer_import(
        self,
        conversation_id: str,
        items: Sequence[tuple[str, BaseMessage]],
        *,
        dry_run: bool = False,
    ) -> Plan[PeerChunk]:
        """Append (idempotency id, message) ``items`` in one atomic step, as :meth:`append`
        does, except that each id is registered for idempotency only: the stored message keeps
        its own ``id``, or none. A message the store refuses is left out (and returned with its
        error); ``dry_run`` only counts what is stored already."""
        pairs: list[Any] = []
        refused: list[tuple[int, InvalidInput]] = []
        for i, (mid, message) in enumerate(items):
            try:
                _, argv = self.encode_messages([message])
            except InvalidInput as exc:
                refused.append((i, exc))
                continue
            pairs += (mid, argv[1])
        ids = pairs[0::2]
        if not ids:
            return PeerChunk(0, 0, refused)
        if dry_run:
            (found,) = yield [Call(("HMGET", self.conversation_keys(conversation_id).ids, *ids))]
            known = sum(1 for f in found if f is not None)
            return PeerChunk(len(ids) - known, known, refused)
        token = call_token(None, pairs, self.config.idempotency_ttl_ms)
        reply = yield from self._append_script(conversation_id, token, pairs)
        added = sum(1 for i in range(1, len(reply), 2) if not reply[i])
        return PeerChunk(added, len(ids) - added, refused)
