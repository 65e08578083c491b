"""The benchmark suite still runs: ``python -m bench --quick`` end to end, in seconds.

Not a speed test (nothing here looks at a timing): it checks that every part of the suite
runs against real servers and writes its report, so the benchmark code cannot rot.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.redis_server


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The RESULTS.md of one quick run (servers, workloads, counts, scale, API)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    bench_main = importlib.import_module("bench.__main__")
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    assert bench_main.main(["--quick", "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_quick_run_writes_every_section_of_the_report(report: str) -> None:
    for section in (
        "## Targets",
        "### AOF off",
        "### AOF everysec",
        "## Round trips and server commands per operation",
        "## Memory per stored message",
        "## Scale",
        "| agent-memory serve |",
        "| bare FastAPI route |",
        "## LangGraph checkpointers",
        "### Agent turns/s",
        "### Per turn",
        "### One thread's size",
        "## LangGraph store (BaseStore)",
        "| search (filter, limit 10) |",
    ):
        assert section in report
    for workload in ("W1", "W2", "W3", "W4", "W5", "W6"):
        assert f"| {workload} " in report


def test_ours_takes_one_round_trip_per_append_and_per_read(report: str) -> None:
    for subject in ("ours", "ours-async"):
        for op in ("add_message", "add_messages (10)", "read 50 messages"):
            assert f"| {subject} | {op} | 1 |" in report


def test_every_checkpointer_runs_and_ours_takes_a_round_trip_per_saver_call(report: str) -> None:
    section = report.split("## LangGraph checkpointers", 1)[1]
    assert "cannot run here" not in section
    for subject in ("InMemorySaver", "plainredis", "aws-valkey", "sqlite", "ours"):
        assert f"| {subject} | " in section
    assert "| one round trip per checkpointer call (get_tuple, put, put_writes) |" in section
    row = section.split("| one round trip per checkpointer call", 1)[1].split("\n", 1)[0]
    assert row.endswith("| yes |")
    # the floor of one bare round trip per call: 6 per turn, one command each, nothing stored
    assert "| 1-RT floor | 6 | 6 | 1 | 3 | 2 |" in section
    assert "| 1-RT floor |" not in section.split("### One thread's size", 1)[1]
