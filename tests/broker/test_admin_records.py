"""DeleteRecords and OffsetForLeaderEpoch against a live broker, through
confluent-kafka and raw requests."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import TIMEOUT, admin, create, error_of
from tests.broker.raw_client import send


def produce(broker: EmbeddedBroker, topic: str, count: int, partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i, partition=partition)
        producer.flush(TIMEOUT)  # one batch per record: segments and offsets are exact
    assert producer.flush(TIMEOUT) == 0


def delete_records(broker: EmbeddedBroker, topic: str, offsets: dict[int, int],
                   version: int = 2) -> dict[int, Any]:
    response = send(broker.bootstrap, ApiKey.DELETE_RECORDS, version, {
        "topics": [{"name": topic, "partitions": [
            {"partition_index": p, "offset": o} for p, o in offsets.items()]}],
        "timeout": 5000})
    (topic_result,) = response.topics
    return {p.partition_index: p for p in topic_result.partitions}


def earliest_offset(broker: EmbeddedBroker, topic: str, partition: int = 0) -> int:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})
    try:
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                timeout=TIMEOUT)
        return int(low)
    finally:
        consumer.close()


# --- DeleteRecords --------------------------------------------------------------


def test_delete_records_moves_log_start(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    produce(broker, topic_name, 5)
    futures = admin(broker).delete_records([TopicPartition(topic_name, 0, 3)])
    result = next(iter(futures.values())).result(TIMEOUT)
    assert result.low_watermark == 3
    partition = broker.services.replicas.get(topic_name, 0)
    assert partition.log.log_start_offset == 3
    assert partition.high_watermark == 5
    assert earliest_offset(broker, topic_name) == 3


def test_delete_records_minus_one_means_high_watermark(broker: EmbeddedBroker,
                                                       topic_name: str) -> None:
    create(broker, topic_name)
    produce(broker, topic_name, 4)
    results = delete_records(broker, topic_name, {0: -1})
    assert (results[0].error_code, results[0].low_watermark) == (ErrorCode.none, 4)
    assert broker.services.replicas.get(topic_name, 0).log.log_start_offset == 4


def test_delete_records_below_log_start_changes_nothing(broker: EmbeddedBroker,
                                                        topic_name: str) -> None:
    create(broker, topic_name)
    produce(broker, topic_name, 4)
    assert delete_records(broker, topic_name, {0: 2})[0].low_watermark == 2
    again = delete_records(broker, topic_name, {0: 1})[0]
    assert (again.error_code, again.low_watermark) == (ErrorCode.none, 2)


def test_delete_records_past_high_watermark(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    produce(broker, topic_name, 2)
    error = error_of(next(iter(admin(broker).delete_records(
        [TopicPartition(topic_name, 0, 3)]).values())))
    assert error.code() == KafkaError.OFFSET_OUT_OF_RANGE
    negative = delete_records(broker, topic_name, {0: -5})[0]
    assert (negative.error_code, negative.low_watermark) == (ErrorCode.offset_out_of_range, -1)
    assert broker.services.replicas.get(topic_name, 0).log.log_start_offset == 0


def test_delete_records_unknown_partition(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    results = delete_records(broker, topic_name, {5: 0}, version=0)
    assert (results[5].error_code, results[5].low_watermark) == (
        ErrorCode.unknown_topic_or_partition, -1)
    missing = delete_records(broker, topic_name + "-missing", {0: 0})
    assert missing[0].error_code == ErrorCode.unknown_topic_or_partition


def test_delete_records_compacted_topic_is_policy_violation(broker: EmbeddedBroker,
                                                            topic_name: str) -> None:
    create(broker, topic_name, config={"cleanup.policy": "compact"})
    results = delete_records(broker, topic_name, {0: 0})
    assert results[0].error_code == ErrorCode.policy_violation


def test_delete_records_several_partitions(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, 2)
    produce(broker, topic_name, 3, partition=0)
    produce(broker, topic_name, 2, partition=1)
    results = delete_records(broker, topic_name, {0: 2, 1: -1})
    assert {p: r.low_watermark for p, r in results.items()} == {0: 2, 1: 2}


# --- OffsetForLeaderEpoch -------------------------------------------------------


def offsets_for_epoch(broker: EmbeddedBroker, topic: str, partitions: list[dict[str, int]],
                      version: int = 4) -> list[Any]:
    body: dict[str, Any] = {"topics": [{"topic": topic, "partitions": partitions}]}
    if version >= 3:
        body["replica_id"] = -1
    response = send(broker.bootstrap, ApiKey.OFFSET_FOR_LEADER_EPOCH, version, body)
    (topic_result,) = response.topics
    assert topic_result.topic == topic
    return list(topic_result.partitions)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_offset_for_leader_epoch(broker: EmbeddedBroker, topic_name: str,
                                 version: int) -> None:
    create(broker, topic_name)
    produce(broker, topic_name, 3)
    (result,) = offsets_for_epoch(broker, topic_name, [
        {"partition": 0, "current_leader_epoch": 0, "leader_epoch": 0}], version)
    assert (result.error_code, result.leader_epoch, result.end_offset) == (ErrorCode.none, 0, 3)


def test_offset_for_unknown_epoch(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    produce(broker, topic_name, 1)
    (newer,) = offsets_for_epoch(broker, topic_name, [
        {"partition": 0, "current_leader_epoch": -1, "leader_epoch": 7}])
    assert (newer.error_code, newer.leader_epoch, newer.end_offset) == (ErrorCode.none, -1, -1)


def test_offset_for_leader_epoch_fencing(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    newer, older = offsets_for_epoch(broker, topic_name, [
        {"partition": 0, "current_leader_epoch": 3, "leader_epoch": 0},
        {"partition": 0, "current_leader_epoch": -2, "leader_epoch": 0}])
    assert (newer.error_code, newer.end_offset) == (ErrorCode.unknown_leader_epoch, -1)
    assert (older.error_code, older.end_offset) == (ErrorCode.fenced_leader_epoch, -1)


def test_offset_for_leader_epoch_unknown_partition(broker: EmbeddedBroker,
                                                   topic_name: str) -> None:
    create(broker, topic_name)
    (result,) = offsets_for_epoch(broker, topic_name, [
        {"partition": 9, "current_leader_epoch": -1, "leader_epoch": 0}])
    assert result.error_code == ErrorCode.unknown_topic_or_partition
    (missing,) = offsets_for_epoch(broker, topic_name + "-missing", [
        {"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}])
    assert missing.error_code == ErrorCode.unknown_topic_or_partition
