"""DeleteTopics and CreatePartitions against a live broker, through
confluent-kafka's AdminClient and raw requests for what it cannot send."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import NewPartitions

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import TIMEOUT, admin, create, error_of, forget
from tests.broker.raw_client import RawClient, send


def partition_count(broker: EmbeddedBroker, name: str) -> int:
    return len(broker.services.image.topics[name].partitions)


# --- DeleteTopics ---------------------------------------------------------------


def test_delete_topics_removes_topic_and_its_logs(broker: EmbeddedBroker,
                                                   topic_name: str) -> None:
    create(broker, topic_name, 2)
    log_dirs = [p.log.directory for (t, _), p in broker.services.replicas.partitions.items()
                if t == topic_name]
    # Partition 0 gets a record (its directory is made then); 1 never does.
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic_name, b"v", partition=0)
    assert producer.flush(TIMEOUT) == 0
    assert len(log_dirs) == 2 and [d.exists() for d in sorted(log_dirs)] == [True, False]
    admin(broker).delete_topics([topic_name])[topic_name].result(TIMEOUT)
    assert topic_name not in broker.services.image.topics
    assert not any(t == topic_name for t, _ in broker.services.replicas.partitions)
    assert not any(Path(d).exists() for d in log_dirs)


def test_delete_unknown_topic(broker: EmbeddedBroker, topic_name: str) -> None:
    error = error_of(admin(broker).delete_topics([topic_name])[topic_name])
    assert error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_delete_topics_by_id_v6(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    topic_id = broker.services.image.topics[topic_name].topic_id
    unknown = uuid.uuid4()
    response = send(broker.bootstrap, ApiKey.DELETE_TOPICS, 6, {
        "topics": [{"name": None, "topic_id": topic_id}, {"name": None, "topic_id": unknown}],
        "timeout": 5000})
    by_id = {r.topic_id: r for r in response.responses}
    assert by_id[topic_id].error_code == ErrorCode.none
    assert by_id[topic_id].name == topic_name
    assert by_id[unknown].error_code == ErrorCode.unknown_topic_id
    assert by_id[unknown].error_message == "This server does not host this topic ID."
    assert topic_name not in broker.services.image.topics


def test_delete_topics_v6_by_name_reports_topic_id(broker: EmbeddedBroker,
                                                   topic_name: str) -> None:
    create(broker, topic_name)
    topic_id = broker.services.image.topics[topic_name].topic_id
    response = send(broker.bootstrap, ApiKey.DELETE_TOPICS, 6, {
        "topics": [{"name": topic_name, "topic_id": None}], "timeout": 5000})
    (result,) = response.responses
    assert (result.name, result.topic_id, result.error_code) == (topic_name, topic_id,
                                                                ErrorCode.none)


def test_delete_topics_duplicate_names_are_invalid(broker: EmbeddedBroker,
                                                   topic_name: str) -> None:
    create(broker, topic_name)
    other = topic_name + "-other"
    create(broker, other)
    response = send(broker.bootstrap, ApiKey.DELETE_TOPICS, 5, {
        "topic_names": [topic_name, other, topic_name], "timeout": 5000})
    results = {r.name: r for r in response.responses}
    assert len(response.responses) == 2
    assert results[topic_name].error_code == ErrorCode.invalid_request
    assert results[topic_name].error_message == "Duplicate topic name."
    assert results[other].error_code == ErrorCode.none
    assert topic_name in broker.services.image.topics  # not deleted
    assert other not in broker.services.image.topics


def test_delete_topics_duplicate_ids_and_name_with_id_are_invalid(
        broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    topic_id = broker.services.image.topics[topic_name].topic_id
    response = send(broker.bootstrap, ApiKey.DELETE_TOPICS, 6, {"topics": [
        {"name": None, "topic_id": topic_id}, {"name": None, "topic_id": topic_id},
        {"name": topic_name, "topic_id": topic_id}, {"name": None, "topic_id": None},
    ], "timeout": 5000})
    messages = sorted((r.error_code, r.error_message) for r in response.responses)
    assert messages == [
        (ErrorCode.invalid_request, "Duplicate topic id."),
        (ErrorCode.invalid_request, "Neither topic name nor id were specified."),
        (ErrorCode.invalid_request, "You may not specify both topic name and topic id."),
    ]
    assert topic_name in broker.services.image.topics


def test_delete_topics_disabled(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path / "data", overrides={"delete.topic.enable": "false"}) as b:
        create(b, "keep-me")
        error = error_of(admin(b).delete_topics(["keep-me"])["keep-me"])
        assert error.code() == KafkaError.TOPIC_DELETION_DISABLED
        # Before v3 Kafka answers INVALID_REQUEST.
        old = send(b.bootstrap, ApiKey.DELETE_TOPICS, 2,
                   {"topic_names": ["keep-me"], "timeout": 5000})
        assert old.responses[0].error_code == ErrorCode.invalid_request
        assert "keep-me" in b.services.image.topics
        forget(b)


# --- CreatePartitions -----------------------------------------------------------


def test_create_partitions_grows_topic(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, 1)
    admin(broker).create_partitions([NewPartitions(topic_name, 3)])[topic_name].result(TIMEOUT)
    assert partition_count(broker, topic_name) == 3
    assert (topic_name, 2) in broker.services.replicas.partitions


def test_create_partitions_with_assignments(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, 1)
    node = broker.services.node_id
    futures = admin(broker).create_partitions(
        [NewPartitions(topic_name, 3, replica_assignment=[[node], [node]])])
    futures[topic_name].result(TIMEOUT)
    assert partition_count(broker, topic_name) == 3


def test_create_partitions_validate_only(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, 1)
    futures = admin(broker).create_partitions([NewPartitions(topic_name, 5)],
                                              validate_only=True)
    futures[topic_name].result(TIMEOUT)
    assert partition_count(broker, topic_name) == 1


@pytest.mark.parametrize(("count", "message"), [
    (2, "Topic already has 2 partition(s)."),
    (1, "The topic {topic} currently has 2 partition(s); 1 would not be an increase."),
])
def test_create_partitions_must_increase(broker: EmbeddedBroker, topic_name: str,
                                         count: int, message: str) -> None:
    create(broker, topic_name, 2)
    error = error_of(admin(broker).create_partitions(
        [NewPartitions(topic_name, count)])[topic_name])
    assert error.code() == KafkaError.INVALID_PARTITIONS
    assert error.str() == message.format(topic=topic_name)


def test_create_partitions_unknown_topic(broker: EmbeddedBroker, topic_name: str) -> None:
    error = error_of(admin(broker).create_partitions(
        [NewPartitions(topic_name, 2)])[topic_name])
    assert error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.parametrize(("assignments", "message"), [
    ([[1]], "Attempted to add 2 additional partition(s), but only 1 assignment(s) were "
            "specified."),
    ([[1], [99]], "The manual partition assignment includes broker 99, but no such broker "
                  "is registered."),
    ([[1], [1, 1]], "The manual partition assignment includes the broker 1 more than once."),
    ([[1], []], "The manual partition assignment includes an empty replica list."),
])
def test_create_partitions_bad_assignments(broker: EmbeddedBroker, topic_name: str,
                                           assignments: list[list[int]],
                                           message: str) -> None:
    create(broker, topic_name, 1)
    with RawClient(broker.bootstrap) as client:
        response = client.send(ApiKey.CREATE_PARTITIONS, 3, {"topics": [
            {"name": topic_name, "count": 3,
             "assignments": [{"broker_ids": a} for a in assignments]}],
            "timeout": 5000, "validate_only": False})
    (result,) = response.results
    assert result.error_code == ErrorCode.invalid_replica_assignment
    assert result.error_message == message
    assert partition_count(broker, topic_name) == 1


def test_create_partitions_duplicate_topic(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, 1)
    response = send(broker.bootstrap, ApiKey.CREATE_PARTITIONS, 3, {"topics": [
        {"name": topic_name, "count": 2, "assignments": None},
        {"name": topic_name, "count": 3, "assignments": None}],
        "timeout": 5000, "validate_only": False})
    (result,) = response.results
    assert (result.error_code, result.error_message) == (ErrorCode.invalid_request,
                                                         "Duplicate topic name.")
    assert partition_count(broker, topic_name) == 1
