"""LangGraph persistence on the conversation store: checkpointers (a thread is a conversation)
and long-term memory (``BaseStore``).

Needs the ``langgraph`` extra: ``pip install 'agent-memory[langgraph]'``.
"""

from agent_memory.langgraph.saver import AsyncRedisSaver, RedisSaver
from agent_memory.langgraph.store import AsyncRedisStore, RedisStore

__all__ = ["AsyncRedisSaver", "AsyncRedisStore", "RedisSaver", "RedisStore"]
