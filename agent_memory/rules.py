"""The input rules, each defined once: stream cursors, message ids, roles, titles, limits.

Everything that checks one of these imports it from here (the plans, the importer, the models;
the REST schemas can reuse the patterns). Pure: no I/O, no Redis.
"""

from __future__ import annotations

import re
from typing import Literal, TypeGuard, get_args

from agent_memory.errors import InvalidCursor, InvalidInput

Role = Literal["user", "assistant", "system", "tool", "function", "chat"]
ROLES: frozenset[str] = frozenset(get_args(Role))

MAX_U64 = 2**64 - 1
CURSOR_PATTERN = r"(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})"
"""A stream cursor (entry id) ``<ms>-<seq>`` in the canonical form Redis writes: ASCII digits
only (``\\d`` would take any Unicode digit), no leading zeros (``000-0`` and ``0-00`` name
``0-0`` to Redis but are not what the store hands out, so they are refused rather than
compared as text), each part at most a 64-bit unsigned integer (checked by
:func:`is_cursor`)."""
_CURSOR = re.compile(CURSOR_PATTERN)
FIRST_CURSOR = "0-0"
LAST_CURSOR = f"{MAX_U64}-{MAX_U64}"

ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
"""The JSON Schema form of the id rule of :func:`agent_memory.keys.validate_id` (no control
characters), for the REST and MCP schemas."""

MAX_MESSAGE_ID_LENGTH = 256
MAX_TITLE_LENGTH = 1024
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
DEFAULT_MAX_MESSAGES_PER_REQUEST = 1000
"""Messages of one append call. With the bytes cap below, the worst case measured (redis-server
7.0.15, EVALSHA usec_per_call, idle server) is ~3.3 ms of Redis time: 1000 x 900-byte messages
3.3 ms, 1000 x 1 byte 2.7 ms, 500 x 1.9 KiB 3.4 ms; 100 short messages 0.2 ms."""
DEFAULT_MAX_APPEND_BYTES = 1_048_576
"""Encoded bytes of one append call: 1 MiB kept one append script at ~2-3 ms of Redis time on
redis-server 7.0 (measured: 1 x 1 MiB 1.8 ms, 16 x 64 KiB 2.2 ms, 100 x 10 KiB 2.9 ms; 2 MiB
11.7 ms, 4 MiB 22 ms, 16 MiB 130 ms). See env.example."""
DEFAULT_IDEMPOTENCY_TTL_SECONDS = 86_400
"""How long an append's idempotency key is remembered (the IETF Idempotency-Key draft suggests
24 hours): a time, not a count of later calls."""
DEFAULT_MAX_METADATA_BYTES = 65_536
DEFAULT_MAX_JSON_DEPTH = 64
"""Nesting of objects and arrays in one stored message or metadata object (the object itself
is level 1): well below what every reader takes (orjson refuses 255 levels; the REST and
export envelopes add 3)."""
MAX_JSON_DEPTH = 200


def is_cursor(value: object) -> TypeGuard[str]:
    """True for a well-formed stream cursor (``"0-0"`` included)."""
    return (
        isinstance(value, str)
        and _CURSOR.fullmatch(value) is not None
        and all(int(part) <= MAX_U64 for part in value.split("-"))
    )


def check_text(value: str, field: str) -> str:
    """``value`` if it can be written as UTF-8 (no lone UTF-16 surrogate such as ``"\\ud800"``,
    which JSON escapes can carry but no store or reader can keep), else InvalidInput naming
    ``field``."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"{field} contains a lone UTF-16 surrogate (U+{ord(exc.object[exc.start]):04X}), "
                "which cannot be stored as UTF-8",
                field=field,
            ) from None
    return value


def check_cursor(value: str | None, name: str) -> str | None:
    """``value`` if it is None or a cursor, else InvalidCursor naming ``name``."""
    if value is not None and not is_cursor(value):
        raise InvalidCursor(f"{name} must be a message cursor like '1700000000000-0'", field=name)
    return value


def is_message_id(value: object) -> TypeGuard[str]:
    """A message id is a non-empty string of at most :data:`MAX_MESSAGE_ID_LENGTH` characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_MESSAGE_ID_LENGTH


def check_limit(limit: int | None) -> int | None:
    """``limit`` if it is None or a positive integer (not a bool), else InvalidInput."""
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise InvalidInput(f"limit must be a positive integer, not {limit!r}", field="limit")
    return limit


def check_title(title: object) -> str:
    if not isinstance(title, str) or len(title) > MAX_TITLE_LENGTH:
        raise InvalidInput(
            f"title must be a string of at most {MAX_TITLE_LENGTH} characters", field="title"
        )
    return check_text(title, "title")
