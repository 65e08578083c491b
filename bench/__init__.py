"""The benchmark suite: ``python -m bench`` (see ``bench/__main__.py`` and ``bench/RESULTS.md``).

It starts its own redis-server processes (AOF off, AOF everysec), runs every implementation on
the same workloads interleaved, and writes medians over repeats with ratios to the peer
(``langchain_community``'s ``RedisChatMessageHistory``) and to the raw redis-py limit.
"""
