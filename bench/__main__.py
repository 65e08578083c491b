"""``python -m bench [--quick] [--repeats N] [--out PATH] [--only checkpoint]``: run everything,
write RESULTS.md (``--only checkpoint``: the LangGraph checkpointer section alone, replaced in
the existing RESULTS.md).

Starts its own redis-server processes (AOF off; AOF everysec) in a temporary directory and
stops them at the end; nothing else on the machine is touched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from agent_memory import ConversationStore, Settings
from agent_memory.embedded import RedisProcess
from bench import checkpoint, construct, counts, report, scale
from bench.subjects import TTL, Ours, OursSharedClient, Peer, all_subjects
from bench.workloads import Sizes, run_workloads, warm


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a few iterations (smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="repeats per workload (default 5)")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    p.add_argument("--no-api", action="store_true", help="leave the REST API part out")
    p.add_argument(
        "--only",
        choices=["checkpoint"],
        help="run one section and replace it in the existing report",
    )
    return p.parse_args(argv)


def _workloads(server: RedisProcess, sizes: Sizes, repeats: int) -> report.ServerRates:
    control = server.client()
    subjects = all_subjects(server.url)
    shared = OursSharedClient(server.url)
    try:
        control.flushdb()
        warm([*subjects, shared])
        rates = run_workloads(subjects, sizes, repeats, control.flushdb, only_w6=[shared])
    finally:
        for s in [*subjects, shared]:
            s.close()
    return report.ServerRates(server.appendonly, rates)


def _counts_memory_scale(server: RedisProcess, quick: bool) -> report.Static:
    control = server.client()
    control.flushdb()
    subjects = all_subjects(server.url)
    try:
        counted = counts.count_operations(control, subjects, 3 if quick else 20)
        ours, peer = (s for s in subjects if isinstance(s, Ours | Peer) and s.name != "peer-ttl")
        memory = counts.memory_per_message(control, ours, peer, 100 if quick else 1000)
    finally:
        for s in subjects:
            s.close()
    control.flushdb()
    settings = Settings.model_validate({"redis_url": server.url, "ttl_seconds": TTL})
    with ConversationStore.from_settings(settings) as store:
        reads = 20 if quick else 500
        scales = [
            scale.last_messages(store, 2_000 if quick else 100_000, reads),
            scale.listing(store, 200 if quick else 10_000, reads),
        ]
    return report.Static(counted, memory, scales)


def _only_checkpoint(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="agent-memory-bench-") as tmp:
        section = checkpoint.render(checkpoint.run(Path(tmp), args.quick))
    existing = (
        args.out.read_text(encoding="utf-8") if args.out.exists() else "# Benchmark results\n"
    )
    args.out.write_text(checkpoint.splice(existing, section), encoding="utf-8")
    print("\n".join(section))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.only == "checkpoint":
        return _only_checkpoint(args)
    sizes = Sizes.quick() if args.quick else Sizes()
    repeats = args.repeats or (1 if args.quick else 5)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agent-memory-bench-") as tmp:
        servers = [
            RedisProcess(Path(tmp) / "aof-off", appendonly=False),
            RedisProcess(Path(tmp) / "aof-everysec", appendonly=True, appendfsync="everysec"),
        ]
        try:
            for s in servers:
                s.start()
            rates = [_workloads(s, sizes, repeats) for s in servers]
            construction = construct.measure(servers[0].url, args.quick)
            static = _counts_memory_scale(servers[1], args.quick)
            from bench import api as api_bench

            api = None
            if not args.no_api:
                api = api_bench.render(api_bench.run(servers[1], quick=args.quick), args.quick)
            checkpoints = checkpoint.render(checkpoint.run(Path(tmp) / "checkpoint", args.quick))
            from bench import store as store_bench

            store_section = store_bench.run(servers[1], quick=args.quick)
            versions = report.versions(servers[1].client())
        finally:
            for s in servers:
                s.stop()
    text = report.render(
        rates,
        static,
        construction,
        versions,
        repeats,
        args.quick,
        time.monotonic() - started,
    )
    text = checkpoint.splice(text, checkpoints)
    if api is not None:
        text = api_bench.splice(text, api)
    text = store_bench.replace_section(text, store_section)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    # No gc.freeze(): a library user's process does not freeze its heap, so full GC passes
    # over the imported modules are part of what every subject costs (a run with the heap
    # frozen gave W3 2.57x / W4 2.56x the peer, one without it 2.47x / 2.28x).
    sys.exit(main())
