"""Idempotent producers over the wire: retries are answered with their
original offset and written once, gaps are refused, and the state survives a
restart."""

from __future__ import annotations

import datetime

from confluent_kafka import Consumer, Producer, TopicPartition
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, metadata_request, produce_request


def _init_producer_id(client: WireClient) -> tuple[int, int]:
    response = client.request(ApiKey.INIT_PRODUCER_ID, 4, InitProducerIdRequest(
        transactional_id=None, transaction_timeout=datetime.timedelta(seconds=60),
        producer_id=-1, producer_epoch=-1))
    assert response.error_code == ErrorCode.none
    return response.producer_id, response.producer_epoch


def _send(client: WireClient, topic: str, pid: int, epoch: int, seq: int) -> tuple[int, int]:
    batch = build_batch([RecordSpec(value=b"%d" % seq)], producer_id=pid,
                        producer_epoch=epoch, base_sequence=seq)
    response = client.request(ApiKey.PRODUCE, 9, produce_request(topic, batch, acks=-1))
    partition = response.responses[0].partition_responses[0]
    return partition.error_code, partition.base_offset


def test_retry_is_written_once_and_gap_refused(fresh_broker: EmbeddedBroker) -> None:
    topic = "idem"
    with WireClient(fresh_broker.bootstrap) as client:
        pid, epoch = _init_producer_id(client)
        assert _init_producer_id(client)[0] != pid
        client.request(ApiKey.METADATA, 12, metadata_request(topic))
        assert _send(client, topic, pid, epoch, 0) == (ErrorCode.none, 0)
        assert _send(client, topic, pid, epoch, 1) == (ErrorCode.none, 1)
        assert _send(client, topic, pid, epoch, 1) == (ErrorCode.none, 1)  # retry
        code, _ = _send(client, topic, pid, epoch, 5)
        assert code == ErrorCode.out_of_order_sequence_number
        code, _ = _send(client, topic, pid, epoch - 1 if epoch else -5, 2)
        assert code != ErrorCode.none
    fresh_broker.restart()
    with WireClient(fresh_broker.bootstrap) as client:
        # The producer state came back from its snapshot.
        assert _send(client, topic, pid, epoch, 1) == (ErrorCode.none, 1)
        assert _send(client, topic, pid, epoch, 2) == (ErrorCode.none, 2)
        new_pid, _ = _init_producer_id(client)
        assert new_pid > pid  # producer ids are never reused across restarts
    consumer = Consumer({"bootstrap.servers": fresh_broker.bootstrap, "group.id": "x",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    while len(values) < 3:
        msg = consumer.poll(10)
        assert msg is not None and not msg.error()
        values.append(msg.value())
    consumer.close()
    assert values == [b"0", b"1", b"2"]


def test_confluent_idempotent_producer(broker: EmbeddedBroker, topic_name: str) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})
    for i in range(500):
        producer.produce(topic_name, key=b"%d" % (i % 7), value=b"%d" % i)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic_name, 0, 0)])
    seen = []
    while len(seen) < 500:
        msg = consumer.poll(10)
        assert msg is not None and not msg.error()
        seen.append(int(msg.value()))
    consumer.close()
    assert seen == list(range(500))
