"""Partitions' latest offsets (high watermarks) wherever they are led.

What Kafka's PartitionMetadataClient.listLatestOffsets gives the group
coordinator for share groups' lag (DescribeShareGroupOffsets v1): a
partition this broker leads answers from its own high watermark; one led
by another broker (cluster mode) is asked with ListOffsets (LATEST,
read_uncommitted) over the inter-broker connection, one request per
leader. A partition that cannot be answered is left out (its lag is then
unknown, -1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i8, i32, i64

from strom.broker.replica_manager import ReplicaManager
from strom.cluster.image import BrokerInfo, MetadataImage
from strom.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from strom.broker.peer_client import PeerClient

log = logging.getLogger(__name__)

LATEST = -1
TopicPartition = tuple[str, int]


async def latest_offsets(partitions: Iterable[TopicPartition], *, node_id: int,
                         image: Callable[[], MetadataImage], replicas: ReplicaManager,
                         peers: PeerClient | None) -> Mapping[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    remote: dict[int, list[TopicPartition]] = {}
    current = image()
    for topic, index in partitions:
        info = current.topics.get(topic)
        if info is None or not 0 <= index < len(info.partitions):
            continue
        leader = info.partitions[index].leader
        if leader == node_id or peers is None:
            try:
                out[(topic, index)] = int(replicas.get(topic, index).high_watermark)
            except KafkaError:
                continue
        elif leader >= 0:
            remote.setdefault(leader, []).append((topic, index))
    if remote and peers is not None:
        answers = await asyncio.gather(*(
            _ask(peers, current.brokers.get(leader), tps) for leader, tps in remote.items()))
        for answer in answers:
            out.update(answer)
    return out


async def _ask(peers: PeerClient, leader: BrokerInfo | None, partitions: list[TopicPartition]
               ) -> Mapping[TopicPartition, int]:
    # Cluster mode only: ListOffsets v7's schema (~4 ms to import) is loaded by
    # the first partition led elsewhere, not by every broker with its handlers.
    from kio.schema.list_offsets.v7.request import (
        ListOffsetsPartition,
        ListOffsetsRequest,
        ListOffsetsTopic,
    )
    from kio.schema.list_offsets.v7.response import ListOffsetsResponse

    if leader is None:
        return {}
    by_topic: dict[str, list[int]] = {}
    for topic, index in partitions:
        by_topic.setdefault(topic, []).append(index)
    request = ListOffsetsRequest(
        replica_id=BrokerId(-1), isolation_level=i8(0),
        topics=tuple(ListOffsetsTopic(name=TopicName(topic), partitions=tuple(
            ListOffsetsPartition(partition_index=i32(i), current_leader_epoch=i32(-1),
                                 timestamp=i64(LATEST)) for i in indexes))
            for topic, indexes in by_topic.items()))
    try:
        response = await peers.request(leader, request, ListOffsetsResponse)
    except KafkaError as exc:
        log.debug("latest offsets from broker %d failed: %s", leader.node_id, exc)
        return {}
    return {(str(t.name), int(p.partition_index)): int(p.offset)
            for t in response.topics for p in t.partitions if p.error_code == ErrorCode.none}
