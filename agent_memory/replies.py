"""Whatever the Redis client returned (RESP2 or RESP3, bytes or str, None) -> one shape, once.

The plans and the server checks read replies only through these functions, so a client that
decodes responses, one that does not, and both protocol versions give the same results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agent_memory.errors import InvalidInput


def text(value: Any, errors: str = "strict") -> str:
    """A reply value as ``str``, whether the client decodes responses or not."""
    return value.decode(errors=errors) if isinstance(value, bytes) else str(value)


def texts(values: Iterable[Any], errors: str = "strict") -> list[str]:
    return [text(v, errors) for v in values]


def string_map(reply: Mapping[Any, Any] | None) -> dict[str, str]:
    """A hash (HGETALL) as ``{str: str}``; a missing hash (empty or None) is ``{}``."""
    return {text(k): text(v) for k, v in reply.items()} if reply else {}


def decoded(reply: Mapping[Any, Any]) -> dict[str, Any]:
    """A parsed INFO-like mapping with str keys; bytes values decoded, numbers kept."""
    return {
        text(k, "replace"): (text(v, "replace") if isinstance(v, bytes) else v)
        for k, v in reply.items()
    }


def entry_payload(fields: Any) -> bytes | str:
    """The ``m`` field of a stream entry, whether the client parsed the fields into a dict
    (bytes or str keys) or left them as the server sent them, a flat ``[name, value, ...]``
    list (the last ``m`` wins, as in redis-py's dict)."""
    if type(fields) is dict:  # redis-py's parse of a stream entry (bytes keys unless decoded)
        value = fields.get(b"m") or fields.get("m")
    elif isinstance(fields, Mapping):
        value = fields.get(b"m", fields.get("m"))
    else:
        value = None
        for i in range(0, len(fields) - 1, 2):
            if fields[i] == b"m" or fields[i] == "m":
                value = fields[i + 1]
    if value is None:
        raise InvalidInput("stream entry without a message field")
    return value  # type: ignore[no-any-return]


def entries(reply: Iterable[Any]) -> list[tuple[str, bytes | str]]:
    """(cursor, payload) of each entry of an XRANGE / XREVRANGE reply; an entry without a
    message field (another writer's) has the payload ``b""``, which no reader takes."""
    out: list[tuple[str, bytes | str]] = []
    for cursor, fields in reply:
        try:
            out.append((text(cursor), entry_payload(fields)))
        except InvalidInput:
            out.append((text(cursor), b""))
    return out


def scored(reply: Sequence[Any], errors: str = "strict") -> list[tuple[str, float]]:
    """(member, score) pairs of a WITHSCORES reply, flat (RESP2) or nested (RESP3)."""
    if reply and isinstance(reply[0], list | tuple):
        return [(text(m, errors), float(s)) for m, s in reply]
    return [(text(reply[i], errors), float(reply[i + 1])) for i in range(0, len(reply), 2)]


def config_value(reply: Any, name: str) -> str | None:
    """The value of one parameter in a CONFIG GET reply (dict or flat list), if any."""
    if isinstance(reply, Mapping):
        pairs = {text(k): v for k, v in reply.items()}
    elif isinstance(reply, list | tuple):
        pairs = {text(reply[i]): reply[i + 1] for i in range(0, len(reply) - 1, 2)}
    else:
        return None
    value = pairs.get(name)
    return None if value is None else text(value)
