"""TLS listeners with real clients: confluent-kafka (librdkafka), kafka-python,
aiokafka and raw frames over an SSL listener next to a PLAINTEXT one; the
principal taken from client certificates; what a wrong CA, a missing client
certificate or plaintext to the TLS port get."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from strom.testing.tls import TestCertificateAuthority
from tests.broker.raw_client import RawClient

# kafka-python 3 loads its schemas with importlib.resources' legacy API.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*is deprecated. Use files\\(\\) instead:DeprecationWarning")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCertificateAuthority:
    return TestCertificateAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def broker(ca: TestCertificateAuthority) -> Iterator[EmbeddedBroker]:
    # Client certificates requested, not required: clients with and without.
    with EmbeddedBroker(tls=ca, tls_client_auth="requested") as b:
        yield b


def principal_of(broker: EmbeddedBroker, client: RawClient) -> str:
    """The principal the broker gave the connection of `client`."""
    local = client._sock.getsockname()
    peer = f"{local[0]}:{local[1]}"

    async def find() -> list[str]:
        return [str(t.get_protocol().principal) for t in broker._broker._connections
                if t.get_protocol().peer == peer]

    found = broker.run(find())
    assert len(found) == 1, found
    return str(found[0])


def api_versions(client: RawClient) -> Any:
    return client.send(ApiKey.API_VERSIONS, 3, {"client_software_name": "t",
                                                "client_software_version": "1"})


def produce_consume_confluent(bootstrap: str, settings: dict[str, Any], count: int,
                              value_size: int = 100) -> list[bytes]:
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap, **settings})
    values = [f"{i:08d}".encode() * (value_size // 8) for i in range(count)]
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", **settings})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got) < count and time.monotonic() < deadline:
        for message in consumer.consume(1000, 1.0):
            assert message.error() is None, message.error()
            payload = message.value()
            assert payload is not None
            got.append(payload)
    consumer.close()
    assert got == values
    return got


def test_confluent_kafka_produce_consume_over_ssl(broker: EmbeddedBroker,
                                                  ca: TestCertificateAuthority) -> None:
    # ~6 MB: several fetches of full batches through the TLS transport.
    produce_consume_confluent(broker.bootstrap_for("SSL"), ca.confluent_config(), 600,
                              value_size=10_000)


def test_kafka_python_over_ssl(broker: EmbeddedBroker, ca: TestCertificateAuthority) -> None:
    from kafka import KafkaConsumer, KafkaProducer  # type: ignore[import-untyped]

    topic = f"tls-kp-{uuid.uuid4().hex[:8]}"
    alice = ca.client_certificate("alice-kp")
    settings: dict[str, Any] = {"bootstrap_servers": broker.bootstrap_for("SSL"),
                                "security_protocol": "SSL", "ssl_cafile": str(ca.ca_path),
                                "ssl_certfile": str(alice.cert_path),
                                "ssl_keyfile": str(alice.key_path)}
    producer = KafkaProducer(**settings)
    for i in range(50):
        producer.send(topic, f"v{i}".encode())
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=20000,
                             **settings)
    got = []
    for message in consumer:
        got.append(message.value)
        if len(got) == 50:
            break
    consumer.close()
    assert got == [f"v{i}".encode() for i in range(50)]


def test_aiokafka_over_ssl(broker: EmbeddedBroker, ca: TestCertificateAuthority) -> None:
    from aiokafka import (  # type: ignore[import-untyped]
        AIOKafkaConsumer,
        AIOKafkaProducer,
    )

    topic = f"tls-aio-{uuid.uuid4().hex[:8]}"

    async def run() -> list[bytes]:
        settings: dict[str, Any] = {"bootstrap_servers": broker.bootstrap_for("SSL"),
                                    "security_protocol": "SSL",
                                    "ssl_context": ca.ssl_context()}
        producer = AIOKafkaProducer(**settings)
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait(topic, f"a{i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **settings)
        await consumer.start()
        got: list[bytes] = []
        try:
            async with asyncio.timeout(30):
                async for message in consumer:
                    assert message.value is not None
                    got.append(message.value)
                    if len(got) == 20:
                        break
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == [f"a{i}".encode() for i in range(20)]


def test_principal_is_the_certificate_subject_dn_or_anonymous(
        broker: EmbeddedBroker, ca: TestCertificateAuthority) -> None:
    alice = ca.client_certificate("alice", organization_unit="payments")
    with RawClient(broker.bootstrap_for("SSL"), ssl_context=ca.ssl_context(alice)) as client:
        assert api_versions(client).error_code == 0
        # Kafka's default rule: the whole DN in RFC 2253 form.
        assert principal_of(broker, client) == f"User:{alice.dn}"
        assert alice.dn.startswith("CN=alice,OU=payments,O=")
    with RawClient(broker.bootstrap_for("SSL"), ssl_context=ca.ssl_context()) as client:
        assert api_versions(client).error_code == 0
        assert principal_of(broker, client) == "User:ANONYMOUS"
    with RawClient(broker.bootstrap) as client:
        assert api_versions(client).error_code == 0
        assert principal_of(broker, client) == "User:ANONYMOUS"


def test_each_listener_answers_with_its_own_endpoints(broker: EmbeddedBroker,
                                                      ca: TestCertificateAuthority) -> None:
    for listener, context in (("PLAINTEXT", None), ("SSL", ca.ssl_context())):
        port = broker.listener_ports[listener]
        with RawClient(broker.bootstrap_for(listener), ssl_context=context) as client:
            metadata = client.send(ApiKey.METADATA, 12, {
                "topics": None, "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False})
            assert [(b.host, b.port) for b in metadata.brokers] == [("127.0.0.1", port)]
            cluster = client.send(ApiKey.DESCRIBE_CLUSTER, 1, {
                "include_cluster_authorized_operations": False})
            assert [(b.host, b.port) for b in cluster.brokers] == [("127.0.0.1", port)]
            coordinator = client.send(ApiKey.FIND_COORDINATOR, 4,
                                      {"key_type": 0, "coordinator_keys": ["g-endpoints"]})
            found = coordinator.coordinators[0]
            if found.error_code == 0:  # the offsets topic may still be being created
                assert (found.host, found.port) == ("127.0.0.1", port)


def test_a_client_trusting_another_ca_fails_the_handshake(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    other = TestCertificateAuthority(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        RawClient(broker.bootstrap_for("SSL"), ssl_context=other.ssl_context())


def test_plaintext_to_the_tls_port_is_closed_and_others_are_served(
        broker: EmbeddedBroker, ca: TestCertificateAuthority) -> None:
    host, _, port = broker.bootstrap_for("SSL").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # An ApiVersions v0 frame where a TLS ClientHello is expected.
        sock.sendall(b"\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04test")
        started = time.monotonic()
        data = b"x"
        try:
            while data:
                data = sock.recv(4096)  # an alert at most, then end of stream
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 5
    with RawClient(broker.bootstrap_for("SSL"), ssl_context=ca.ssl_context()) as client:
        assert api_versions(client).error_code == 0


def test_required_client_auth_and_mapping_rules(ca: TestCertificateAuthority) -> None:
    rules = "RULE:^CN=(.*?),OU=ServiceUsers,.*$/$1/L"  # no DEFAULT: other DNs are refused
    with EmbeddedBroker(tls=ca, tls_client_auth="required",
                        overrides={"ssl.principal.mapping.rules": rules}) as broker:
        service = ca.client_certificate("Billing", organization_unit="ServiceUsers")
        with RawClient(broker.bootstrap_for("SSL"),
                       ssl_context=ca.ssl_context(service)) as client:
            assert api_versions(client).error_code == 0
            assert principal_of(broker, client) == "User:billing"
        # Without a certificate the TLS 1.3 handshake fails on the server's
        # side: the client learns it at its first read.
        with (pytest.raises((ssl.SSLError, ConnectionError)),
              RawClient(broker.bootstrap_for("SSL"), ssl_context=ca.ssl_context()) as client):
            api_versions(client)
        # A DN no rule maps: Kafka fails the authentication; the connection closes.
        person = ca.client_certificate("carol", organization_unit="People")
        with (pytest.raises((ssl.SSLError, ConnectionError, EOFError, OSError)),
              RawClient(broker.bootstrap_for("SSL"),
                        ssl_context=ca.ssl_context(person)) as client):
            api_versions(client)
        # The broker serves on.
        produce_consume_confluent(broker.bootstrap_for("SSL"),
                                  ca.confluent_config(service), 10)


def test_describe_configs_never_answers_tls_passwords(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    ca = TestCertificateAuthority(tmp_path / "ca")
    pem = ca.server_keystore_path.read_bytes()
    chain = x509.load_pem_x509_certificates(pem)
    store = tmp_path / "broker.p12"
    store.write_bytes(pkcs12.serialize_key_and_certificates(
        b"broker", serialization.load_pem_private_key(pem, None),  # type: ignore[arg-type]
        chain[0], chain[1:], serialization.BestAvailableEncryption(b"hunter2")))
    overrides = {**ca.server_overrides(), "ssl.keystore.type": "PKCS12",
                 "ssl.keystore.location": str(store), "ssl.keystore.password": "hunter2",
                 "ssl.key.password": "hunter2"}
    with EmbeddedBroker(tls=ca, overrides=overrides) as broker, \
            RawClient(broker.bootstrap) as client:
        response = client.send(ApiKey.DESCRIBE_CONFIGS, 4, {
            "resources": [{"resource_type": 4, "resource_name": "1",
                           "configuration_keys": ["ssl.keystore.password",
                                                  "ssl.key.password", "ssl.client.auth"]}],
            "include_synonyms": True, "include_documentation": False})
    entries = {c.name: c for c in response.results[0].configs}
    for name in ("ssl.keystore.password", "ssl.key.password"):
        assert entries[name].is_sensitive
        assert entries[name].value is None
        assert [s.value for s in entries[name].synonyms] == [None]
    assert entries["ssl.client.auth"].value == "none"
    assert b"hunter" not in repr(response).encode()
