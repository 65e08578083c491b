"""The LangGraph store's key schema and its export/import plans (pure, no langgraph import).

Layout (``P`` the prefix; every key in the one hash tag ``{store}``; ``N`` an encoded
namespace: each label id-encoded as conversation ids are, joined by ``:``)::

    P:lg:{store}:n      zset    N, score 0: the namespaces (ZRANGEBYLEX finds a prefix)
    P:lg:{store}:o      hash    N -> sequence number of the namespace's creation
    P:lg:{store}:x      zset    N -> expiry (ms) of the namespace's last item
    P:lg:{store}:q      string  the sequence counter
    P:lg:{store}:h:N    hash    item key -> "<created ms> <seq> <updated ms> <ttl ms>\\n<JSON>"
    P:lg:{store}:e:N    zset    item key -> expiry (ms)
    P:lg:{store}:v:N    hash    item key -> embeddings (JSON: field path -> base64 float64)

Every command is ``lua/items.lua`` (see there); the LangGraph plans are in
:mod:`agent_memory.langgraph._store_plans`. ``agent-memory export`` writes one line per live
item after the conversations::

    {"type":"item","namespace":["users","u1"],"key":"prefs","value":{...},
     "created_at_ms":...,"updated_at_ms":...,"ttl_ms":...,"expires_at_ms":...,"embeddings":...}

and ``import`` restores an item only when it is absent, with its times and absolute expiry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from agent_memory import scripts
from agent_memory.errors import InvalidInput
from agent_memory.keys import decode_id, encode_id
from agent_memory.plan import Call, Plan
from agent_memory.plan import text as _text


@dataclass(frozen=True, slots=True)
class ItemConfig:
    """What the item plans need to know: where the keys live, TTL, limits, embedding fields."""

    prefix: str
    default_ttl_ms: int
    max_value_bytes: int
    max_candidates: int = 1_000
    max_namespaces: int = 100_000
    fields: tuple[str, ...] | None = None
    """The index config's fields (``None``: no index; ``("$",)`` embeds the whole value)."""
    dims: int | None = None

    @property
    def base(self) -> str:
        return f"{self.prefix}:lg:{{store}}:"

    @property
    def globals(self) -> tuple[str, str, str, str]:
        b = self.base
        return (b + "n", b + "o", b + "x", b + "q")


def encode_namespace(namespace: tuple[str, ...]) -> str:
    """Injective: labels id-encoded (``:``, glob and brace characters escaped), joined by ``:``."""
    return ":".join(encode_id(label) for label in namespace)


def decode_namespace(encoded: str) -> tuple[str, ...]:
    return tuple(decode_id(label) for label in encoded.split(":"))


def call(cfg: ItemConfig, *argv: Any) -> Call:
    """One command of ``items.lua``."""
    return Call.run(scripts.ITEMS, cfg.globals, (argv[0], cfg.base, *argv[1:]))


# -- export / import -----------------------------------------------------------------------


def export_namespaces(cfg: ItemConfig) -> Plan[list[str]]:
    """The live namespaces (encoded), in creation order."""
    (names,) = yield [call(cfg, "list", "", cfg.max_namespaces)]
    if int(names[0]) == 1:
        raise InvalidInput(f"more than {cfg.max_namespaces} namespaces to export", field="items")
    encoded = [_text(n) for n in names[1:]]
    if not encoded:
        return []
    orders = yield [Call(("HGET", cfg.globals[1], n)) for n in encoded]
    return [n for _, n in sorted(zip((int(o or 0) for o in orders), encoded, strict=True))]


def export_namespace(cfg: ItemConfig, encoded: str) -> Plan[list[dict[str, Any]]]:
    """The export lines of one namespace's live items, in creation order."""
    ((_, keys, records, vectors, expiries),) = yield [call(cfg, "dump", encoded)]
    rows = []
    for key, record, vec, expiry in zip(keys, records, vectors, expiries, strict=True):
        if record is None:
            continue
        head, _, body = _text(record).partition("\n")
        created, seq, updated, ttl = (int(x) for x in head.split(" "))
        line = {
            "type": "item",
            "namespace": list(decode_namespace(encoded)),
            "key": _text(key),
            "value": json.loads(body),
            "created_at_ms": created,
            "updated_at_ms": updated,
            "ttl_ms": ttl,
            "expires_at_ms": int(float(expiry)),
        }
        if vec is not None:
            line["embeddings"] = json.loads(_text(vec))
        rows.append((seq, line))
    return [line for _, line in sorted(rows, key=lambda r: r[0])]


def iter_item_lines(run: Any, cfg: ItemConfig) -> Iterator[dict[str, Any]]:
    """Every export line of the items; ``run`` carries a plan (a driver's ``run``)."""
    for encoded in run(export_namespaces(cfg)):
        yield from run(export_namespace(cfg, encoded))


def restore_item(cfg: ItemConfig, line: Mapping[str, Any], where: str) -> Plan[int]:
    """Restore one exported item if absent: 1 restored, 0 exists, -1 expired."""
    try:
        namespace = tuple(line["namespace"])
        key, value = line["key"], line["value"]
        numbers = [line[f] for f in ("created_at_ms", "updated_at_ms", "ttl_ms", "expires_at_ms")]
        if not namespace or not all(isinstance(x, str) and x for x in namespace):
            raise TypeError("namespace must be a list of non-empty strings")
        if not isinstance(key, str) or not isinstance(value, dict):
            raise TypeError("key must be a string and value an object")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise TypeError("times must be non-negative integers")
        embeddings = line.get("embeddings")
        if embeddings is not None and not isinstance(embeddings, dict):
            raise TypeError("embeddings must be an object")
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"{where}: bad item line: {exc}", field=where) from None
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode()) > cfg.max_value_bytes:
        raise InvalidInput(f"{where}: item value exceeds {cfg.max_value_bytes} bytes", field=where)
    vectors = "" if embeddings is None else json.dumps(embeddings)
    created, updated, ttl, expires = numbers
    (status,) = yield [
        call(
            cfg,
            "restore",
            encode_namespace(namespace),
            key,
            created,
            updated,
            max(ttl, 1),
            expires,
            text,
            vectors,
        )
    ]
    return int(status)
