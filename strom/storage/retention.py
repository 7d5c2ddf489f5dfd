"""Which old segments retention deletes (Kafka's UnifiedLog.deleteOldSegments).

Three rules, applied in Kafka's order, each deleting a prefix of the log:
- log start offset: a segment whose successor starts at or below the log
  start offset (DeleteRecords moved past it);
- size (retention.bytes >= 0): the oldest segments while the log stays at or
  above retention.bytes without them;
- time (retention.ms >= 0): segments whose largest timestamp is more than
  retention.ms before now.

A prefix stops at the first segment a rule keeps; a segment is never deleted
past the high watermark (its successor's base offset, or the log end offset
for the last, must be <= the high watermark), and an empty last segment is
never deleted. The caller rolls first when every segment goes, so a log
always keeps an active segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from strom.storage import swap
from strom.storage.log_segments import LogSegments
from strom.storage.segment import LogSegment

__all__ = [
    "Predicate",
    "apply",
    "count_deletable",
    "delete_oldest",
    "log_start_offset_breached",
    "retention_ms_breached",
    "retention_size_breached",
]

#: (segment, next segment or None) -> delete it?
Predicate = Callable[[LogSegment, LogSegment | None], bool]


def count_deletable(
    segments: Sequence[LogSegment], predicate: Predicate, *, high_watermark: int,
    log_end_offset: int,
) -> int:
    """How many segments, from the oldest, may be deleted (UnifiedLog.deletableSegments)."""
    count = 0
    for i, segment in enumerate(segments):
        following = segments[i + 1] if i + 1 < len(segments) else None
        if following is None and segment.size == 0:
            break
        upper = following.base_offset if following is not None else log_end_offset
        if high_watermark < upper or not predicate(segment, following):
            break
        count += 1
    return count


def delete_oldest(
    segments: LogSegments, predicate: Predicate, *, high_watermark: int, log_end_offset: int,
) -> tuple[int, int]:
    """Delete the segments `count_deletable` allows: (how many, the base
    offset of the oldest one left; -1 if none was deleted)."""
    count = count_deletable(segments.segments, predicate, high_watermark=high_watermark,
                            log_end_offset=log_end_offset)
    if count == 0:
        return 0, -1
    if segments.swap_replaces_any_of_oldest(count):
        # A crash before the .swap removal is durable only brings back
        # data below the log start offset.
        swap.abort(segments)
    if count == len(segments):
        segments.roll(log_end_offset)  # a log always keeps an active segment
    return count, segments.delete_oldest(count)


def log_start_offset_breached(log_start_offset: int) -> Predicate:
    def breached(segment: LogSegment, following: LogSegment | None) -> bool:
        return following is not None and following.base_offset <= log_start_offset

    return breached


def retention_ms_breached(now_ms: int, retention_ms: int) -> Predicate:
    def breached(segment: LogSegment, following: LogSegment | None) -> bool:
        return now_ms - segment.largest_timestamp() > retention_ms

    return breached


def retention_size_breached(size_in_bytes: int, retention_bytes: int) -> Predicate:
    excess = size_in_bytes - retention_bytes

    def breached(segment: LogSegment, following: LogSegment | None) -> bool:
        nonlocal excess
        if excess - segment.size >= 0:
            excess -= segment.size
            return True
        return False

    return breached


def apply(
    delete: Callable[[Predicate], int], size_in_bytes: Callable[[], int], *,
    log_start_offset: int, retention_bytes: int, retention_ms: int, now_ms: int,
) -> int:
    """The three rules in order, each by `delete` (which deletes the prefix a
    predicate selects and returns its length); the size rule sees the size
    left after the first. Returns how many segments were deleted."""
    deleted = delete(log_start_offset_breached(log_start_offset))
    size = size_in_bytes()
    if 0 <= retention_bytes < size:
        deleted += delete(retention_size_breached(size, retention_bytes))
    if retention_ms >= 0:
        deleted += delete(retention_ms_breached(now_ms, retention_ms))
    return deleted
