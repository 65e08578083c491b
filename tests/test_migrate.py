"""Importing langchain_community's Redis histories: a history written by the peer's own class on
a real redis-server reads back equal through ours after the import; running it again adds
nothing; an import interrupted (a failure after N sessions, a failure mid-session, SIGKILL of
the CLI) completes when run again, without duplicates; the source is read only unless
``--delete-source``; what is skipped is counted with its reason. The library function runs on
fakeredis too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fakeredis
import pytest
import redis
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)
from typer.testing import CliRunner

from agent_memory import ConversationStore, RedisChatMessageHistory, Settings, StoreUnavailable
from agent_memory.cli import app
from agent_memory.embedded import RedisProcess
from agent_memory.migrate import ImportReport, derived_id, import_langchain_community
from agent_memory.plan import Plan

pytestmark = pytest.mark.redis_server
FROM = ["import", "--from", "langchain-community"]


def peer_class() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns that it is sunset
        from langchain_community.chat_message_histories import RedisChatMessageHistory

    return RedisChatMessageHistory


def conversation(n: int) -> list[BaseMessage]:
    """A realistic session: system prompt, turns with a tool call, repeated id-less texts."""
    out: list[BaseMessage] = [SystemMessage("You are a helpful assistant.")]
    for i in range(n):
        out.append(HumanMessage("ok" if i % 3 == 0 else f"question {i}"))
        call = {"name": "search", "args": {"q": f"q{i}"}, "id": f"call-{i}"}
        out.append(AIMessage("", tool_calls=[call], id=f"run-{i}"))
        out.append(ToolMessage(f"result {i}", tool_call_id=f"call-{i}"))
        out.append(AIMessage("ok"))  # the same id-less text again and again
    return out


SESSIONS = {"user-42": conversation(5), "user:7": conversation(2), "ユーザー": conversation(1)}


def settings(**values: Any) -> Settings:
    return Settings.model_validate({"redis_url": None, "redis_host": None, **values})


@dataclass
class Server:
    """A real server of the test's own: the peer's data in DB 0, ours in DB 2."""

    process: RedisProcess
    source: redis.Redis
    target: redis.Redis

    @property
    def url(self) -> str:
        return f"{self.process.url}/2"

    def store(self, **values: Any) -> ConversationStore:
        return ConversationStore(self.target, settings=settings(**values))


@pytest.fixture
def server(fresh_server: RedisProcess) -> Iterator[Server]:
    with fresh_server.client(db=0) as source, fresh_server.client(db=2) as target:
        yield Server(fresh_server, source, target)


def write_with_the_peer(server: Server, sessions: dict[str, list[BaseMessage]]) -> None:
    peer = peer_class()
    for sid, messages in sessions.items():
        history = peer(sid, url=f"{server.process.url}/0")
        for m in messages:
            history.add_message(m)
        history.redis_client.close()


def read_with_the_peer(server: Server, sid: str) -> list[BaseMessage]:
    history = peer_class()(sid, url=f"{server.process.url}/0")
    try:
        return list(history.messages)
    finally:
        history.redis_client.close()


def dump(client: redis.Redis) -> dict[bytes, Any]:
    """Every key of a database with its content (lists and streams) and whether it expires."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"list":
            value: Any = client.lrange(key, 0, -1)
        elif kind == b"stream":
            value = [fields for _, fields in client.xrange(key) or []]
        else:
            value = kind
        out[key] = (value, client.ttl(key) > 0)
    return out


def content(keys: dict[bytes, Any]) -> dict[bytes, Any]:
    """The stored data, without the append-token lists (transient retry state)."""
    return {k: v[0] for k, v in keys.items() if not k.endswith(b"}:t")}


# -- the import, through the library --------------------------------------------------------


def test_a_history_written_by_the_peer_reads_back_equal(server: Server) -> None:
    write_with_the_peer(server, SESSIONS)
    source_before = dump(server.source)
    report = import_langchain_community(server.store(), server.source)
    total = sum(len(m) for m in SESSIONS.values())
    assert (report.sessions, report.sessions_imported) == (3, 3)
    assert (report.messages_imported, report.messages_present) == (total, 0)
    assert not report.skipped
    assert not report.skipped_sessions
    for sid, written in SESSIONS.items():
        ours = RedisChatMessageHistory(sid, server.url)
        assert ours.messages == read_with_the_peer(server, sid) == written
        assert len(ours) == len(written)
        assert server.target.ttl(ours.key) > 0
    assert dump(server.source) == source_before  # read only


def test_running_it_again_adds_nothing(server: Server) -> None:
    write_with_the_peer(server, SESSIONS)
    first = import_langchain_community(server.store(), server.source)
    after_first = dump(server.target)
    again = import_langchain_community(server.store(), server.source)
    assert (again.messages_imported, again.sessions_imported) == (0, 0)
    assert again.messages_present == first.messages_imported
    assert content(dump(server.target)) == content(after_first)


def test_a_dry_run_counts_and_writes_nothing(server: Server) -> None:
    write_with_the_peer(server, SESSIONS)
    dry = import_langchain_community(server.store(), server.source, dry_run=True)
    assert server.target.dbsize() == 0
    real = import_langchain_community(server.store(), server.source)
    assert (dry.messages_imported, dry.sessions_imported) == (
        real.messages_imported,
        real.sessions_imported,
    )
    assert dry.lines()[0].startswith("3 sessions read; would import")
    half = import_langchain_community(server.store(), server.source, dry_run=True)
    assert (half.messages_imported, half.messages_present) == (0, real.messages_imported)


def test_new_messages_of_the_peer_are_taken_on_the_next_run(server: Server) -> None:
    write_with_the_peer(server, {"s": conversation(2)})
    import_langchain_community(server.store(), server.source)
    later: list[BaseMessage] = [HumanMessage("ok"), AIMessage("ok")]  # same texts as before
    write_with_the_peer(server, {"s": later})
    report = import_langchain_community(server.store(), server.source)
    assert report.messages_imported == 2
    assert RedisChatMessageHistory("s", server.url).messages == conversation(2) + later


def test_one_session_a_custom_prefix_and_a_target_prefix(server: Server) -> None:
    peer = peer_class()
    for sid in ("a", "b"):
        h = peer(sid, url=f"{server.process.url}/0", key_prefix="myapp:")
        h.add_message(HumanMessage(f"I am {sid}"))
        h.redis_client.close()
    from agent_memory.langchain import history_prefix

    store = ConversationStore(
        server.target, settings=settings(), key_prefix=history_prefix("myapp:")
    )
    report = import_langchain_community(store, server.source, source_prefix="myapp:", session="b")
    assert (report.sessions, report.messages_imported) == (1, 1)
    mine = RedisChatMessageHistory("b", server.url, "myapp:")  # the code keeps its key_prefix
    assert [m.content for m in mine.messages] == ["I am b"]
    assert RedisChatMessageHistory("a", server.url, "myapp:").messages == []
    missing = import_langchain_community(store, server.source, source_prefix="myapp:", session="z")
    assert missing.skipped_sessions == {"no list at the session's key": 1}


def test_what_cannot_be_imported_is_skipped_with_its_reason(server: Server) -> None:
    write_with_the_peer(server, {"mixed": [HumanMessage("fine"), AIMessage("x" * 500)]})
    key = b"message_store:mixed"
    server.source.lpush(key, b"not json")
    server.source.lpush(key, json.dumps({"type": "nonsense", "data": {}}))
    twice = json.dumps(message_to_dict(HumanMessage("dup", id="same-id")))
    server.source.lpush(key, twice, twice)
    server.source.lpush(b"message_store:bad\nid", twice)
    server.source.lpush(b"message_store:" + b"x" * 300, twice)
    server.source.set(b"message_store:not-a-list", b"x")
    report = import_langchain_community(server.store(max_message_bytes=300), server.source)
    assert report.skipped == {
        "larger than AGENT_MEMORY_MAX_MESSAGE_BYTES (300 bytes)": 1,
        "not JSON": 1,
        "not a LangChain message dict": 1,
        "a second message with an id already used in its session": 1,
    }
    assert report.skipped_sessions == {
        "session id refused (holds control characters)": 1,
        "session id refused (over 256 characters)": 1,
    }
    assert report.messages_imported == 2
    contents = [m.content for m in RedisChatMessageHistory("mixed", server.url).messages]
    assert contents == ["fine", "dup"]
    lines = report.lines()
    assert "skipped 1 messages: larger than AGENT_MEMORY_MAX_MESSAGE_BYTES (300 bytes)" in lines


def test_id_less_messages_get_ids_from_session_position_and_content(server: Server) -> None:
    raw = json.dumps(message_to_dict(AIMessage("ok"))).encode()
    assert derived_id("s", 3, raw) == derived_id("s", 3, raw)
    others = {derived_id("t", 3, raw), derived_id("s", 4, raw), derived_id("s", 3, raw + b" ")}
    assert derived_id("s", 3, raw) not in others
    write_with_the_peer(server, {"s": [AIMessage("ok")]})
    import_langchain_community(server.store(), server.source)
    (read,) = RedisChatMessageHistory("s", server.url).messages
    assert read.id is None  # stored as the peer stored it; the derived id is for idempotency


# -- interrupted imports complete -------------------------------------------------------------


class Failing(ConversationStore):
    """A store whose appends fail from the ``after``-th on (Redis gone mid-import)."""

    def __init__(self, client: redis.Redis, after: int) -> None:
        super().__init__(client, settings=settings())
        self.left = after

    def run(self, plan: Plan[Any]) -> Any:
        if getattr(plan, "__name__", "") == "peer_import":
            if self.left == 0:
                plan.close()
                raise StoreUnavailable("injected: Redis went away")
            self.left -= 1
        return super().run(plan)


def test_a_failure_after_some_sessions_completes_on_the_next_run(server: Server) -> None:
    sessions = {f"s{i}": conversation(3) for i in range(6)}
    write_with_the_peer(server, sessions)
    done: list[str] = []

    def stop_after_two(report: ImportReport, session_id: str) -> None:
        done.append(session_id)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_langchain_community(server.store(), server.source, progress=stop_after_two)
    rest = import_langchain_community(server.store(), server.source)
    per_session = len(conversation(3))
    assert rest.messages_present == 2 * per_session
    assert rest.messages_imported == 4 * per_session
    for sid, written in sessions.items():
        assert RedisChatMessageHistory(sid, server.url).messages == written


def test_a_failure_in_the_middle_of_a_session_completes_without_duplicates(server: Server) -> None:
    write_with_the_peer(server, {"long": conversation(10)})  # 41 messages, chunks of 5
    with pytest.raises(StoreUnavailable):
        import_langchain_community(Failing(server.target, after=3), server.source, chunk=5)
    assert len(RedisChatMessageHistory("long", server.url)) == 15  # three whole chunks
    rest = import_langchain_community(server.store(), server.source, chunk=5)
    assert (rest.messages_present, rest.messages_imported) == (15, 26)
    assert RedisChatMessageHistory("long", server.url).messages == conversation(10)


def test_sigkill_of_the_cli_mid_import_then_a_rerun_completes(server: Server) -> None:
    count = 1500
    pipe = server.source.pipeline(transaction=False)
    payloads = [json.dumps(message_to_dict(m)) for m in conversation(2)]
    for i in range(count):
        pipe.lpush(f"message_store:bulk-{i:05}", *payloads)
    pipe.execute()
    args = ["import", "--from", "langchain-community", "--url", server.url, "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    code = "from agent_memory.cli import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env)
    try:
        deadline = time.monotonic() + 60
        while server.target.zcard("agent_memory:x:all") < 50:
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = server.target.zcard("agent_memory:x:all")
    assert 50 <= partial < count
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert server.target.zcard("agent_memory:x:all") == count
    for i in (0, count // 2, count - 1):
        sid = f"bulk-{i:05}"
        assert RedisChatMessageHistory(sid, server.url).messages == conversation(2)


# -- the command line ---------------------------------------------------------------------------


def test_the_cli_imports_reports_and_is_idempotent(server: Server) -> None:
    write_with_the_peer(server, SESSIONS)
    total = sum(len(m) for m in SESSIONS.values())
    base = ["import", "--from", "langchain-community", "--url", server.url]
    runner = CliRunner()
    dry = runner.invoke(app, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"3 sessions read; would import {total} messages into 3 conversations" in dry.output
    assert server.target.dbsize() == 0
    first = runner.invoke(app, base)
    assert f"imported {total} messages into 3 conversations; 0 already present" in first.output
    again = runner.invoke(app, base)
    assert f"imported 0 messages into 0 conversations; {total} already present" in again.output
    one = runner.invoke(app, [*base, "--session", "user:7", "--source-db", "0"])
    assert "1 sessions read" in one.output
    assert RedisChatMessageHistory("user-42", server.url).messages == SESSIONS["user-42"]


def test_the_cli_reads_another_server_and_database(
    server: Server, redis_server: RedisProcess
) -> None:
    with redis_server.client(db=4) as elsewhere:
        elsewhere.flushdb()
        elsewhere.lpush("message_store:far", json.dumps(message_to_dict(HumanMessage("far"))))
        result = CliRunner().invoke(
            app,
            [*FROM, "--url", server.url, "--source-url", f"{redis_server.url}/4"],
        )
        elsewhere.flushdb()
    assert result.exit_code == 0, result.output
    assert [m.content for m in RedisChatMessageHistory("far", server.url).messages] == ["far"]


def test_the_cli_refuses_unknown_peers_and_a_file_with_from(server: Server) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["import", "--from", "mem0", "--url", server.url])
    assert unknown.exit_code == 1
    assert "--from takes one of: langchain-community" in unknown.output
    assert runner.invoke(app, ["import", "--url", server.url]).exit_code == 1


def test_delete_source_deletes_only_what_is_fully_imported(server: Server) -> None:
    write_with_the_peer(server, {"clean": conversation(1), "partial": conversation(1)})
    server.source.lpush("message_store:partial", b"not json")
    report = import_langchain_community(server.store(), server.source, delete_source=True)
    assert report.sources_deleted == 1
    assert report.skipped_sessions == {"source kept: some of its messages were skipped": 1}
    assert not server.source.exists("message_store:clean")
    assert server.source.llen("message_store:partial") == len(conversation(1)) + 1
    assert RedisChatMessageHistory("clean", server.url).messages == conversation(1)
    dry = import_langchain_community(
        server.store(), server.source, dry_run=True, delete_source=True
    )
    assert dry.sources_deleted == 0
    assert server.source.exists("message_store:partial")


def test_a_source_that_grew_since_it_was_read_is_kept(server: Server) -> None:
    server.source.lpush("message_store:s", "a", "b")
    source = ConversationStore(server.source, settings=settings())
    server.source.lpush("message_store:s", "c")  # the peer wrote meanwhile
    assert source.peer_delete(b"message_store:s", 2) == -1
    assert server.source.llen("message_store:s") == 3
    assert source.peer_delete(b"message_store:s", 3) == 1
    assert source.peer_delete(b"message_store:s", 3) == 0


# -- fakeredis: the same library function ------------------------------------------------------


def test_the_import_on_fakeredis() -> None:
    fake = fakeredis.FakeServer()
    source = fakeredis.FakeRedis(server=fake, db=0)
    target = fakeredis.FakeRedis(server=fake, db=2)
    for sid, messages in SESSIONS.items():
        for m in messages:
            source.lpush(f"message_store:{sid}", json.dumps(message_to_dict(m)))
    store = ConversationStore(target, settings=settings())
    first = import_langchain_community(store, source)
    again = import_langchain_community(store, source)
    assert first.messages_imported == again.messages_present == sum(map(len, SESSIONS.values()))
    for sid, written in SESSIONS.items():
        h = RedisChatMessageHistory(sid, redis_client=target, settings=settings())
        assert h.messages == written
