"""LangGraph persistence on plain Redis: long-term memory (``BaseStore``)."""

from agent_memory.langgraph.store import AsyncRedisStore, RedisStore

__all__ = ["AsyncRedisStore", "RedisStore"]
