"""DescribeCluster, DescribeTopicPartitions and DescribeLogDirs against a live
broker, through confluent-kafka, kafka-python and raw requests."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AclOperation

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.messages import ZERO_UUID
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import TIMEOUT, create
from tests.broker.raw_client import send

with warnings.catch_warnings():
    # kafka-python loads its schemas with a deprecated importlib.resources call.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.admin import KafkaAdminClient

AUTHORIZED_OPERATIONS_OMITTED = -(2**31)

# --- DescribeCluster ------------------------------------------------------------


def test_describe_cluster(broker: EmbeddedBroker) -> None:
    # librdkafka and kafka-python describe clusters through Metadata; the Java
    # AdminClient sends DescribeCluster, as here.
    image = broker.services.image
    response = send(broker.bootstrap, ApiKey.DESCRIBE_CLUSTER, 1,
                    {"include_cluster_authorized_operations": True, "endpoint_type": 1})
    assert (response.error_code, response.error_message) == (ErrorCode.none, None)
    assert response.cluster_id == image.cluster_id
    assert response.controller_id == broker.services.node_id
    assert response.endpoint_type == 1
    assert [(b.broker_id, b.host, b.port, b.rack) for b in response.brokers] == [
        (broker.services.node_id, broker.host, broker.port, None)]
    operations = {op for op in AclOperation
                  if response.cluster_authorized_operations & (1 << op.value)}
    assert operations == {
        AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.CREATE,
        AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE}


def test_describe_cluster_raw_versions(broker: EmbeddedBroker) -> None:
    v0 = send(broker.bootstrap, ApiKey.DESCRIBE_CLUSTER, 0,
              {"include_cluster_authorized_operations": False})
    assert v0.error_code == ErrorCode.none
    assert v0.cluster_authorized_operations == AUTHORIZED_OPERATIONS_OMITTED
    assert [b.broker_id for b in v0.brokers] == [broker.services.node_id]
    v2 = send(broker.bootstrap, ApiKey.DESCRIBE_CLUSTER, 2,
              {"include_cluster_authorized_operations": False, "endpoint_type": 1,
               "include_fenced_brokers": True})
    assert v2.endpoint_type == 1
    assert [(b.broker_id, b.is_fenced) for b in v2.brokers] == [
        (broker.services.node_id, False)]


@pytest.mark.parametrize(("endpoint_type", "code", "message"), [
    (2, ErrorCode.mismatched_endpoint_type, "The request was sent to an endpoint of type "
                                            "BROKER, but we wanted an endpoint of type "
                                            "CONTROLLER"),
    (7, ErrorCode.unsupported_endpoint_type, "Unsupported endpoint type 7"),
])
def test_describe_cluster_endpoint_type(broker: EmbeddedBroker, endpoint_type: int,
                                        code: ErrorCode, message: str) -> None:
    response = send(broker.bootstrap, ApiKey.DESCRIBE_CLUSTER, 1,
                    {"include_cluster_authorized_operations": False,
                     "endpoint_type": endpoint_type})
    assert (response.error_code, response.error_message) == (code, message)
    assert response.brokers == ()


# --- DescribeTopicPartitions ----------------------------------------------------


def describe_partitions(broker: EmbeddedBroker, topics: list[str], limit: int,
                        cursor: tuple[str, int] | None = None) -> object:
    return send(broker.bootstrap, ApiKey.DESCRIBE_TOPIC_PARTITIONS, 0, {
        "topics": [{"name": t} for t in topics], "response_partition_limit": limit,
        "cursor": None if cursor is None else {"topic_name": cursor[0],
                                               "partition_index": cursor[1]}})


def test_describe_topic_partitions(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, 2)
    info = broker.services.image.topics[topic_name]
    response = describe_partitions(broker, [topic_name], 100)
    (topic,) = response.topics  # type: ignore[attr-defined]
    assert (topic.error_code, topic.name, topic.topic_id) == (ErrorCode.none, topic_name,
                                                              info.topic_id)
    assert topic.is_internal is False
    assert topic.topic_authorized_operations > 0
    node = broker.services.node_id
    assert [(p.partition_index, p.leader_id, p.leader_epoch, p.replica_nodes, p.isr_nodes,
             p.eligible_leader_replicas, p.last_known_elr, p.offline_replicas)
            for p in topic.partitions] == [
        (i, node, 0, (node,), (node,), (), (), ()) for i in range(2)]
    assert response.next_cursor is None  # type: ignore[attr-defined]


def test_describe_topic_partitions_paginates(broker: EmbeddedBroker, topic_name: str) -> None:
    first, second, third = (f"{topic_name}-{c}" for c in "abc")
    create(broker, first, 3)
    create(broker, second, 2)
    create(broker, third, 1)
    names = [third, first, second]  # the broker sorts them
    pages: list[list[tuple[str, int]]] = []
    cursor = None
    while True:
        response = describe_partitions(broker, names, 2, cursor)
        pages.append([(t.name, p.partition_index)  # type: ignore[attr-defined]
                      for t in response.topics for p in t.partitions])  # type: ignore[attr-defined]
        next_cursor = response.next_cursor  # type: ignore[attr-defined]
        if next_cursor is None:
            break
        cursor = (next_cursor.topic_name, next_cursor.partition_index)
    assert pages == [
        [(first, 0), (first, 1)],
        [(first, 2), (second, 0)],
        [(second, 1), (third, 0)],
    ]


def test_describe_topic_partitions_cursor_at_topic_boundary(broker: EmbeddedBroker,
                                                            topic_name: str) -> None:
    first, second = f"{topic_name}-a", f"{topic_name}-b"
    create(broker, first, 2)
    create(broker, second, 1)
    response = describe_partitions(broker, [first, second], 2)
    assert [t.name for t in response.topics] == [first]  # type: ignore[attr-defined]
    cursor = response.next_cursor  # type: ignore[attr-defined]
    assert (cursor.topic_name, cursor.partition_index) == (second, 0)


def test_describe_all_topic_partitions(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, 1)
    response = describe_partitions(broker, [], 2000)
    names = [t.name for t in response.topics]  # type: ignore[attr-defined]
    assert topic_name in names
    assert names == sorted(names)


def test_describe_topic_partitions_errors(broker: EmbeddedBroker, topic_name: str) -> None:
    response = describe_partitions(broker, [topic_name, "bad/name"], 10)
    codes = {t.name: (t.error_code, t.topic_id)  # type: ignore[attr-defined]
             for t in response.topics}  # type: ignore[attr-defined]
    assert codes[topic_name][0] == ErrorCode.unknown_topic_or_partition
    assert codes["bad/name"][0] == ErrorCode.invalid_topic_exception
    assert codes[topic_name][1] in (None, ZERO_UUID)


def test_describe_topic_partitions_invalid_cursor(broker: EmbeddedBroker,
                                                  topic_name: str) -> None:
    create(broker, topic_name, 1)
    not_listed = describe_partitions(broker, [topic_name], 10, (topic_name + "-x", 0))
    assert [t.error_code for t in not_listed.topics] == [  # type: ignore[attr-defined]
        ErrorCode.invalid_request]
    negative = describe_partitions(broker, [topic_name], 10, (topic_name, -1))
    assert [t.error_code for t in negative.topics] == [  # type: ignore[attr-defined]
        ErrorCode.invalid_request]


# --- DescribeLogDirs ------------------------------------------------------------


@pytest.fixture
def kafka_python_admin(broker: EmbeddedBroker) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    yield client
    client.close()


def test_describe_log_dirs(broker: EmbeddedBroker, topic_name: str,
                           kafka_python_admin: KafkaAdminClient) -> None:
    create(broker, topic_name, 2)
    log_dir = os.path.abspath(broker.data_dir)
    (result,) = kafka_python_admin.describe_log_dirs({topic_name: [0, 1]})
    (entry,) = result["log_dirs"]
    assert entry["error_code"] == 0
    assert entry["log_dir"] == log_dir
    (topic,) = entry["topics"]
    assert topic["name"] == topic_name
    assert sorted(p["partition_index"] for p in topic["partitions"]) == [0, 1]
    for p in topic["partitions"]:
        assert p["partition_size"] == 0
        assert p["offset_lag"] == 0
        assert p["is_future_key"] is False
    usage = shutil.disk_usage(log_dir)
    assert entry["total_bytes"] == usage.total
    assert 0 < entry["usable_bytes"] <= usage.total


def test_describe_log_dirs_all_and_sizes(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, 1)
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        producer.produce(topic_name, value=b"x" * 100, key=str(i).encode())
    assert producer.flush(TIMEOUT) == 0
    response = send(broker.bootstrap, ApiKey.DESCRIBE_LOG_DIRS, 4, {"topics": None})
    (result,) = response.results
    sizes = {(t.name, p.partition_index): p.partition_size
             for t in result.topics for p in t.partitions}
    assert sizes[(topic_name, 0)] == broker.services.replicas.get(topic_name, 0).log.size_in_bytes
    assert sizes[(topic_name, 0)] > 500
    # v1 has no volume sizes; a partition not hosted is left out.
    v1 = send(broker.bootstrap, ApiKey.DESCRIBE_LOG_DIRS, 1,
              {"topics": [{"topic": topic_name, "partitions": [7]}]})
    assert v1.results[0].topics == ()
