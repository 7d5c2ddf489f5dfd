"""ListOffsets EARLIEST (-2) and EARLIEST_LOCAL (-4) answer the leader epoch
of the batch at the log start offset, as Kafka does (its leader epoch
cache's), through librdkafka's AdminClient.list_offsets and raw v9."""

from __future__ import annotations

import time

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import TIMEOUT, admin, create
from tests.broker.raw_client import send


def test_earliest_offsets_carry_the_leader_epoch(broker: EmbeddedBroker) -> None:
    topic = f"epochs-{time.monotonic_ns()}"
    create(broker, topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        producer.produce(topic, f"v{i}".encode())
    assert producer.flush(TIMEOUT) == 0
    # Move the log start: the answer is the epoch at the new start.
    admin(broker).delete_records([TopicPartition(topic, 0, 2)])[
        TopicPartition(topic, 0, 2)].result(TIMEOUT)
    epoch = broker.services.image.topics[topic].partitions[0].leader_epoch

    listed = admin(broker).list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()})
    info = listed[TopicPartition(topic, 0)].result(TIMEOUT)
    assert (info.offset, info.leader_epoch) == (2, epoch)

    answers = []
    for spec in (-2, -4, -1):  # one per request: a partition asked twice is INVALID_REQUEST
        response = send(broker.bootstrap, ApiKey.LIST_OFFSETS, 9, {
            "replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
                {"partition_index": 0, "current_leader_epoch": -1, "timestamp": spec}]}]})
        (p,) = response.topics[0].partitions
        answers.append((p.error_code, p.offset, p.leader_epoch))
    assert answers == [(ErrorCode.none, 2, epoch), (ErrorCode.none, 2, epoch),
                       (ErrorCode.none, 5, epoch)]
