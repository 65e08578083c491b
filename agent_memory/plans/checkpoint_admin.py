"""LangGraph thread maintenance as plans: delete_thread, prune, delete_for_runs, copy_thread,
and the channel versions the savers hand out."""

from __future__ import annotations

import random
from collections.abc import Sequence

from agent_memory.errors import InvalidInput
from agent_memory.keys import validate_id
from agent_memory.plan import Call, Plan
from agent_memory.plans.checkpoint_context import CheckpointContext
from agent_memory.plans.checkpoint_format import SEP, as_bytes, part

PRUNE_STRATEGIES = ("keep_latest", "delete")
PER_BATCH = 100  # threads or runs per round trip


class CheckpointAdminPlans(CheckpointContext):
    def delete_thread(self, thread_id: str) -> Plan[None]:
        """The thread is the conversation: its messages, metadata and checkpoints go."""
        self.known.forget(thread_id)
        yield from self.store.delete_conversation(str(thread_id))

    def prune(self, thread_ids: Sequence[str], strategy: str = "keep_latest") -> Plan[None]:
        """``keep_latest``: the newest checkpoint of each namespace stays (with its writes and
        values); ``delete``: every checkpoint goes. The conversation's messages stay."""
        if strategy not in PRUNE_STRATEGIES:
            raise InvalidInput(
                f"strategy must be one of {', '.join(PRUNE_STRATEGIES)}, not {strategy!r}",
                field="strategy",
            )
        ids = [validate_id(str(t), "thread_id") for t in thread_ids]
        for i in range(0, len(ids), PER_BATCH):
            yield [self._admin(t, "prune", strategy) for t in ids[i : i + PER_BATCH]]

    def delete_for_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        """The runs' checkpoints and writes, in every thread the run index names."""
        index = self.store.config.keys.index_runs
        runs = [part(str(r), "run_id") for r in run_ids]
        for i in range(0, len(runs), PER_BATCH):
            chunk = runs[i : i + PER_BATCH]
            found = yield [
                Call(("ZRANGEBYLEX", index, b"[" + r + SEP, b"[" + r + SEP + b"\xff"))
                for r in chunk
            ]
            by_thread: dict[str, list[bytes]] = {}
            entries: list[bytes] = []
            for run, members in zip(chunk, found, strict=True):
                for entry in map(as_bytes, members):
                    entries.append(entry)
                    by_thread.setdefault(entry[len(run) + 1 :].decode(), []).append(run)
            if by_thread:
                yield [
                    *(self._admin(t, "runs", *rs) for t, rs in by_thread.items()),
                    Call(("ZREM", index, *entries)),
                ]

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> Plan[None]:
        """The target becomes a copy of the source's checkpoints, writes and messages (its
        own are replaced: DUMP, then DEL + RESTORE), with its own metadata and expiry."""
        source = self.store.conversation_keys(validate_id(str(source_thread_id), "thread_id"))
        target_id = validate_id(str(target_thread_id), "thread_id")
        target = self.store.conversation_keys(target_id)
        pairs = [
            (source.checkpoints, target.checkpoints),
            (source.data, target.data),
            (source.writes, target.writes),
            (source.runs, target.runs),
            (source.stream, target.stream),
            (source.ids, target.ids),
        ]
        dumps = yield [Call(("DUMP", src)) for src, _ in pairs]
        if dumps[0] is None:
            return
        self.known.forget(target_id)
        restores = [Call(("DEL", *(dst for _, dst in pairs)))] + [
            Call(("RESTORE", dst, self._ttl, dump, "REPLACE"))
            for (_, dst), dump in zip(pairs, dumps, strict=True)
            if dump is not None
        ]
        replies = yield [*restores, self._admin(target_id, "copied")]
        reply = replies[-1]
        if self.store.config.cluster:
            yield from self.store._touch_indexes(target_id, reply[-4:])
            runs = [as_bytes(r) for r in reply[0]]
            if runs:
                yield self._run_index_calls(runs, target_id)

    @staticmethod
    def next_version(current: str | int | float | None) -> str:
        """Versions that sort as strings (a zero-padded counter) with a random tail, so that
        two runs forking from one checkpoint never give one channel the same version (and
        overwrite each other's value): ``0000000007.9f86d081``. Short on purpose: every
        checkpoint record names each channel's version twice or more."""
        if current is None:
            number = 0
        elif isinstance(current, int | float):
            number = int(current)
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:010d}.{random.getrandbits(32):08x}"
