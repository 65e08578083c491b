"""agent-memory export / import: JSON Lines that round-trip conversations exactly (messages
byte-equal under their cursors, metadata, absolute expiry), idempotent re-import, resumable
after an interruption, bounded reads, and the CLI commands."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from typer.testing import CliRunner

from agent_memory import ConversationStore, InvalidInput
from agent_memory.cli import app
from agent_memory.embedded import RedisProcess
from agent_memory.transfer import export_jsonl, import_jsonl
from tests.support.backends import Backend, snapshot
from tests.support.settings import make_settings


def _fill(store: ConversationStore) -> None:
    store.create("a {b}*", user_id="u1", agent_id="g1", title="Tïtle", metadata={"k": [1, 2]})
    store.append(
        "a {b}*",
        [
            HumanMessage("hi", id="h1"),
            AIMessage("", tool_calls=[{"id": "t1", "name": "f", "args": {"x": 1.5}}]),
            ToolMessage("42", tool_call_id="t1", artifact={"raw": [None, True]}),
        ],
    )
    for i in range(7):
        store.append("long", [{"role": "user", "content": f"m{i} ✓"}])
    store.create("empty", title="no messages yet")


def _export(store: ConversationStore, chunk: int = 3) -> str:
    out = io.StringIO()
    export_jsonl(store, out, chunk=chunk)
    return out.getvalue()


def test_export_then_import_into_an_empty_db_restores_everything_exactly(
    backend: Backend, store: ConversationStore
) -> None:
    _fill(store)
    before = snapshot(backend.client, tokens=False)
    text = _export(store)
    store.clear_all()
    stats = import_jsonl(store, io.StringIO(text), chunk=2)
    assert (stats.conversations, stats.messages) == (3, 10)
    assert (
        snapshot(backend.client, tokens=False) == before
    )  # byte-equal entries, same cursors, same expiry
    restored = store.get_messages("a {b}*")
    assert next(m.to_langchain() for m in restored) == HumanMessage("hi", id="h1")
    assert store.append("a {b}*", [HumanMessage("again", id="h1")])[0].added is False


def test_the_export_format_is_one_conversation_line_then_its_messages(
    store: ConversationStore,
) -> None:
    _fill(store)
    lines = [json.loads(x) for x in _export(store).splitlines()]
    heads = [x for x in lines if x["type"] == "conversation"]
    assert sorted(h["id"] for h in heads) == ["a {b}*", "empty", "long"]
    long_head = lines.index(next(h for h in heads if h["id"] == "long"))
    body = lines[long_head + 1 : long_head + 8]
    assert [m["message"]["content"] for m in body] == [f"m{i} ✓" for i in range(7)]
    assert all(m["conversation"] == "long" for m in body)
    head = next(h for h in heads if h["id"] == "a {b}*")
    assert head["meta"]["user_id"] == "u1"
    assert "index_user" not in head["meta"]
    assert head["expires_at_ms"] > 0


def test_reimport_adds_nothing_and_existing_conversations_win(
    backend: Backend, store: ConversationStore
) -> None:
    _fill(store)
    text = _export(store)
    store.append("long", [{"role": "user", "content": "written after the export"}])
    before = snapshot(backend.client, tokens=False)
    stats = import_jsonl(store, io.StringIO(text))
    assert (stats.conversations, stats.messages, stats.skipped_existing) == (0, 0, 3)
    assert snapshot(backend.client, tokens=False) == before


def test_an_interrupted_import_completes_when_run_again(
    backend: Backend, store: ConversationStore
) -> None:
    _fill(store)
    before = snapshot(backend.client, tokens=False)
    text = _export(store)
    store.clear_all()
    lines = text.splitlines(keepends=True)
    cut = next(i for i, x in enumerate(lines) if '"m3 ✓"' in x)
    with pytest.raises(InvalidInput):  # a truncated line: the import stops there
        import_jsonl(store, [*lines[:cut], lines[cut][:20]], chunk=2)
    assert store.get_messages("long")  # partly restored, every key with its TTL
    assert all(backend.client.pttl(k) > 0 for k in backend.client.scan_iter("agent_memory:*"))
    import_jsonl(store, io.StringIO(text), chunk=2)
    assert snapshot(backend.client, tokens=False) == before


def test_import_under_another_prefix_rebuilds_the_indexes(store: ConversationStore) -> None:
    _fill(store)
    text = _export(store)
    other = ConversationStore(store.client, settings=make_settings(key_prefix="copy"))
    import_jsonl(other, io.StringIO(text))
    page = other.list_conversations(user_id="u1")
    assert [c.id for c in page.items] == ["a {b}*"]
    assert [c.id for c in other.list_conversations(agent_id="g1").items] == ["a {b}*"]


def test_an_expired_conversation_is_not_restored(store: ConversationStore) -> None:
    _fill(store)
    lines = _export(store).splitlines()
    head = json.loads(lines[0])
    head["expires_at_ms"] = 1000  # 1970
    stats = import_jsonl(
        store.__class__(store.client, settings=make_settings(key_prefix="x")),
        [json.dumps(head), *lines[1:]],
    )
    assert stats.skipped_expired == 1


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("not json", "not JSON"),
        ('{"type": "message", "conversation": "c", "cursor": "1-0", "message": {}}', "follow"),
        ('{"type": "conversation", "id": "", "meta": {}, "expires_at_ms": 1}', "bad conversation"),
        ('{"type": "other"}', "expected an object"),
    ],
)
def test_bad_lines_are_refused_with_their_line_number(
    store: ConversationStore, line: str, says: str
) -> None:
    with pytest.raises(InvalidInput, match=f"line 1: .*{says}|line 1: {says}"):
        import_jsonl(store, [line])


def test_export_reads_streams_in_bounded_chunks(store: ConversationStore) -> None:
    store.append("big", [{"role": "user", "content": str(i)} for i in range(25)])
    calls: list[tuple[Any, ...]] = []
    real = store._execute

    def spy(batch: Any) -> list[Any]:
        calls.extend(c.args for c in batch)
        return real(batch)

    store._execute = spy  # type: ignore[method-assign]
    assert _export(store, chunk=10).count('"type":"message"') == 25
    xranges = [c for c in calls if c[0] == "XRANGE"]
    assert [c[-2:] for c in xranges] == [("COUNT", 10)] * 3
    assert not [c for c in calls if c[0] in ("KEYS", "PEXPIRE")]  # no KEYS, no TTL refresh


@pytest.mark.redis_server
def test_cli_export_and_import_between_two_servers(
    tmp_path: Path, fresh_server: RedisProcess
) -> None:
    source = ConversationStore.from_url(f"{fresh_server.url}/2")
    _fill(source)
    before = snapshot(fresh_server.client(db=2), tokens=False)
    dump = tmp_path / "memory.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["export", "--url", f"{fresh_server.url}/2", "-o", str(dump)])
    assert result.exit_code == 0, result.output
    assert "3 conversations, 10 messages" in result.output
    with RedisProcess(tmp_path / "target") as target:
        url = f"{target.url}/2"
        result = runner.invoke(app, ["import", str(dump), "--url", url])
        assert result.exit_code == 0, result.output
        assert "restored 3 conversations, 10 messages" in result.output
        assert snapshot(target.client(db=2), tokens=False) == before
        again = runner.invoke(app, ["import", str(dump), "--url", url])
        assert "restored 0 conversations, 0 messages; 3 already present" in again.output
    source.close()
