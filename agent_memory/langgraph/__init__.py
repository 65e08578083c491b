"""LangGraph persistence on the conversation store: checkpointers (a thread is a conversation).

Needs the ``langgraph`` extra: ``pip install 'agent-memory[langgraph]'``.
"""

from agent_memory.langgraph.saver import AsyncRedisSaver, RedisSaver

__all__ = ["AsyncRedisSaver", "RedisSaver"]
