"""The store over TLS: a redis-server with ``--port 0 --tls-port N --tls-auth-clients yes`` and
certificates made here with trustme. Needs a redis-server built with TLS (the one on this
machine is); one built without it fails the fixture loudly ("Bad directive")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import trustme
from redis.backoff import NoBackoff
from redis.retry import Retry

from agent_memory import AsyncConversationStore, ConversationStore, StoreUnavailable
from tests.support.servers import TlsServer
from tests.support.settings import make_settings

pytestmark = pytest.mark.redis_server


@dataclass
class Tls:
    port: int
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    root = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("agent-memory-client")
    paths = {name: root / f"{name}.pem" for name in ("ca", "srv", "srvkey", "cli", "clikey")}
    ca.cert_pem.write_to_path(paths["ca"])
    server_cert.cert_chain_pems[0].write_to_path(paths["srv"])
    server_cert.private_key_pem.write_to_path(paths["srvkey"])
    client_cert.cert_chain_pems[0].write_to_path(paths["cli"])
    client_cert.private_key_pem.write_to_path(paths["clikey"])
    server = TlsServer(
        root / "server",
        paths["srv"],
        paths["srvkey"],
        paths["ca"],
        client_cert=(paths["cli"], paths["clikey"]),
    )
    yield Tls(server.tls_port, paths["ca"], paths["cli"], paths["clikey"])
    server.stop()


def test_plaintext_connections_are_refused(tls: Tls) -> None:
    # The server never answers plaintext (it waits for a TLS handshake): a timeout.
    plain = redis.Redis(port=tls.port, socket_timeout=0.3, retry=Retry(NoBackoff(), 0))
    with plain, pytest.raises(redis.ConnectionError):
        plain.ping()
    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{tls.port}/2", retries=0, socket_timeout=0.3
    )
    with ConversationStore.from_settings(settings) as store, pytest.raises(StoreUnavailable):
        store.ping()


def test_a_server_certificate_from_an_unknown_ca_is_refused(tls: Tls) -> None:
    settings = make_settings(
        redis_url=f"rediss://127.0.0.1:{tls.port}/2",
        redis_tls_cert=tls.cert,
        redis_tls_key=tls.key,
        retries=0,
    )
    with ConversationStore.from_settings(settings) as store, pytest.raises(StoreUnavailable):
        store.ping()


def test_a_client_without_its_certificate_is_refused(tls: Tls) -> None:
    settings = make_settings(
        redis_url=f"rediss://127.0.0.1:{tls.port}/2", redis_tls_ca_cert=tls.ca, retries=0
    )
    with ConversationStore.from_settings(settings) as store, pytest.raises(StoreUnavailable):
        store.append("c", [{"role": "user", "content": "x"}])


def test_the_store_works_over_tls_with_a_rediss_url(tls: Tls) -> None:
    settings = make_settings(
        redis_url=f"rediss://127.0.0.1:{tls.port}/2",
        redis_tls_ca_cert=tls.ca,
        redis_tls_cert=tls.cert,
        redis_tls_key=tls.key,
    )
    with ConversationStore.from_settings(settings) as store:
        store.create("tls-1", user_id="ada")
        store.append("tls-1", [{"role": "user", "content": "over TLS", "id": "m"}])
        assert [m.record["content"] for m in store.get_messages("tls-1")] == ["over TLS"]
        assert [c.id for c in store.list_conversations(user_id="ada").items] == ["tls-1"]
        assert store.delete_conversation("tls-1")


async def test_the_async_store_works_over_tls_with_redis_tls_and_host(tls: Tls) -> None:
    settings = make_settings(
        redis_host="127.0.0.1",
        redis_port=tls.port,
        redis_tls=True,
        redis_tls_ca_cert=tls.ca,
        redis_tls_cert=tls.cert,
        redis_tls_key=tls.key,
    )
    assert settings.url.startswith("rediss://")
    async with AsyncConversationStore.from_settings(settings) as store:
        await store.append("tls-2", [{"role": "user", "content": "x"}])
        assert len(await store.get_messages("tls-2")) == 1
        assert await store.delete_conversation("tls-2")
