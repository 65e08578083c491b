"""Call tokens of appends: what the append script remembers of a call (see append.lua).

Every append carries a token. A caller's idempotency key gives a fixed token (any process
retrying with the key finds the call) with a fingerprint of the call's encoded messages; a call
without a key gets a random token (a retry by redis-py after a lost reply replays). The script
remembers each token for ``keep_ms`` (AGENT_MEMORY_IDEMPOTENCY_TTL_SECONDS): the same token with
the same fingerprint replays the call's answer, with another fingerprint it is refused
(:class:`~agent_memory.errors.IdempotencyKeyReused`, the IETF Idempotency-Key draft's 422).

A call without a key whose messages all have ids gets no token: its retry finds every id in the
conversation's id map and gets each message back as stored, the answer a token's replay gives
(cursor and stored payload of each, in order), so remembering the call would only cost writes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

from agent_memory import rules
from agent_memory.errors import IdempotencyKeyReused


def idempotency_token(key: str) -> str:
    """A fixed-size token for a client's idempotency key (any string without lone
    surrogates)."""
    raw = rules.check_text(key, "idempotency_key").encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def request_fingerprint(pairs: Sequence[Any]) -> str:
    """A digest of an append's (message id or '', payload) arguments: calls with equal
    messages (as encoded) have equal fingerprints, calls with different ones do not."""
    digest = hashlib.blake2b(digest_size=16)
    for value in pairs:
        raw = value.encode() if isinstance(value, str) else value
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()


def call_token(idempotency_key: str | None, pairs: Sequence[Any], keep_ms: int) -> str:
    """The script's ARGV[3]: ``<token> <fingerprint or -> <keep_ms>``, or '' (no token) for a
    call without a key whose (message id or '', payload) ``pairs`` all have an id."""
    if idempotency_key:
        token, fingerprint = idempotency_token(idempotency_key), request_fingerprint(pairs)
    elif all(pairs[0::2]):
        return ""
    else:
        token, fingerprint = os.urandom(12).hex(), "-"
    return f"{token} {fingerprint} {keep_ms}"


def reused(conversation_id: str, keep_ms: int) -> IdempotencyKeyReused:
    """The error of a token the script knows with another fingerprint."""
    return IdempotencyKeyReused(
        f"this idempotency_key was used within the last {keep_ms // 1000} s on conversation "
        f"{conversation_id!r} with other messages: nothing was stored (a retry must send the "
        "same messages; new messages need a new key)"
    )
