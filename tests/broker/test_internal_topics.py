"""Internal topics can be deleted, as in Apache Kafka 4.4 (its controller
protects only the metadata log; ACLs protect the rest). strom keeps Kafka's
answers, logs who did it, and its coordinators never serve state from a
deleted topic: they come back empty once the topic is recreated."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strom.testing import EmbeddedBroker

TIMEOUT = 15


def _commit(bootstrap: str, group: str, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition("t", 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def _committed(bootstrap: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition("t", 0)], timeout=TIMEOUT)
        return int(tp.offset)
    finally:
        consumer.close()


def _transaction(bootstrap: str, transactional_id: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(TIMEOUT)
    producer.begin_transaction()
    producer.produce("t", value=b"v")
    producer.commit_transaction(TIMEOUT)


def test_deleting_internal_topics(fresh_broker: EmbeddedBroker,
                                  caplog: pytest.LogCaptureFixture) -> None:
    bootstrap = fresh_broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "careless-admin"})
    admin.create_topics([NewTopic("t", 1)])["t"].result(TIMEOUT)
    _commit(bootstrap, "g", 5)
    _transaction(bootstrap, "tx")
    assert _committed(bootstrap, "g") == 5
    for internal in ("__consumer_offsets", "__transaction_state"):
        future = admin.create_topics([NewTopic(internal, 1)])[internal]
        with pytest.raises(KafkaException, match="TOPIC_ALREADY_EXISTS"):
            future.result(TIMEOUT)

    with caplog.at_level(logging.WARNING, logger="strom.broker.handlers.delete_topics"):
        for future in admin.delete_topics(
                ["__consumer_offsets", "__transaction_state"]).values():
            future.result(TIMEOUT)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "strom.broker.handlers.delete_topics"]
    for internal in ("__consumer_offsets", "__transaction_state"):
        (line,) = [w for w in warnings if f"internal topic {internal} " in w]
        assert "'careless-admin'" in line and "/127.0.0.1" in line, line

    # The offsets went with the topic (as in Kafka); groups and transactions work
    # again on the recreated topics.
    assert _committed(bootstrap, "g") == -1001
    _commit(bootstrap, "g", 7)
    assert _committed(bootstrap, "g") == 7
    _transaction(bootstrap, "tx")
    topics = admin.list_topics(timeout=TIMEOUT).topics
    assert "__consumer_offsets" in topics and "__transaction_state" in topics
