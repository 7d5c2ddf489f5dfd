"""The group and transaction coordinators start on first use, or with the
broker when their state topic already exists (strom/broker/coordinators.py)."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from strom.cluster.image import GROUP_METADATA_TOPIC, TRANSACTION_STATE_TOPIC
from strom.testing import EmbeddedBroker


def _started(broker: EmbeddedBroker) -> tuple[bool, bool]:
    coordinators = broker.services.coordinators
    return (coordinators.started_groups is not None,
            coordinators.started_transactions is not None)


def _topics(broker: EmbeddedBroker) -> set[str]:
    return set(broker.services.image.topics)


def test_produce_and_fetch_start_no_coordinator(fresh_broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": fresh_broker.bootstrap, "acks": "all"})
    producer.produce("plain", b"v")
    assert producer.flush(30) == 0
    # Without a group (librdkafka looks up a group's coordinator as soon as it has one).
    consumer = KafkaConsumer(bootstrap_servers=fresh_broker.bootstrap, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=30_000)
    try:
        consumer.assign([KafkaTopicPartition("plain", 0)])
        consumer.seek_to_beginning()
        assert next(consumer).value == b"v"
    finally:
        consumer.close()
    assert _started(fresh_broker) == (False, False)
    assert not {GROUP_METADATA_TOPIC, TRANSACTION_STATE_TOPIC} & _topics(fresh_broker)


def test_first_use_starts_each_and_a_restart_starts_both(fresh_broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": fresh_broker.bootstrap,
                         "transactional.id": "lazy-start"})
    producer.init_transactions(30)
    assert _started(fresh_broker) == (False, True)
    assert TRANSACTION_STATE_TOPIC in _topics(fresh_broker)

    producer.begin_transaction()
    producer.produce("orders", b"o1")
    producer.commit_transaction(30)
    consumer = Consumer({"bootstrap.servers": fresh_broker.bootstrap, "group.id": "shipping",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    try:
        consumer.subscribe(["orders"])
        message = consumer.poll(30)
        assert message is not None and message.value() == b"o1"
        consumer.commit(message, asynchronous=False)
    finally:
        consumer.close()
    assert _started(fresh_broker) == (True, True)

    fresh_broker.restart()
    # Both state topics exist: both coordinators load with the broker, no client asked.
    assert _started(fresh_broker) == (True, True)
    assert fresh_broker.committed_offsets("shipping") == {("orders", 0): 1}
