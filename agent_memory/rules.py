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
CURSOR_PATTERN = r"[0-9]{1,20}-[0-9]{1,20}"
"""A stream cursor (entry id) ``<ms>-<seq>``: ASCII digits only (``\\d`` would take any
Unicode digit), each part at most a 64-bit unsigned integer (checked by :func:`is_cursor`)."""
_CURSOR = re.compile(CURSOR_PATTERN)
FIRST_CURSOR = "0-0"
LAST_CURSOR = f"{MAX_U64}-{MAX_U64}"

MAX_MESSAGE_ID_LENGTH = 256
MAX_TITLE_LENGTH = 1024
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
DEFAULT_MAX_MESSAGES_PER_REQUEST = 1000


def is_cursor(value: object) -> TypeGuard[str]:
    """True for a well-formed stream cursor (``"0-0"`` included)."""
    return (
        isinstance(value, str)
        and _CURSOR.fullmatch(value) is not None
        and all(int(part) <= MAX_U64 for part in value.split("-"))
    )


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
    return title
