"""What a cleaning of one log reads, and how its segments are grouped.

`take_snapshot` runs on the log's owner thread: it dups the fd of every
segment, so the cleaner thread reads files that no owner action (retention,
truncation, deletion) can close or reuse under it, and notes the log's
generation, which the owner compares when the cleaned segments are swapped
in. `group_segments_by_size` splits the segments below the first
uncleanable offset into the runs each cleaned into one segment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from strom.errors import KafkaStorageError
from strom.storage.log import LogConfig, PartitionLog
from strom.storage.segment import LogSegment

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class LastRecord:
    """A producer's last batch in the log (Kafka's LastRecord): its last
    offset, or None when its last entry is a transaction marker."""

    last_data_offset: int | None
    producer_epoch: int


@dataclass(frozen=True, slots=True)
class SourceSegment:
    segment: LogSegment  # identity only: compared by the owner when swapping
    base_offset: int
    next_base: int  # the next segment's base offset; the log end offset for the active one
    size: int
    fd: int  # our own dup: reads never race the owner closing the segment
    active: bool
    offset_index_bytes: int
    time_index_bytes: int
    mtime_ns: int


@dataclass(slots=True)
class CleaningSnapshot:
    log: PartitionLog
    config: LogConfig
    generation: int
    segments: list[SourceSegment]
    first_dirty_offset: int
    first_uncleanable_offset: int
    #: Byte position in the segment holding first_dirty_offset to start mapping at.
    dirty_start_position: int
    producers: Mapping[int, LastRecord]
    now_ms: int
    abort: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        for source in self.segments:
            try:
                os.close(source.fd)
            except OSError:
                pass
        self.segments = []


def take_snapshot(
    plog: PartitionLog, first_dirty_offset: int, first_uncleanable_offset: int, *,
    producers: Mapping[int, LastRecord], now_ms: int,
) -> CleaningSnapshot:
    """Owner thread: what a cleaning of [first dirty, first uncleanable) reads."""
    segments = plog.segments
    sources: list[SourceSegment] = []
    try:
        for i, segment in enumerate(segments):
            fd = os.dup(segment.file.fd)
            active = i == len(segments) - 1
            sources.append(SourceSegment(
                segment, segment.base_offset,
                plog.log_end_offset if active else segments[i + 1].base_offset,
                segment.size, fd, active,
                segment.offset_index.entries * 8, segment.time_index.entries * 12,
                os.fstat(fd).st_mtime_ns,
            ))
        position = 0
        for source in sources:
            if source.base_offset <= first_dirty_offset < source.next_base:
                position = source.segment.offset_index.lookup(first_dirty_offset)[1]
    except OSError as exc:
        for source in sources:
            os.close(source.fd)
        raise KafkaStorageError(f"cannot snapshot {plog.directory} for cleaning: {exc}") from exc
    return CleaningSnapshot(
        plog, plog.config, plog.generation, sources, first_dirty_offset,
        first_uncleanable_offset, position, dict(producers), now_ms,
    )


def group_segments_by_size(
    segments: Sequence[SourceSegment], max_size: int, max_index_size: int,
    first_uncleanable_offset: int,
) -> list[list[SourceSegment]]:
    """Runs of consecutive segments whose log and index sizes each stay within
    segment.bytes / segment.index.bytes and whose offsets fit one segment's
    int32 relative offsets, each cleaned into one segment
    (Cleaner.groupSegmentsBySize)."""
    groups: list[list[SourceSegment]] = []
    i = 0
    while i < len(segments):
        first = segments[i]
        group = [first]
        log_size, index_size, time_index_size = (
            first.size, first.offset_index_bytes, first.time_index_bytes)
        i += 1
        while i < len(segments):
            candidate = segments[i]
            last_offset = (segments[i + 1].base_offset - 1 if i + 1 < len(segments)
                           else first_uncleanable_offset - 1)
            if not (log_size + candidate.size <= max_size
                    and index_size + candidate.offset_index_bytes <= max_index_size
                    and time_index_size + candidate.time_index_bytes <= max_index_size
                    and (candidate.size == 0
                         or last_offset - first.base_offset <= _INT32_MAX)):
                break
            group.append(candidate)
            log_size += candidate.size
            index_size += candidate.offset_index_bytes
            time_index_size += candidate.time_index_bytes
            i += 1
        groups.append(group)
    return groups
