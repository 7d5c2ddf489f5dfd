"""Transactions across brokers (real etcd, two real `strom serve` processes,
librdkafka's transactional producer): a transaction spanning partitions led
by both brokers commits and aborts as on one broker. The coordinator writes
the markers of a partition led elsewhere with WriteTxnMarkers to its leader,
and a leader checks a transactional batch with a coordinator on the other
broker through AddPartitionsToTxn v5 (broker/txn_channel.py). Without them
the transaction never completes: its markers are retried forever, the last
stable offset stays at the transaction's first record and a read_committed
consumer sees nothing. Every wait has a deadline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from tests.cluster.etcd_process import EtcdCluster
from tests.cluster.test_cluster_brokers import WAIT, _broker, _cluster_of, _metadata
from tests.interop.clients import wait_until
from tests.process import StromProcess

TOPIC = "orders"


@pytest.fixture
def brokers(etcd: EtcdCluster, tmp_path: Path) -> Iterator[list[StromProcess]]:
    started = [_broker(tmp_path, etcd, node_id) for node_id in (1, 2)]
    try:
        for broker in started:
            broker.start(timeout=WAIT)
        wait_until(lambda: _cluster_of(started[0].bootstrap, 2), WAIT,
                   what="both brokers registered")
        yield started
    finally:
        for broker in started:
            broker.stop()


def _read_committed(bootstrap: str, expected: int) -> dict[int, list[str]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-reader",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in (0, 1)])
    seen: dict[int, list[str]] = {0: [], 1: []}
    try:
        def done() -> bool:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                value = message.value()
                assert value is not None
                seen[message.partition()].append(value.decode())
            return sum(map(len, seen.values())) >= expected
        wait_until(done, WAIT, interval=0, what=f"{expected} committed records read")
        # Nothing more arrives: the aborted records stay invisible.
        for _ in range(10):
            message = consumer.poll(0.1)
            assert message is None or message.error() is not None, message.value()
    finally:
        consumer.close()
    return seen


def test_a_transaction_spanning_both_brokers_commits_and_aborts(
        brokers: list[StromProcess]) -> None:
    bootstrap = ",".join(b.bootstrap for b in brokers)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(WAIT)
    leaders = wait_until(
        lambda: (lambda t: {p: t.partitions[p].leader for p in t.partitions}
                 if t is not None and len(t.partitions) == 2 else None)(
            _metadata(bootstrap, TOPIC).topics.get(TOPIC)), WAIT, what="topic leaders")
    assert sorted(leaders.values()) == [1, 2]  # one partition on each broker

    # Whichever broker coordinates, one of the two partitions is led by the other.
    producer = Producer({"bootstrap.servers": bootstrap,
                         "transactional.id": "spanning",
                         "transaction.timeout.ms": 60000,
                         "message.timeout.ms": int(WAIT * 1000)})
    producer.init_transactions(WAIT)
    for outcome in ("commit", "abort", "commit"):
        producer.begin_transaction()
        for partition in (0, 1):
            for i in range(3):
                producer.produce(TOPIC, value=f"{outcome}-{partition}-{i}".encode(),
                                 partition=partition)
        if outcome == "commit":
            producer.commit_transaction(WAIT)
        else:
            producer.abort_transaction(WAIT)

    seen = _read_committed(bootstrap, expected=12)
    for partition in (0, 1):
        assert seen[partition] == [f"commit-{partition}-{i}" for i in range(3)] * 2

    # The transaction log is replicated on both brokers, and its
    # min.insync.replicas is transaction.state.log.min.isr (Kafka's 2).
    state = _metadata(bootstrap, "__transaction_state").topics["__transaction_state"]
    assert {len(p.replicas) for p in state.partitions.values()} == {2}
    resource = ConfigResource(ConfigResource.Type.TOPIC, "__transaction_state")
    configs = admin.describe_configs([resource])[resource].result(WAIT)
    assert configs["min.insync.replicas"].value == "2"
