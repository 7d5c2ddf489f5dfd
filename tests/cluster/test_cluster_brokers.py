"""Brokers in cluster mode: real etcd, real `strom serve` subprocesses, real
clients. A topic created through one broker is visible on all, its
partitions led round-robin by the registered brokers; clients produce to and
consume from every partition across brokers; a broker that is not a
partition's leader answers NOT_LEADER_OR_FOLLOWER; a restarted broker keeps
its topics and data. Every wait has a deadline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient, produce_request

WAIT = 30.0  # seconds; every wait below is bounded by it
PARTITIONS = 6
PER_PARTITION = 10


def _broker(tmp_path: Path, etcd: EtcdCluster, node_id: int) -> StromProcess:
    return StromProcess(tmp_path / f"broker-{node_id}", overrides={
        "node.id": str(node_id), "cluster.id": "strom-test-cluster",
        "strom.metadata.etcd.endpoints": etcd.endpoints,
        # Short leases: a broker gone is noticed quickly (whole seconds).
        "broker.session.timeout.ms": "3000",
        # A cluster refuses to create the coordinators' topics with fewer
        # brokers than their replication factor (Kafka's 3), as Kafka does.
        "offsets.topic.replication.factor": "2",
        "transaction.state.log.replication.factor": "2",
    })


@pytest.fixture
def brokers(etcd: EtcdCluster, tmp_path: Path) -> Iterator[list[StromProcess]]:
    started = [_broker(tmp_path, etcd, node_id) for node_id in (1, 2)]
    try:
        for broker in started:
            broker.start(timeout=WAIT)
        yield started
    finally:
        for broker in started:
            broker.stop()


def _metadata(bootstrap: str, topic: str | None = None) -> ClusterMetadata:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.list_topics(topic, timeout=10)


def _cluster_of(bootstrap: str, size: int) -> ClusterMetadata | None:
    metadata = _metadata(bootstrap)
    return metadata if len(metadata.brokers) == size else None


def _produce_all(bootstrap: str, topic: str, tag: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "message.timeout.ms": int(WAIT * 1000)})
    failures: list[str] = []
    for partition in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(topic, value=f"{tag}-{partition}-{i}".encode(),
                             partition=partition,
                             on_delivery=lambda err, _msg: err and failures.append(str(err)))
    assert producer.flush(WAIT) == 0
    assert failures == []


def _consume_all(bootstrap: str, topic: str, expected: int) -> dict[int, list[str]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    try:
        def done() -> bool:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                value = message.value()
                assert value is not None
                seen[message.partition()].append(value.decode())
            return sum(map(len, seen.values())) >= expected
        wait_until(done, WAIT, interval=0, what=f"{expected} records consumed")
    finally:
        consumer.close()
    return seen


def test_topics_partitions_and_data_across_brokers(brokers: list[StromProcess]) -> None:
    one, two = brokers
    bootstrap = f"{one.bootstrap},{two.bootstrap}"
    cluster = wait_until(lambda: _cluster_of(two.bootstrap, 2), WAIT,
                         what="broker 2 to see both brokers")
    assert sorted(cluster.brokers) == [1, 2]
    assert cluster.controller_id in (1, 2)

    # Created through broker 1 (librdkafka sends CreateTopics to the controller).
    admin = AdminClient({"bootstrap.servers": one.bootstrap})
    admin.create_topics([NewTopic("spread", PARTITIONS, 1)])["spread"].result(WAIT)

    def described() -> ClusterMetadata | None:
        metadata = _metadata(two.bootstrap, "spread")
        topic = metadata.topics.get("spread")
        return metadata if topic is not None and topic.error is None \
            and len(topic.partitions) == PARTITIONS else None
    metadata = wait_until(described, WAIT, what="broker 2 to describe the topic")
    leaders = {p: metadata.topics["spread"].partitions[p].leader for p in range(PARTITIONS)}
    assert sorted(leaders.values()) == [1, 1, 1, 2, 2, 2]  # round-robin over two brokers

    # Replicas on both brokers (striped: each leads one partition); more
    # replicas than brokers are refused.
    admin.create_topics([NewTopic("replicated", 2, 2)])["replicated"].result(WAIT)
    replicated = wait_until(lambda: _metadata(two.bootstrap, "replicated").topics.get(
        "replicated"), WAIT, what="broker 2 to describe the replicated topic")
    assert sorted(p.leader for p in replicated.partitions.values()) == [1, 2]
    for p in replicated.partitions.values():
        assert sorted(p.replicas) == sorted(p.isrs) == [1, 2] and p.replicas[0] == p.leader
    refused = admin.create_topics([NewTopic("too-many", 1, 3)])["too-many"]
    with pytest.raises(KafkaException) as caught:
        refused.result(WAIT)
    assert caught.value.args[0].code() == ErrorCode.invalid_replication_factor

    # A broker that does not lead a partition refuses its records (retriable).
    elsewhere = next(p for p, leader in leaders.items() if leader == 1)
    with WireClient(two.bootstrap) as client:
        response = client.request(ApiKey.PRODUCE, 9, produce_request(
            "spread", build_batch([RecordSpec(value=b"stray")]), partition=elsewhere))
    assert response.responses[0].partition_responses[0].error_code == \
        ErrorCode.not_leader_or_follower

    _produce_all(bootstrap, "spread", "first")
    seen = _consume_all(bootstrap, "spread", PARTITIONS * PER_PARTITION)
    assert seen == {p: [f"first-{p}-{i}" for i in range(PER_PARTITION)]
                    for p in range(PARTITIONS)}

    # Broker 2 restarts (SIGTERM deregisters it at once): its partitions,
    # their records, and the topic are all still there.
    assert two.terminate(timeout=WAIT) == 0
    wait_until(lambda: _cluster_of(one.bootstrap, 1), WAIT, what="broker 2 to leave")
    two.start(timeout=WAIT)
    wait_until(lambda: _cluster_of(one.bootstrap, 2), WAIT, what="broker 2 to come back")
    # Its partitions (one replica each) had no leader while it was away; the
    # controller elects it again once it has registered.

    def led_again() -> dict[int, int]:
        again = _metadata(two.bootstrap, "spread").topics["spread"]
        return {p: again.partitions[p].leader for p in range(PARTITIONS)}
    wait_until(lambda: led_again() == leaders, WAIT, what="broker 2 to lead its partitions again")
    assert _consume_all(bootstrap, "spread", PARTITIONS * PER_PARTITION) == seen
