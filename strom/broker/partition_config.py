"""What a topic's configs mean for its partition log and for the batches
appended to it, resolved once per config change (not per append)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from strom.config import TopicConfig
from strom.protocol.records import TimestampType, ValidatedBatch, validate_produced_batch
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
