"""The implementations under test, each behind the same five workload loops.

* ``ours``: :class:`agent_memory.RedisChatMessageHistory` (sync, one shared client);
* ``ours-async``: :class:`agent_memory.AsyncConversationStore` (reads as LangChain messages
  with ``get_langchain_messages``, like the history's ``aget_messages``);
* ``peer`` / ``peer-ttl``: ``langchain_community``'s ``RedisChatMessageHistory`` without and
  with ``ttl``;
* ``raw``: the limit of redis-py on the same server: one pipeline of XADD per message + HSET +
  EXPIRE per write call, one XREVRANGE per read, replies not decoded.

A subject receives whole workloads (lists), so the async one enters its event loop once per
workload, not once per call.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from agent_memory import AsyncConversationStore, RedisChatMessageHistory
from agent_memory.codec import encode_record, record_from_langchain

Turn = tuple[str, BaseMessage, BaseMessage]
TTL = 2_592_000


def peer_class() -> type[BaseChatMessageHistory]:
    """langchain_community's history class (its import warns that the package is sunset)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.chat_message_histories import RedisChatMessageHistory as Peer
    return Peer


class Subject:
    """Workload loops on top of a history factory (the peer's and ours)."""

    name = ""

    def __init__(self, url: str) -> None:
        self.url = url

    def history(self, sid: str) -> BaseChatMessageHistory:
        raise NotImplementedError

    def fresh(self, sid: str) -> BaseChatMessageHistory:
        """A history built the way ``RunnableWithMessageHistory``'s factory builds it."""
        return self.history(sid)

    def close(self) -> None:
        """Release what the subject holds."""

    def reset(self) -> None:
        """Forget the history objects of a repeat."""

    def prepare(self, messages: Sequence[BaseMessage]) -> None:
        """Called with a workload's messages before its clock starts."""

    def seed(self, sid: str, messages: Sequence[BaseMessage]) -> None:
        self.prepare(messages)
        self.add_batches(sid, [messages])

    def add_each(self, sid: str, messages: Sequence[BaseMessage]) -> None:
        h = self.history(sid)
        for m in messages:
            h.add_message(m)

    def add_batches(self, sid: str, batches: Sequence[Sequence[BaseMessage]]) -> None:
        h = self.history(sid)
        for batch in batches:
            h.add_messages(batch)

    def read(self, sids: Sequence[str]) -> int:
        n = 0
        for sid in sids:
            n += len(self.history(sid).messages)
        return n

    def turns(self, turns: Sequence[Turn]) -> None:
        for sid, question, answer in turns:
            h = self.history(sid)
            _ = h.messages
            h.add_messages([question, answer])

    def fresh_reads(self, sids: Sequence[str]) -> int:
        n = 0
        for sid in sids:
            n += len(self.fresh(sid).messages)
        return n


class Ours(Subject):
    """Constructed as the peers' users construct theirs: ``url=`` exactly as for
    langchain_community's class (one object per session in W1-W5, per request in W6), no
    ``settings=`` (the environment is read once per process)."""

    name = "ours"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._histories: dict[str, RedisChatMessageHistory] = {}

    def history(self, sid: str) -> RedisChatMessageHistory:
        h = self._histories.get(sid)
        if h is None:
            h = self._histories[sid] = RedisChatMessageHistory(sid, url=self.url)
        return h

    def fresh(self, sid: str) -> RedisChatMessageHistory:
        return RedisChatMessageHistory(sid, url=self.url)


class OursSharedClient(Ours):
    """Ours in W6 with the factory closing over one client (what our README recommends)."""

    name = "ours-shared-client"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.client = redis.Redis.from_url(url)

    def close(self) -> None:
        self.client.close()

    def fresh(self, sid: str) -> RedisChatMessageHistory:
        return RedisChatMessageHistory(sid, redis_client=self.client)


class Peer(Subject):
    name = "peer"
    ttl: int | None = None

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.cls: Callable[..., BaseChatMessageHistory] = peer_class()
        self._histories: dict[str, BaseChatMessageHistory] = {}

    def history(self, sid: str) -> BaseChatMessageHistory:
        h = self._histories.get(sid)
        if h is None:
            h = self._histories[sid] = self.fresh(sid)
        return h

    def fresh(self, sid: str) -> BaseChatMessageHistory:
        return self.cls(sid, url=self.url, ttl=self.ttl)

    def reset(self) -> None:
        for h in self._histories.values():
            h.redis_client.close()  # type: ignore[attr-defined]
        self._histories.clear()

    def close(self) -> None:
        self.reset()


class PeerTTL(Peer):
    name = "peer-ttl"
    ttl = TTL


class OursAsync(Subject):
    """AsyncConversationStore driven from one event loop of its own."""

    name = "ours-async"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loop = asyncio.new_event_loop()
        self.store = AsyncConversationStore.from_url(url)  # as its users build it

    def _go(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self._go(self.store.aclose())
        self.loop.close()

    def add_each(self, sid: str, messages: Sequence[BaseMessage]) -> None:
        async def go() -> None:
            for m in messages:
                await self.store.append(sid, [m])

        self._go(go())

    def add_batches(self, sid: str, batches: Sequence[Sequence[BaseMessage]]) -> None:
        async def go() -> None:
            for batch in batches:
                await self.store.append(sid, batch)

        self._go(go())

    async def _messages(self, sid: str) -> list[BaseMessage]:
        return await self.store.get_langchain_messages(sid)  # what the async history reads

    def read(self, sids: Sequence[str]) -> int:
        async def go() -> int:
            return sum([len(await self._messages(sid)) for sid in sids])

        result: int = self._go(go())
        return result

    def turns(self, turns: Sequence[Turn]) -> None:
        async def go() -> None:
            for sid, question, answer in turns:
                await self._messages(sid)
                await self.store.append(sid, [question, answer])

        self._go(go())

    def fresh_reads(self, sids: Sequence[str]) -> int:
        return self.read(sids)  # a store is built once per app, not per request


class Raw(Subject):
    """The redis-py limit: what any store has to send at least, without encoding/decoding."""

    name = "raw"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.client = redis.Redis.from_url(url)
        self._payloads: dict[int, bytes] = {}

    def close(self) -> None:
        self.client.close()

    def prepare(self, messages: Sequence[BaseMessage]) -> None:
        # The limit sends bytes encoded before the clock starts (our encoding, same sizes).
        for m in messages:
            self._payloads[id(m)] = encode_record(record_from_langchain(m), 1 << 30)

    def _payload(self, m: BaseMessage) -> bytes:
        return self._payloads[id(m)]

    def _write(self, sid: str, messages: Sequence[BaseMessage]) -> None:
        pipe = self.client.pipeline(transaction=False)
        stream = f"raw:{sid}:s"
        for m in messages:
            pipe.xadd(stream, {"m": self._payload(m)})
        pipe.hset(f"raw:{sid}:h", "updated_at", 1)
        pipe.expire(stream, TTL)
        pipe.execute()

    def add_each(self, sid: str, messages: Sequence[BaseMessage]) -> None:
        for m in messages:
            self._write(sid, [m])

    def add_batches(self, sid: str, batches: Sequence[Sequence[BaseMessage]]) -> None:
        for batch in batches:
            self._write(sid, batch)

    def read(self, sids: Sequence[str]) -> int:
        n = 0
        for sid in sids:
            n += len(self.client.xrevrange(f"raw:{sid}:s") or [])
        return n

    def turns(self, turns: Sequence[Turn]) -> None:
        for sid, question, answer in turns:
            self.client.xrevrange(f"raw:{sid}:s")
            self._write(sid, [question, answer])

    def fresh_reads(self, sids: Sequence[str]) -> int:
        return self.read(sids)


def all_subjects(url: str) -> list[Subject]:
    return [Ours(url), OursAsync(url), Peer(url), PeerTTL(url), Raw(url)]
