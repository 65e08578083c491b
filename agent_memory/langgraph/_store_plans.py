"""The LangGraph store's items as sans-IO plans (the :mod:`agent_memory.plan` protocol).

Everything :class:`~agent_memory.langgraph.store.RedisStore` and its async twin do, except
calling Redis and the embedding model, is here, once: validation, key names, encoding, the
batch plan, filtering, ordering and ranking. The rules of the store:

- A batch is validated whole before anything is sent; bad input raises
  :class:`~agent_memory.errors.InvalidInput` and nothing is stored.
- A batch is one round trip: its reads (get, search, list) come first in the pipeline, then its
  writes, so every read sees the state before the batch (as ``InMemoryStore`` does). Puts to the
  same (namespace, key) in one batch collapse to the last. A search that refreshes TTLs adds a
  second round trip (which items it returns is known only once they are read and filtered).
- Order (as ``InMemoryStore``): a search lists namespaces in the order they were created, items
  of a namespace in the order they were created (an update keeps the place, delete and put
  again moves to the end). A namespace whose last item is deleted or expires is forgotten.
- A search reads every live item under its namespace prefix (filters and similarity run here,
  in the client) and refuses, before reading them, to read more than ``max_candidates``;
  list_namespaces likewise reads at most ``max_namespaces`` namespaces.

No import of redis-py here: plans yield :class:`~agent_memory.plan.Call` s.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from agent_memory.errors import InvalidInput
from agent_memory.items import ItemConfig, decode_namespace, encode_namespace
from agent_memory.items import call as _call
from agent_memory.models import ms_to_datetime
from agent_memory.plan import Batch, Call, Plan
from agent_memory.plan import text as _text

MAX_KEY_LENGTH = 1024
MAX_LABEL_LENGTH = 256
MAX_DEPTH = 32  # labels per namespace
MAX_NESTING = 64  # JSON nesting of a value
_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})


def _check_labels(labels: tuple[str, ...], what: str, *, empty: bool) -> None:
    if not isinstance(labels, tuple):
        raise InvalidInput(f"{what} must be a tuple of strings", field=what)
    if not labels and not empty:
        raise InvalidInput(f"{what} must not be empty", field=what)
    if len(labels) > MAX_DEPTH:
        raise InvalidInput(f"{what} has more than {MAX_DEPTH} labels", field=what)
    try:
        validate_op_namespace(SearchOp(labels))
    except InvalidNamespaceError as exc:
        raise InvalidInput(str(exc), field=what) from None
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidInput(f"{what} labels are at most {MAX_LABEL_LENGTH} chars", field=what)


def _check_key(key: object) -> str:
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"key must be a string of at most {MAX_KEY_LENGTH} chars", field="key")
    return key


# -- values --------------------------------------------------------------------------------


def _depth(value: Any, limit: int) -> int:
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def encode_value(value: Any, max_bytes: int) -> str:
    """The value as JSON text; raises InvalidInput for anything that would not read back equal."""
    if not isinstance(value, Mapping):
        raise InvalidInput("value must be a JSON object (a dict) or None", field="value")
    value = dict(value)
    if _depth(value, MAX_NESTING) > MAX_NESTING:
        raise InvalidInput(f"value nests deeper than {MAX_NESTING} levels", field="value")
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        size = len(text.encode())
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError: lone surrogates
        raise InvalidInput(f"value cannot be stored as JSON: {exc}", field="value") from None
    if size > max_bytes:
        raise InvalidInput(
            f"value is {size} bytes as JSON; the limit is {max_bytes}", field="value"
        )
    if json.loads(text) != value:
        raise InvalidInput(
            "value would not read back as written (JSON objects need string keys; tuples "
            "would come back as lists)",
            field="value",
        )
    return text


def _parse_record(namespace: tuple[str, ...], key: str, record: Any) -> Item:
    head, _, body = _text(record).partition("\n")
    created, _seq, updated, _ttl = head.split(" ")
    return Item(
        value=json.loads(body),
        key=key,
        namespace=namespace,
        created_at=ms_to_datetime(int(created)),
        updated_at=ms_to_datetime(int(updated)),
    )


def _seq(record: Any) -> int:
    return int(_text(record).split(" ", 2)[1])


def _pack_vectors(vectors: Mapping[str, Sequence[float]]) -> str:
    import numpy as np

    return json.dumps(
        {
            p: base64.b64encode(np.asarray(v, dtype="<f8").tobytes()).decode()
            for p, v in vectors.items()
        }
    )


def _unpack_vectors(text: Any) -> list[Any]:
    import numpy as np

    if text is None:
        return []
    return [
        np.frombuffer(base64.b64decode(v), dtype="<f8") for v in json.loads(_text(text)).values()
    ]


# -- filters (InMemoryStore's semantics) ---------------------------------------------------


def _check_filter(flt: Any) -> None:
    if flt is None:
        return
    if not isinstance(flt, Mapping):
        raise InvalidInput("filter must be a dict", field="filter")
    for value in flt.values():
        if isinstance(value, Mapping):
            if any(isinstance(k, str) and k.startswith("$") for k in value):
                unknown = set(value) - _OPERATORS
                if unknown:
                    raise InvalidInput(
                        f"unsupported filter operator {sorted(map(str, unknown))[0]}",
                        field="filter",
                    )
            else:
                _check_filter(value)


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(k.startswith("$") for k in wanted):
            return all(_operator(value, op, arg) for op, arg in wanted.items())
        return isinstance(value, dict) and all(_matches(value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(wanted)
            and all(_matches(a, b) for a, b in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"filter compares {value!r} with a number", field="filter") from None


def _operator(value: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return bool(value == arg)
    if op == "$ne":
        return bool(value != arg)
    if op not in _OPERATORS:
        raise InvalidInput(f"unsupported filter operator {op}", field="filter")
    a, b = _number(value), _number(arg)
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _passes(item: Item, flt: Mapping[str, Any] | None) -> bool:
    return not flt or all(_matches(item.value.get(k), v) for k, v in flt.items())


# -- namespace matching --------------------------------------------------------------------


def _condition_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    else:
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    return all(want == "*" or have == want for have, want in pairs)


def _literal_prefix(conditions: Iterable[MatchCondition]) -> tuple[str, ...]:
    """The leading labels every match must have (a prefix condition's part before a ``*``)."""
    for condition in conditions:
        if condition.match_type == "prefix":
            labels = []
            for label in condition.path:
                if label == "*":
                    break
                labels.append(label)
            return tuple(labels)
    return ()


# -- the batch -----------------------------------------------------------------------------


@dataclass
class Prepared:
    """A validated batch: the ops, its writes (one per namespace and key, the last wins) with
    their JSON, and the texts the embedding model must turn into vectors."""

    ops: list[Op]
    puts: dict[tuple[tuple[str, ...], str], tuple[PutOp, str]] = field(default_factory=dict)
    texts: dict[str, list[tuple[tuple[str, ...], str, str]]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)


def prepare(cfg: ItemConfig, ops: Iterable[Op]) -> Prepared:
    """Validate every op of a batch (before any I/O) and collect what needs embedding."""
    prepared = Prepared(list(ops))
    for op in prepared.ops:
        if isinstance(op, GetOp):
            _check_labels(op.namespace, "namespace", empty=False)
            _check_key(op.key)
        elif isinstance(op, SearchOp):
            _check_search(cfg, op)
            if op.query and op.query not in prepared.queries:
                prepared.queries.append(op.query)
        elif isinstance(op, ListNamespacesOp):
            _check_list(op)
        elif isinstance(op, PutOp):
            _check_labels(op.namespace, "namespace", empty=False)
            _check_key(op.key)
            _check_ttl(op.ttl)
            text = "" if op.value is None else encode_value(op.value, cfg.max_value_bytes)
            prepared.puts[(op.namespace, op.key)] = (op, text)
        else:
            raise InvalidInput(f"unknown operation {type(op).__name__}", field="op")
    if cfg.fields is not None:
        _collect_texts(cfg, prepared)
    return prepared


def _check_ttl(ttl: Any) -> None:
    if ttl is None:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0 or math.isinf(ttl):
        raise InvalidInput(f"ttl must be a positive number of minutes, not {ttl!r}", field="ttl")


def _check_search(cfg: ItemConfig, op: SearchOp) -> None:
    _check_labels(op.namespace_prefix, "namespace_prefix", empty=True)
    _check_filter(op.filter)
    for name in ("limit", "offset"):
        value = getattr(op, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{name} must be a non-negative integer", field=name)
    if op.query and cfg.fields is None:
        raise InvalidInput(
            "search(query=...) needs a store built with index={'dims', 'embed', 'fields'}; "
            "without one, search with filter= only",
            field="query",
        )


def _check_list(op: ListNamespacesOp) -> None:
    for condition in op.match_conditions or ():
        if condition.match_type not in ("prefix", "suffix"):
            raise InvalidInput(f"unsupported match type {condition.match_type!r}", field="match")
        _check_labels(tuple(condition.path), "match path", empty=True)
    for name in ("limit", "offset"):
        value = getattr(op, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{name} must be a non-negative integer", field=name)
    if op.max_depth is not None and (not isinstance(op.max_depth, int) or op.max_depth < 1):
        raise InvalidInput("max_depth must be a positive integer", field="max_depth")


def _collect_texts(cfg: ItemConfig, prepared: Prepared) -> None:
    assert cfg.fields is not None
    for (namespace, key), (op, _) in prepared.puts.items():
        if op.value is None or op.index is False:
            continue
        for path in op.index if op.index is not None else cfg.fields:
            # as InMemoryStore: the config's "$" is the whole value, an op's paths are parsed
            whole = op.index is None and path == "$"
            texts = get_text_at_path(op.value, path if whole else tokenize_path(path))
            for i, text in enumerate(texts):
                slot = f"{path}.{i}" if len(texts) > 1 else path
                prepared.texts.setdefault(text, []).append((namespace, key, slot))


def _vectors_by_item(
    prepared: Prepared, vectors: Sequence[Sequence[float]]
) -> dict[tuple[tuple[str, ...], str], dict[str, Sequence[float]]]:
    slots = [slot for group in prepared.texts.values() for slot in group]
    flat = [vec for vec, group in zip(vectors, prepared.texts.values(), strict=True) for _ in group]
    out: dict[tuple[tuple[str, ...], str], dict[str, Sequence[float]]] = {}
    for (namespace, key, path), vec in zip(slots, flat, strict=True):
        out.setdefault((namespace, key), {})[path] = vec
    return out


def batch(
    cfg: ItemConfig,
    prepared: Prepared,
    text_vectors: Sequence[Sequence[float]] = (),
    query_vectors: Mapping[str, Sequence[float]] | None = None,
) -> Plan[list[Result]]:
    """Run a prepared batch; ``text_vectors`` are the embeddings of ``prepared.texts`` (in
    order), ``query_vectors`` those of ``prepared.queries``."""
    item_vectors = _vectors_by_item(prepared, text_vectors) if prepared.texts else {}
    calls: Batch = [_read_call(cfg, op) for op in prepared.ops if not isinstance(op, PutOp)]
    for (namespace, key), (put, text) in prepared.puts.items():
        vectors = item_vectors.get((namespace, key))
        calls.append(_put_call(cfg, put, text, _pack_vectors(vectors) if vectors else ""))
    replies = yield calls
    results: list[Result] = []
    refresh: dict[str, list[str]] = {}
    reads = iter(replies)
    for op in prepared.ops:
        if isinstance(op, PutOp):
            results.append(None)
        elif isinstance(op, SearchOp):
            found = _search_result(cfg, op, next(reads), query_vectors or {})
            results.append(found)
            for item in found if op.refresh_ttl else ():
                refresh.setdefault(encode_namespace(item.namespace), []).append(item.key)
        else:
            results.append(_read_result(cfg, op, next(reads)))
    if refresh:
        yield [_call(cfg, "refresh", ns, *keys) for ns, keys in refresh.items()]
    return results


def _put_call(cfg: ItemConfig, op: PutOp, text: str, vectors: str) -> Call:
    ttl_ms = cfg.default_ttl_ms if op.ttl is None else max(1, round(op.ttl * 60_000))
    return _call(cfg, "put", encode_namespace(op.namespace), op.key, text, ttl_ms, vectors)


def _read_call(cfg: ItemConfig, op: Op) -> Call:
    if isinstance(op, GetOp):
        ns = encode_namespace(op.namespace)
        return _call(cfg, "get", ns, op.key, int(bool(op.refresh_ttl)))
    if isinstance(op, SearchOp):
        prefix = encode_namespace(op.namespace_prefix)
        return _call(cfg, "search", prefix, int(bool(op.query)), cfg.max_candidates)
    assert isinstance(op, ListNamespacesOp)
    prefix = encode_namespace(_literal_prefix(op.match_conditions or ()))
    return _call(cfg, "list", prefix, cfg.max_namespaces)


def _read_result(cfg: ItemConfig, op: Op, reply: Any) -> Result:
    if isinstance(op, GetOp):
        return None if not reply else _parse_record(op.namespace, op.key, reply)
    assert isinstance(op, ListNamespacesOp)
    return _list_result(cfg, op, reply)


def _too_many(what: str, bound: int, hint: str) -> InvalidInput:
    return InvalidInput(f"more than {bound} {what}; {hint}", field=what)


def _candidates(cfg: ItemConfig, reply: list[Any]) -> list[tuple[Item, list[Any]]]:
    """The live items of a search reply, in namespace then item creation order."""
    if int(reply[0]) == 1:
        raise _too_many(
            "candidates", cfg.max_candidates, "narrow namespace_prefix (or raise max_candidates)"
        )
    groups = []
    for i in range(1, len(reply), 5):
        ns_text, order, keys, records, vectors = reply[i : i + 5]
        namespace = decode_namespace(_text(ns_text))
        rows = sorted(
            (_seq(rec), _text(k), rec, vectors[j] if vectors else None)
            for j, (k, rec) in enumerate(zip(keys, records, strict=True))
            if rec is not None
        )
        groups.append((int(order), namespace, rows))
    groups.sort(key=lambda g: g[0])
    return [
        (_parse_record(namespace, key, rec), _unpack_vectors(vec))
        for _, namespace, rows in groups
        for _, key, rec, vec in rows
    ]


def _search_result(
    cfg: ItemConfig, op: SearchOp, reply: list[Any], queries: Mapping[str, Any]
) -> list[SearchItem]:
    found = [(item, vecs) for item, vecs in _candidates(cfg, reply) if _passes(item, op.filter)]
    if not op.query:
        return [_scored(item, None) for item, _ in found[op.offset : op.offset + op.limit]]
    return _ranked(found, queries[op.query], op.offset, op.limit)


def _scored(item: Item, score: float | None) -> SearchItem:
    return SearchItem(
        namespace=item.namespace,
        key=item.key,
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
        score=score,
    )


def _ranked(
    found: list[tuple[Item, list[Any]]], query: Sequence[float], offset: int, limit: int
) -> list[SearchItem]:
    """InMemoryStore's ranking: cosine similarity of every embedding of every candidate, best
    first, an item at its best score; items without embeddings fill a short page."""
    import numpy as np

    owners = [item for item, vecs in found for _ in vecs]
    scores: list[float] = []
    if owners:
        matrix = np.array([v for _, vecs in found for v in vecs])
        q = np.asarray(query, dtype=float)
        norms = np.linalg.norm(matrix, axis=1)
        sims = np.zeros_like(norms)
        mask = norms != 0
        sims[mask] = np.dot(matrix[mask], q) / (norms[mask] * np.linalg.norm(q))
        scores = sims.tolist()
    order = sorted(range(len(owners)), key=lambda i: scores[i], reverse=True)
    seen: set[tuple[tuple[str, ...], str]] = set()
    kept: list[SearchItem] = []
    for i in order:
        item = owners[i]
        if (item.namespace, item.key) in seen:
            continue
        seen.add((item.namespace, item.key))
        if len(seen) > offset + limit:
            break
        if len(seen) > offset:
            kept.append(_scored(item, float(scores[i])))
    unscored = [item for item, vecs in found if not vecs]
    if unscored and len(kept) < limit:
        kept += [_scored(item, None) for item in unscored[: limit - len(kept)]]
    return kept


def _list_result(cfg: ItemConfig, op: ListNamespacesOp, reply: list[Any]) -> list[tuple[str, ...]]:
    if int(reply[0]) == 1:
        raise _too_many("namespaces", cfg.max_namespaces, "list with a narrower prefix")
    names = [decode_namespace(_text(n)) for n in reply[1:]]
    conditions = op.match_conditions or ()
    names = [n for n in names if all(_condition_matches(c, n) for c in conditions)]
    if op.max_depth is not None:
        names = list({n[: op.max_depth] for n in names})
    return sorted(names)[op.offset : op.offset + op.limit]
