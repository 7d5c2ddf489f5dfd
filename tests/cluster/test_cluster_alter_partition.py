"""AlterPartition (API 56) through the real API: etcd and two `strom serve`
processes; raw AlterPartition v3 requests as a partition's leader would send
them. Only the controller answers; broker epochs are the etcd registrations'
create revisions; stale epochs get Kafka's errors; a valid ISR change is
committed and every broker's Metadata shows it. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.allocate_producer_ids.v0.request import AllocateProducerIdsRequest
from kio.schema.alter_partition.v3.request import (
    AlterPartitionRequest,
    BrokerState,
    PartitionData,
    TopicData,
)
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.types import BrokerId
from kio.static.primitive import i32, i64

from strom.cluster.etcd_client import EtcdClient
from strom.cluster.etcd_keys import ClusterKeys
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.cluster.brokers import WAIT, cluster_broker, cluster_of
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient, metadata_request


@pytest.fixture
def cluster(etcd: EtcdCluster, tmp_path: Path
            ) -> Iterator[tuple[dict[int, StromProcess], int, dict[int, int]]]:
    """(brokers by node id, the controller's node id, broker epochs by node id)."""
    started = {node_id: cluster_broker(tmp_path, etcd, node_id) for node_id in (1, 2)}
    try:
        for broker in started.values():
            broker.start(timeout=WAIT)
        metadata = wait_until(lambda: cluster_of(started[1].bootstrap, 2), WAIT,
                              what="both brokers registered")
        yield started, metadata.controller_id, asyncio.run(_epochs(etcd))
    finally:
        for broker in started.values():
            broker.stop()


async def _epochs(etcd: EtcdCluster) -> dict[int, int]:
    client = EtcdClient(etcd.endpoints)
    keys = ClusterKeys("strom-test-cluster")
    try:
        epochs = {}
        for node_id in (1, 2):
            kv = await client.get(keys.broker(node_id))
            assert kv is not None
            epochs[node_id] = kv.create_revision
        return epochs
    finally:
        await client.close()


def _request(bootstrap: str, api_key: int, version: int, body: Any) -> Any:
    with WireClient(bootstrap) as client:
        return client.request(api_key, version, body)


def _alter(broker_id: int, broker_epoch: int, topic_id: uuid.UUID, leader_epoch: int,
           partition_epoch: int, isr: dict[int, int]) -> AlterPartitionRequest:
    return AlterPartitionRequest(
        broker_id=BrokerId(broker_id), broker_epoch=i64(broker_epoch),
        topics=(TopicData(topic_id=topic_id, partitions=(PartitionData(
            partition_index=i32(0), leader_epoch=i32(leader_epoch),
            partition_epoch=i32(partition_epoch),
            new_isr_with_epochs=tuple(BrokerState(broker_id=BrokerId(b), broker_epoch=i64(e))
                                      for b, e in isr.items())),)),))


def _partition(bootstrap: str, topic: str) -> Any:
    response = _request(bootstrap, ApiKey.METADATA, 12, metadata_request(topic))
    (found,) = response.topics
    assert found.error_code == ErrorCode.none
    return found.topic_id, found.partitions[0]


def test_alter_partition_on_the_controller(
        cluster: tuple[dict[int, StromProcess], int, dict[int, int]]) -> None:
    brokers, controller_id, epochs = cluster
    controller = brokers[controller_id].bootstrap
    other = brokers[3 - controller_id].bootstrap
    versions = _request(other, ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
        client_software_name="strom-tests", client_software_version="0"))
    assert ApiKey.ALTER_PARTITION not in {k.api_key for k in versions.api_keys}

    admin = AdminClient({"bootstrap.servers": controller})
    admin.create_topics([NewTopic("isr", 1, 1)])["isr"].result(WAIT)
    topic_id, partition = wait_until(lambda: _partition(other, "isr"), WAIT)
    leader, follower = partition.leader_id, 3 - partition.leader_id
    assert (partition.leader_epoch, list(partition.isr_nodes)) == (0, [leader])

    def answer(bootstrap: str, request: AlterPartitionRequest) -> Any:
        response = _request(bootstrap, ApiKey.ALTER_PARTITION, 3, request)
        if response.error_code != ErrorCode.none:
            return response.error_code
        return response.topics[0].partitions[0]

    mine = {leader: epochs[leader]}
    assert answer(other, _alter(leader, epochs[leader], topic_id, 0, 0, mine)) == \
        ErrorCode.not_controller
    assert answer(controller, _alter(leader, epochs[leader] + 1000, topic_id, 0, 0, mine)) \
        == ErrorCode.stale_broker_epoch
    same = answer(controller, _alter(leader, epochs[leader], topic_id, 0, 0, mine))
    assert (same.error_code, same.leader_id, same.partition_epoch, list(same.isr)) == (
        ErrorCode.none, leader, 0, [leader])
    for leader_epoch, partition_epoch, isr, error in (
            (-1, 0, mine, ErrorCode.fenced_leader_epoch),
            (0, -1, mine, ErrorCode.invalid_update_version),
            (1, 0, mine, ErrorCode.not_controller),
            # Broker `follower` holds no replica of this partition.
            (0, 0, {**mine, follower: epochs[follower]}, ErrorCode.invalid_request)):
        got = answer(controller, _alter(leader, epochs[leader], topic_id, leader_epoch,
                                        partition_epoch, isr))
        assert got.error_code == error, (leader_epoch, partition_epoch, isr)
    unknown = answer(controller, _alter(leader, epochs[leader], uuid.uuid4(), 0, 0, mine))
    assert unknown.error_code == ErrorCode.unknown_topic_id


def test_isr_changes_reach_every_broker(
        cluster: tuple[dict[int, StromProcess], int, dict[int, int]]) -> None:
    brokers, controller_id, epochs = cluster
    controller = brokers[controller_id].bootstrap
    admin = AdminClient({"bootstrap.servers": controller})
    admin.create_topics([NewTopic("replicated", 1, 2)])["replicated"].result(WAIT)
    topic_id, partition = wait_until(lambda: _partition(controller, "replicated"), WAIT)
    leader, follower = partition.leader_id, 3 - partition.leader_id
    assert sorted(partition.isr_nodes) == [1, 2]

    def alter(partition_epoch: int, isr: list[int]) -> Any:
        request = _alter(leader, epochs[leader], topic_id, 0, partition_epoch,
                         {b: epochs[b] for b in isr})
        return _request(controller, ApiKey.ALTER_PARTITION, 3, request).topics[0].partitions[0]

    shrunk = alter(0, [leader])
    assert (shrunk.error_code, list(shrunk.isr), shrunk.leader_epoch,
            shrunk.partition_epoch) == (ErrorCode.none, [leader], 0, 1)
    for bootstrap in (brokers[1].bootstrap, brokers[2].bootstrap):
        wait_until(lambda b=bootstrap: list(_partition(b, "replicated")[1].isr_nodes)
                   == [leader], WAIT, what="the shrunk ISR in every broker's Metadata")
    # A request based on the ISR before the shrink is stale.
    assert alter(0, [leader, follower]).error_code == ErrorCode.invalid_update_version
    grown = alter(1, [follower, leader])
    if grown.error_code == ErrorCode.invalid_update_version:
        # The leader itself saw its (caught-up) follower and expanded the ISR
        # first, at partition epoch 2: this request's epoch 1 is then stale.
        assert wait_until(lambda: sorted(_partition(controller, "replicated")[1].isr_nodes)
                          == [1, 2], WAIT, what="the leader's own ISR expansion")
    else:
        assert (grown.error_code, sorted(grown.isr), grown.partition_epoch) == (
            ErrorCode.none, [1, 2], 2)
    wait_until(lambda: sorted(_partition(brokers[follower].bootstrap, "replicated")[1]
                              .isr_nodes) == [1, 2], WAIT, what="the grown ISR")


def test_allocate_producer_ids_compares_the_broker_epoch(
        cluster: tuple[dict[int, StromProcess], int, dict[int, int]]) -> None:
    brokers, controller_id, epochs = cluster
    other = 3 - controller_id

    def allocate(epoch: int) -> Any:
        return _request(brokers[controller_id].bootstrap, ApiKey.ALLOCATE_PRODUCER_IDS, 0,
                        AllocateProducerIdsRequest(broker_id=BrokerId(other),
                                                   broker_epoch=i64(epoch)))
    assert allocate(epochs[other] - 1).error_code == ErrorCode.stale_broker_epoch
    assert allocate(epochs[other]).error_code == ErrorCode.none
    assert allocate(-1).error_code == ErrorCode.none  # the schema's default: not compared
