"""Share partitions in cluster mode: a share fetch reaches the partition's
leader only (elsewhere NOT_LEADER_OR_FOLLOWER with the current leader and its
endpoint, as Kafka answers), and the leader keeps its share state through the
share coordinator wherever that runs (the Persister over the peer client)."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.broker.share.share_client import ACCEPT, ShareClient, acquired, partition_data
from tests.cluster.brokers import WAIT, cluster_of
from tests.interop.clients import wait_until
from tests.process import StromProcess


def _leaders(bootstrap: str, topic: str) -> tuple[uuid.UUID, dict[int, int]]:
    with RawClient(bootstrap) as client:
        answer = client.send(ApiKey.METADATA, 12, {
            "topics": [{"topic_id": None, "name": topic}], "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False})
    (found,) = answer.topics
    return found.topic_id, {p.partition_index: p.leader_id for p in found.partitions}


def test_share_fetch_at_the_leader(two_brokers: list[StromProcess]) -> None:
    by_id = {1: two_brokers[0], 2: two_brokers[1]}
    bootstrap = ",".join(b.bootstrap for b in two_brokers)
    wait_until(lambda: cluster_of(two_brokers[1].bootstrap, 2), WAIT, what="both brokers")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("shared", 2, 1)])["shared"].result(WAIT)
    def led() -> tuple[uuid.UUID, dict[int, int]] | None:
        topic_id, leaders = _leaders(two_brokers[0].bootstrap, "shared")
        return (topic_id, leaders) if sorted(leaders) == [0, 1] \
            and all(node in by_id for node in leaders.values()) else None

    topic_id, leaders = wait_until(led, WAIT, what="leaders of both partitions")
    leader_id = leaders[0]
    leader, other = by_id[leader_id], by_id[3 - leader_id]

    elsewhere = ShareClient(other, "g")  # type: ignore[arg-type]
    refused = elsewhere.fetch(topic_id, [0])
    data = partition_data(refused)
    assert data.error_code == ErrorCode.not_leader_or_follower
    assert data.current_leader.leader_id == leader_id
    assert [e.node_id for e in refused.node_endpoints] == [leader_id]
    assert refused.node_endpoints[0].port == int(leader.bootstrap.rsplit(":", 1)[1])

    member = ShareClient(leader, "g")  # type: ignore[arg-type]
    # The share coordinator starts on first use: retriable errors until then.
    wait_until(lambda: partition_data(member.fetch(topic_id, [0], epoch=0)).error_code == 0,
               WAIT, what="the share partition to load")
    member.epoch = 1
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(3):
        producer.produce("shared", value=f"v{i}".encode(), partition=0)
    assert producer.flush(WAIT) == 0
    assert acquired(member.fetch(topic_id, [0], max_wait_ms=5000)) == [(0, 2, 1)]
    ack = member.acknowledge(topic_id, {0: [(0, 2, [ACCEPT])]})
    assert ack.responses[0].partitions[0].error_code == 0
