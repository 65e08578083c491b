"""The one exception hierarchy of agent-memory.

Every error the library raises on purpose is an ``AgentMemoryError``::

    AgentMemoryError
    ├── StoreUnavailable            Redis unreachable, timed out, loading, or read-only
    ├── ServerUnsupported           the server lacks a feature asked for (e.g. WAITAOF)
    ├── EmbeddedServerError         the embedded redis-server could not be found / started
    ├── ConversationNotFound        (also a KeyError)
    ├── ConversationExists          create() with an id that is taken
    ├── VersionConflict             optimistic concurrency: stale expected version
    └── InvalidInput                (also a ValueError) bad id, message, cursor or argument
        ├── InvalidConversationId
        ├── InvalidMessage
        │   └── MessageTooLarge
        ├── InvalidCursor
        └── IdempotencyKeyReused    the key of an earlier append, with other messages

``InvalidInput`` derives from ``ValueError`` so that code written for plain Python conventions
keeps working; ``ConversationNotFound`` derives from ``KeyError`` for the same reason.
A Redis outage is never reported as "not found" or as an empty result.
"""

from __future__ import annotations


class AgentMemoryError(Exception):
    """Root of every error raised by agent-memory."""


class StoreUnavailable(AgentMemoryError):
    """Redis could not be reached or did not answer in time. The outcome of a write is
    unknown (it may have been applied): retrying an append with the same message ids or the
    same idempotency key is always safe."""


class ServerUnsupported(AgentMemoryError):
    """The Redis server does not support a feature that was asked for."""


class EmbeddedServerError(AgentMemoryError):
    """The embedded Redis-compatible server could not be found, started or stopped."""


class ConversationNotFound(AgentMemoryError, KeyError):
    """No conversation with this id exists (or it has expired)."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(conversation_id)
        self.conversation_id = conversation_id

    def __str__(self) -> str:
        return f"conversation {self.conversation_id!r} not found"


class ConversationExists(AgentMemoryError):
    """A conversation with this id already exists."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"conversation {conversation_id!r} already exists")
        self.conversation_id = conversation_id


class VersionConflict(AgentMemoryError):
    """The conversation's version is not the one the caller expected."""

    def __init__(self, conversation_id: str, expected: int, actual: int) -> None:
        super().__init__(f"conversation {conversation_id!r} is at version {actual}, not {expected}")
        self.conversation_id = conversation_id
        self.expected = expected
        self.actual = actual


class InvalidInput(AgentMemoryError, ValueError):
    """Bad input: nothing was stored. ``field`` names what was wrong, when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidConversationId(InvalidInput):
    """The conversation id (or user/agent id) is empty, too long or has control characters."""


class InvalidMessage(InvalidInput):
    """A message cannot be stored as given (unknown role, unserialisable content, ...)."""


class MessageTooLarge(InvalidMessage):
    """A message's encoded size exceeds the configured maximum."""


class InvalidCursor(InvalidInput):
    """A paging cursor is not one the store produced."""


class IdempotencyKeyReused(InvalidInput):
    """An append's idempotency key was used before, on this conversation and within the
    idempotency TTL, with a different batch of messages: nothing was stored."""

    def __init__(self, key: str, conversation_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was used on conversation {conversation_id!r} with other "
            "messages; use a new key for a new batch (keys are remembered for "
            "AGENT_MEMORY_IDEMPOTENCY_TTL_SECONDS)",
            field="idempotency_key",
        )
        self.key = key
        self.conversation_id = conversation_id
