"""One partition replica on this broker: its log, role, leader epoch and HW.

A single node is a cluster of one: it is the leader, the ISR is itself, and
the high watermark advances to the log end offset as soon as a batch is
appended. Replication will add followers whose fetch offsets move the HW;
nothing here assumes there are none beyond `_maybe_advance_high_watermark`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from strom.broker.purgatory import AppendNotifier
from strom.clock import Clock
from strom.config import TopicConfig
from strom.errors import (
    FencedLeaderEpochError,
    NotLeaderOrFollowerError,
    UnknownLeaderEpochError,
)
from strom.protocol.records import (
    TimestampType,
    scan_batches,
    set_log_append_time,
    set_max_timestamp,
    validate_produced_batch,
)
from strom.storage.log import AppendInfo, LogConfig, PartitionLog
from strom.storage.producer_state import ProducerStateManager

# Producer state is rebuilt from the log in reads of this size.
_REPLAY_CHUNK_BYTES = 16 * 1024 * 1024


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
class LeaderAppend:
    info: AppendInfo
    log_append_time: int  # -1 unless the topic uses LogAppendTime


class Partition:
    def __init__(self, topic: str, index: int, topic_id: uuid.UUID, log: PartitionLog,
                 config: TopicConfig, *, leader_epoch: int, node_id: int, clock: Clock) -> None:
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.log = log
        self.config = config
        self.leader_epoch = leader_epoch
        self.leader_id = node_id
        self.node_id = node_id
        self.isr: tuple[int, ...] = (node_id,)
        self.high_watermark = log.log_end_offset
        self.appended = AppendNotifier()
        self._clock = clock
        self.producer_state = ProducerStateManager(log.directory)
        self._rebuild_producer_state()
        self.become_leader(leader_epoch)

    def become_leader(self, leader_epoch: int) -> None:
        """Start a leader epoch at the log end, as Kafka's makeLeader does, so
        OffsetForLeaderEpoch can answer for it even before anything is written."""
        self.leader_epoch = leader_epoch
        if not self.is_leader:
            return
        latest = self.log.latest_epoch()
        if latest is None or latest < leader_epoch:
            self.log.assign_epoch_start_offset(leader_epoch, self.log.log_end_offset)

    def _rebuild_producer_state(self) -> None:
        """Newest snapshot, then replay the batches after it (Kafka's recovery)."""
        state = self.producer_state
        log = self.log
        state.load_latest_snapshot(log.log_end_offset)
        offset = max(state.map_end_offset, log.log_start_offset)
        while offset < log.log_end_offset:
            result = log.read(offset, _REPLAY_CHUNK_BYTES, max_offset=log.log_end_offset,
                              min_one_batch=True)
            if not result.regions:
                break
            data = b"".join(region.read() for region in result.regions)
            headers = list(scan_batches(data))
            if not headers:
                break
            state.replay(headers)
            offset = headers[-1].next_offset
        state.map_end_offset = log.log_end_offset

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.node_id

    def update_config(self, config: TopicConfig) -> None:
        self.config = config
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

    def append_records_as_leader(self, records: memoryview) -> LeaderAppend:
        """Validate one produced batch and append it; raises typed KafkaErrors."""
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")
        config = self.config
        timestamp_type = (
            TimestampType.LOG_APPEND_TIME
            if config.get("message.timestamp.type") == "LogAppendTime"
            else TimestampType.CREATE_TIME
        )
        now = self._clock.wall_ms()
        validated = validate_produced_batch(
            records,
            max_message_bytes=config.int("max.message.bytes"),
            compacted="compact" in config.cleanup_policy,
            timestamp_type=timestamp_type,
            now_ms=now,
            timestamp_before_max_ms=config.int("message.timestamp.before.max.ms"),
            timestamp_after_max_ms=config.int("message.timestamp.after.max.ms"),
            max_uncompressed_bytes=MAX_UNCOMPRESSED_BYTES,
        )
        duplicate = self.producer_state.check(validated.header)
        if duplicate is not None:
            # A retry of a batch already written: answer with its original offsets.
            return LeaderAppend(
                AppendInfo(duplicate.first_offset, duplicate.last_offset, -1, -1,
                           self.log.log_start_offset),
                -1,
            )
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
        info = self.log.append(
            records,
            validated.header,
            leader_epoch=self.leader_epoch,
            max_timestamp=max_timestamp,
            offset_delta_of_max_timestamp=offset_delta,
        )
        self.producer_state.update(validated.header, info.first_offset,
                                   max_timestamp if max_timestamp >= 0 else now)
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
        # Transactions (a later issue) hold the LSO back at the first open transaction.
        return self.high_watermark
