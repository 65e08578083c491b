"""What the tests share besides fixtures (those live in ``tests/conftest.py``):

- ``settings``: hermetic :class:`~agent_memory.Settings` for tests (no environment);
- ``backends``: the Redis a test runs on (fakeredis, redis-server, valkey-server), snapshots;
- ``drivers``: one awaitable interface over the sync and async stores (a pytest plugin);
- ``drive``: runs a plan against scripted replies, no Redis at all;
- ``samples``: every LangChain message the store promises to round-trip;
- ``api``: an httpx client on the app, API keys;
- ``servers``: real Redis Cluster, Sentinel and TLS servers.
"""
