"""Which partitions this broker hosts, kept in step with the metadata image.

The replica manager owns the `Partition` objects. It creates and deletes
logs when the image gains or loses partitions, pushes config changes down to
the logs; its `maintenance` (log_maintenance.py) runs the background log
duties (retention, checkpoints). Handlers reach partitions only through it.

In cluster mode (`start_replication`) it also gives each partition its role
from the image (leader or follower, Partition.update_state), points the
followers' fetchers (replica_fetcher.py) at their leaders, and hands the ISR
changes leaders propose to alter_partition_manager.py (AlterPartition to the
controller, retried as Kafka's AlterPartitionManager does), which also checks
every `replica.lag.time.max.ms / 2` for followers that fell out of sync.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strom.broker.flusher import GroupCommitFlusher
from strom.broker.log_cleaner import LogCleanerService
from strom.broker.log_jobs import LogJobs
from strom.broker.log_maintenance import LogMaintenance
from strom.broker.partition import Partition
from strom.broker.partition_config import AppendSettings, log_config_for
from strom.broker.replication_quota import ReplicationQuotas
from strom.broker.replication_settings import ReplicationSettings
from strom.clock import Clock
from strom.cluster.image import INTERNAL_TOPICS, MetadataImage, PartitionInfo, TopicInfo
from strom.config import BrokerConfig, TopicConfig
from strom.errors import (
    KafkaError,
    KafkaStorageError,
    LogFsyncFailedError,
    NotLeaderOrFollowerError,
    UnknownTopicOrPartitionError,
)
from strom.storage import disk
from strom.storage.log import LogConfig, PartitionLog
from strom.storage.manager import LogManager, NewLog, open_new_logs, remove_log_dirs

if TYPE_CHECKING:
    from strom.broker.alter_partition_manager import AlterPartitionManager
    from strom.broker.controller_channel import ControllerChannel
    from strom.broker.replica_fetcher import ReplicaFetcherManager

log = logging.getLogger(__name__)

#: A new partition's log the disk had no room for is tried again this often.
_RETRY_OPEN_S = 1.0
#: Partitions installed (~50 us each) or deleted logs closed between two
#: yields to the event loop by a log job: 200 keep a turn near 10 ms.
_INSTALL_CHUNK = 200


@dataclass(slots=True)
class OfflinePartition:
    """A partition hosted here whose log cannot serve: unreadable files
    (until the operator fixes them and restarts), or a new log a full disk
    had no room for (retried on use)."""

    reason: str
    retriable: bool = False
    retry_at: float = 0.0


class ReplicaManager:
    def __init__(self, config: BrokerConfig, log_manager: LogManager, *, node_id: int,
                 clock: Clock) -> None:
        self.config = config
        self.log_manager = log_manager
        self.node_id = node_id
        self.clock = clock
        self.partitions: dict[tuple[str, int], Partition] = {}
        #: Partitions hosted here that cannot serve, and why (KAFKA_STORAGE_ERROR).
        self.offline: dict[tuple[str, int], OfflinePartition] = {}
        self._image: MetadataImage | None = None
        self.flusher = GroupCommitFlusher()
        self.flusher.on_fsync_failed = self._fsync_failed
        self.cleaner = LogCleanerService(config, self, clock)
        #: Retention, checkpoints and the cleaner's task (log_maintenance.py).
        self.maintenance = LogMaintenance(config, log_manager, self.partitions, self.cleaner,
                                          clock)
        #: Creating and deleting logs off the event loop (log_jobs.py).
        self.jobs = LogJobs()
        self._create_in_background = False
        #: Cluster mode: the logs of every new partition (internal topics aside)
        #: are made by a log job, whichever request or watch event brought
        #: them: metadata from the etcd watch arrives outside any request.
        self._create_in_background_always = False
        #: Resolved once the logs of the last background creation take appends.
        self._created: asyncio.Future[None] | None = None
        #: Cluster mode only (start_replication): followers' fetchers, the
        #: controller that takes ISR changes, and the ISR expiration task.
        self.replication = ReplicationSettings.of(config)
        #: Replication throttles (dynamic broker configs; replication_quota.py).
        self.quotas = ReplicationQuotas(config, clock)
        self.fetchers: ReplicaFetcherManager | None = None
        #: ISR changes to the controller (cluster mode).
        self._alter: AlterPartitionManager | None = None
        #: ISR changes this broker proposed as leader (Kafka's IsrShrinksPerSec
        #: and IsrExpandsPerSec): /metrics.
        self.isr_shrinks = 0
        self.isr_expands = 0
        #: The append settings of the last topic config a partition was opened
        #: with: the partitions of one topic share its config object.
        self._last_settings: tuple[TopicConfig, AppendSettings] | None = None

    def topic_config(self, topic: TopicInfo) -> TopicConfig:
        return TopicConfig(dict(topic.configs), self.config)

    def load(self, image: MetadataImage) -> None:
        """Open the logs of every partition in the image (crash recovery runs here)."""
        configs = {t.name: self.topic_config(t) for t in image.topics.values()}

        def config_for(topic: str):  # type: ignore[no-untyped-def]
            cfg = configs.get(topic) or TopicConfig({}, self.config)
            return log_config_for(cfg)

        logs = self.log_manager.load_logs(config_for)
        for key, reason in self.log_manager.offline.items():
            self.offline[key] = OfflinePartition(reason)
        orphans = []
        # Only a cluster's metadata moves replicas between brokers; on a single
        # node a log naming another node id is a changed node.id, kept.
        me = image.brokers.get(self.node_id)
        clustered = me is not None and me.epoch >= 0
        for topic_name, index in [*logs, *self.log_manager.offline]:
            topic = image.topics.get(topic_name)
            if topic is None or index >= len(topic.partitions) or (
                    clustered and self.node_id not in topic.partitions[index].replicas):
                # A log without metadata: the topic was deleted while we were
                # down, or its replica here was reassigned to another broker.
                orphans.append((topic_name, index))
        if orphans:
            log.info("deleting %d log(s) of topics no longer in the metadata: %s", len(orphans),
                     ", ".join(f"{t}-{i}" for t, i in orphans[:10])
                     + (", ..." if len(orphans) > 10 else ""))
            self.log_manager.delete_logs(orphans)
        self.on_image(None, image)

    @contextmanager
    def creating_in_background(self) -> Iterator[None]:
        """Within this block (around a metadata commit), the logs of new
        partitions are created by a log job (log_jobs.py), in chunks, instead
        of inline: until `created()` they answer NOT_LEADER_OR_FOLLOWER, as in
        Kafka between the controller's commit and the broker's log creation.
        Internal topics stay inline: their coordinators load them at once."""
        self._create_in_background = True
        try:
            yield
        finally:
            self._create_in_background = False

    async def created(self) -> None:
        """Wait until the logs of the partitions created in the background
        so far take appends (their partition.metadata may still be being
        written: `settled` waits for that too)."""
        created = self._created
        if created is not None and not created.done():
            await asyncio.shield(created)

    async def settled(self) -> None:
        """Wait until the logs created or deleted in the background so far
        are: created logs take appends, deleted ones are gone from disk."""
        await self.jobs.settled()

    def on_image(self, old: MetadataImage | None, new: MetadataImage) -> None:
        """Apply the difference between two images to the hosted partitions.

        In time linear in the partitions of the topics that changed (plus a
        set lookup per hosted partition): a topic whose TopicInfo is the same
        object in both images (MetadataImage.apply keeps untouched topics'
        objects) is skipped, unless a partition of it waits to be retried.
        Comparing every partition of every topic made each metadata change
        cost ~1.5 us per partition hosted: 36 ms for a 10-partition
        CreateTopics on a broker with 20,000 partitions."""
        self._image = new
        old_topics = old.topics if old is not None else None
        changed = set(new.topics) if old_topics is None else {
            name for name, topic in new.topics.items() if old_topics.get(name) is not topic}
        if old_topics is not None:
            changed.update(name for name in old_topics if name not in new.topics)
        # Deletions first, so that a partition deleted and created again in
        # one change is created behind its old directory's removal.
        gone = [k for k in self.partitions if k[0] in changed and (
            k[0] not in new.topics or self.partitions[k].topic_id != new.topics[k[0]].topic_id)]
        for key in gone:
            self._detach(key)
        for key in [k for k in self.offline if k[0] not in new.topics]:
            del self.offline[key]
            gone.append(key)
        internal = [k for k in gone if k[0] in INTERNAL_TOPICS]
        if internal:
            # Inline (a few dozen logs): a coordinator recreating its topic
            # right after must find the names free, never a pending job.
            try:
                self.log_manager.delete_logs(internal)
            except KafkaStorageError as exc:  # logged once per condition (storage.disk)
                log.debug("could not delete the logs of %s: %s", internal[0][0], exc)
        if len(internal) < len(gone):
            self._delete_logs([k for k in gone if k[0] not in INTERNAL_TOPICS])
        later: list[tuple[str, int]] = []
        moved_away: list[tuple[str, int]] = []
        # A new log the disk had no room for is retried at every change.
        changed.update(k[0] for k, offline in self.offline.items() if offline.retriable)
        for name, topic in new.topics.items():
            if name not in changed:
                continue
            config = self.topic_config(topic)
            old_topic = old.topics.get(name) if old else None
            in_background = (self._create_in_background or self._create_in_background_always) \
                and name not in INTERNAL_TOPICS
            for p in topic.partitions:
                key = (name, p.partition)
                existing = self.partitions.get(key)
                if existing is None:
                    if self.node_id not in p.replicas or (
                            key in self.offline and not self.offline[key].retriable):
                        continue
                    if self.jobs.busy(key) or (in_background and self._is_new(key)):
                        later.append(key)
                    else:
                        self._open(key, topic, config, p, sync=False)
                else:
                    if old_topic is None or p.partition >= len(old_topic.partitions) \
                            or old_topic.partitions[p.partition] is not p:
                        if self.node_id not in p.replicas:
                            moved_away.append(key)
                            continue
                        self._update_state(existing, p)
                    if old_topic is None or old_topic.configs != topic.configs:
                        existing.update_config(config)
        moved_away += [k for k in self.offline if k[0] in new.topics
                       and k[1] < len(new.topics[k[0]].partitions)
                       and self.node_id not in new.topics[k[0]].partitions[k[1]].replicas]
        if moved_away:
            self._remove_replicas(moved_away, new)
        if later:
            created = self._created = asyncio.get_running_loop().create_future()
            self.jobs.submit(later, lambda: self._create_logs(later, created))
        # The logs created above become durable together (storage/new_logs.py).
        try:
            self.log_manager.sync_new_logs()
        except OSError as exc:
            # They stay pending: the next metadata change or shutdown retries.
            log.warning("could not sync new partition logs yet: %s", exc)

    def _remove_replicas(self, keys: list[tuple[str, int]], image: MetadataImage) -> None:
        """A reassignment moved these replicas off this broker (KIP-455): stop
        serving and following them and delete their logs, as Kafka's brokers
        do with a replica the metadata no longer places on them."""
        log.info("deleting %d replica(s) reassigned to other brokers: %s", len(keys),
                 ", ".join(f"{t}-{i}" for t, i in keys[:10]) + (", ..." if len(keys) > 10 else ""))
        for key in keys:
            self.offline.pop(key, None)
            if key in self.partitions:
                leader = image.topics[key[0]].partitions[key[1]].leader
                self._detach(key, functools.partial(
                    NotLeaderOrFollowerError,
                    f"{key[0]}-{key[1]} was reassigned; broker {leader} leads it"))
        self._delete_logs(keys)

    def _update_state(self, partition: Partition, info: PartitionInfo) -> None:
        if self.node_id not in info.replicas:
            return  # reassigned away: on_image removes it when the image shows it
        if partition.update_state(info.leader, info.leader_epoch, info.replicas, info.isr,
                                  info.partition_epoch) and self.fetchers is not None:
            self.fetchers.follow(partition)

    def _open(self, key: tuple[str, int], topic: TopicInfo, config: TopicConfig,
              info: PartitionInfo, *, sync: bool = True) -> Partition | None:
        """Open (or create) a partition's log; on a disk error it goes offline,
        and a new log that the disk had no room for is retried on use."""
        name, index = key
        try:
            partition_log = self.log_manager.get(name, index)
            if partition_log is None or partition_log.topic_id is None:
                # New, or its partition.metadata is missing: (re)written here.
                partition_log = self.log_manager.create_log(
                    name, index, log_config_for(config), topic.topic_id, sync=sync
                )
            last = self._last_settings
            if last is None or last[0] is not config:
                last = self._last_settings = (config, AppendSettings.of(config))
            partition = Partition(
                name, index, topic.topic_id, partition_log, config,
                leader_epoch=info.leader_epoch, node_id=self.node_id, clock=self.clock,
                flusher=self.flusher, leader_id=info.leader, append_settings=last[1],
            )
        except KafkaStorageError as exc:
            # Logged once per condition where it was raised (storage.disk).
            self.offline[key] = OfflinePartition(
                str(exc), retriable=True, retry_at=self.clock.monotonic() + _RETRY_OPEN_S)
            return None
        self.offline.pop(key, None)
        self.partitions[key] = partition
        if self._alter is not None:
            partition.on_isr_change = self._alter_isr
            partition.isr_eligible = self._isr_eligible
        if info.replicas != (self.node_id,):
            # Replicated: the HW is what the ISR had when last checkpointed, not
            # this log's end (which may hold records never committed), as
            # Kafka's replicas start from the replication-offset-checkpoint.
            partition.restore_high_watermark(self.log_manager.high_watermarks.get(key, 0))
        partition.update_state(info.leader, info.leader_epoch, info.replicas, info.isr,
                               info.partition_epoch)
        if self.fetchers is not None:
            self.fetchers.follow(partition)
        return partition

    def refresh_configs(self, image: MetadataImage) -> None:
        """Broker-level defaults changed: every topic's effective config may have."""
        self.quotas.update(self.config)
        for (name, _), partition in self.partitions.items():
            topic = image.topics.get(name)
            if topic is not None:
                partition.update_config(self.topic_config(topic))

    def _detach(self, key: tuple[str, int],
                error: Callable[[], KafkaError] = lambda: UnknownTopicOrPartitionError("deleted")
                ) -> None:
        """Stop serving a deleted partition (its log is deleted after)."""
        partition = self.partitions.pop(key)
        self.cleaner.forget(key)
        if self.fetchers is not None:
            self.fetchers.unfollow(key)
        self.flusher.forget(partition.log, error)
        partition.fail_waiters(error)

    def _fsync_failed(self, log_: PartitionLog, error: LogFsyncFailedError) -> None:
        partition = self.partitions.get((log_.topic, log_.partition))
        if partition is not None and partition.log is log_:  # not deleted meanwhile
            self._take_offline(partition, str(error))

    def _take_offline(self, partition: Partition, error: str) -> None:
        """A partition's fdatasync (or its transaction index write) failed with
        an I/O error: the kernel may have dropped the data it covered, and a
        later fsync could succeed over the loss ("fsyncgate"), so the partition
        goes offline until a restart recovers its log from what the disk holds
        (Kafka takes the whole log directory offline; here the partition, as
        an unreadable one). Its waiting acks=all requests fail."""
        key = (partition.topic, partition.index)
        reason = f"{error}; check the disk, then restart the broker"
        log.error("partition %s-%d is offline (clients get KAFKA_STORAGE_ERROR): %s; records "
                  "not yet flushed may be lost: check the disk (dmesg, SMART), then restart "
                  "the broker, which recovers the log to its last valid batch",
                  key[0], key[1], error)
        del self.partitions[key]
        self.offline[key] = OfflinePartition(reason)
        self.cleaner.forget(key)
        if self.fetchers is not None:
            self.fetchers.unfollow(key)
        self.flusher.forget(partition.log, lambda: KafkaStorageError(reason))
        # Fetches waiting on it answer the error now; so do acks=all waits.
        partition.fail_waiters(lambda: KafkaStorageError(reason))
        self.log_manager.take_offline(key, reason)

    def _delete_logs(self, keys: list[tuple[str, int]]) -> None:
        """Delete the logs of partitions no longer hosted: detached now, their
        directories removed on a worker thread, the checkpoints rewritten
        once for them all (not once per partition: that was quadratic)."""
        doomed = self.log_manager.detach_logs(keys)
        if not doomed:
            return

        async def remove() -> None:
            for start in range(0, len(doomed), _INSTALL_CHUNK):
                if start:
                    await asyncio.sleep(0)  # let other clients in
                for log_ in doomed[start:start + _INSTALL_CHUNK]:
                    log_.close()
            errors = await asyncio.to_thread(remove_log_dirs, doomed)
            self.log_manager.write_checkpoints_of({d.data_dir for d in doomed})
            for exc in errors[:1]:  # logged once per condition (storage.disk)
                disk.storage_error(exc, doomed[0].data_dir, "delete logs in")

        self.jobs.submit([d.key for d in doomed], remove)

    def _is_new(self, key: tuple[str, int]) -> bool:
        return self.log_manager.get(*key) is None and key not in self.log_manager.offline

    async def _create_logs(self, keys: list[tuple[str, int]],
                           created: asyncio.Future[None]) -> None:
        """Create the logs of `keys` (lazily: no files until their first
        record, whose first flush writes partition.metadata), serve them (the
        image as it is then says which are still wanted, with which config),
        then resolve `created`."""
        try:
            await self._create_and_install(keys)
        finally:
            if not created.done():
                created.set_result(None)

    async def _create_and_install(self, keys: list[tuple[str, int]]) -> None:
        new = self._still_hosted([k for k in keys if self._is_new(k)])
        dirs = self.log_manager.new_log_dirs(list(new))
        log_configs: dict[str, LogConfig] = {}  # per topic: ~0.1 ms each
        for topic in new.values():
            if topic.name not in log_configs:
                log_configs[topic.name] = log_config_for(self.topic_config(topic))
        # A preallocated segment holds an fd from the start: those logs are
        # made below, on the loop, which owns the fd bound (open_files.py).
        specs = [NewLog(key, dirs[key], log_configs[topic.name], topic.topic_id)
                 for key, topic in new.items() if not log_configs[topic.name].preallocate]
        results: list[PartitionLog | OSError] = []
        # Not preallocated, so lazy (storage/log.py): Python objects only, no
        # file system work until their first write, so made here, in chunks,
        # rather than handed to a worker thread and back.
        for start in range(0, len(specs), _INSTALL_CHUNK):
            if start:
                await asyncio.sleep(0)  # let other clients in
            made, unsynced = open_new_logs(specs[start:start + _INSTALL_CHUNK], self.clock)
            results += made
            assert len(unsynced) == 0, "a lazy log made a directory"
        adopted: list[NewLog] = []
        for spec, result in zip(specs, results, strict=True):
            if isinstance(result, OSError):
                exc = disk.storage_error(result, spec.data_dir, "create a log in")
                self.offline[spec.key] = OfflinePartition(
                    str(exc), retriable=True, retry_at=self.clock.monotonic() + _RETRY_OPEN_S)
            else:
                self.log_manager.adopt_log(spec.key, result, spec.data_dir)
                adopted.append(spec)
        adopted += [NewLog(key, dirs[key], log_configs[topic.name], topic.topic_id)
                    for key, topic in new.items() if log_configs[topic.name].preallocate]
        for start in range(0, len(adopted), _INSTALL_CHUNK):
            if start:
                await asyncio.sleep(0)  # let other clients in
            chunk = adopted[start:start + _INSTALL_CHUNK]
            # The image now: partitions deleted (or created again) meanwhile go.
            hosted = self._still_hosted([spec.key for spec in chunk])
            unwanted = [spec.key for spec in chunk if spec.key not in hosted
                        or hosted[spec.key].topic_id != spec.topic_id]
            if unwanted:
                self._delete_logs(unwanted)
            configs: dict[str, TopicConfig] = {}
            for spec in chunk:  # (adopted logs, then the preallocated ones to make)
                current = hosted.get(spec.key)
                if current is not None and current.topic_id == spec.topic_id \
                        and spec.key not in self.partitions:
                    config = configs.get(current.name)
                    if config is None:
                        config = configs[current.name] = self.topic_config(current)
                    self._open(spec.key, current, config, current.partitions[spec.key[1]])

    def _still_hosted(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], TopicInfo]:
        """Those of `keys` the current image has this broker host."""
        hosted: dict[tuple[str, int], TopicInfo] = {}
        image = self._image
        for key in keys:
            topic = image.topics.get(key[0]) if image is not None else None
            if topic is not None and key[1] < len(topic.partitions) \
                    and self.node_id in topic.partitions[key[1]].replicas:
                hosted[key] = topic
        return hosted

    def get(self, topic: str, index: int) -> Partition:
        partition = self.partitions.get((topic, index))
        if partition is not None and partition.log.io_failed is not None:
            # An abort marker's index entry failed (PartitionLog._end_transaction).
            self._take_offline(partition, partition.log.io_failed)
            partition = None
        if partition is None and (topic, index) in self.offline:
            partition = self._retry_offline((topic, index))
        if partition is None and self.jobs.busy((topic, index)) and self._image is not None \
                and topic in self._image.topics:
            # Its log is being created (log_jobs.py): retriable, as in Kafka.
            raise NotLeaderOrFollowerError(
                f"The log of {topic}-{index} is being created on this server")
        if partition is None:
            known = self._image.topics.get(topic) if self._image is not None else None
            if known is not None and 0 <= index < len(known.partitions) \
                    and self.node_id not in known.partitions[index].replicas:
                # Another broker's partition (cluster mode): the client
                # refreshes its metadata and goes there, as with Kafka.
                raise NotLeaderOrFollowerError(
                    f"{topic}-{index} is led by broker {known.partitions[index].leader}, "
                    f"not {self.node_id}")
            raise UnknownTopicOrPartitionError(
                f"This server does not host this topic-partition: {topic}-{index}"
            )
        return partition

    def _retry_offline(self, key: tuple[str, int]) -> Partition:
        """The partition, if it could be opened now; else KafkaStorageError."""
        offline = self.offline[key]
        now = self.clock.monotonic()
        image = self._image if offline.retriable and now >= offline.retry_at else None
        topic = image.topics.get(key[0]) if image is not None else None
        if topic is not None and key[1] < len(topic.partitions):
            partition = self._open(key, topic, self.topic_config(topic),
                                   topic.partitions[key[1]])
            if partition is not None:
                return partition
        raise KafkaStorageError(f"{key[0]}-{key[1]} is offline: {self.offline[key].reason}")

    # -- replication (cluster mode) ------------------------------------------------------

    def start_replication(self, controller: ControllerChannel) -> None:
        """Cluster mode: follow leaders, send ISR changes to the controller,
        expire lagging followers from the ISR. The fetchers and the peer client
        they dial with are imported here: a single node never loads them."""
        from strom.broker.alter_partition_manager import AlterPartitionManager
        from strom.broker.replica_fetcher import ReplicaFetcherManager

        self._alter = AlterPartitionManager(
            controller, lambda p: self.partitions.get((p.topic, p.index)) is p,
            self._update_state)
        self._create_in_background_always = True
        self.fetchers = ReplicaFetcherManager(
            self.node_id, self.replication,
            lambda: self._image.brokers if self._image is not None else {}, self.clock,
            quota=self.quotas.follower)
        for partition in self.partitions.values():
            partition.on_isr_change = self._alter_isr
            partition.isr_eligible = self._isr_eligible
            self.fetchers.follow(partition)
        self._alter.expire_lagging_followers(lambda: list(self.partitions.values()),
                                             self.replication.lag_time_max_ms)

    async def stop_replication(self) -> None:
        if self._alter is not None:
            await self._alter.close()
        if self.fetchers is not None:
            await self.fetchers.close()
            self.fetchers = None

    def _isr_eligible(self, replica_id: int) -> bool:
        """Registered and not in controlled shutdown (Kafka's isReplicaIsrEligible)."""
        broker = self._image.brokers.get(replica_id) if self._image is not None else None
        return broker is not None and not broker.fenced

    def _alter_isr(self, partition: Partition, proposed: tuple[int, ...]) -> None:
        assert self._alter is not None
        if len(proposed) < len(partition.isr):
            self.isr_shrinks += 1
        elif len(proposed) > len(partition.isr):
            self.isr_expands += 1
        self._alter.submit(partition, proposed)

    def release_topic_space(self, name: str) -> None:
        """Empty every log of a topic that is being deleted, before the metadata
        change that deletes it is written: on a full disk that write needs the
        space. The same as DeleteRecords up to the log end; a crash before the
        topic deletion is committed leaves the topic, empty."""
        for (topic, _), partition in self.partitions.items():
            if topic == name:
                log_ = partition.log
                log_.truncate_fully_and_start_at(log_.log_end_offset)
                partition.after_log_change()

    def shutdown(self) -> None:
        self.maintenance.shutdown()
