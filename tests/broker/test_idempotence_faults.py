"""Idempotent producers through dropped connections: the client retries, the
broker answers retries with their original offsets, and the log has every
record exactly once, in order."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker


def test_retries_after_connection_drops_leave_no_duplicates_or_gaps(
        strom_broker: EmbeddedBroker) -> None:
    topic = "idempotent-drops"
    producer = Producer({"bootstrap.servers": strom_broker.bootstrap,
                         "enable.idempotence": True, "linger.ms": 2,
                         "retry.backoff.ms": 10, "message.timeout.ms": 60000,
                         "request.timeout.ms": 2000, "socket.timeout.ms": 3000})
    producer.produce(topic, value=b"warm-up")
    assert producer.flush(30) == 0
    # Append, then close instead of answering, on the next few produce requests:
    # the producer must retry the same batches with the same sequence numbers and
    # the broker must answer them from its producer state instead of appending.
    strom_broker.lose_responses(ApiKey.PRODUCE, count=3)
    strom_broker.close_connection_on(ApiKey.PRODUCE, count=1)
    strom_broker.drop_responses(ApiKey.PRODUCE, count=1)
    for i in range(2000):
        producer.produce(topic, value=b"%d" % i)
        if i % 100 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    values = [r.value for r in strom_broker.records(topic)]
    assert values == [b"warm-up"] + [b"%d" % i for i in range(2000)]
    consumer = Consumer({"bootstrap.servers": strom_broker.bootstrap, "group.id": "check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen = 0
    while seen < 2001:
        msg = consumer.poll(10)
        assert msg is not None and not msg.error()
        assert msg.offset() == seen
        seen += 1
    consumer.close()
