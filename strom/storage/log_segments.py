"""LogSegments: one PartitionLog's segments in base-offset order (Kafka's
LogSegments, with the parts of LocalLog that change the list: roll,
truncation, deletion of the oldest, replacement by a cleaned copy).

The log owns one. Retention (through the log), compaction's swap (swap.py)
and the log's truncation change it only through the methods below; the
append and read paths read `segments`, `bases` and `size_in_bytes`
directly, one attribute access away from the log.

Invariants (owner thread only):
- `bases[i] == segments[i].base_offset`, strictly increasing; the last
  segment is the active one, and once loaded there is always one;
- `size_in_bytes` is the sum of the segments' sizes;
- `generation` is bumped by every truncation: offsets, segments and flush
  tickets taken before it may name other data;
- `pending_swap` is a cleaned copy renamed to .swap, waiting for
  swap.complete; swap.py sets and clears it, the log aborts it before
  truncating or deleting the segments it replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from strom.errors import KafkaStorageError
from strom.storage.segment import LogSegment
from strom.storage.segment_files import SegmentFiles

if TYPE_CHECKING:
    from strom.storage.swap import PendingSwap

__all__ = ["LogSegments"]


class LogSegments:
    """The segment list of one log, its sizes, generation and pending swap."""

    __slots__ = ("segments", "bases", "size_in_bytes", "generation", "files", "closed",
                 "pending_swap")

    def __init__(self, files: SegmentFiles) -> None:
        #: Sorted by base offset; the last is the active segment.
        self.segments: list[LogSegment] = []
        #: `bases[i] == segments[i].base_offset`, for bisecting by offset.
        self.bases: list[int] = []
        self.size_in_bytes = 0
        self.generation = 0
        #: Creates, opens and deletes the segments; counts directory changes.
        self.files = files
        #: Closed or deleted: no flush completes and no swap runs any more.
        self.closed = False
        self.pending_swap: PendingSwap | None = None

    @property
    def directory(self) -> Path:
        return self.files.directory

    @property
    def active(self) -> LogSegment:
        return self.segments[-1]

    def load(self, segments: list[LogSegment]) -> None:
        """Take the segments the loader opened (or created), in order."""
        self.segments = segments
        self.bases = [segment.base_offset for segment in segments]
        self.size_in_bytes = sum(segment.size for segment in segments)

    # -- growing ----------------------------------------------------------

    def roll(self, base_offset: int) -> LogSegment:
        """A new active segment at `base_offset`; the current one if it is
        empty and already there (LocalLog.roll)."""
        active = self.segments[-1]
        if active.base_offset == base_offset and active.size == 0:
            return active
        if base_offset < active.base_offset:
            raise KafkaStorageError(f"cannot roll {self.directory} backwards to {base_offset}")
        active.on_become_inactive()
        try:
            segment = self.files.create(base_offset)
        except OSError:
            active.make_active()  # a full disk: keep appending here once space is back
            raise
        self.segments.append(segment)
        self.bases.append(base_offset)
        return segment

    # -- shrinking --------------------------------------------------------

    def delete_oldest(self, count: int) -> int:
        """Delete the `count` oldest segments, not all of them (the caller
        rolls first); returns the new first base offset."""
        segments = self.segments
        doomed = segments[:count]
        del segments[:count]
        del self.bases[:count]
        for segment in doomed:
            self.size_in_bytes -= segment.size
            self.files.delete(segment)
        return segments[0].base_offset

    def truncate_to(self, offset: int, *, now_ms: int, index_interval_bytes: int) -> int:
        """Drop every batch holding an offset >= `offset`, which must not be
        below the first base offset; the truncated last segment becomes the
        active one. Bumps the generation; returns the new next offset."""
        self.generation += 1
        segments = self.segments
        while len(segments) > 1 and segments[-1].base_offset > offset:
            self.files.delete(segments.pop())
            self.bases.pop()
        active = segments[-1]
        if active.truncate_to(offset, now_ms):
            active.flushed_size = -1  # make the next flush sync the shorter file
        active.index_interval_bytes = index_interval_bytes
        active.make_active()
        self.size_in_bytes = sum(segment.size for segment in segments)
        return active.next_offset

    def restart_at(self, offset: int) -> None:
        """Delete every segment and start again with one, empty, at `offset`.
        Bumps the generation."""
        self.generation += 1
        for segment in self.segments:
            self.files.delete(segment)
        self.segments = [self.files.create(offset)]
        self.bases = [offset]
        self.size_in_bytes = 0

    # -- compaction's swap (swap.py) ---------------------------------------

    def is_inactive_run(self, old: Sequence[LogSegment], generation: int) -> bool:
        """Whether `old` is still a run of consecutive inactive segments of
        this list, and nothing was truncated since `generation`."""
        if not old or generation != self.generation:
            return False
        segments = self.segments
        first = next((i for i, s in enumerate(segments) if s is old[0]), None)
        if first is None or first + len(old) >= len(segments):  # the active one is never swapped
            return False
        return all(segments[first + i] is segment for i, segment in enumerate(old))

    def replace(self, old: Sequence[LogSegment], base_offset: int) -> LogSegment:
        """Put the segment whose files are now at `base_offset` in place of
        the run `old` (checked by `is_inactive_run`), and close `old`
        (LocalLog.replaceSegments, the list part)."""
        cleaned = self.files.open(base_offset)
        segments = self.segments
        first = next(i for i, s in enumerate(segments) if s is old[0])
        end = first + len(old)
        segments[first:end] = [cleaned]
        self.bases[first:end] = [cleaned.base_offset]
        for segment in old:
            self.size_in_bytes -= segment.size
            segment.close()  # inactive: closes fds and mappings, touches no path
        self.size_in_bytes += cleaned.size
        self.files.version += 1
        return cleaned

    def swap_replaces_any_of_oldest(self, count: int) -> bool:
        """Whether the pending swap replaces one of the `count` oldest segments."""
        pending = self.pending_swap
        return pending is not None and any(s in pending.old for s in self.segments[:count])

    # -- the end ------------------------------------------------------------

    def close(self) -> OSError | None:
        """Close every segment, even when some fail; the first failure."""
        self.closed = True
        return SegmentFiles.close_all(self.segments)

    def delete(self) -> None:
        """Close and remove every segment's files (the log is being deleted)."""
        self.pending_swap = None
        self.closed = True
        for segment in self.segments:
            segment.delete()

    def __len__(self) -> int:
        return len(self.segments)
