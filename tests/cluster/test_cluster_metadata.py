"""Metadata and DescribeTopicPartitions show a broker that left the cluster
as Kafka's do: its replicas are listed offline (real etcd, two real
`strom serve` processes, the second killed with SIGKILL so that it leaves
only when its lease expires). Every wait has a deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.describe_topic_partitions.v0.request import (
    DescribeTopicPartitionsRequest,
    TopicRequest,
)
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.types import TopicName
from kio.static.primitive import i8, i32

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.cluster.brokers import WAIT, cluster_broker, cluster_of
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient, metadata_request

TOPIC = "halves"


def _partitions(bootstrap: str) -> dict[int, Any]:
    with WireClient(bootstrap) as client:
        response = client.request(ApiKey.METADATA, 12, metadata_request(TOPIC))
    (topic,) = response.topics
    return {int(p.partition_index): p for p in topic.partitions}


def test_replicas_of_a_dead_broker_are_listed_offline(two_brokers: list[StromProcess]) -> None:
    one, two = two_brokers
    admin = AdminClient({"bootstrap.servers": one.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(WAIT)
    before = wait_until(lambda: (lambda ps: ps if len(ps) == 2 else None)(
        _partitions(one.bootstrap)), WAIT, what="both partitions described")
    assert all(list(p.offline_replicas) == [] for p in before.values())
    on_two = next(i for i, p in before.items() if list(p.replica_nodes) == [2])

    two.kill()  # no deregistration: it leaves when its lease expires
    wait_until(lambda: cluster_of(one.bootstrap, 1), WAIT, what="broker 2's lease to expire")

    after = _partitions(one.bootstrap)
    assert list(after[on_two].offline_replicas) == [2]
    assert list(after[1 - on_two].offline_replicas) == []

    with WireClient(one.bootstrap) as client:
        described = client.request(ApiKey.DESCRIBE_TOPIC_PARTITIONS, 0,
                                   DescribeTopicPartitionsRequest(
                                       topics=(TopicRequest(name=TopicName(TOPIC)),),
                                       response_partition_limit=i32(100), cursor=None))
    (topic,) = described.topics
    offline = {int(p.partition_index): list(p.offline_replicas) for p in topic.partitions}
    assert offline == {on_two: [2], 1 - on_two: []}


def test_coordinators_wait_for_as_many_brokers_as_their_topic_has_replicas(
        etcd: EtcdCluster, tmp_path: Path) -> None:
    """Kafka's default offsets.topic.replication.factor (3) with two brokers:
    FindCoordinator answers COORDINATOR_NOT_AVAILABLE (retriable) instead of
    creating __consumer_offsets under-replicated for good; a third broker
    registering lets it be created with three replicas."""
    started = []
    try:
        for node_id in (1, 2, 3):
            broker = cluster_broker(tmp_path, etcd, node_id)
            del broker.overrides["offsets.topic.replication.factor"]
            started.append(broker)
        for broker in started[:2]:
            broker.start(timeout=WAIT)
        wait_until(lambda: cluster_of(started[0].bootstrap, 2), WAIT,
                   what="two brokers registered")
        request = FindCoordinatorRequest(key_type=i8(0), coordinator_keys=("a-group",))
        with WireClient(started[0].bootstrap) as client:
            response = client.request(ApiKey.FIND_COORDINATOR, 4, request)
        assert response.coordinators[0].error_code == ErrorCode.coordinator_not_available
        assert "__consumer_offsets" not in \
            [str(t.name) for t in _all_topics(started[0].bootstrap)]

        started[2].start(timeout=WAIT)

        def found() -> bool:
            with WireClient(started[0].bootstrap) as client:
                answer = client.request(ApiKey.FIND_COORDINATOR, 4, request)
            return answer.coordinators[0].error_code == ErrorCode.none
        wait_until(found, WAIT, what="a coordinator once three brokers are registered")
        offsets = {str(t.name): t for t in _all_topics(started[0].bootstrap)}
        assert {len(p.replica_nodes) for p in offsets["__consumer_offsets"].partitions} == {3}
    finally:
        for broker in started:
            broker.stop()


def _all_topics(bootstrap: str) -> Any:
    with WireClient(bootstrap) as client:
        return client.request(ApiKey.METADATA, 12, MetadataRequest(
            topics=None, allow_auto_topic_creation=False,
            include_topic_authorized_operations=False)).topics


def test_a_broker_down_while_its_topic_was_deleted_starts_and_drops_the_log(
        two_brokers: list[StromProcess], etcd_bin: str, tmp_path: Path) -> None:
    """Broker 2 is killed, a topic it holds a replica of is deleted meanwhile:
    it starts again (the cluster's metadata has history, so its log is a
    deleted topic's) and removes the log. The same data pointed at an etcd
    that holds no cluster metadata at all is refused: the logs would all
    count as deleted topics' and be lost."""
    one, two = two_brokers
    admin = AdminClient({"bootstrap.servers": one.bootstrap})
    admin.create_topics([NewTopic("doomed", 1, 2)])["doomed"].result(WAIT)
    producer = Producer({"bootstrap.servers": one.bootstrap, "acks": "all"})
    producer.produce("doomed", value=b"soon gone")
    assert producer.flush(WAIT) == 0
    log_dir = two.data_dir / "doomed-0"
    wait_until(lambda: any(f.stat().st_size for f in log_dir.glob("*.log")), WAIT,
               what="the record replicated to broker 2")
    two.kill()
    admin.delete_topics(["doomed"])["doomed"].result(WAIT)

    (tmp_path / "elsewhere").mkdir()
    elsewhere = EtcdCluster(etcd_bin, tmp_path / "elsewhere", size=1)
    elsewhere.start()
    try:
        stray = StromProcess(two.data_dir, overrides={
            **two.overrides, "strom.metadata.etcd.endpoints": elsewhere.endpoints})
        with pytest.raises(RuntimeError, match="was never written"):
            stray.start(timeout=WAIT)
    finally:
        elsewhere.stop()
    assert log_dir.exists()  # refused before anything was deleted

    two.start(timeout=WAIT)
    wait_until(lambda: not log_dir.exists(), WAIT, what="the deleted topic's log removed")
