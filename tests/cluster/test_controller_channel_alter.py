"""ControllerChannel.alter_partition from a broker that is not the controller:
AlterPartition v3 over the peer client to a real `strom serve` controller,
answered once this broker's own image has the change; the controller's
refusals arrive as the typed KafkaErrors a leader catches. The asking broker
is an EtcdMetadataStore in the test (registered, never campaigning) with the
same channel the broker uses. Every wait has a deadline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from strom.broker.controller_channel import ControllerChannel, ControllerError
from strom.broker.peer_client import PeerClient
from strom.cluster.etcd_client import EtcdClient
from strom.cluster.etcd_store import EtcdMetadataStore
from strom.errors import ErrorCode, FencedLeaderEpochError, InvalidUpdateVersionError
from tests.cluster.brokers import WAIT, cluster_broker
from tests.cluster.etcd_process import EtcdCluster

ASKER = 3


def test_alter_partition_through_the_controller(etcd: EtcdCluster, tmp_path: Path) -> None:
    controller = cluster_broker(tmp_path, etcd, 1)
    controller.start(timeout=WAIT)
    try:
        asyncio.run(asyncio.wait_for(_ask(etcd), WAIT * 2))
    finally:
        controller.stop()


async def _ask(etcd: EtcdCluster) -> None:
    store = EtcdMetadataStore(EtcdClient(etcd.endpoints), cluster="strom-test-cluster",
                              node_id=ASKER, listener=("127.0.0.1", 1), lease_ttl=3,
                              campaign=False)
    await store.start()
    peers = PeerClient(ASKER)
    channel = ControllerChannel(store, peers)
    try:
        await store.wait_for(lambda i: i.controller_id == 1 and set(i.brokers) == {1, ASKER},
                             WAIT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:  # until the controller's own image has this broker too
            try:
                await channel.create_topic("asked", 2, 2, {})
                break
            except ControllerError as exc:
                if exc.code != ErrorCode.invalid_replication_factor or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)  # a client's retry backoff
        topic = store.image.topics["asked"]
        # Striped over two brokers: this broker leads one partition.
        (mine,) = [p for p in topic.partitions if p.leader == ASKER]
        assert mine.isr == mine.replicas and len(mine.isr) == 2

        shrunk = await channel.alter_partition(topic.topic_id, mine.partition, 0, 0, [ASKER])
        assert (shrunk.leader, shrunk.isr, shrunk.leader_epoch, shrunk.partition_epoch) == (
            ASKER, (ASKER,), 0, 1)
        # Returned once this broker's own image has it.
        assert store.image.topics["asked"].partitions[mine.partition] == shrunk

        with pytest.raises(InvalidUpdateVersionError):
            await channel.alter_partition(topic.topic_id, mine.partition, 0, 0, mine.replicas)
        with pytest.raises(FencedLeaderEpochError):
            await channel.alter_partition(topic.topic_id, mine.partition, -1, 1, mine.replicas)
        grown = await channel.alter_partition(topic.topic_id, mine.partition, 0, 1,
                                              mine.replicas)
        assert (grown.isr, grown.partition_epoch) == (mine.replicas, 2)
    finally:
        await peers.close()
        await store.stop()
