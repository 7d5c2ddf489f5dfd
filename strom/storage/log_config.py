"""LogConfig: the topic configs a PartitionLog obeys, as plain values.

The broker builds one from a topic's configs (Kafka's names, in
snake_case; Kafka's defaults) and hands it to the log; the cleaner reads
the compaction ones. Nothing here parses or validates: that is config.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LONG_MAX", "LogConfig"]

#: Java's Long.MAX_VALUE: Kafka's "never" for flush.messages, flush.ms and friends.
LONG_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The topic configs storage obeys, as plain ints (built by the broker)."""

    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    segment_jitter_ms: int = 0
    segment_index_bytes: int = 10485760
    index_interval_bytes: int = 4096
    retention_ms: int = 604800000
    retention_bytes: int = -1
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    preallocate: bool = False
    # Compaction (docs/compaction.md); the cleaner reads these, the log does not.
    cleanup_policy: tuple[str, ...] = ("delete",)
    delete_retention_ms: int = 86400000
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    max_message_bytes: int = 1048588

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy
