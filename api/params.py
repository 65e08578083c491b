"""The parameters the routes share: path ids, id filters, paging, cursors and headers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query

from agent_memory.keys import MAX_ID_LENGTH
from agent_memory.rules import ID_PATTERN
from agent_memory.settings import Settings
from api.errors import ApiError
from api.schemas import CURSOR_PATTERN

IdQuery = Query(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
ConversationId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="Any id without control characters, URL-encoded (`/` cannot be addressed).",
    ),
]
Limit = Annotated[int | None, Query(ge=1)]
Cursor = Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="A message's `cursor`")]
ListCursor = Annotated[str | None, Query(max_length=2048)]
IF_MATCH_PATTERN = r'^(\*|(W/)?"?[0-9]{1,15}"?)$'
IfMatch = Annotated[str | None, Header(pattern=IF_MATCH_PATTERN)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=256,
        description=(
            "Any key unique to this batch (a UUID), per the IETF Idempotency-Key draft "
            '(`"key"` as a structured-field string, or the bare key). A retry with the same '
            "key and the same body replays the first answer (same status and body); the same "
            "key with another body is 422 (`error.field` `idempotency-key`), nothing stored. "
            "Keys are remembered per conversation for AGENT_MEMORY_IDEMPOTENCY_TTL_SECONDS "
            "(24 h by default; not longer than the conversation lives), not for a count of "
            "calls."
        ),
    ),
]


def parse_idempotency_key(value: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header: a structured-field string (``"abc"``, with
    ``\\"`` and ``\\\\`` escapes) is unquoted, a bare value is taken as it is."""
    if value is None or len(value) < 2 or not (value[0] == value[-1] == '"'):
        return value
    inner = value[1:-1]
    out, escaped = [], False
    for ch in inner:
        if escaped or ch != "\\":
            out.append(ch)
            escaped = False
        else:
            escaped = True
    key = "".join(out)
    if not key:
        raise ApiError(422, "Idempotency-Key must not be empty", field="idempotency-key")
    return key


def page_limit(settings: Settings, limit: int | None, default: int) -> int:
    """``limit`` or the default, bounded by AGENT_MEMORY_MAX_PAGE_SIZE (422 beyond)."""
    maximum = settings.max_page_size
    if limit is None:
        return min(default, maximum)
    if limit > maximum:
        raise ApiError(422, f"limit is at most {maximum}", field="limit")
    return limit
