"""Messages of a conversation: append (idempotent) and read (last N, or pages both ways)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from agent_memory.codec import StoredMessage
from api.deps import Tenant
from api.errors import error_responses as errors
from api.params import (
    ConversationId,
    Cursor,
    IdempotencyKey,
    Limit,
    page_limit,
    parse_idempotency_key,
)
from api.schemas import MessageList, MessagesIn, message_list_json

router = APIRouter(prefix="/api/v1/conversations", tags=["messages"])

DEFAULT_PAGE = 100


def _out(messages: list[StoredMessage], status: int = 200) -> Response:
    """The MessageList answer, encoded once here (``response_model`` documents it)."""
    return Response(message_list_json(messages), status, media_type="application/json")


@router.post(
    "/{conversation_id}/messages",
    status_code=201,
    response_model=MessageList,
    response_model_exclude_unset=True,
    responses=errors(401, 404, 413),  # 404: an id with `/` matches no route
    description=(
        "Append messages atomically (all or none), creating the conversation if missing. A "
        "message whose `id` is already stored is not added again: the stored one is "
        "returned. With an `Idempotency-Key`, a retry with the same body replays the first "
        "answer (same status and body); the same key with another body is 422 (`error.field` "
        "`idempotency_key`) and stores nothing. Keys are remembered for "
        "AGENT_MEMORY_IDEMPOTENCY_TTL_SECONDS (24 h by default), per conversation and tenant. "
        "Concurrent retries cannot interleave (the check and the append are one atomic step), "
        "so a key in flight is never answered 409: the second call waits and replays.\n\n"
        "**A 503 means outcome unknown**: the messages may have been stored (Redis may "
        "have applied the write after the API stopped waiting). Retrying with the same "
        "message ids or the same `Idempotency-Key` is always safe: nothing is stored twice."
    ),
)
async def append_messages(
    conversation_id: ConversationId,
    body: MessagesIn,
    caller: Tenant,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Append messages atomically; idempotent by message id and ``Idempotency-Key``."""
    records: list[dict[str, Any]] = [m.to_record() for m in body.messages]
    key = parse_idempotency_key(idempotency_key)
    state = caller.state
    with state.metrics.timed("append"):
        stored = await caller.store.append(conversation_id, records, idempotency_key=key)
    state.metrics.appended.inc(sum(1 for m in stored if m.added))
    return _out(stored, 201)


@router.get(
    "/{conversation_id}/messages",
    response_model=MessageList,
    response_model_exclude_unset=True,
    responses=errors(401, 404),
)
async def get_messages(
    conversation_id: ConversationId,
    caller: Tenant,
    limit: Limit = None,
    before: Cursor = None,
    after: Cursor = None,
) -> Response:
    """Oldest first. By default the last ``limit`` messages (100, at most the configured page
    size); with ``before`` the ``limit`` messages just before that cursor, with ``after`` the
    ``limit`` messages just after it."""
    state = caller.state
    with state.metrics.timed("get_messages"):
        stored = await caller.store.get_messages(
            conversation_id,
            limit=page_limit(state.settings, limit, DEFAULT_PAGE),
            before=before,
            after=after,
            require_exists=True,
        )
    state.metrics.read.inc(len(stored))
    return _out(stored)
