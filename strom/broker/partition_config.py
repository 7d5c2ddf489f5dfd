"""What a topic's configs mean for its partition log and for the batches
appended to it, resolved once per config change (not per append): the
LogConfig, the AppendSettings a produced batch is validated against, the
timestamps message.timestamp.type sets (`stamp_timestamps`), and what
cleanup.policy and the HW allow DeleteRecords (`delete_records_target`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from strom.config import TopicConfig
from strom.errors import OffsetOutOfRangeError, PolicyViolationError
from strom.protocol.records import (
    TimestampType,
    ValidatedBatch,
    set_log_append_time,
    set_max_timestamp,
    validate_produced_batch,
)
from strom.storage.log import LogConfig


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
    min_insync_replicas: int

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
            min_insync_replicas=config.int("min.insync.replicas"),
        )

    def validator(self, records: memoryview, now: int,
                  max_uncompressed_bytes: int) -> Callable[[], ValidatedBatch]:
        """The validation of one produced batch against these settings, to run
        on the loop or on a worker thread (batch_worker)."""
        return functools.partial(
            validate_produced_batch,
            records,
            max_message_bytes=self.max_message_bytes,
            compacted=self.compacted,
            timestamp_type=self.timestamp_type,
            now_ms=now,
            timestamp_before_max_ms=self.timestamp_before_max_ms,
            timestamp_after_max_ms=self.timestamp_after_max_ms,
            max_uncompressed_bytes=max_uncompressed_bytes,
        )


def stamp_timestamps(records: memoryview, validated: ValidatedBatch, now: int,
                     timestamp_type: TimestampType) -> tuple[int, int, int]:
    """Set a validated batch's timestamps in place as message.timestamp.type
    asks: (its max timestamp, that record's offset delta, the log append
    time or -1)."""
    header = validated.header
    if timestamp_type is TimestampType.LOG_APPEND_TIME:
        set_log_append_time(records, header, now)
        return now, header.last_offset_delta, now
    max_timestamp = validated.max_timestamp
    if header.timestamp_type is not TimestampType.CREATE_TIME \
            or header.max_timestamp != max_timestamp:
        # Kafka stores the max timestamp computed from the records, not the
        # one the client claimed.
        set_max_timestamp(records, header, TimestampType.CREATE_TIME, max_timestamp)
    return max_timestamp, validated.offset_delta_of_max_timestamp, -1


#: DeleteRecords' offset for "up to the high watermark".
DELETE_TO_HIGH_WATERMARK = -1


def delete_records_target(offset: int, *, high_watermark: int, config: TopicConfig,
                          name: str) -> int:
    """The log start offset DeleteRecords asks of partition `name`
    (DELETE_TO_HIGH_WATERMARK: the high watermark), after Kafka's checks:
    POLICY_VIOLATION on a compact-only topic, OFFSET_OUT_OF_RANGE for a
    negative offset or one past the high watermark."""
    policy = config.cleanup_policy
    if "delete" not in policy and "compact" in policy:
        raise PolicyViolationError(f"Records of partition {name} can not be "
                                   "deleted due to the configured policy")
    target = high_watermark if offset == DELETE_TO_HIGH_WATERMARK else offset
    if target < 0:
        raise OffsetOutOfRangeError(f"The offset {target} for partition {name} "
                                    "is not valid")
    if target > high_watermark:
        raise OffsetOutOfRangeError(
            f"Cannot increment the log start offset to {target} of partition {name} "
            f"since it is larger than the high watermark {high_watermark}"
        )
    return target
