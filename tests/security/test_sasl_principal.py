"""The SASL user is the request's principal (User:<name>): with Kafka's
StandardAuthorizer on, the super user may produce and another user is denied
until an ACL allows it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from strom.testing import EmbeddedBroker
from tests.security.sasl_support import USERS, add_scram_users, client_config, sasl_overrides


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    overrides = sasl_overrides(**{
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin", "auto.create.topics.enable": "true"})
    with EmbeddedBroker(overrides=overrides) as b:
        add_scram_users(b, USERS)
        yield b


def produce(config: dict[str, object], topic: str) -> KafkaError | None:
    outcome: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 10000})
    producer.produce(topic, b"x", on_delivery=lambda err, _: outcome.append(err))
    producer.flush(15)
    assert outcome
    return outcome[0]


def test_sasl_user_is_the_principal(broker: EmbeddedBroker) -> None:
    topic = f"principal-{uuid.uuid4().hex[:6]}"
    admin_config = client_config(broker, "PLAIN", "admin", "admin-secret")
    assert produce(admin_config, topic) is None  # the super user
    alice = client_config(broker, "SCRAM-SHA-256", "alice", "alice-secret")
    denied = produce(alice, topic)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    admin = AdminClient(admin_config)
    binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice",
                         "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        future.result(10)
    assert produce(alice, topic) is None
