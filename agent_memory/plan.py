"""The sans-IO protocol between the core's plans and the stores that run them.

A plan is a generator that yields a :data:`Batch` of :class:`Call` s and receives their replies;
each batch is sent as one round trip (one command, or one non-transactional pipeline). The
plans (:mod:`agent_memory.core`, :mod:`agent_memory.transfer`) hold every bit of logic; the
sync and async stores only carry batches to Redis and back.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import NoScriptError, ResponseError

from agent_memory import scripts

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One Redis command; ``script`` is set when the command is an EVALSHA of ours."""

    args: tuple[Any, ...]
    script: scripts.Script | None = None
    optional: bool = False
    """An optional call is sent alone; if the server refuses it (unknown or renamed command,
    no permission), the plan receives ``None`` instead of an error (see :func:`refused`)."""
    target: str | None = None
    """Cluster mode only: the node to send a keyless call to (a node name ``host:port``), or
    :data:`PRIMARIES` for every primary (the reply is then ``{node name: reply}``). A call
    with a target is sent alone."""

    @classmethod
    def run(cls, script: scripts.Script, keys: Sequence[str], argv: Sequence[Any]) -> Call:
        return cls(("EVALSHA", script.sha, len(keys), *keys, *argv), script)

    def command(self, with_source: bool = False) -> tuple[Any, ...]:
        """The arguments to send; ``with_source`` sends EVAL with the script's text instead."""
        if with_source and self.script is not None:
            return ("EVAL", self.script.source, *self.args[2:])
        return self.args


PRIMARIES = "primaries"  # redis-py's RedisCluster.PRIMARIES
Batch = list[Call]
Plan = Generator[Batch, list[Any], T]


def refused(batch: Batch, exc: Exception) -> bool:
    """True when ``exc`` is the server refusing the lone optional call of ``batch``: the
    drivers then reply ``[None]`` instead of raising (connection errors still raise)."""
    return (
        len(batch) == 1
        and batch[0].optional
        and isinstance(exc, ResponseError)
        and not isinstance(exc, NoScriptError)
    )


def text(value: Any) -> str:
    """A reply value as ``str``, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
