"""ACLs enforced on authenticated principals end to end: a SASL_PLAINTEXT
listener (PLAIN and SCRAM users), super.users=User:admin, confluent-kafka
clients. alice may do nothing until admin grants it; a DENY then wins over
her ALLOW; she may not manage ACLs herself; an ACL for User:* applies to bob."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from strom.testing import EmbeddedBroker

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path / "data", sasl_users={
            "admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"},
            overrides={"authorizer.class.name": STANDARD,
                       # The PLAINTEXT listener's ANONYMOUS is what strom.testing
                       # itself uses; SASL users are checked.
                       "super.users": "User:admin;User:ANONYMOUS"}) as b:
        yield b


def _produce(config: dict[str, str], topic: str) -> KafkaError | None:
    """The delivery error of one record (None: written)."""
    producer = Producer({**config, "message.timeout.ms": 10000, "retries": 0})
    errors: list[Any] = []
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(15) == 0
    return errors[0]


def _add(admin: AdminClient, *bindings: AclBinding) -> None:
    for future in admin.create_acls(list(bindings), request_timeout=10).values():
        future.result(timeout=10)


def _write(principal: str, name: str, permission: AclPermissionType = AclPermissionType.ALLOW,
           pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(ResourceType.TOPIC, name, pattern, principal, "*", AclOperation.WRITE,
                      permission)


def test_acls_on_sasl_principals(broker: EmbeddedBroker) -> None:
    admin = AdminClient(broker.sasl_config("admin", "PLAIN"))
    admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(timeout=10)
    alice = broker.sasl_config("alice", "PLAIN")

    error = _produce(alice, "orders")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    _add(admin, _write("User:alice", "orders"))
    assert _produce(alice, "orders") is None
    # SCRAM logs in as the same principal.
    assert _produce(broker.sasl_config("alice", "SCRAM-SHA-512"), "orders") is None

    _add(admin, _write("User:alice", "ord", AclPermissionType.DENY,
                       ResourcePatternType.PREFIXED))
    error = _produce(alice, "orders")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # bob has nothing, then everyone (User:*) may write.
    bob = broker.sasl_config("bob", "PLAIN")
    assert _produce(bob, "orders") is not None
    _add(admin, _write("User:*", "orders"))
    assert _produce(bob, "orders") is None

    # alice cannot manage ACLs (no ALTER on the cluster).
    alice_admin = AdminClient(alice)
    future = alice_admin.create_acls([_write("User:alice", "x")], request_timeout=10)
    with pytest.raises(Exception, match="CLUSTER_AUTHORIZATION_FAILED"):
        next(iter(future.values())).result(timeout=10)
