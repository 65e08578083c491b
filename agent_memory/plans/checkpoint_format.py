"""How LangGraph checkpoints are laid out in a thread's keys: names, framing, config parsing.

Pure helpers for the checkpoint plans (:mod:`.checkpoints`). A checkpoint is the member
``ns NUL checkpoint_id`` of the thread's checkpoint zset; its *head* is the field ``c NUL
member`` of the data hash (:func:`head`: value names, parent, run, record); a channel value is
the field
``b NUL ns NUL channel NUL version``, stored as ``type NUL bytes`` of ``serde.dumps_typed``;
a pending write is a member ``ns NUL id NUL task_path NUL task_id NUL idx NUL channel NUL
value`` of the writes zset (lex order = ``writes_sort_key``). So no name may hold NUL or \\x01
(the separator of value names): :func:`part` refuses them. docs/langgraph.md has the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import get_checkpoint_id

from agent_memory.errors import InvalidInput
from agent_memory.keys import validate_id

SEP = b"\0"
NAMES_SEP = b"\1"
EMPTY = b"empty" + SEP
"""A channel in ``new_versions`` without a value (as InMemorySaver's ``("empty", b"")``)."""
IDX_OFFSET = 2**31
"""A write's index (negative for the special writes) + this, as 10 digits, sorts as a number."""


def part(value: object, what: str) -> bytes:
    """A name used inside field names and members: a string without NUL or \\x01."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}", field=what)
    raw = value.encode()
    if SEP in raw or NAMES_SEP in raw:
        raise InvalidInput(f"{what} must not contain NUL or \\x01 characters", field=what)
    return raw


def frame(typed: tuple[str, bytes]) -> bytes:
    """``serde.dumps_typed``'s (type, bytes) as one string."""
    return typed[0].encode() + SEP + typed[1]


def unframe(value: bytes) -> tuple[str, bytes]:
    kind, _, data = value.partition(SEP)
    return kind.decode(), data


def as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def member(ns: str, checkpoint_id: str) -> bytes:
    return ns.encode() + SEP + checkpoint_id.encode()


def value_field(ns: str, channel: str, version: Any) -> bytes:
    return b"b" + SEP + ns.encode() + SEP + part(channel, "channel") + SEP + str(version).encode()


def head(names: list[bytes], parent: bytes, run: bytes, record: bytes) -> bytes:
    """A checkpoint's head: the names of its values (``channel NUL version``, joined by \x01),
    its parent id and run id, each as ``<length>:<bytes>`` (lua/_checkpoint.lua's
    ``parse_head`` reads them), then its record."""
    return b"".join(b"%d:%s" % (len(x), x) for x in (NAMES_SEP.join(names), parent, run)) + record


def head_record(value: bytes) -> bytes:
    """The record part of a head."""
    at = 0
    for _ in range(3):
        colon = value.index(b":", at)
        at = colon + 1 + int(value[at:colon])
    return value[at:]


def write_key(task_path: bytes, task_id: bytes, position: int) -> bytes:
    """The part of a pending write's member that orders it (``writes_sort_key``)."""
    return task_path + SEP + task_id + SEP + b"%010d" % (position + IDX_OFFSET)


@dataclass(frozen=True, slots=True)
class Target:
    """The thread, namespace and (optional) checkpoint id a config names."""

    thread_id: str
    ns: str | None
    checkpoint_id: str | None

    @classmethod
    def of(cls, config: RunnableConfig, *, default_ns: str | None = "") -> Target:
        conf = config.get("configurable") or {}
        if "thread_id" not in conf:
            raise InvalidInput("config['configurable'] needs a thread_id", field="thread_id")
        thread_id = validate_id(str(conf["thread_id"]), "thread_id")
        ns = conf.get("checkpoint_ns", default_ns)
        if ns is not None:
            part(ns, "checkpoint_ns")
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is not None:
            part(checkpoint_id, "checkpoint_id")
        return cls(thread_id, ns, checkpoint_id)

    def config(self, checkpoint_id: str) -> RunnableConfig:
        return {
            "configurable": {
                "thread_id": self.thread_id,
                "checkpoint_ns": self.ns or "",
                "checkpoint_id": checkpoint_id,
            }
        }
