"""The one exception hierarchy of agent-memory.

Every error the library raises on purpose is an ``AgentMemoryError``::

    AgentMemoryError
    ├── StoreUnavailable            Redis unreachable, timed out, loading, or read-only
    ├── ServerUnsupported           the server lacks a feature asked for (e.g. WAITAOF)
    ├── EmbeddedServerError         the embedded redis-server could not be found / started
    ├── ConversationNotFound        (also a KeyError)
    ├── ConversationExists          create() with an id that is taken
    ├── VersionConflict             optimistic concurrency: stale expected version
    ├── UnreadableRecord            a stored record this store cannot read (another writer's)
    └── InvalidInput                (also a ValueError) bad id, message, cursor or argument
        ├── InvalidConversationId
        ├── InvalidMessage
        │   └── MessageTooLarge     (also a TooLarge)
        ├── TooLarge                beyond a configured size limit (call bytes, metadata)
        ├── InvalidCursor
        └── IdempotencyKeyReused    an idempotency key given again with other messages

``InvalidInput`` derives from ``ValueError`` so that code written for plain Python conventions
keeps working; ``ConversationNotFound`` derives from ``KeyError`` for the same reason.
A Redis outage is never reported as "not found" or as an empty result.
"""

from __future__ import annotations

from typing import ClassVar


class AgentMemoryError(Exception):
    """Root of every error raised by agent-memory.

    ``code`` is the stable error code every interface reports (REST ``error.code``, MCP tool
    errors); ``field`` names the input at fault, when one is.
    """

    code: ClassVar[str] = "store_error"
    field: str | None = None


class StoreUnavailable(AgentMemoryError):
    """Redis could not be reached, did not answer in time, or refused writes (full, read-only);
    the operation had no effect that the caller can rely on. On a write the outcome is
    unknown (it may have been applied): retrying with the same message ids / idempotency key
    is safe."""

    code = "store_unavailable"


class UnreadableRecord(AgentMemoryError):
    """A stored record cannot be read back (not written by this store: another program wrote
    the key). Reads of many records skip such a record with a logged warning instead."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ServerUnsupported(AgentMemoryError):
    """The Redis server does not support a feature that was asked for."""

    code = "server_unsupported"


class EmbeddedServerError(AgentMemoryError):
    """The embedded Redis-compatible server could not be found, started or stopped."""


class ConversationNotFound(AgentMemoryError, KeyError):
    """No conversation with this id exists (or it has expired)."""

    code = "not_found"
    field = "conversation_id"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(conversation_id)
        self.conversation_id = conversation_id

    def __str__(self) -> str:
        return f"conversation {self.conversation_id!r} not found"


class ConversationExists(AgentMemoryError):
    """A conversation with this id already exists."""

    code = "conflict"
    field = "conversation_id"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"conversation {conversation_id!r} already exists")
        self.conversation_id = conversation_id


class VersionConflict(AgentMemoryError):
    """The conversation's version is not the one the caller expected."""

    code = "version_conflict"
    field = "version"

    def __init__(self, conversation_id: str, expected: int, actual: int) -> None:
        super().__init__(f"conversation {conversation_id!r} is at version {actual}, not {expected}")
        self.conversation_id = conversation_id
        self.expected = expected
        self.actual = actual


class InvalidInput(AgentMemoryError, ValueError):
    """Bad input: nothing was stored. ``field`` names what was wrong, when known."""

    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidConversationId(InvalidInput):
    """The conversation id (or user/agent id) is empty, too long or has control characters."""


class InvalidMessage(InvalidInput):
    """A message cannot be stored as given (unknown role, unserialisable content, ...)."""


class TooLarge(InvalidInput):
    """An input exceeds a configured size limit (the message names the setting)."""

    code = "too_large"


class MessageTooLarge(InvalidMessage, TooLarge):
    """A message's (or one append call's) encoded size exceeds the configured maximum."""


class InvalidCursor(InvalidInput):
    """A paging cursor is not one the store produced."""


class IdempotencyKeyReused(InvalidInput):
    """An append's idempotency key was used (within the remembered time, on the same
    conversation) by a call with other messages: nothing was stored. A retry must send the same
    messages; new messages need a new key (the IETF Idempotency-Key draft's 422)."""

    field = "idempotency_key"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="idempotency_key")
