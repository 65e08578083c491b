"""Conversations: create, list, read, update (optimistic concurrency), delete, erase a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from agent_memory.errors import ConversationNotFound
from api.deps import State, Store
from api.errors import ApiError
from api.errors import error_responses as errors
from api.params import ConversationId, IdQuery, IfMatch, Limit, ListCursor, page_limit
from api.schemas import (
    ConversationCreate,
    ConversationList,
    ConversationOut,
    ConversationUpdate,
    Deleted,
)

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(value: str | None) -> int | None:
    """``"3"`` / ``W/"3"`` -> 3; ``*`` or no header -> None (no check)."""
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        raise ApiError(422, 'If-Match must be a version ETag like "3"', field="if-match")
    return int(text)


@router.post("", status_code=201, response_model=ConversationOut, responses=errors(401, 409))
async def create_conversation(
    body: ConversationCreate, store: Store, response: Response
) -> ConversationOut:
    """Create a conversation (the server picks the id if none is given); 409 if it exists."""
    conversation = await store.create(
        body.id,
        user_id=body.user_id,
        agent_id=body.agent_id,
        title=body.title,
        metadata=body.metadata,
    )
    response.headers["ETag"] = etag(conversation.version)
    return ConversationOut.of(conversation)


@router.get("", response_model=ConversationList, responses=errors(401))
async def list_conversations(
    store: Store,
    state: State,
    user_id: Annotated[str | None, IdQuery] = None,
    agent_id: Annotated[str | None, IdQuery] = None,
    limit: Limit = None,
    cursor: ListCursor = None,
) -> ConversationList:
    """Newest activity first; filter by user and/or agent; page with ``next_cursor``."""
    page = await store.list_conversations(
        user_id=user_id,
        agent_id=agent_id,
        limit=page_limit(state.settings, limit, 20),
        cursor=cursor,
    )
    return ConversationList(
        items=[ConversationOut.of(c) for c in page.items], next_cursor=page.next_cursor
    )


@router.delete("", response_model=Deleted, responses=errors(401))
async def delete_user_conversations(store: Store, user_id: Annotated[str, IdQuery]) -> Deleted:
    """Erase every conversation of one user (``user_id`` is required)."""
    return Deleted(deleted=await store.delete_user(user_id))


@router.get("/{conversation_id}", response_model=ConversationOut, responses=errors(401, 404))
async def get_conversation(
    conversation_id: ConversationId, store: Store, response: Response
) -> ConversationOut:
    """Metadata, message count, version (also as ETag) and ``expires_at``."""
    conversation = await store.get_conversation(conversation_id)
    response.headers["ETag"] = etag(conversation.version)
    return ConversationOut.of(conversation)


@router.patch("/{conversation_id}", response_model=ConversationOut, responses=errors(401, 404, 412))
async def update_conversation(
    conversation_id: ConversationId,
    body: ConversationUpdate,
    store: Store,
    response: Response,
    if_match: IfMatch = None,
) -> ConversationOut:
    """Set (or, with null, remove) title and metadata. With ``If-Match: "<version>"`` or
    ``version`` in the body, only if the conversation is still at that version (412 if not)."""
    expected = parse_if_match(if_match)
    if expected is None:
        expected = body.version
    changes = body.model_dump(include=body.model_fields_set - {"version"})
    conversation = await store.update_conversation(
        conversation_id, expected_version=expected, **changes
    )
    response.headers["ETag"] = etag(conversation.version)
    return ConversationOut.of(conversation)


@router.delete("/{conversation_id}", status_code=204, responses=errors(401, 404))
async def delete_conversation(conversation_id: ConversationId, store: Store) -> Response:
    """Delete the conversation and all its keys."""
    if not await store.delete_conversation(conversation_id):
        raise ConversationNotFound(conversation_id)
    return Response(status_code=204)
