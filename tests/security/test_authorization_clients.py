"""Authorization as real clients see it (strom with Kafka's StandardAuthorizer;
a PLAINTEXT client is User:ANONYMOUS, granted exactly what each test says):
librdkafka's consumer without READ on its group gets
GROUP_AUTHORIZATION_FAILED, its Metadata does not list a topic it may not
describe, and Kafka's Java AdminClient reports KIP-430 authorized operations."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from strom.security.acl_types import CLUSTER_NAME, AclOperation, ResourceType
from strom.testing import EmbeddedBroker
from tests.interop.clients import KAFKA_LIBS, compile_java
from tests.security.authz_broker import secured_broker, with_acls

T, G, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
Op = AclOperation


@pytest.fixture(scope="module")
def secured() -> Iterator[EmbeddedBroker]:
    with secured_broker({"auto.create.topics.enable": "false"}) as broker:
        with_acls(broker, [(C, CLUSTER_NAME, Op.CREATE)])
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        futures = admin.create_topics([NewTopic(n, 1, 1) for n in ("visible", "hidden")])
        for future in futures.values():
            future.result(timeout=15)
        with_acls(broker, [])
        yield broker


def test_metadata_does_not_list_a_topic_without_describe(secured: EmbeddedBroker) -> None:
    with_acls(secured, [(T, "visible", Op.DESCRIBE)])
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert "visible" in topics and "hidden" not in topics
    # Named, it is refused rather than described.
    named = admin.list_topics(topic="hidden", timeout=10).topics["hidden"]
    assert named.error is not None
    assert named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_consumer_without_read_on_its_group_is_refused(secured: EmbeddedBroker) -> None:
    with_acls(secured, [(T, "visible", Op.READ)])
    consumer = Consumer({"bootstrap.servers": secured.bootstrap, "group.id": "no-read",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    try:
        consumer.subscribe(["visible"])
        deadline = time.monotonic() + 20
        code = None
        while code is None and time.monotonic() < deadline:
            try:
                msg = consumer.poll(0.5)
            except KafkaException as exc:
                code = exc.args[0].code()
                break
            if msg is not None and msg.error() is not None:
                code = msg.error().code()
        assert code == KafkaError.GROUP_AUTHORIZATION_FAILED
    finally:
        consumer.close()


def test_java_admin_client_reports_authorized_operations(secured: EmbeddedBroker,
                                                         tmp_path: Path) -> None:
    if subprocess.run(["which", "javac"], capture_output=True).returncode != 0:
        pytest.skip("no JDK (javac) here: make system-deps")
    if not any(KAFKA_LIBS.glob("kafka-clients-*.jar")):
        pytest.skip("Kafka's jars are missing (make kafka-jars)")
    classes = compile_java("DescribeAuthorizedOperations", tmp_path)
    with_acls(secured, [(T, "visible", Op.READ), (T, "visible", Op.ALTER_CONFIGS),
                        (C, CLUSTER_NAME, Op.DESCRIBE)])
    out = subprocess.run(
        ["java", "-cp", f"{classes}:{KAFKA_LIBS}/*", "DescribeAuthorizedOperations",
         secured.bootstrap, "visible"],
        capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    # Implied operations count (READ -> DESCRIBE, ALTER_CONFIGS -> DESCRIBE_CONFIGS).
    assert "cluster DESCRIBE" in out
    assert "topic visible ALTER_CONFIGS,DESCRIBE,DESCRIBE_CONFIGS,READ" in out


def _idempotent_send(broker: EmbeddedBroker) -> int | None:
    """The fatal error an idempotent producer raised sending one record (None:
    delivered). No callbacks: confluent-kafka fails inside one while raising
    librdkafka's fatal error."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "message.timeout.ms": 10000})
    try:
        producer.produce("visible", b"v")
        remaining = producer.flush(15)
    except KafkaException as exc:
        return int(exc.args[0].code())
    assert remaining == 0
    return None


def test_idempotent_producer_needs_write_on_some_topic(secured: EmbeddedBroker) -> None:
    # KIP-679: WRITE on any topic stands in for IDEMPOTENT_WRITE on the cluster.
    with_acls(secured, [(T, "visible", Op.WRITE)])
    assert _idempotent_send(secured) is None
    with_acls(secured, [(T, "visible", Op.DESCRIBE)])
    assert _idempotent_send(secured) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
