"""SASL_SSL: TLS first, then SASL on the same connection, with confluent-kafka
(SCRAM-SHA-512) and kafka-python (PLAIN)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from strom.testing import EmbeddedBroker
from strom.testing.tls import TestCertificateAuthority
from tests.security.sasl_support import USERS, add_scram_users, plain_jaas


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCertificateAuthority:
    return TestCertificateAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def broker(ca: TestCertificateAuthority) -> Iterator[EmbeddedBroker]:
    overrides = {"listeners": "SASL_SSL://127.0.0.1:0",
                 "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
                 "listener.name.sasl_ssl.plain.sasl.jaas.config": plain_jaas(USERS),
                 **ca.server_overrides()}
    with EmbeddedBroker(overrides=overrides) as b:
        add_scram_users(b, USERS)
        yield b


def test_confluent_kafka_scram_over_tls(broker: EmbeddedBroker,
                                        ca: TestCertificateAuthority) -> None:
    config = {**ca.confluent_config(), "bootstrap.servers": broker.bootstrap,
              "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
              "sasl.username": "alice", "sasl.password": "alice-secret"}
    producer = Producer(config)
    producer.produce(f"sasl-ssl-{uuid.uuid4().hex[:6]}", b"over tls")
    assert producer.flush(15) == 0


def test_kafka_python_plain_over_tls(broker: EmbeddedBroker, ca: TestCertificateAuthority,
                                     tmp_path: Path) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, security_protocol="SASL_SSL",
                             ssl_context=ca.ssl_context(), sasl_mechanism="PLAIN",
                             sasl_plain_username="alice", sasl_plain_password="alice-secret")
    producer.send(f"sasl-ssl-kp-{uuid.uuid4().hex[:6]}", b"x").get(timeout=15)
    producer.close()
