"""Records per metadata operation are capped as in Kafka's controller (hardening #4).

Kafka's QuorumController refuses an operation that would write more than
MAX_RECORDS_PER_USER_OP (10,000) records, and a CreateTopics asking for more
than 10,000 partitions, failing the whole request with POLICY_VIOLATION.
Before the cap a CreateTopics of 8,000 partitions blocked every client for
26 s and one of 100,000 never answered.
"""

from __future__ import annotations

from confluent_kafka import KafkaError
from confluent_kafka.admin import NewPartitions, NewTopic

from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import TIMEOUT, admin, create, error_of
from tests.broker.raw_client import RawClient

BATCH_TOO_LARGE = "Unable to perform excessively large batch operation."


def test_a_topic_of_10000_partitions_is_one_record_too_many(broker: EmbeddedBroker,
                                                             topic_name: str) -> None:
    # 1 TopicRecord + 10,000 PartitionRecords: Kafka 4.x refuses it too.
    futures = admin(broker).create_topics([NewTopic(topic_name, 10_000)],
                                          operation_timeout=10)
    error = error_of(futures[topic_name])
    assert error.code() == KafkaError.POLICY_VIOLATION
    assert error.str() == BATCH_TOO_LARGE
    assert topic_name not in broker.services.image.topics


def test_the_cap_counts_every_topic_of_the_request(broker: EmbeddedBroker,
                                                  topic_name: str) -> None:
    topics = [{"name": f"{topic_name}-{i}", "num_partitions": 3_000, "replication_factor": 1,
               "assignments": [], "configs": []} for i in range(4)]
    with RawClient(broker.bootstrap, timeout=TIMEOUT) as client:
        response = client.send(ApiKey.CREATE_TOPICS, 7, {"topics": topics, "timeout_ms": 10_000})
    assert [(t.error_code, t.error_message) for t in response.topics] == [
        (KafkaError.POLICY_VIOLATION, "Excessively large number of partitions per request.")] * 4
    assert not any(t["name"] in broker.services.image.topics for t in topics)


def test_validate_only_is_capped_too(broker: EmbeddedBroker, topic_name: str) -> None:
    futures = admin(broker).create_topics([NewTopic(topic_name, 10_000)],
                                          operation_timeout=10, validate_only=True)
    assert error_of(futures[topic_name]).code() == KafkaError.POLICY_VIOLATION


def test_create_partitions_beyond_the_cap_fails_every_topic(broker: EmbeddedBroker,
                                                            topic_name: str) -> None:
    small, other = f"{topic_name}-a", f"{topic_name}-b"
    create(broker, small)
    create(broker, other)
    # 6,000 + 4,001 new partitions: 10,001 records in one operation.
    futures = admin(broker).create_partitions(
        [NewPartitions(small, 6_001), NewPartitions(other, 4_002)], operation_timeout=10)
    for name in (small, other):
        error = error_of(futures[name])
        assert error.code() == KafkaError.POLICY_VIOLATION
        assert error.str() == BATCH_TOO_LARGE
        assert len(broker.services.image.topics[name].partitions) == 1


def test_topics_of_one_request_are_created_together(broker: EmbeddedBroker,
                                                    topic_name: str) -> None:
    names = [f"{topic_name}-{i}" for i in range(3)]
    offset_before = broker.services.image.offset
    futures = admin(broker).create_topics([NewTopic(n, 2) for n in names], operation_timeout=10)
    for name in names:
        futures[name].result(TIMEOUT)
    # One metadata operation (one image change, one write of the metadata file).
    assert broker.services.image.offset == offset_before + 1
    assert all(len(broker.services.image.topics[n].partitions) == 2 for n in names)
