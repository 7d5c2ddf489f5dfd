"""One partition replica on this broker: its log, role, leader epoch and HW.

A single node is a cluster of one: it is the leader, the ISR is itself, and
the high watermark advances to the log end offset as soon as a batch is
appended. Replication will add followers whose fetch offsets move the HW;
nothing here assumes there are none beyond `_maybe_advance_high_watermark`.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from strom.broker.batch_worker import AppendTurn, on_worker
from strom.broker.flusher import GroupCommitFlusher
from strom.broker.purgatory import AppendNotifier
from strom.clock import Clock
from strom.config import TopicConfig
from strom.errors import (
    FencedLeaderEpochError,
    NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
    PolicyViolationError,
    UnknownLeaderEpochError,
)
from strom.protocol.records import (
    ControlRecordType,
    TimestampType,
    ValidatedBatch,
    build_control_batch,
    read_batch_header,
    set_log_append_time,
    set_max_timestamp,
    validate_produced_batch,
)
from strom.storage.log import AppendInfo, AppendOrigin, FileRegion, LogConfig, PartitionLog
from strom.storage.producer_state import ProducerStateManager


def log_config_for(config: TopicConfig) -> LogConfig:
    policy = tuple(config.cleanup_policy)
    segment_ms = config.int("segment.ms")
    max_compaction_lag_ms = config.int("max.compaction.lag.ms")
    if "compact" in policy and max_compaction_lag_ms > 0:
        # Kafka's LogConfig.maxSegmentMs: a segment must roll, and so become
        # cleanable, within max.compaction.lag.ms.
        segment_ms = min(segment_ms, max_compaction_lag_ms)
    ratio = config.get("min.cleanable.dirty.ratio")
    assert isinstance(ratio, int | float)
    return LogConfig(
        segment_bytes=config.int("segment.bytes"),
        segment_ms=segment_ms,
        segment_jitter_ms=config.int("segment.jitter.ms"),
        segment_index_bytes=config.int("segment.index.bytes"),
        index_interval_bytes=config.int("index.interval.bytes"),
        retention_ms=config.int("retention.ms"),
        retention_bytes=config.int("retention.bytes"),
        flush_messages=config.int("flush.messages"),
        flush_ms=config.int("flush.ms"),
        preallocate=bool(config.get("preallocate")),
        cleanup_policy=policy,
        delete_retention_ms=config.int("delete.retention.ms"),
        min_cleanable_dirty_ratio=float(ratio),
        min_compaction_lag_ms=config.int("min.compaction.lag.ms"),
        max_compaction_lag_ms=max_compaction_lag_ms,
        max_message_bytes=config.int("max.message.bytes"),
    )


# A compressed batch may not inflate beyond this while being validated: a
# decompression bomb must not exhaust memory (Kafka sets no bound).
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AppendSettings:
    """The topic configs every produced batch is validated against, resolved once
    per config change: resolving them per append (each a lookup through the
    broker's defaults and its derived *.ms families) was ~8% of the event loop
    in the 50-producer acks=all soak, where most requests carry one record."""

    timestamp_type: TimestampType
    max_message_bytes: int
    compacted: bool
    timestamp_before_max_ms: int
    timestamp_after_max_ms: int

    @classmethod
    def of(cls, config: TopicConfig) -> AppendSettings:
        return cls(
            timestamp_type=(TimestampType.LOG_APPEND_TIME
                            if config.get("message.timestamp.type") == "LogAppendTime"
                            else TimestampType.CREATE_TIME),
            max_message_bytes=config.int("max.message.bytes"),
            compacted="compact" in config.cleanup_policy,
            timestamp_before_max_ms=config.int("message.timestamp.before.max.ms"),
            timestamp_after_max_ms=config.int("message.timestamp.after.max.ms"),
        )


@dataclass(frozen=True, slots=True)
class LeaderAppend:
    info: AppendInfo
    log_append_time: int  # -1 unless the topic uses LogAppendTime


@dataclass(frozen=True, slots=True)
class PartitionFetch:
    """What a Fetch answers for one partition."""

    # Whole batches as stored, in chunks (views of mapped segment files or bytes).
    records: list[bytes | memoryview]
    size: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    # read_committed only (KIP-98): the aborted transactions overlapping the read.
    aborted_transactions: list[dict[str, int]] | None


#: DeleteRecords' offset for "up to the high watermark".
DELETE_TO_HIGH_WATERMARK = -1


class Partition:
    def __init__(self, topic: str, index: int, topic_id: uuid.UUID, log: PartitionLog,
                 config: TopicConfig, *, leader_epoch: int, node_id: int, clock: Clock,
                 flusher: GroupCommitFlusher) -> None:
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.log = log
        self.config = config
        self.append_settings = AppendSettings.of(config)
        self.leader_epoch = leader_epoch
        self.leader_id = node_id
        self.node_id = node_id
        self.isr: tuple[int, ...] = (node_id,)
        self.high_watermark = log.log_end_offset
        self.appended = AppendNotifier()
        self._append_tail: asyncio.Future[None] | None = None
        self._clock = clock
        self._flusher = flusher
        self.become_leader(leader_epoch)

    @property
    def producer_state(self) -> ProducerStateManager:
        """The log's producer state (read-only here: the log changes it with its bytes)."""
        return self.log.producer_state

    def become_leader(self, leader_epoch: int) -> None:
        """Start a leader epoch at the log end, as Kafka's makeLeader does, so
        OffsetForLeaderEpoch can answer for it even before anything is written."""
        self.leader_epoch = leader_epoch
        if not self.is_leader:
            return
        latest = self.log.latest_epoch()
        if latest is None or latest < leader_epoch:
            self.log.assign_epoch_start_offset(leader_epoch, self.log.log_end_offset)

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.node_id

    def update_config(self, config: TopicConfig) -> None:
        self.config = config
        self.append_settings = AppendSettings.of(config)
        self.log.update_config(log_config_for(config))

    def check_leader_epoch(self, requested: int) -> None:
        """Kafka's epoch fencing: -1 means the client does not know the epoch."""
        if requested == -1:
            return
        if requested < self.leader_epoch:
            raise FencedLeaderEpochError(
                f"epoch {requested} is older than the current leader epoch {self.leader_epoch}"
            )
        if requested > self.leader_epoch:
            raise UnknownLeaderEpochError(
                f"epoch {requested} is newer than the current leader epoch {self.leader_epoch}"
            )

    def append_records_as_leader(self, records: memoryview, *,
                                 max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES
                                 ) -> LeaderAppend:
        """Validate one produced batch and append it; raises typed KafkaErrors.
        DecompressedSizeError past `max_uncompressed_bytes`: the produce
        handler passes a small limit and retries past it with
        `append_records_as_leader_on_worker`."""
        self._check_leader()
        now = self._clock.wall_ms()
        settings = self.append_settings
        validated = self._validator(records, now, settings, max_uncompressed_bytes)()
        return self._append_validated(records, validated, now, settings.timestamp_type)

    async def append_records_as_leader_on_worker(self, records: memoryview) -> LeaderAppend:
        """As append_records_as_leader, decompressing and validating on a
        worker thread (batch_worker); the append itself stays on the loop."""
        self._check_leader()
        now = self._clock.wall_ms()
        settings = self.append_settings
        validated = await on_worker(
            self._validator(records, now, settings, MAX_UNCOMPRESSED_BYTES))
        self._check_leader()  # leadership may have moved meanwhile
        return self._append_validated(records, validated, now, settings.timestamp_type)

    def take_append_turn(self) -> AppendTurn:
        """A place in this partition's queue of appends (batch_worker)."""
        turn = AppendTurn.take(self._append_tail)
        self._append_tail = turn.tail
        return turn

    @property
    def append_queued(self) -> bool:
        """True while an append that waits for a worker holds a turn here."""
        return self._append_tail is not None and not self._append_tail.done()

    def _check_leader(self) -> None:
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")

    @staticmethod
    def _validator(records: memoryview, now: int, settings: AppendSettings,
                   max_uncompressed_bytes: int) -> Callable[[], ValidatedBatch]:
        return functools.partial(
            validate_produced_batch,
            records,
            max_message_bytes=settings.max_message_bytes,
            compacted=settings.compacted,
            timestamp_type=settings.timestamp_type,
            now_ms=now,
            timestamp_before_max_ms=settings.timestamp_before_max_ms,
            timestamp_after_max_ms=settings.timestamp_after_max_ms,
            max_uncompressed_bytes=max_uncompressed_bytes,
        )

    def _append_validated(self, records: memoryview, validated: ValidatedBatch, now: int,
                          timestamp_type: TimestampType) -> LeaderAppend:
        log_append_time = -1
        max_timestamp = validated.max_timestamp
        offset_delta = validated.offset_delta_of_max_timestamp
        if timestamp_type is TimestampType.LOG_APPEND_TIME:
            set_log_append_time(records, validated.header, now)
            log_append_time = now
            max_timestamp = now
            offset_delta = validated.header.last_offset_delta
        elif (validated.header.timestamp_type is not TimestampType.CREATE_TIME
              or validated.header.max_timestamp != max_timestamp):
            # Kafka stores the max timestamp computed from the records, not the
            # one the client claimed.
            set_max_timestamp(records, validated.header, TimestampType.CREATE_TIME,
                              max_timestamp)
        info = self.log.append_as_leader(
            records,
            validated.header,
            leader_epoch=self.leader_epoch,
            max_timestamp=max_timestamp,
            offset_delta_of_max_timestamp=offset_delta,
            now_ms=now,
        )
        if info.duplicate:
            # A retry of a batch already written: answered with its original offsets.
            return LeaderAppend(info, -1)
        self._maybe_advance_high_watermark()
        return LeaderAppend(info, log_append_time)

    def _maybe_advance_high_watermark(self) -> None:
        # With the ISR being this broker alone the HW is the log end offset.
        new_hw = self.log.log_end_offset
        if new_hw != self.high_watermark:
            self.high_watermark = new_hw
            self.appended.notify()

    def after_log_change(self) -> None:
        """Re-derive the HW after truncation, DeleteRecords or retention."""
        self.high_watermark = min(max(self.high_watermark, self.log.log_start_offset),
                                  self.log.log_end_offset)
        self._maybe_advance_high_watermark()

    @property
    def last_stable_offset(self) -> int:
        """The first offset of the earliest open transaction, bounded by the HW."""
        first = self.log.producer_state.first_unstable_offset
        return self.high_watermark if first is None else min(first, self.high_watermark)

    # -- transactions -------------------------------------------------------------------

    def write_txn_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int,
                         commit: bool) -> int:
        """Append a COMMIT or ABORT marker for the producer's transaction; the end offset."""
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")
        now = self._clock.wall_ms()
        batch = bytearray(build_control_batch(
            ControlRecordType.COMMIT if commit else ControlRecordType.ABORT,
            producer_id=producer_id, producer_epoch=producer_epoch,
            coordinator_epoch=coordinator_epoch, timestamp=now))
        header = read_batch_header(batch)
        # Fenced by producer epoch; an ABORT is indexed (Kafka's appendEndTxnMarker).
        info = self.log.append_as_leader(
            memoryview(batch), header, leader_epoch=self.leader_epoch, max_timestamp=now,
            offset_delta_of_max_timestamp=0, now_ms=now, origin=AppendOrigin.COORDINATOR)
        self._maybe_advance_high_watermark()
        return info.last_offset + 1

    def append_coordinator_batch(self, records: memoryview) -> int:
        """A coordinator's transactional batch (TxnOffsetCommit): no sequence
        numbers, fenced by producer epoch; its first offset."""
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")
        header = read_batch_header(records)
        # The runtime stamps its records with the time of the write.
        info = self.log.append_as_leader(
            records, header, leader_epoch=self.leader_epoch, max_timestamp=header.max_timestamp,
            offset_delta_of_max_timestamp=header.last_offset_delta,
            now_ms=self._clock.wall_ms(), origin=AppendOrigin.COORDINATOR)
        self._maybe_advance_high_watermark()
        return info.first_offset

    def aborted_transactions(self, fetch_offset: int, upper_bound_offset: int
                             ) -> list[dict[str, int]]:
        """For a read_committed fetch of [fetch_offset, upper_bound_offset)."""
        return [{"producer_id": e.producer_id, "first_offset": e.first_offset}
                for e in self.log.txn_index.collect(fetch_offset, upper_bound_offset)]

    # -- reads, offsets, durability: what handlers and coordinators ask of a partition --

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    def fetch(self, fetch_offset: int, max_bytes: int, *, read_committed: bool,
              min_one_batch: bool, zero_copy: bool) -> PartitionFetch:
        """Whole batches from `fetch_offset` below the high watermark (the last
        stable offset when read_committed), within max_bytes (KIP-74: the first
        batch even if larger, when min_one_batch). zero_copy: the chunks are
        views of the mapped segment files (FileRegion.view), else bytes.
        OffsetOutOfRangeError outside [log start, log end]."""
        high_watermark = self.high_watermark
        last_stable = self.last_stable_offset
        upper = last_stable if read_committed else high_watermark
        result = self.log.read(fetch_offset, max_bytes, max_offset=upper,
                               min_one_batch=min_one_batch)
        load = FileRegion.view if zero_copy else FileRegion.read
        return PartitionFetch(
            [load(region) for region in result.regions], result.size, high_watermark,
            last_stable, self.log.log_start_offset,
            self.aborted_transactions(fetch_offset, upper) if read_committed else None,
        )

    def read_to_end(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from `offset` up to the log end offset, the first even
        if larger than max_bytes, as one buffer (a coordinator loading its state)."""
        log = self.log
        return log.read(offset, max_bytes, max_offset=log.log_end_offset,
                        min_one_batch=True).to_bytes()

    def delete_records(self, offset: int) -> int:
        """DeleteRecords on the leader: records below `offset`
        (DELETE_TO_HIGH_WATERMARK: the high watermark) become unreadable and
        segments wholly below it are deleted; the new log start offset. An
        offset below the log start changes nothing."""
        name = f"{self.topic}-{self.index}"
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"Leader not local for partition {name}")
        policy = self.config.cleanup_policy
        if "delete" not in policy and "compact" in policy:
            raise PolicyViolationError(f"Records of partition {name} can not be "
                                       "deleted due to the configured policy")
        target = self.high_watermark if offset == DELETE_TO_HIGH_WATERMARK else offset
        if target < 0:
            raise OffsetOutOfRangeError(f"The offset {target} for partition {name} "
                                        "is not valid")
        if target > self.high_watermark:
            raise OffsetOutOfRangeError(
                f"Cannot increment the log start offset to {target} of partition {name} "
                f"since it is larger than the high watermark {self.high_watermark}"
            )
        self.log.advance_log_start_offset(target)
        self.after_log_change()
        return self.log.log_start_offset

    def end_offset_for_epoch(self, leader_epoch: int, current_leader_epoch: int = -1
                             ) -> tuple[int, int]:
        """OffsetForLeaderEpoch on the leader: (the largest epoch <= leader_epoch,
        its end offset), (-1, -1) if the log knows none. current_leader_epoch
        fences a stale caller (-1 skips the check)."""
        self.check_leader_epoch(current_leader_epoch)
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")
        return self.log.end_offset_for_epoch(leader_epoch)

    def durable(self, end_offset: int) -> asyncio.Future[None] | None:
        """A future done once every offset below `end_offset` is fsync'd (None:
        it already is); group commit (flusher.py)."""
        return self._flusher.durable(self.log, end_offset)

    async def wait_durable(self, end_offset: int) -> None:
        """Return once every offset below `end_offset` is fsync'd."""
        await self._flusher.wait_durable(self.log, end_offset)
