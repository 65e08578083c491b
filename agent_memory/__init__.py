"""agent-memory: durable conversation memory for AI agents on plain Redis."""

from agent_memory.aio import AsyncConversationStore
from agent_memory.codec import StoredMessage
from agent_memory.core import ConversationPage
from agent_memory.errors import (
    AgentMemoryError,
    ConversationExists,
    ConversationNotFound,
    EmbeddedServerError,
    IdempotencyKeyReused,
    InvalidConversationId,
    InvalidCursor,
    InvalidInput,
    InvalidMessage,
    MessageTooLarge,
    ServerUnsupported,
    StoreUnavailable,
    TooLarge,
    UnreadableRecord,
    VersionConflict,
)
from agent_memory.langchain import RedisChatMessageHistory
from agent_memory.models import Conversation, Message, ToolCall
from agent_memory.settings import Settings
from agent_memory.store import ConversationStore

__version__ = "0.1.0"

__all__ = [
    "AgentMemoryError",
    "AsyncConversationStore",
    "Conversation",
    "ConversationExists",
    "ConversationNotFound",
    "ConversationPage",
    "ConversationStore",
    "EmbeddedServerError",
    "IdempotencyKeyReused",
    "InvalidConversationId",
    "InvalidCursor",
    "InvalidInput",
    "InvalidMessage",
    "Message",
    "MessageTooLarge",
    "RedisChatMessageHistory",
    "ServerUnsupported",
    "Settings",
    "StoreUnavailable",
    "StoredMessage",
    "TooLarge",
    "ToolCall",
    "UnreadableRecord",
    "VersionConflict",
    "__version__",
]
