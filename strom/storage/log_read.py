"""Reads across a PartitionLog's segments: batches by offset (Fetch), the
first offset at a timestamp and the largest timestamp (ListOffsets).

Plain functions over the log's segment list and their base offsets
(`bases[i] == segments[i].base_offset`, sorted); the log passes its bounds.
Nothing here changes a segment.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from strom.storage.file_records import FileRegion
from strom.storage.segment import LogSegment

__all__ = ["EMPTY_READ", "LogReadResult", "max_timestamp", "offset_for_timestamp", "read"]


@dataclass(frozen=True, slots=True)
class LogReadResult:
    """Whole batches, in offset order, as byte ranges of segment files."""

    regions: tuple[FileRegion, ...]
    size: int

    def to_bytes(self) -> bytes:
        return b"".join(region.read() for region in self.regions)


EMPTY_READ = LogReadResult((), 0)


def read(
    segments: Sequence[LogSegment], bases: Sequence[int], start_offset: int, max_bytes: int,
    *, max_offset: int, min_one_batch: bool, log_end_offset: int,
) -> LogReadResult:
    """Whole batches from the segment holding `start_offset` (in range, below
    max_offset and the log end: the caller checked), each with last offset <
    max_offset, within max_bytes (KIP-74: the first batch even if larger,
    when min_one_batch). Spans segments."""
    i = max(bisect.bisect_right(bases, start_offset) - 1, 0)
    regions: list[FileRegion] = []
    total = 0
    offset = start_offset
    max_bytes = max(max_bytes, 0)
    while i < len(segments):
        upper = bases[i + 1] if i + 1 < len(bases) else log_end_offset
        region, stop = segments[i].read(
            offset, max_offset=max_offset, max_bytes=max_bytes - total,
            min_one_batch=min_one_batch and not regions, upper_bound=upper,
        )
        if region is not None:
            regions.append(region)
            total += region.length
        if stop:
            break
        i += 1
        if i < len(segments):
            offset = bases[i]
    if not regions:
        return EMPTY_READ  # most partitions of a fetch over many: no new result to make
    return LogReadResult(tuple(regions), total)


def offset_for_timestamp(
    segments: Sequence[LogSegment], bases: Sequence[int], timestamp_ms: int,
    log_start_offset: int,
) -> tuple[int, int] | None:
    """(offset, timestamp) of the first record at or after the log start
    offset with timestamp >= timestamp_ms (ListOffsets by time)."""
    for i, segment in enumerate(segments):
        if i + 1 < len(bases) and bases[i + 1] <= log_start_offset:
            continue
        if segment.max_timestamp >= timestamp_ms:
            found = segment.find_offset_by_timestamp(timestamp_ms, log_start_offset)
            if found is not None:
                return found
    return None


def max_timestamp(segments: Sequence[LogSegment]) -> tuple[int, int]:
    """(timestamp, offset) of the first record with the largest timestamp;
    (-1, -1) if none (ListOffsets MAX_TIMESTAMP)."""
    best: LogSegment | None = None
    best_timestamp, best_offset = -1, -1
    for segment in segments:
        timestamp, offset = segment.max_timestamp_and_offset
        if timestamp > best_timestamp:
            best, best_timestamp, best_offset = segment, timestamp, offset
    if best is None:
        return -1, -1
    return best_timestamp, best.offset_of_record_with_timestamp(best_timestamp, best_offset)
