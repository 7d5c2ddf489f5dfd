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
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from tests.cluster.brokers import WAIT, cluster_broker, cluster_of, metadata_of, read_values
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient, produce_request

PARTITIONS = 6
PER_PARTITION = 10


@pytest.fixture
def brokers(etcd: EtcdCluster, tmp_path: Path) -> Iterator[list[StromProcess]]:
    started = [cluster_broker(tmp_path, etcd, node_id) for node_id in (1, 2)]
    try:
        for broker in started:
            broker.start(timeout=WAIT)
        yield started
    finally:
        for broker in started:
            broker.stop()


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


def test_topics_partitions_and_data_across_brokers(brokers: list[StromProcess]) -> None:
    one, two = brokers
    bootstrap = f"{one.bootstrap},{two.bootstrap}"
    cluster = wait_until(lambda: cluster_of(two.bootstrap, 2), WAIT,
                         what="broker 2 to see both brokers")
    assert sorted(cluster.brokers) == [1, 2]
    assert cluster.controller_id in (1, 2)

    # Created through broker 1 (librdkafka sends CreateTopics to the controller).
    admin = AdminClient({"bootstrap.servers": one.bootstrap})
    admin.create_topics([NewTopic("spread", PARTITIONS, 1)])["spread"].result(WAIT)

    def described() -> ClusterMetadata | None:
        metadata = metadata_of(two.bootstrap, "spread")
        topic = metadata.topics.get("spread")
        return metadata if topic is not None and topic.error is None \
            and len(topic.partitions) == PARTITIONS else None
    metadata = wait_until(described, WAIT, what="broker 2 to describe the topic")
    leaders = {p: metadata.topics["spread"].partitions[p].leader for p in range(PARTITIONS)}
    assert sorted(leaders.values()) == [1, 1, 1, 2, 2, 2]  # round-robin over two brokers

    # Replicas on both brokers (striped: each leads one partition); more
    # replicas than brokers are refused.
    admin.create_topics([NewTopic("replicated", 2, 2)])["replicated"].result(WAIT)
    replicated = wait_until(lambda: metadata_of(two.bootstrap, "replicated").topics.get(
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
    seen = read_values(bootstrap, "spread", PARTITIONS, PARTITIONS * PER_PARTITION)
    assert seen == {p: [f"first-{p}-{i}" for i in range(PER_PARTITION)]
                    for p in range(PARTITIONS)}

    # Broker 2 restarts (SIGTERM deregisters it at once): its partitions,
    # their records, and the topic are all still there.
    assert two.terminate(timeout=WAIT) == 0
    wait_until(lambda: cluster_of(one.bootstrap, 1), WAIT, what="broker 2 to leave")
    two.start(timeout=WAIT)
    wait_until(lambda: cluster_of(one.bootstrap, 2), WAIT, what="broker 2 to come back")
    # Its partitions (one replica each) had no leader while it was away; the
    # controller elects it again once it has registered.

    def led_again() -> dict[int, int]:
        again = metadata_of(two.bootstrap, "spread").topics["spread"]
        return {p: again.partitions[p].leader for p in range(PARTITIONS)}
    wait_until(lambda: led_again() == leaders, WAIT, what="broker 2 to lead its partitions again")
    assert read_values(bootstrap, "spread", PARTITIONS, PARTITIONS * PER_PARTITION) == seen
