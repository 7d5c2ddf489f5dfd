"""The share coordinator as the broker sees it (Kafka's ShareCoordinatorService).

It owns the runtime over `__share_group_state` (created on first use,
`share.coordinator.state.topic.num.partitions` partitions, pruned below the
snapshots still needed: `prune`), loads
the partitions this broker leads, and routes each share partition's state to
its partition with Kafka's function: the Java String.hashCode of
"groupId:topicId:partition" (the topic id in Kafka's base64 form), as
groups and transactional ids are routed.

Every operation names one share partition; the handlers of the
*ShareGroupState APIs and the broker's Persister (broker/share_persister.py)
call it once per partition.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from strom.clock import Clock
from strom.cluster.image import MetadataImage
from strom.cluster.store import MetadataStore
from strom.config import BrokerConfig
from strom.coordinator.group.service import partition_for
from strom.coordinator.runtime import CoordinatorRuntime, LeaderPartition, Result, Timer
from strom.coordinator.share import SHARE_GROUP_STATE_TOPIC, coordinator_key
from strom.coordinator.share.records import ShareKey
from strom.coordinator.share.shard import ShareCoordinatorShard, ShareGroupOffset, WriteData
from strom.coordinator.state_topic import CreateTopic, coordinator_node, state_topic_replication
from strom.errors import KafkaError

log = logging.getLogger(__name__)

T = TypeVar("T")

TOPIC = SHARE_GROUP_STATE_TOPIC


@dataclass(frozen=True, slots=True)
class ShareCoordinatorConfig:
    """Kafka's ShareCoordinatorConfig: names and defaults of Kafka 4.4."""

    num_partitions: int = 50
    replication_factor: int = 3
    min_isr: int = 2
    segment_bytes: int = 104857600
    updates_per_snapshot: int = 500
    write_timeout_ms: int = 5000
    load_buffer_size: int = 5242880
    prune_interval_ms: int = 300000
    cold_snapshot_interval_ms: int = 300000

    @classmethod
    def from_broker(cls, config: BrokerConfig) -> ShareCoordinatorConfig:
        def get(name: str) -> int:
            value = config.get(name)
            assert isinstance(value, int)
            return value

        return cls(
            num_partitions=get("share.coordinator.state.topic.num.partitions"),
            replication_factor=get("share.coordinator.state.topic.replication.factor"),
            min_isr=get("share.coordinator.state.topic.min.isr"),
            segment_bytes=get("share.coordinator.state.topic.segment.bytes"),
            updates_per_snapshot=get("share.coordinator.snapshot.update.records.per.snapshot"),
            write_timeout_ms=get("share.coordinator.write.timeout.ms"),
            load_buffer_size=get("share.coordinator.load.buffer.size"),
            prune_interval_ms=get("share.coordinator.state.topic.prune.interval.ms"),
            cold_snapshot_interval_ms=get(
                "share.coordinator.cold.partition.snapshot.interval.ms"),
        )


class StatePartition(LeaderPartition, Protocol):
    @property
    def high_watermark(self) -> int: ...

    def delete_records(self, offset: int) -> int: ...


class Replicas(Protocol):
    """What the coordinator needs of the broker's replica manager."""

    def get(self, topic: str, index: int) -> StatePartition: ...


class ShareCoordinator:
    def __init__(self, config: BrokerConfig, clock: Clock, metadata: MetadataStore,
                 replicas: Replicas, *, node_id: int, create_topic: CreateTopic) -> None:
        self.broker_config = config
        self.config = ShareCoordinatorConfig.from_broker(config)
        self.clock = clock
        self.metadata = metadata
        self.replicas = replicas
        self.node_id = node_id
        self._create = create_topic
        self.runtime: CoordinatorRuntime[ShareCoordinatorShard] = CoordinatorRuntime(
            TOPIC, self._new_shard, clock, load_buffer_bytes=self.config.load_buffer_size,
            write_timeout_s=self.config.write_timeout_ms / 1000.0)
        self._jobs: list[asyncio.Task[None]] = []

    def _new_shard(self, partition: int, timer: Timer) -> ShareCoordinatorShard:
        return ShareCoordinatorShard(partition, timer, self.clock,
                                     updates_per_snapshot=self.config.updates_per_snapshot,
                                     topic_exists=self._topic_exists)

    def _topic_exists(self, topic_id: uuid.UUID, partition: int) -> bool:
        topic = self.metadata.image.topic_by_id(topic_id)
        return topic is not None and 0 <= partition < len(topic.partitions)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.metadata.subscribe(self.on_image)
        self.on_image(None, self.metadata.image)
        loop = asyncio.get_running_loop()
        self._jobs = [
            loop.create_task(self._every(self.config.prune_interval_ms, self.prune),
                             name="share-state-prune"),
            loop.create_task(self._every(self.config.cold_snapshot_interval_ms,
                                         self.snapshot_cold),
                             name="share-state-cold-snapshots")]

    def on_image(self, old: MetadataImage | None, new: MetadataImage) -> None:
        self.runtime.follow_topic(new, TOPIC, self.node_id,
                                  lambda partition: self.replicas.get(TOPIC, partition))
        # Only when topics went away: most image changes (ISR, leaders) keep
        # them all, and the diff is a pass over every topic.
        if old is not None and len(new.topics) < len(old.topics):
            self._forget_deleted(old, new)

    def _forget_deleted(self, old: MetadataImage, new: MetadataImage) -> None:
        """Delete the state of deleted topics' share partitions, in every shard
        this broker leads (Kafka's ShareCoordinatorService.onTopicsDeleted)."""
        deleted = frozenset(t.topic_id for t in old.topics.values()) - frozenset(
            t.topic_id for t in new.topics.values())
        if not deleted:
            return
        for partition in self.runtime.partitions:
            if not self.runtime.is_active(partition):
                continue  # loading: its replay still holds them; the next deletion clears them
            try:
                self.runtime.write_now(partition, lambda s: s.forget_topics(deleted))
            except KafkaError as exc:
                log.warning("%s-%d: deleting the share state of deleted topics failed: %s",
                            TOPIC, partition, exc)

    async def stop(self) -> None:
        for job in self._jobs:
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        await self.runtime.close()

    # -- pruning ------------------------------------------------------------------------

    async def _every(self, interval_ms: int, job: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000.0)  # a periodic job, as Kafka's timers
            job()

    def snapshot_cold(self) -> None:
        """Re-snapshot the share partitions not snapshotted for
        `share.coordinator.cold.partition.snapshot.interval.ms` (the shard's
        snapshot_cold)."""
        interval = self.config.cold_snapshot_interval_ms
        for partition in self.runtime.partitions:
            if not self.runtime.is_active(partition):
                continue
            try:
                self.runtime.write_now(partition, lambda s: s.snapshot_cold(interval))
            except KafkaError as exc:
                log.warning("%s-%d: cold snapshots failed: %s", TOPIC, partition, exc)

    def prune(self) -> None:
        """Delete the records of each partition this broker coordinates that no
        share partition needs (below every live key's latest snapshot), as
        Kafka's share coordinator does with DeleteRecords: the topic is not
        compacted (a compacted topic would keep only a key's latest update and
        lose the ones between it and the snapshot)."""
        for partition in self.runtime.partitions:
            if not self.runtime.is_active(partition):
                continue
            try:
                redundant = self.runtime.read(partition, lambda s: s.last_redundant_offset())
                state = self.replicas.get(TOPIC, partition)
                target = min(redundant, state.high_watermark)
                if target > state.log_start_offset:
                    state.delete_records(target)
                    log.debug("%s-%d: pruned below %d", TOPIC, partition, target)
            except KafkaError as exc:
                log.warning("%s-%d: pruning failed: %s", TOPIC, partition, exc)

    async def _create_topic(self) -> None:
        if TOPIC in self.metadata.image.topics:
            return
        replication = state_topic_replication(
            TOPIC, self.config.replication_factor, len(self.metadata.image.brokers),
            cluster=bool(self.broker_config.etcd_endpoints))
        # Kafka sets the topic's min.insync.replicas to share.coordinator.state.topic.min.isr,
        # capped here as the replication factor is, so a single node can write.
        min_isr = min(self.config.min_isr, replication)
        await self._create(
            TOPIC, self.config.num_partitions, replication,
            # Kafka's: deleted by pruning below the snapshots still needed, never
            # by time or compaction (see prune).
            {"cleanup.policy": "delete", "retention.ms": "-1", "compression.type": "producer",
             "min.insync.replicas": str(min_isr),
             "segment.bytes": str(self.config.segment_bytes),
             "unclean.leader.election.enable": "false"})
        log.info("created %s with %d partitions", TOPIC, self.config.num_partitions)

    # -- routing ------------------------------------------------------------------------

    @property
    def num_partitions(self) -> int:
        topic = self.metadata.image.topics.get(TOPIC)
        if topic is not None:
            return len(topic.partitions)
        return self.config.num_partitions

    def partition_for(self, group_id: str, topic_id: uuid.UUID, partition: int) -> int:
        return partition_for(coordinator_key(group_id, topic_id, partition),
                             self.num_partitions)

    async def coordinator_for_key(self, key: str) -> int | None:
        """FindCoordinator key type SHARE: the node leading the key's partition
        of `__share_group_state` ("groupId:topicId:partition"), created when missing."""
        return await coordinator_node(lambda: self.metadata.image, TOPIC, self._create_topic,
                                      lambda count: partition_for(key, count))

    async def coordinator_for(self, group_id: str, topic_id: uuid.UUID,
                              partition: int) -> int | None:
        return await self.coordinator_for_key(coordinator_key(group_id, topic_id, partition))

    def is_local(self, group_id: str, topic_id: uuid.UUID, partition: int) -> bool:
        """Whether this broker coordinates the share partition's state now."""
        return self.runtime.is_active(self.partition_for(group_id, topic_id, partition))

    # -- operations (each raises a typed KafkaError) -------------------------------------

    async def _write(self, key: ShareKey,
                     operation: Callable[[ShareCoordinatorShard], Result[T]]) -> T:
        return await self.runtime.write(
            self.partition_for(key.group_id, key.topic_id, key.partition), operation)

    async def initialize_state(self, key: ShareKey, state_epoch: int,
                               start_offset: int) -> None:
        await self._write(key, lambda s: s.initialize(key, state_epoch, start_offset))

    async def read_state(self, key: ShareKey, leader_epoch: int) -> ShareGroupOffset:
        return await self._write(key, lambda s: s.read(key, leader_epoch))

    async def write_state(self, key: ShareKey, data: WriteData) -> None:
        await self._write(key, lambda s: s.write(key, data))

    def read_summary(self, key: ShareKey) -> ShareGroupOffset | None:
        return self.runtime.read(self.partition_for(key.group_id, key.topic_id, key.partition),
                                 lambda s: s.summary(key))

    async def delete_state(self, key: ShareKey) -> None:
        await self._write(key, lambda s: s.delete(key))
