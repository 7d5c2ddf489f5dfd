"""SASL PLAIN and SCRAM through real clients against a real broker:
confluent-kafka (librdkafka), kafka-python, aiokafka; bad passwords, unknown
users, requests before authentication, malformed SASL frames."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from strom.testing import EmbeddedBroker
from tests.security.sasl_support import USERS, add_scram_users, client_config, sasl_overrides
from tests.wire import WireClient

MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def send(raw: WireClient, api_key: int, version: int, fields: dict[str, Any]) -> None:
    raw.send(api_key, version, build(request_class(api_key, version), fields))


def call(raw: WireClient, api_key: int, version: int, fields: dict[str, Any]) -> Any:
    return raw.request(api_key, version, build(request_class(api_key, version), fields))


VERSIONS = {"client_software_name": "t", "client_software_version": "1"}


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(overrides=sasl_overrides(
            **{"connection.failed.authentication.delay.ms": "10"})) as b:
        add_scram_users(b, USERS)
        yield b


def produce_and_consume(config: dict[str, object], topic: str) -> list[bytes]:
    producer = Producer(config)
    for i in range(3):
        producer.produce(topic, f"v{i}".encode())
    assert producer.flush(15) == 0
    consumer = Consumer({**config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        for _ in range(100):  # bounded: at most ~100 s
            if len(values) >= 3:
                break
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
    finally:
        consumer.close()
    return values


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka_produces_and_consumes(broker: EmbeddedBroker, mechanism: str) -> None:
    config = client_config(broker, mechanism, "alice", "alice-secret")
    topic = f"sasl-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    assert produce_and_consume(config, topic) == [b"v0", b"v1", b"v2"]


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize(("name", "password"), [("alice", "wrong"), ("nobody", "alice-secret")])
def test_bad_credentials_are_refused(broker: EmbeddedBroker, mechanism: str, name: str,
                                     password: str) -> None:
    errors: list[str] = []
    config = client_config(broker, mechanism, name, password,
                           error_cb=lambda err: errors.append(str(err)))
    admin = AdminClient(config)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    admin.poll(1)  # error_cb runs in poll
    text = " ".join(errors)
    assert "Authentication failed" in text, text
    if mechanism.startswith("SCRAM"):
        # Unknown user and wrong password read the same.
        assert ("Authentication failed during authentication due to invalid credentials "
                f"with SASL mechanism {mechanism}") in text


def test_mechanism_not_enabled() -> None:
    with EmbeddedBroker(overrides=sasl_overrides(mechanisms="SCRAM-SHA-512")) as b:
        errors: list[str] = []
        admin = AdminClient(client_config(b, "PLAIN", "alice", "alice-secret",
                                          error_cb=lambda err: errors.append(str(err))))
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=3)
        admin.poll(1)
        assert "SCRAM-SHA-512" in " ".join(errors)


def _frame(client: WireClient) -> bytes:
    return client.read_frame()


def test_requests_before_authentication_close_only_that_connection(
        broker: EmbeddedBroker) -> None:
    good = AdminClient(client_config(broker, "SCRAM-SHA-256", "alice", "alice-secret"))
    assert good.list_topics(timeout=10).brokers
    with WireClient(broker.bootstrap) as raw:
        from tests.wire import metadata_request
        raw.send(ApiKey.METADATA, 12, metadata_request("x"))
        assert raw.is_closed_by_peer()
    with WireClient(broker.bootstrap) as raw:
        # SaslAuthenticate before SaslHandshake.
        send(raw, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": b"\0alice\0alice-secret"})
        assert raw.is_closed_by_peer()
    with WireClient(broker.bootstrap) as raw:
        # ApiVersions is served before authentication.
        versions = call(raw, ApiKey.API_VERSIONS, 3, VERSIONS)
        assert versions.error_code == 0
        handshake = call(raw, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        assert handshake.error_code == 0
        assert list(handshake.mechanisms) == MECHANISMS
        # After the handshake only SaslAuthenticate is allowed.
        raw.send(ApiKey.METADATA, 12, metadata_request("x"))
        assert raw.is_closed_by_peer()
    # The other client is unaffected.
    assert good.list_topics(timeout=10).brokers


def test_sasl_handshake_answers(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as raw:
        handshake = call(raw, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "GSSAPI"})
        assert handshake.error_code == 33  # UNSUPPORTED_SASL_MECHANISM
        assert list(handshake.mechanisms) == MECHANISMS
        assert raw.is_closed_by_peer()
    with WireClient(broker.bootstrap) as raw:
        call(raw, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        auth = call(raw, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": b"\0alice\0bad"})
        assert auth.error_code == 58  # SASL_AUTHENTICATION_FAILED
        assert auth.error_message == "Authentication failed: Invalid username or password"
        assert raw.is_closed_by_peer()
    with WireClient(broker.bootstrap) as raw:
        call(raw, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        auth = call(raw, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": b"\0alice\0alice-secret"})
        assert auth.error_code == 0 and auth.session_lifetime.total_seconds() == 0
        # Authenticated: the connection serves other requests; SASL ones are
        # answered ILLEGAL_SASL_STATE (no re-authentication without a lifetime).
        again = call(raw, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": b"x"})
        assert again.error_code == 34
        again = call(raw, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        assert again.error_code == 34
        versions = call(raw, ApiKey.API_VERSIONS, 3, VERSIONS)
        assert versions.error_code == 0


@pytest.mark.parametrize("token", [b"", b"\xff" * 3000, b"n,,n=alice", b"\0\0\0\0"])
def test_malformed_tokens(broker: EmbeddedBroker, token: bytes) -> None:
    for mechanism in MECHANISMS:
        with WireClient(broker.bootstrap) as raw:
            call(raw, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": mechanism})
            auth = call(raw, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": token})
            if auth.error_code == 0:
                continue  # a SCRAM first message answered with a challenge
            assert auth.error_code == 58
            assert raw.is_closed_by_peer()


def test_garbage_frames_close_the_connection(broker: EmbeddedBroker) -> None:
    for payload in (b"\x00", b"\xff" * 20, struct.pack(">hhi", 17, 1, 1) + b"\xff\xff"):
        with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
            sock.sendall(struct.pack(">i", len(payload)) + payload)
            sock.settimeout(10)
            assert sock.recv(100) == b""


def test_handshake_v0_raw_tokens(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as raw:
        handshake = call(raw, ApiKey.SASL_HANDSHAKE, 0, {"mechanism": "PLAIN"})
        assert handshake.error_code == 0
        token = b"\0alice\0alice-secret"
        raw.send_raw(struct.pack(">i", len(token)) + token)
        assert raw.read_frame() == b""
        versions = call(raw, ApiKey.API_VERSIONS, 3, VERSIONS)
        assert versions.error_code == 0
    with WireClient(broker.bootstrap) as raw:
        call(raw, ApiKey.SASL_HANDSHAKE, 0, {"mechanism": "PLAIN"})
        token = b"\0alice\0wrong"
        raw.send_raw(struct.pack(">i", len(token)) + token)
        assert raw.is_closed_by_peer()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python(broker: EmbeddedBroker, mechanism: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    common = {"bootstrap_servers": broker.bootstrap, "security_protocol": "SASL_PLAINTEXT",
              "sasl_mechanism": mechanism, "sasl_plain_username": "alice",
              "sasl_plain_password": "alice-secret"}
    topic = f"kp-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    producer = KafkaProducer(**common)
    producer.send(topic, b"hello").get(timeout=15)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000,
                             **common)
    first = next(iter(consumer), None)  # StopIteration after consumer_timeout_ms: None
    consumer.close()
    assert first is not None and first.value == b"hello"


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_aiokafka(broker: EmbeddedBroker, mechanism: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def main() -> bytes:
        common = {"bootstrap_servers": broker.bootstrap, "security_protocol": "SASL_PLAINTEXT",
                  "sasl_mechanism": mechanism, "sasl_plain_username": "alice",
                  "sasl_plain_password": "alice-secret"}
        topic = f"aio-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
        producer = AIOKafkaProducer(**common)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"hello")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **common)
        await consumer.start()
        try:
            msg = await asyncio.wait_for(consumer.getone(), 15)
        finally:
            await consumer.stop()
        return bytes(msg.value or b"")

    assert asyncio.run(main()) == b"hello"
