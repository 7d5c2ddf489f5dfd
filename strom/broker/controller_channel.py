"""The broker-to-controller channel: what only the controller may do, asked of
it by any broker.

Only the controller commits metadata. On the controller (and on a single
node, which is its own controller) the channel commits directly; on another
broker of a cluster it sends the controller the Kafka request that does it,
as Kafka's brokers do: CreateTopics for topics created on a client's behalf
(Kafka's AutoTopicCreationManager: Metadata auto-creation and the
coordinators' internal topics), AllocateProducerIds for blocks of producer
ids (Kafka's RPCProducerIdManager). A forwarded topic creation returns once
the topic is in this broker's own image, so the caller can answer from it.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i16, i32, i32Timedelta, i64

from strom.cluster.image import BrokerInfo, MetadataImage, MetadataRecord, PartitionInfo
from strom.cluster.store import MetadataStore
from strom.cluster.validation import check_records_per_user_op
from strom.config import parse_topic_configs
from strom.errors import (
    ErrorCode,
    KafkaError,
    NotControllerError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    UnknownTopicIdError,
    error_for_code,
)

if TYPE_CHECKING:
    from strom.broker.peer_client import PeerClient


class ControllerError(KafkaError):
    """An error the controller answered with, carried to this broker's caller."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ControllerChannel:
    def __init__(self, metadata: MetadataStore, peers: PeerClient | None, *,
                 timeout: float = 30.0) -> None:
        """`peers` None: a single node, always its own controller."""
        self._metadata = metadata
        self._peers = peers
        self.timeout = timeout
        self._waiters: list[tuple[Callable[[MetadataImage], bool], asyncio.Future[None]]] = []
        metadata.subscribe(self._on_image)

    @property
    def is_local(self) -> bool:
        """This broker commits itself: a single node, or the controller."""
        return self._peers is None or self._metadata.image.controller_id == self._metadata.node_id

    # --- topics ---------------------------------------------------------------

    async def create_topic(self, name: str, num_partitions: int, replication_factor: int,
                           configs: Mapping[str, str]) -> MetadataImage:
        """Create one topic (KafkaError if it cannot be); the image that has it.
        An existing topic is no error: callers create what they found missing."""
        if self.is_local:
            try:
                records = self._metadata.operations.create_topic_records(
                    name, num_partitions, replication_factor, parse_topic_configs(configs))
                check_records_per_user_op(len(records))
                return await self._metadata.commit(records)
            except TopicAlreadyExistsError:
                return self._metadata.image  # created meanwhile (as by another broker)
        # The requests' schemas are imported by the first one sent to the
        # controller, not by every broker at start (the three were ~8 ms of it;
        # issue 19).
        from kio.schema.create_topics.v7.request import (
            CreatableTopic,
            CreatableTopicConfig,
            CreateTopicsRequest,
        )
        from kio.schema.create_topics.v7.response import CreateTopicsResponse

        assert self._peers is not None
        request = CreateTopicsRequest(
            topics=(CreatableTopic(
                name=TopicName(name), num_partitions=i32(num_partitions),
                replication_factor=i16(replication_factor), assignments=(),
                configs=tuple(CreatableTopicConfig(name=k, value=v)
                              for k, v in sorted(configs.items()))),),
            timeout=i32Timedelta.parse(datetime.timedelta(seconds=self.timeout)),
            validate_only=False)
        response = await self._peers.request(self._controller(), request, CreateTopicsResponse,
                                             timeout=self.timeout)
        (result,) = response.topics
        if result.error_code not in (ErrorCode.none, ErrorCode.topic_already_exists):
            raise ControllerError(result.error_code, result.error_message
                                  or f"the controller could not create {name}")
        return await self._wait_for(lambda image: name in image.topics,
                                    f"topic {name} created by the controller")

    # --- producer ids -----------------------------------------------------------

    async def allocate_producer_ids(self, block_size: int) -> tuple[int, int]:
        """A fresh block of producer ids for this broker: (first, count)."""
        if self.is_local:
            return await reserve_producer_ids(self._metadata, self._metadata.node_id,
                                              block_size)
        from kio.schema.allocate_producer_ids.v0.request import AllocateProducerIdsRequest
        from kio.schema.allocate_producer_ids.v0.response import AllocateProducerIdsResponse

        assert self._peers is not None
        node_id = self._metadata.node_id
        request = AllocateProducerIdsRequest(
            broker_id=BrokerId(node_id),
            broker_epoch=i64(self._broker_epoch(self._metadata.image, node_id)))
        response = await self._peers.request(self._controller(), request,
                                             AllocateProducerIdsResponse, timeout=self.timeout)
        if response.error_code != ErrorCode.none:
            raise ControllerError(response.error_code, "the controller allocated no producer ids")
        return int(response.producer_id_start), int(response.producer_id_len)

    # --- ISR changes --------------------------------------------------------------

    async def alter_partition(self, topic_id: uuid.UUID, partition: int, leader_epoch: int,
                              partition_epoch: int, new_isr: Sequence[int]) -> PartitionInfo:
        """As this partition's leader, ask the controller to make `new_isr` its
        ISR (AlterPartition); the partition as committed, once this broker's
        image has it. Raises the KafkaError the controller answered with
        (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, INELIGIBLE_REPLICA, ...)."""
        node_id = self._metadata.node_id
        if self.is_local:
            altered: list[PartitionInfo] = []

            def alter() -> list[MetadataRecord]:
                operations = self._metadata.operations
                result = operations.alter_partition(
                    node_id, self._broker_epoch(operations.image, node_id), topic_id,
                    partition, leader_epoch, partition_epoch, new_isr)
                altered.append(result.partition)
                return list(result.records)

            await self._metadata.submit(alter)
            return altered[-1]
        from kio.schema.alter_partition.v3.request import AlterPartitionRequest
        from kio.schema.alter_partition.v3.request import BrokerState as AlterPartitionBrokerState
        from kio.schema.alter_partition.v3.request import PartitionData as AlterPartitionData
        from kio.schema.alter_partition.v3.request import TopicData as AlterPartitionTopic
        from kio.schema.alter_partition.v3.response import AlterPartitionResponse

        assert self._peers is not None
        image = self._metadata.image
        request = AlterPartitionRequest(
            broker_id=BrokerId(node_id), broker_epoch=i64(self._broker_epoch(image, node_id)),
            topics=(AlterPartitionTopic(topic_id=topic_id, partitions=(AlterPartitionData(
                partition_index=i32(partition), leader_epoch=i32(leader_epoch),
                partition_epoch=i32(partition_epoch),
                new_isr_with_epochs=tuple(
                    AlterPartitionBrokerState(broker_id=BrokerId(r),
                                              broker_epoch=i64(self._broker_epoch(image, r)))
                    for r in new_isr)),)),))
        response = await self._peers.request(self._controller(), request,
                                             AlterPartitionResponse, timeout=self.timeout)
        if response.error_code != ErrorCode.none:
            raise error_for_code(response.error_code, "the controller refused AlterPartition")
        (answer,) = response.topics[0].partitions
        if answer.error_code != ErrorCode.none:
            raise error_for_code(answer.error_code,
                                 f"the controller refused AlterPartition of {topic_id}-"
                                 f"{partition}")
        committed = int(answer.partition_epoch)

        def has_it(image: MetadataImage) -> bool:
            topic = image.topic_by_id(topic_id)
            return topic is None or (partition < len(topic.partitions) and topic.partitions[
                partition].partition_epoch >= committed)

        image = await self._wait_for(has_it, f"AlterPartition of {topic_id}-{partition}")
        topic = image.topic_by_id(topic_id)
        if topic is None:
            raise UnknownTopicIdError(f"topic {topic_id} was deleted")
        return topic.partitions[partition]

    @staticmethod
    def _broker_epoch(image: MetadataImage, node_id: int) -> int:
        broker = image.brokers.get(node_id)
        return broker.epoch if broker is not None else -1

    # --- helpers ----------------------------------------------------------------

    def _controller(self) -> BrokerInfo:
        image = self._metadata.image
        controller = image.brokers.get(image.controller_id)
        if controller is None:
            raise NotControllerError("no controller is known yet")
        return controller

    def _on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        for predicate, future in self._waiters:
            if not future.done() and predicate(new):
                future.set_result(None)

    async def _wait_for(self, predicate: Callable[[MetadataImage], bool],
                        what: str) -> MetadataImage:
        if predicate(self._metadata.image):
            return self._metadata.image
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise RequestTimedOutError(f"{what}: not in this broker's metadata after "
                                       f"{self.timeout}s") from None
        finally:
            self._waiters.remove(entry)
        return self._metadata.image


async def reserve_producer_ids(metadata: MetadataStore, broker_id: int,
                               block_size: int) -> tuple[int, int]:
    """On the controller: commit a fresh block of producer ids for `broker_id`."""
    starts: list[int] = []

    def reserve() -> list[MetadataRecord]:
        # Run against the newest image: another broker's block may just have
        # been committed.
        start, records = metadata.operations.producer_id_block_records(block_size, broker_id)
        starts.append(start)
        return records

    await metadata.submit(reserve)
    return starts[-1], block_size
