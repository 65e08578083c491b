"""MCP tools over the store (the official ``mcp`` SDK, extra ``agent-memory[mcp]``).

Thin: each tool checks its arguments (pydantic, with the REST API's limits, so the JSON schemas
say them), calls one :class:`~agent_memory.aio.AsyncConversationStore` method and answers in the
REST API's shapes. The store's errors become tool errors (``isError``) that start with a stable
code and name the field; an outage says that retrying with the same ids is safe.

Which store a call uses: over stdio, the one given to :func:`create_server`; over HTTP, the one
the host app bound to the request with :func:`bind_store` after authenticating it (a request
without one is refused), so each API key reaches its own tenant's conversations only.
"""

# No ``from __future__ import annotations``: the tools' parameter types are built at run time
# from the settings' limits, and the SDK reads them from the signatures.
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping, Sequence
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError
from starlette.types import Receive, Scope, Send

from agent_memory import __version__
from agent_memory.aio import AsyncConversationStore
from agent_memory.codec import StoredMessage
from agent_memory.errors import (
    AgentMemoryError,
    ConversationNotFound,
    StoreUnavailable,
)
from agent_memory.keys import MAX_ID_LENGTH, tenant_prefix, validate_id
from agent_memory.models import Conversation, Message
from agent_memory.rules import CURSOR_PATTERN, ID_PATTERN, MAX_TITLE_LENGTH
from agent_memory.settings import Settings

__all__ = ["STORE_SCOPE_KEY", "HttpEndpoint", "bind_store", "create_server", "serve_stdio"]

STORE_SCOPE_KEY = "agent_memory.store"
"""The ASGI scope key under which a host app puts the authenticated caller's store."""

# The library's rules as JSON-schema patterns (the store checks them again).
CURSOR = f"^{CURSOR_PATTERN}$"
DEFAULT_CONVERSATIONS = 20
DEFAULT_MESSAGES = 100

INSTRUCTIONS = """Durable conversation memory. A conversation is an ordered list of messages
(role user/assistant/system/tool) plus metadata (user_id, agent_id, title, free-form metadata,
version). Read the last messages with get_messages, store new turns with append_messages (give
each message an `id`: re-sending an id stores nothing new, so retrying is always safe). A
`store_unavailable` error means the outcome is unknown: retry with the same ids."""

ConversationId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="The conversation's id: any text without control characters.",
    ),
]
OwnerId = Annotated[str | None, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
Cursor = Annotated[
    str | None,
    Field(pattern=CURSOR, description="A message's `cursor`, e.g. '1700000000000-0'."),
]
Title = Annotated[str | None, Field(max_length=MAX_TITLE_LENGTH)]
Metadata = Annotated[dict[str, Any] | None, Field(description="Free-form JSON object.")]


class ConversationPage(BaseModel):
    """One page of conversations, newest activity first."""

    items: list[Conversation]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page (null: last).")


class MessagePage(BaseModel):
    """Messages oldest first, in the REST API's shape (role, content, name?, tool_calls?,
    tool_call_id?, id?, metadata?, ...) plus each one's stream `cursor` and `created_at`."""

    messages: list[dict[str, Any]]


class Deleted(BaseModel):
    deleted: bool


# -- errors ------------------------------------------------------------------------------
# The library's names for a few fields, as the tools call them.
_FIELDS = {"conversation id": "conversation_id", "expected_version": "version"}
_RETRY = (
    "The outcome of this call is unknown; retrying it with the same message ids (or the same "
    "idempotency_key) is safe and stores nothing twice."
)


def tool_error(exc: AgentMemoryError) -> ToolError:
    """``<code> [field <name>]: <message>``, the text of the tool error the caller sees."""
    code, field = exc.code, exc.field
    field = _FIELDS.get(field, field) if field else None
    text = f"{code} (field {field}): {exc}" if field else f"{code}: {exc}"
    if isinstance(exc, StoreUnavailable):
        text = f"{code}: the memory store is unavailable ({exc}). {_RETRY}"
    return ToolError(text)


def _field_of(loc: tuple[int | str, ...]) -> str:
    """``("messages", 0, "role")`` -> ``messages[0].role`` (the REST API's field names)."""
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc]
    return "".join(parts).lstrip(".") or "arguments"


def argument_error(exc: ValidationError) -> ToolError:
    """The first invalid argument, named like the store's errors name fields."""
    first = exc.errors()[0]
    field = _field_of(tuple(first["loc"]))
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ToolError(f"invalid_input (field {field}): {field}: {first['msg']}{more}")


class _Server(MCPServer[Any]):
    """The SDK's server; every anticipated tool error reads ``<code> (field <name>): ...``
    (the SDK would prefix its own text, and word argument errors its own way)."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context | None = None
    ) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:  # the SDK's wrapper of an anticipated error: ours, unwrapped
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise argument_error(cause) from cause
            if isinstance(cause, ToolError):
                raise cause from cause.__cause__
            raise


# -- which store ---------------------------------------------------------------------------
def bind_store(scope: MutableMapping[str, Any], store: AsyncConversationStore) -> None:
    """Make ``store`` the one the tools use for this HTTP request (after authentication)."""
    scope[STORE_SCOPE_KEY] = store


def _store_of(ctx: Context, default: AsyncConversationStore | None) -> AsyncConversationStore:
    request = ctx.request_context.request
    if request is not None:  # HTTP: the store bound to this request, never the default
        bound = getattr(request, "scope", {}).get(STORE_SCOPE_KEY)
        if not isinstance(bound, AsyncConversationStore):
            raise ToolError("unauthorized: this request carries no authenticated store")
        return bound
    if default is None:
        raise ToolError("unauthorized: this server has no store for this transport")
    return default


# -- the server ----------------------------------------------------------------------------
StoreOf = Callable[[Context], AsyncConversationStore]
"""Which store a tool call uses (see :func:`_store_of`)."""
Tools = list[tuple[Callable[..., Any], ToolAnnotations]]

READS = ToolAnnotations(read_only_hint=True)
ADDS = ToolAnnotations(read_only_hint=False, destructive_hint=False)
APPENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=True)


def create_server(
    store: AsyncConversationStore | None = None, *, settings: Settings | None = None
) -> MCPServer[Any]:
    """The MCP server with the memory tools. ``store`` serves stdio (and in-memory) sessions;
    HTTP requests use the store bound to them. Limits come from ``settings`` (the store's)."""
    config = settings or (store.settings if store is not None else Settings())
    server = _Server(
        "agent-memory",
        title="agent-memory",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )

    def store_of(ctx: Context) -> AsyncConversationStore:
        return _store_of(ctx, store)

    for fn, annotations in [*_message_tools(store_of, config), *_conversation_tools(store_of)]:
        server.add_tool(fn, annotations=annotations)
    return server


@contextlib.contextmanager
def _as_tool_errors() -> Iterator[None]:
    try:
        yield
    except AgentMemoryError as exc:
        raise tool_error(exc) from exc


def _message_tools(store: StoreOf, config: Settings) -> Tools:
    """Listing, reading and appending; the signatures (with the configured limits) are the
    tools' JSON schemas, the docstrings their descriptions."""
    page = config.max_page_size
    PageSize = Annotated[int, Field(ge=1, le=page, description=f"1 to {page}.")]
    Messages = Annotated[
        list[Message], Field(min_length=1, max_length=config.max_messages_per_request)
    ]
    default_messages = min(DEFAULT_MESSAGES, page)
    default_conversations = min(DEFAULT_CONVERSATIONS, page)

    async def list_conversations(
        ctx: Context,
        user_id: OwnerId = None,
        agent_id: OwnerId = None,
        limit: PageSize = default_conversations,
        cursor: Annotated[str | None, Field(max_length=2048)] = None,
    ) -> ConversationPage:
        """List conversations, newest activity first, optionally only one user's and/or one
        agent's. Pass the returned `next_cursor` as `cursor` for the next page."""
        with _as_tool_errors():
            found = await store(ctx).list_conversations(
                user_id=user_id, agent_id=agent_id, limit=limit, cursor=cursor
            )
        return ConversationPage(items=found.items, next_cursor=found.next_cursor)

    async def get_messages(
        ctx: Context,
        conversation_id: ConversationId,
        limit: PageSize = default_messages,
        before: Cursor = None,
        after: Cursor = None,
    ) -> MessagePage:
        """Read a conversation's messages, oldest first: by default the last `limit`; with
        `before` the `limit` messages just before that cursor (older history), with `after`
        the `limit` messages just after it (newer ones). Error `not_found` if it does not
        exist."""
        with _as_tool_errors():
            stored = await store(ctx).get_messages(
                conversation_id, limit=limit, before=before, after=after, require_exists=True
            )
        return _page(stored)

    async def append_messages(
        ctx: Context,
        conversation_id: ConversationId,
        messages: Messages,
        idempotency_key: Annotated[str | None, Field(min_length=1, max_length=256)] = None,
    ) -> MessagePage:
        """Append messages to a conversation, all or none, creating it if missing. Give each
        message an `id`: a message whose id is already stored is not added again (the stored
        one is returned), so a retried call never duplicates anything. Returns the stored
        messages with their cursors."""
        records = [m.to_record() for m in messages]
        with _as_tool_errors():
            stored = await store(ctx).append(
                conversation_id, records, idempotency_key=idempotency_key
            )
        return _page(stored)

    return [(list_conversations, READS), (get_messages, READS), (append_messages, APPENDS)]


def _conversation_tools(store: StoreOf) -> Tools:
    """A conversation's metadata: create, read, update, delete."""

    async def create_conversation(
        ctx: Context,
        conversation_id: Annotated[
            ConversationId | None, Field(description="Chosen if left out.")
        ] = None,
        user_id: OwnerId = None,
        agent_id: OwnerId = None,
        title: Title = None,
        metadata: Metadata = None,
    ) -> Conversation:
        """Create a conversation owned by a user and/or agent (so list_conversations can
        filter by them). Error `conflict` if the id is taken. append_messages also creates a
        missing conversation, without owners."""
        with _as_tool_errors():
            return await store(ctx).create(
                conversation_id, user_id=user_id, agent_id=agent_id, title=title, metadata=metadata
            )

    async def get_conversation(ctx: Context, conversation_id: ConversationId) -> Conversation:
        """A conversation's metadata: user_id, agent_id, title, metadata, created_at,
        updated_at, message_count, version and expires_at. Error `not_found` if missing."""
        with _as_tool_errors():
            return await store(ctx).get_conversation(conversation_id)

    async def update_conversation(
        ctx: Context,
        conversation_id: ConversationId,
        title: Annotated[Title, Field(description="New title (omit to keep).")] = None,
        metadata: Annotated[
            Metadata, Field(description="Replaces the metadata (omit to keep).")
        ] = None,
        remove: Annotated[
            list[Literal["title", "metadata"]], Field(description="Fields to remove.")
        ] = [],  # noqa: B006 (the SDK validates a fresh copy per call)
        version: Annotated[
            int | None,
            Field(ge=0, le=2**53, description="Only update if still at this version."),
        ] = None,
    ) -> Conversation:
        """Set the title and/or metadata of a conversation, or remove them. With `version`
        (from get_conversation), the update happens only if nobody changed the conversation
        since: error `version_conflict` otherwise (read it again and retry)."""
        changes = _changes(title=title, metadata=metadata, remove=remove)
        with _as_tool_errors():
            return await store(ctx).update_conversation(
                conversation_id, expected_version=version, **changes
            )

    async def delete_conversation(ctx: Context, conversation_id: ConversationId) -> Deleted:
        """Delete a conversation: its messages and metadata, for good. Error `not_found` if
        it does not exist (or was already deleted)."""
        with _as_tool_errors():
            if not await store(ctx).delete_conversation(conversation_id):
                raise ConversationNotFound(conversation_id)
        return Deleted(deleted=True)

    return [
        (create_conversation, ADDS),
        (get_conversation, READS),
        (update_conversation, CHANGES),
        (delete_conversation, CHANGES),
    ]


def _changes(*, remove: Sequence[str], **values: Any) -> dict[str, Any]:
    """The store's keyword arguments of an update: given values set, removed ones None."""
    changes: dict[str, Any] = dict.fromkeys(remove)
    for name, value in values.items():
        if value is not None:
            if name in changes:
                raise ToolError(f"invalid_input (field remove): {name} is both set and removed")
            changes[name] = value
    return changes


def _page(stored: list[StoredMessage]) -> MessagePage:
    """The REST API's stored messages (``created_at`` serialised by pydantic, as there)."""
    return MessagePage(
        messages=[{**m.record, "cursor": m.cursor, "created_at": m.created_at} for m in stored]
    )


# -- streamable HTTP in a host app ---------------------------------------------------------
class HttpEndpoint:
    """Streamable HTTP for a host ASGI app (the REST API mounts it at ``/mcp``): stateless,
    JSON responses, so any API worker answers any request and nothing is kept between them.
    The host authenticates each request, calls :meth:`handle` with the caller's store."""

    def __init__(self, server: MCPServer[Any]) -> None:
        self.server = server

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["HttpEndpoint"]:
        """Run the SDK's session manager (a fresh one each time: it runs only once) for as
        long as the host app runs. It holds a task group, which must be left in the task that
        entered it, so it runs in a task of its own: a host may start and stop its lifespan
        in different tasks (test fixtures do)."""
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            # The host's API keys guard the endpoint, as they guard the REST routes.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = self.server.session_manager
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()

        async def run() -> None:
            async with manager.run():
                ready.set_result(None)
                await stop.wait()

        task = asyncio.create_task(run(), name="agent-memory mcp session manager")
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # it failed to start: raise its error here
        try:
            yield self
        finally:
            stop.set()
            await task

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, store: AsyncConversationStore
    ) -> None:
        bind_store(scope, store)
        await self.server.session_manager.handle_request(scope, receive, send)


# -- stdio ----------------------------------------------------------------------------------
async def serve_stdio(settings: Settings, tenant: str | None = None) -> None:
    """Serve the tools on stdin/stdout until the client closes them (``agent-memory mcp``):
    the conversations of ``tenant`` (the prefix its API keys use), else of the bare prefix."""
    prefix = None
    if tenant is not None:
        prefix = tenant_prefix(settings.key_prefix, validate_id(tenant, "tenant"))
    async with AsyncConversationStore.from_settings(settings, key_prefix=prefix) as store:
        await create_server(store).run_stdio_async()
