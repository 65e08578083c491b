"""``python -m bench.agents_session``: the Agents SDK session against the SDK's own RedisSession.

Both on one redis-server this module starts (AOF off), asyncio clients, a 5-item agent turn
(user message, reasoning, function call, its output, the answer): ``add_items`` of a turn,
``get_items(20)`` of a long session, ``pop_item``. Prints the median time per call over the
repeats, the round trips per call (every ``send_packed_command``) and our speed as a ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio
import redis.asyncio.connection
from agents.extensions.memory import RedisSession as SdkRedisSession

from agent_memory.embedded import RedisProcess
from agent_memory.openai_agents import RedisSession

TURN: list[Any] = [
    {"role": "user", "content": "What is the weather in Paris today? " * 3},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "tool"}]},
    {
        "type": "function_call",
        "call_id": "c1",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "id": "fc_1",
    },
    {"type": "function_call_output", "call_id": "c1", "output": "sunny, 21C"},
    {
        "type": "message",
        "role": "assistant",
        "id": "msg_1",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Sunny, 21C in Paris.", "annotations": []}],
    },
]
SENT: list[int] = []


def _count_round_trips() -> None:
    send = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def counted(self: Any, command: Any, check_health: bool = True) -> None:
        SENT.append(1)
        await send(self, command, check_health)

    redis.asyncio.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


async def _per_call(call: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    """(microseconds, round trips) per call, over ``n`` calls."""
    SENT.clear()
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n * 1e6, len(SENT) / n


async def _measure(session: Any, n: int) -> dict[str, tuple[float, float]]:
    add = await _per_call(lambda: session.add_items(TURN), n)
    get = await _per_call(lambda: session.get_items(20), n)
    pop = await _per_call(session.pop_item, n // 3)
    return {"add_items(5)": add, f"get_items(20) of {5 * n}": get, "pop_item": pop}


async def main(repeats: int = 5, n: int = 300) -> None:
    _count_round_trips()
    with RedisProcess(tempfile.mkdtemp(prefix="bench-agents-"), appendonly=False) as server:
        client = redis.asyncio.Redis.from_url(server.url, db=2)
        runs: dict[str, list[dict[str, tuple[float, float]]]] = {"ours": [], "sdk": []}
        for r in range(repeats):
            await client.flushdb()
            ours = RedisSession(f"o{r}", redis_client=client)  # as the SDK's users build theirs
            sdk = SdkRedisSession(f"s{r}", redis_client=client, ttl=2_592_000)
            runs["ours"].append(await _measure(ours, n))
            runs["sdk"].append(await _measure(sdk, n))
        await client.aclose()
    print("| operation | ours us | SDK RedisSession us | ours/SDK speed | round trips ours/SDK |")
    print("|---|---|---|---|---|")
    for op in runs["ours"][0]:
        ours_us = statistics.median(run[op][0] for run in runs["ours"])
        sdk_us = statistics.median(run[op][0] for run in runs["sdk"])
        trips = f"{runs['ours'][0][op][1]:.0f} / {runs['sdk'][0][op][1]:.0f}"
        print(f"| {op} | {ours_us:.0f} | {sdk_us:.0f} | {sdk_us / ours_us:.2f}x | {trips} |")


if __name__ == "__main__":
    asyncio.run(main(repeats=int(sys.argv[1]) if len(sys.argv) > 1 else 5))
