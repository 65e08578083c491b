"""The sans-IO protocol between the plans and the drivers that run them.

A plan is a generator that yields a :data:`Batch` of :class:`Call` s and receives their replies
(one list entry per call, in order); each batch is sent as one round trip (one command, or one
non-transactional pipeline). The plans (:mod:`agent_memory.plans`, composed into
:class:`agent_memory.core.StoreCore`) hold every bit of logic; the sync and async drivers
(:mod:`agent_memory.store`, :mod:`agent_memory.aio`) only carry batches to Redis and back, and
close the plan on every path. Nothing here imports redis-py.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from agent_memory import scripts
from agent_memory.replies import text as text  # re-exported for integrations

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One Redis command; ``script`` is set when the command is an EVALSHA of ours.

    When the server answers NOSCRIPT (its script cache is empty after a restart), the driver
    sends that call again as EVAL with the source, together with the calls after it in the
    batch that are not scripts (they may read what it writes); so after a script, a batch
    holds only reads or writes that are safe to repeat. Nothing before it is sent twice."""

    args: tuple[Any, ...]
    script: scripts.Script | None = None
    optional: bool = False
    """An optional call is sent alone; if the server refuses it (unknown or renamed command,
    no permission), the plan receives ``None`` instead of an error."""
    target: str | None = None
    """Cluster mode only: the node to send a keyless call to (a node name ``host:port``), or
    :data:`PRIMARIES` for every primary. A call with a target is sent alone; the plan gets
    the node's own reply, or for :data:`PRIMARIES` ``{node name: reply}`` (nothing summed or
    merged: that is the plan's business)."""

    @classmethod
    def run(cls, script: scripts.Script, keys: Sequence[str], argv: Sequence[Any]) -> Call:
        return cls(("EVALSHA", script.sha, len(keys), *keys, *argv), script)

    def command(self, with_source: bool = False) -> tuple[Any, ...]:
        """The arguments to send; ``with_source`` sends EVAL with the script's text instead."""
        if with_source and self.script is not None:
            return ("EVAL", self.script.source, *self.args[2:])
        return self.args


PRIMARIES = "primaries"
Batch = list[Call]
Plan = Generator[Batch, list[Any], T]
