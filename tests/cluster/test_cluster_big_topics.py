"""A big topic in cluster mode makes no partition directory on any broker
until records arrive (issue 19; real etcd, two `strom serve` processes): the
broker that learns of it from the etcd watch creates its replicas without
touching the disk, as the one that handled CreateTopics does. A follower's
replica of a never-written partition is made by its fetcher when the leader
has records; a reassignment and a kill -9 of a broker whose replicas never
got a record lose nothing. Every wait has a deadline."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer
from kio.schema.alter_partition_reassignments.v0.request import (
    AlterPartitionReassignmentsRequest,
    ReassignablePartition,
    ReassignableTopic,
)
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i32

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.cluster.brokers import WAIT, cluster_of, metadata_of, read_values
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient

PARTITIONS = 1_000
TOPIC = "big"


def _dirs(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir() if p.name.startswith(f"{TOPIC}-"))


def _produce(bootstrap: str, partitions: list[int], tag: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "message.timeout.ms": int(WAIT * 1000)})
    failures: list[str] = []
    for partition in partitions:
        producer.produce(TOPIC, value=f"{tag}-{partition}".encode(), partition=partition,
                         on_delivery=lambda err, _msg: err and failures.append(str(err)))
    assert producer.flush(WAIT) == 0
    assert failures == []


def _replicas(bootstrap: str, partition: int) -> list[int]:
    return list(metadata_of(bootstrap, TOPIC).topics[TOPIC].partitions[partition].replicas)


def test_a_big_topic_makes_directories_only_where_records_go(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    bootstrap = f"{controller.bootstrap},{other.bootstrap}"
    other_id = int(other.overrides["node.id"])
    with RawClient(controller.bootstrap, timeout=120) as admin:
        response = admin.send(ApiKey.CREATE_TOPICS, 7, {
            "topics": [{"name": TOPIC, "num_partitions": PARTITIONS, "replication_factor": 2,
                        "assignments": [], "configs": []}], "timeout": 120_000})
    assert response.topics[0].error_code == ErrorCode.none

    def led_on_other() -> bool:
        topic = metadata_of(other.bootstrap, TOPIC).topics.get(TOPIC)
        return topic is not None and len(topic.partitions) == PARTITIONS \
            and all(p.leader >= 0 for p in topic.partitions.values())
    wait_until(led_on_other, WAIT, what="the other broker to serve every partition")
    assert _dirs(controller.data_dir) == _dirs(other.data_dir) == []

    # acks=all: the leaders' appends and the followers' fetches make the
    # replicas' directories, and only theirs.
    _produce(bootstrap, [0, 1], "first")
    assert _dirs(controller.data_dir) == _dirs(other.data_dir) == [f"{TOPIC}-0", f"{TOPIC}-1"]

    # A never-written partition reassigned to one broker (a shrink within the
    # ISR: completes at once); the broker that lost it has nothing to delete.
    request = AlterPartitionReassignmentsRequest(topics=(ReassignableTopic(
        name=TopicName(TOPIC), partitions=(ReassignablePartition(
            partition_index=i32(10), replicas=(BrokerId(other_id),)),)),))
    with WireClient(controller.bootstrap) as client:
        altered = client.request(ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, request)
    assert altered.responses[0].partitions[0].error_code == ErrorCode.none
    wait_until(lambda: _replicas(controller.bootstrap, 10) == [other_id], WAIT,
               what="the reassignment of partition 10")
    _produce(bootstrap, [10], "moved")
    assert f"{TOPIC}-10" in _dirs(other.data_dir)
    assert f"{TOPIC}-10" not in _dirs(controller.data_dir)

    # kill -9 the other broker: its never-written replicas come back from the
    # metadata and follow again; a record to one of them reaches both.
    other.kill()
    other.start(timeout=WAIT)
    wait_until(lambda: cluster_of(controller.bootstrap, 2), WAIT, what="the broker back")
    _produce(bootstrap, [20, 21], "after")
    wait_until(lambda: {f"{TOPIC}-20", f"{TOPIC}-21"} <= set(_dirs(other.data_dir))
               and {f"{TOPIC}-20", f"{TOPIC}-21"} <= set(_dirs(controller.data_dir)), WAIT,
               what="both replicas of partitions 20 and 21")
    assert len(_dirs(other.data_dir)) == 5  # 0, 1, 10, 20, 21
    seen = read_values(bootstrap, TOPIC, 22, 5)
    assert {p: v for p, v in seen.items() if v} == {
        0: ["first-0"], 1: ["first-1"], 10: ["moved-10"], 20: ["after-20"], 21: ["after-21"]}
