"""Which partitions this broker hosts, kept in step with the metadata image.

The replica manager owns the `Partition` objects. It creates and deletes
logs when the image gains or loses partitions, pushes config changes down to
the logs, and runs the broker's background log duties (retention,
checkpoints). Handlers reach partitions only through it.
"""

from __future__ import annotations

import asyncio
import logging

from strom.broker.flusher import GroupCommitFlusher
from strom.broker.log_cleaner import LogCleanerService
from strom.broker.partition import Partition, log_config_for
from strom.clock import Clock
from strom.cluster.image import MetadataImage, TopicInfo
from strom.config import BrokerConfig, TopicConfig
from strom.errors import UnknownTopicOrPartitionError
from strom.storage.manager import LogManager

log = logging.getLogger(__name__)


class ReplicaManager:
    def __init__(self, config: BrokerConfig, log_manager: LogManager, *, node_id: int,
                 clock: Clock) -> None:
        self.config = config
        self.log_manager = log_manager
        self.node_id = node_id
        self.clock = clock
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.flusher = GroupCommitFlusher()
        self.cleaner = LogCleanerService(config, self, clock)

    def topic_config(self, topic: TopicInfo) -> TopicConfig:
        return TopicConfig(dict(topic.configs), self.config)

    def load(self, image: MetadataImage) -> None:
        """Open the logs of every partition in the image (crash recovery runs here)."""
        configs = {t.name: self.topic_config(t) for t in image.topics.values()}

        def config_for(topic: str):  # type: ignore[no-untyped-def]
            cfg = configs.get(topic) or TopicConfig({}, self.config)
            return log_config_for(cfg)

        logs = self.log_manager.load_logs(config_for)
        for topic_name, index in logs:
            topic = image.topics.get(topic_name)
            if topic is None or index >= len(topic.partitions):
                # A log without metadata: the topic was deleted while we were down.
                log.info("deleting log %s-%d: no such topic in metadata", topic_name, index)
                self.log_manager.delete_log(topic_name, index)
        self.on_image(None, image)

    def on_image(self, old: MetadataImage | None, new: MetadataImage) -> None:
        """Apply the difference between two images to the hosted partitions."""
        for name, topic in new.topics.items():
            config = self.topic_config(topic)
            old_topic = old.topics.get(name) if old else None
            for p in topic.partitions:
                key = (name, p.partition)
                existing = self.partitions.get(key)
                if existing is not None and existing.topic_id != topic.topic_id:
                    self._remove(key)
                    existing = None
                if existing is None:
                    if self.node_id not in p.replicas:
                        continue
                    partition_log = self.log_manager.get(name, p.partition)
                    if partition_log is None:
                        partition_log = self.log_manager.create_log(
                            name, p.partition, log_config_for(config), topic.topic_id
                        )
                    self.partitions[key] = Partition(
                        name, p.partition, topic.topic_id, partition_log, config,
                        leader_epoch=p.leader_epoch, node_id=self.node_id, clock=self.clock,
                    )
                else:
                    existing.leader_id = p.leader
                    if p.leader_epoch != existing.leader_epoch:
                        existing.become_leader(p.leader_epoch)
                    if old_topic is None or old_topic.configs != topic.configs:
                        existing.update_config(config)
        for key in [k for k in self.partitions if k[0] not in new.topics
                    or self.partitions[k].topic_id != new.topics[k[0]].topic_id]:
            self._remove(key)

    def refresh_configs(self, image: MetadataImage) -> None:
        """Broker-level defaults changed: every topic's effective config may have."""
        for (name, _), partition in self.partitions.items():
            topic = image.topics.get(name)
            if topic is not None:
                partition.update_config(self.topic_config(topic))

    def _remove(self, key: tuple[str, int]) -> None:
        partition = self.partitions.pop(key)
        self.cleaner.forget(key)
        self.flusher.forget(partition.log, lambda: UnknownTopicOrPartitionError("deleted"))
        partition.appended.notify()
        self.log_manager.delete_log(*key)

    def get(self, topic: str, index: int) -> Partition:
        partition = self.partitions.get((topic, index))
        if partition is None:
            raise UnknownTopicOrPartitionError(
                f"This server does not host this topic-partition: {topic}-{index}"
            )
        return partition

    def high_watermarks(self) -> dict[tuple[str, int], int]:
        return {key: p.high_watermark for key, p in self.partitions.items()}

    def checkpoint(self) -> None:
        self.snapshot_producer_state()
        self.log_manager.checkpoint(self.high_watermarks())

    def snapshot_producer_state(self) -> None:
        for partition in self.partitions.values():
            partition.producer_state.maybe_snapshot()

    def apply_retention(self) -> int:
        deleted = 0
        now = self.clock.wall_ms()
        for partition in self.partitions.values():
            if "delete" not in partition.config.cleanup_policy:
                continue
            deleted += partition.log.apply_retention(
                now, high_watermark=partition.high_watermark)
            partition.after_log_change()
        return deleted

    async def run_background(self) -> None:
        """Retention, checkpoints and log compaction, until cancelled."""
        cleaner = asyncio.create_task(self.cleaner.run(), name="log-cleaner")
        try:
            await self._run_retention_and_checkpoints()
        finally:
            cleaner.cancel()
            await asyncio.gather(cleaner, return_exceptions=True)

    async def _run_retention_and_checkpoints(self) -> None:
        """Retention and checkpoints on Kafka's intervals, until cancelled."""
        retention_every = self._interval("log.retention.check.interval.ms")
        checkpoint_every = self._interval("log.flush.offset.checkpoint.interval.ms")
        next_retention = self.clock.monotonic() + retention_every
        next_checkpoint = self.clock.monotonic() + checkpoint_every
        while True:
            now = self.clock.monotonic()
            await asyncio.sleep(max(0.05, min(next_retention, next_checkpoint) - now))
            now = self.clock.monotonic()
            try:
                if now >= next_retention:
                    next_retention = now + retention_every
                    if self.apply_retention():
                        self.checkpoint()
                if now >= next_checkpoint:
                    next_checkpoint = now + checkpoint_every
                    self.checkpoint()
            except Exception:  # keep the broker serving; the next round retries
                log.exception("background log task failed")

    def _interval(self, name: str) -> float:
        value = self.config.get(name)
        assert isinstance(value, int)
        return max(value, 100) / 1000.0

    def shutdown(self) -> None:
        self.snapshot_producer_state()
        self.log_manager.shutdown(self.high_watermarks())
