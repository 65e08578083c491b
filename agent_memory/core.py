"""StoreCore: every operation of the stores as a plan, composed from the resource mixins.

The plans live in :mod:`agent_memory.plans`, one module per resource (their rules are stated
there); this class only puts them together, as redis-py composes its command mixins, so the
sync and async drivers (``store.py``, ``aio.py``) run the same code::

    def get_conversation(...) -> Plan[Conversation]:
        meta, expiry = yield [Call(("HGETALL", k)), Call(("PEXPIRETIME", k))]
        return parse(meta, expiry)
"""

from __future__ import annotations

from agent_memory.plans.admin import AdminPlans
from agent_memory.plans.context import KEYS_CACHED, KeySlot, PlanContext, StoreConfig
from agent_memory.plans.conversations import UNSET, ConversationPlans, Unset, parse_conversation
from agent_memory.plans.idempotency import idempotency_token
from agent_memory.plans.listing import (
    ConversationPage,
    ListingPlans,
    decode_list_cursor,
    encode_list_cursor,
)
from agent_memory.plans.messages import InputMessage, MessagePlans
from agent_memory.plans.peers import PeerPlans
from agent_memory.plans.transfer import TransferPlans
from agent_memory.rules import MAX_TITLE_LENGTH

_KEYS_CACHED = KEYS_CACHED

__all__ = [
    "MAX_TITLE_LENGTH",
    "OPERATIONS",
    "UNSET",
    "ConversationPage",
    "InputMessage",
    "KeySlot",
    "PlanContext",
    "StoreConfig",
    "StoreCore",
    "Unset",
    "decode_list_cursor",
    "encode_list_cursor",
    "idempotency_token",
    "parse_conversation",
]


class StoreCore(  # PeerPlans extends MessagePlans (its appends), so it comes first
    PeerPlans, MessagePlans, ConversationPlans, ListingPlans, AdminPlans, TransferPlans
):
    """Every store operation as a plan; shared by ConversationStore and AsyncConversationStore.

    Each public generator method is one operation; the stores expose it under the same name
    (see :data:`OPERATIONS`)."""


OPERATIONS: tuple[str, ...] = (
    "ping",
    "append",
    "get_messages",
    "get_langchain_messages",
    "count_messages",
    "create",
    "get_conversation",
    "update_conversation",
    "delete_conversation",
    "list_conversations",
    "delete_user",
    "clear_all",
    "server_info",
    "count_conversations",
    "export_scan",
    "export_head",
    "export_chunk",
    "import_chunk",
    "peer_scan",
    "peer_type",
    "peer_read",
    "peer_delete",
    "peer_import",
)
"""The plans both stores run as methods of the same name, signature and documentation."""
