"""Run a plan without Redis: ``drive(plan, replies)`` answers each batch the plan yields with
the next scripted replies and returns ``(result, batches sent)``.

A plan (see :mod:`agent_memory.plan`) is a generator that yields batches of ``Call`` s and
receives one list of replies per batch, so paging, pruning and cluster fan-out can be tested
as pure functions: what the plan sends, given what Redis would answer. A scripted reply is a
list (one reply per call of the batch), a function of the batch that returns that list, or an
exception: the round trip failed, and the exception propagates as it does from a store's
driver. The plan is closed on every path, as the drivers close it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from agent_memory.plan import Batch, Plan, text

T = TypeVar("T")
Reply = list[Any] | Callable[[Batch], list[Any]] | BaseException


def _answer(batch: Batch, reply: Reply, number: int) -> list[Any]:
    if isinstance(reply, BaseException):
        raise reply
    replies = reply(batch) if callable(reply) else reply
    if len(replies) != len(batch):
        raise AssertionError(
            f"batch {number} has {len(batch)} calls but {len(replies)} scripted replies: "
            f"{commands([batch])}"
        )
    return replies


def drive(plan: Plan[T], replies: Iterable[Reply]) -> tuple[T, list[Batch]]:
    """Run ``plan`` against ``replies`` (one entry per batch, in order); every scripted reply
    must be used."""
    script = iter(replies)
    sent: list[Batch] = []
    try:
        batch = next(plan)
        while True:
            sent.append(batch)
            reply = next(script, None)
            if reply is None:
                raise AssertionError(
                    f"the plan sent batch {len(sent)} but only {len(sent) - 1} were scripted: "
                    f"{commands([batch])}"
                )
            batch = plan.send(_answer(batch, reply, len(sent)))
    except StopIteration as done:
        left = list(script)
        if left:
            raise AssertionError(
                f"the plan finished after {len(sent)} batches; {len(left)} scripted replies "
                "were not used"
            ) from None
        result: T = done.value
        return result, sent
    finally:
        plan.close()


def commands(batches: Iterable[Batch]) -> list[list[str]]:
    """The command name of each call, batch by batch (a script call by its script's name),
    for short assertions on what a plan sends (a name sent as bytes read as text)."""
    return [[c.script.name if c.script else text(c.args[0]) for c in batch] for batch in batches]
