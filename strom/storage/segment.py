"""One log segment: `<base offset>.log` and its two indexes (Kafka's LogSegment).

On disk the .log file is record batches (magic v2) back to back, byte for byte
as the producer (or leader) sent them, with only base_offset and
partition_leader_epoch patched; no framing of strom's own.

Invariants:
- every batch lies wholly inside [0, size); `size` is the file's logical end
  (the file may be longer while preallocated, or after a crash);
- batch offsets increase; base_offset >= the segment's base offset and
  last_offset - base offset fits an int32 (the indexes' relative offsets);
- offset index entries point at batch starts and hold that batch's last
  offset; one entry per `index.interval.bytes` of log (Kafka's
  bytesSinceLastIndexEntry rule, including its "first batch never indexed");
- (max_timestamp, offset_of_max_timestamp) is the largest batch max
  timestamp in the segment and the last offset of the first batch carrying it.

The .log file itself is a SegmentFile (file_records.py): its fd, the walk
over batch headers that finds batches (never reading the records), and the
FileRegions fetch sends, mapped read-only when large (FileRegion.view: see
there for why a later truncation cannot crash the broker).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from strom.errors import KafkaStorageError
from strom.protocol.records import decode_records, read_batch_header
from strom.storage import file_deleter, files
from strom.storage.file_records import FileRegion, SegmentFile
from strom.storage.index import OffsetIndex, TimeIndex

__all__ = ["LogSegment"]

_INT32_MAX = 2**31 - 1


class LogSegment:
    """A .log file and its indexes. Not thread-safe: one owner."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        *,
        fd: int,
        size: int,
        max_index_bytes: int,
        index_interval_bytes: int,
        created_ms: int,
        roll_jitter_ms: int,
        writable: bool,
        new: bool = False,
        lazy: bool = False,
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        # The three files' Paths are made when first used: most of a big
        # CreateTopics' new segments get no file for a long time (lazy).
        self.file = SegmentFile(None, fd, create=lazy, directory=directory,
                                base_offset=base_offset)
        self.size = size
        self.offset_index = OffsetIndex(
            None, base_offset, max_index_bytes, writable=writable, new=new, lazy=lazy,
            directory=directory,
        )
        self.time_index = TimeIndex(
            None, base_offset, max_index_bytes, writable=writable, new=new, lazy=lazy,
            directory=directory,
        )
        self.index_interval_bytes = index_interval_bytes
        self.bytes_since_last_index_entry = 0
        self.created_ms = created_ms
        self.roll_jitter_ms = roll_jitter_ms
        #: Bytes known durable; the segment is dirty while this is below size.
        self.flushed_size = size
        #: Set when the segment stops being active; its trimmed index files
        #: still need an fsync (done by the next flush ticket).
        self.indexes_dirty = False
        self._max_timestamp: tuple[int, int] | None = None
        self._rolling_timestamp: int | None = None
        self._rolling_timestamp_known = False
        self._next_offset: int | None = None
        #: (offset, position): the batch after the last one translate_offset
        #: found starts at `position`, and `offset` (its last offset + 1) is
        #: there or later. A consumer reading on asks for exactly that offset
        #: next: no index lookup and no header walk from the indexed position
        #: (at one record per fetch the lookup and walk were ~15% of a Fetch).
        #: Reset when the file is cut.
        self._next_batch_hint: tuple[int, int] | None = None
        #: (offset, (position, size, last offset)): the last translate_offset
        #: from the start of the file. A consumer whose next batch does not
        #: fit its fetch's remaining bytes asks for the same offset fetch after
        #: fetch: over 1,000 partitions each fetch read one header per
        #: partition (a pread and a walk, 10 ms of every 1 MiB fetch). A
        #: batch never moves until the file is cut. Reset then.
        self._last_found: tuple[int, tuple[int, int, int]] | None = None
        #: False when the last walk of the tail stopped at bytes that are not a
        #: batch (only a crash leaves those; the loader then recovers).
        self.tail_complete = True

    # -- opening ----------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        base_offset: int,
        *,
        max_index_bytes: int,
        index_interval_bytes: int,
        created_ms: int,
        roll_jitter_ms: int = 0,
        preallocate_bytes: int = 0,
        lazy: bool = False,
    ) -> LogSegment:
        """A new, empty, active segment; stale files of the same name are replaced.

        lazy: a brand-new log's first segment in a new directory, whose files
        are created by the first append (or by closing it once written): a
        crash before then leaves a directory without segments, which loads as
        the empty log at offset 0 it was. Never for a segment whose base offset
        only its file name records (rolls, truncation)."""
        if lazy and preallocate_bytes <= 0:
            segment = cls(
                directory, base_offset, fd=-1, size=0, max_index_bytes=max_index_bytes,
                index_interval_bytes=index_interval_bytes, created_ms=created_ms,
                roll_jitter_ms=roll_jitter_ms, writable=True, new=True, lazy=True,
            )
            segment._next_offset = base_offset
            segment._rolling_timestamp_known = True
            return segment
        for path in files.segment_paths(directory, base_offset)[1:]:
            path.unlink(missing_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
        fd = os.open(files.log_path(directory, base_offset), flags, 0o644)
        try:
            if preallocate_bytes > 0:
                os.posix_fallocate(fd, 0, preallocate_bytes)
            segment = cls(
                directory, base_offset, fd=fd, size=0, max_index_bytes=max_index_bytes,
                index_interval_bytes=index_interval_bytes, created_ms=created_ms,
                roll_jitter_ms=roll_jitter_ms, writable=True, new=True,
            )
        except OSError:
            # A full disk: leave no half-made segment behind to be loaded later.
            os.close(fd)
            for path in files.segment_paths(directory, base_offset):
                path.unlink(missing_ok=True)
            raise
        segment._next_offset = base_offset
        segment._rolling_timestamp_known = True
        return segment

    @classmethod
    def open(
        cls,
        directory: Path,
        base_offset: int,
        *,
        max_index_bytes: int,
        index_interval_bytes: int,
        created_ms: int,
        roll_jitter_ms: int = 0,
    ) -> LogSegment:
        """An existing segment, inactive (indexes mapped lazily, read-only)."""
        fd = os.open(files.log_path(directory, base_offset), os.O_RDWR)
        size = os.fstat(fd).st_size
        return cls(
            directory, base_offset, fd=fd, size=size, max_index_bytes=max_index_bytes,
            index_interval_bytes=index_interval_bytes, created_ms=created_ms,
            roll_jitter_ms=roll_jitter_ms, writable=False,
        )

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def active(self) -> bool:
        return self.offset_index.writable

    def make_active(self) -> None:
        """Map the indexes for appends and derive the tail state from the file."""
        self.offset_index.make_writable()
        self.time_index.make_writable()
        self.indexes_dirty = False
        self._recompute_tail_state()

    def on_become_inactive(self) -> None:
        """Called on roll and close: final time index entry, trim files (Kafka's
        LogSegment.onBecomeInactiveSegment)."""
        if not self.active:
            return
        if self.file.pending_create:
            # Never written: it has no files to trim, and creates none.
            self.offset_index.abandon()
            self.time_index.abandon()
            return
        timestamp, offset = self.max_timestamp_and_offset
        self.time_index.maybe_append(timestamp, offset, skip_full_check=True)
        try:
            self.offset_index.make_read_only()
            self.time_index.make_read_only()
        except OSError:
            # The index files could not be written (a full disk): stay active,
            # entries in memory, so the caller may retry later.
            self.offset_index.make_writable()
            self.time_index.make_writable()
            raise
        if not self.file.pending_create and os.fstat(self.file.fd).st_size > self.size:
            # preallocated
            os.ftruncate(self.file.fd, self.size)
        self.indexes_dirty = True

    def close(self) -> None:
        if self.file.pending_create:
            # Never written: it has no files, and closing creates none.
            self.offset_index.abandon()
            self.time_index.abandon()
            self.file.close()
            return
        try:
            self.on_become_inactive()
        except OSError:
            # The indexes could not be written (a full disk). Close anyway; the
            # caller must not mark the shutdown clean, so that the next start
            # recovers this segment and rebuilds them.
            self.offset_index.abandon()
            self.time_index.abandon()
            self.file.close()
            raise
        self.offset_index.close()
        self.time_index.close()
        self.file.close()

    def delete(self) -> None:
        """Close every file of the segment and rename it to .deleted; the
        deleter thread unlinks them (file_deleter.py says why)."""
        self.offset_index.close_deleted()
        self.time_index.close_deleted()
        self.file.close()
        file_deleter.remove_later(file_deleter.rename_segment(self.directory, self.base_offset))

    # -- state ------------------------------------------------------------

    @property
    def max_timestamp_and_offset(self) -> tuple[int, int]:
        """(largest batch max timestamp, last offset of the batch carrying it);
        (-1, base offset) when no batch has a timestamp."""
        if self._max_timestamp is None:
            self._max_timestamp = self.time_index.last_entry()
        return self._max_timestamp

    @property
    def max_timestamp(self) -> int:
        return self.max_timestamp_and_offset[0]

    def largest_timestamp(self) -> int:
        """What time retention compares: the max timestamp, else the file's mtime
        (LogSegment.largestTimestamp)."""
        timestamp = self.max_timestamp
        if timestamp >= 0:
            return timestamp
        if self.file.pending_create:
            return self.created_ms
        return os.stat(self.path).st_mtime_ns // 1_000_000

    def rolling_timestamp(self) -> int | None:
        """The first batch's max timestamp, which time-based rolling measures from."""
        if not self._rolling_timestamp_known:
            self._rolling_timestamp = self.file.first_max_timestamp(self.size)
            self._rolling_timestamp_known = True
        return self._rolling_timestamp

    @property
    def next_offset(self) -> int:
        """One past the last offset in the segment; the base offset if empty."""
        if self._next_offset is None:
            self._recompute_tail_state()
            assert self._next_offset is not None
        return self._next_offset

    def _recompute_tail_state(self) -> None:
        """Walk the batches after the last index entry: next offset, exact max
        timestamp, and bytes since the last index entry."""
        indexed_offset, position = self.offset_index.last_entry()
        timestamp, ts_offset = self.time_index.last_entry()
        next_offset = self.base_offset
        since_entry = self.size
        if self.offset_index.entries:
            since_entry = self.size - position
        else:
            position = 0
        end = position
        walk = self.file.walk(position, self.size, strict=False)
        for batch_position, batch_size, last, batch_max in walk:
            if batch_max > timestamp:
                timestamp, ts_offset = batch_max, last
            next_offset = last + 1
            end = batch_position + batch_size
        self.tail_complete = end >= self.size
        if self.offset_index.entries and next_offset == self.base_offset:
            next_offset = indexed_offset + 1
        self._next_offset = next_offset
        self._max_timestamp = (timestamp, ts_offset)
        self.bytes_since_last_index_entry = since_entry

    # -- append -----------------------------------------------------------

    def should_roll(
        self, *, batch_size: int, max_timestamp: int, last_offset: int, now_ms: int,
        segment_bytes: int, segment_ms: int,
    ) -> bool:
        """Kafka's LogSegment.shouldRoll, for one incoming batch."""
        size = self.size
        if size > segment_bytes - batch_size:
            return True
        if size > 0:
            # Measured from the first batch's max timestamp when it has one,
            # else from when the segment was created (timeWaitedForRoll).
            first = (self._rolling_timestamp if self._rolling_timestamp_known
                     else self.rolling_timestamp())
            if first is not None and first >= 0:
                waited = max_timestamp - first
            else:
                waited = now_ms - self.created_ms
            if waited > segment_ms - self.roll_jitter_ms:
                return True
        return (
            self.offset_index.is_full()
            or self.time_index.is_full()
            or last_offset - self.base_offset > _INT32_MAX
        )

    def append(self, batch: memoryview, last_offset: int, max_timestamp: int) -> None:
        """Write one batch at the end: one pwrite of the caller's buffer."""
        position = self.size
        size = len(batch)
        if position == 0:
            self._rolling_timestamp = max_timestamp
            self._rolling_timestamp_known = True
        try:
            written = os.pwrite(self.file.fd, batch, position)
            while written < size:  # only on a full disk or a signal
                n = os.pwrite(self.file.fd, batch[written:], position + written)
                if n <= 0:
                    raise OSError(errno.EIO, f"short write to {self.path}")
                written += n
        except OSError:
            # A full disk fails after part of the batch: cut it off, so that
            # the log ends at its last whole batch, the next append does not
            # land after garbage and recovery finds no phantom tail. Shrinking
            # needs no space.
            try:
                os.ftruncate(self.file.fd, position)
            except OSError:
                pass  # the size is unchanged: recovery cuts the tail instead
            raise
        self.size = position + size
        self.index_batch(position, size, last_offset, max_timestamp)

    def index_batch(self, position: int, size: int, last_offset: int, max_timestamp: int) -> None:
        """Index bookkeeping for one batch (append and recovery share it)."""
        current = self.max_timestamp_and_offset
        if max_timestamp > current[0]:
            current = self._max_timestamp = (max_timestamp, last_offset)
        if self.bytes_since_last_index_entry > self.index_interval_bytes:
            # Appends roll before an index fills; only recovering a segment
            # written with a larger segment.index.bytes gets here full, and a
            # sparser tail only makes lookups walk further.
            if not self.offset_index.is_full():
                self.offset_index.append(last_offset, position)
            if not self.time_index.is_full():
                self.time_index.maybe_append(current[0], current[1])
            self.bytes_since_last_index_entry = 0
        self.bytes_since_last_index_entry += size
        self._next_offset = last_offset + 1

    # -- reading ----------------------------------------------------------

    def batch_prefix(self, position: int) -> tuple[int, int, int]:
        """(base offset, batch length, last offset) of the batch at `position`;
        base offset -1 when no complete, plausible batch starts there."""
        return self.file.batch_prefix(position, self.size)

    def translate_offset(self, offset: int, start_position: int = 0) -> tuple[int, int, int] | None:
        """(position, size, last offset) of the first batch whose last offset is
        >= `offset`, or None (LogSegment.translateOffset)."""
        if start_position == 0:
            last_found = self._last_found
            if last_found is not None and last_found[0] == offset:
                return last_found[1]
        hint = self._next_batch_hint
        if hint is not None and hint[0] == offset and hint[1] <= self.size:
            position = max(hint[1], start_position)
        else:
            position = max(self.offset_index.lookup(offset)[1], start_position)
        for batch_position, batch_size, last, _max_ts in self.file.walk(position, self.size):
            if last >= offset:
                self._next_batch_hint = (last + 1, batch_position + batch_size)
                found = (batch_position, batch_size, last)
                if start_position == 0:
                    self._last_found = (offset, found)
                return found
        return None

    def region(self, position: int, length: int) -> FileRegion:
        return FileRegion(self.path, position, length, self.file)

    def read(
        self, start_offset: int, *, max_offset: int, max_bytes: int, min_one_batch: bool,
        upper_bound: int,
    ) -> tuple[FileRegion | None, bool]:
        """Whole batches from the one containing `start_offset`, all with last
        offset < max_offset, at most max_bytes (but at least one batch when
        min_one_batch). `upper_bound` is an offset no batch here reaches (the
        next segment's base offset, or the log end offset).

        Returns (region or None, stop): stop is True when the read ended for
        a reason other than reaching the end of this segment.

        Both ends are found through the offset index plus a short header walk
        (at most index.interval.bytes), never by walking the whole range.
        """
        found = self.translate_offset(start_offset)
        if found is None:
            return None, False
        start, first_size, first_last = found
        if first_last >= max_offset:
            return None, True
        # End by offset: the start of the batch holding max_offset.
        end, stop = self.size, False
        if max_offset < upper_bound:
            bound = self.translate_offset(max_offset, start)
            if bound is not None:
                end, stop = bound[0], True
        limit = max(max_bytes, first_size) if min_one_batch else max_bytes
        if end - start <= limit:
            return self.region(start, end - start), stop
        if first_size > limit:
            # Not even the first batch fits (only when not min_one_batch): no
            # walk. A fetch whose response is nearly full meets this in every
            # partition with data.
            return None, True
        # End by size: the last batch boundary within start + limit.
        target = start + limit
        position = max(self.offset_index.floor_position(target), start)
        for batch_position, batch_size, _last, _max_ts in self.file.walk(position, self.size):
            if batch_position + batch_size > target:
                position = batch_position
                break
        return (self.region(start, position - start) if position > start else None), True

    def read_batch(self, position: int, size: int) -> bytes:
        data = os.pread(self.file.fd, size, position)
        if len(data) != size:
            raise KafkaStorageError(f"short read of {self.path} at {position}")
        return data

    def find_offset_by_timestamp(
        self, timestamp: int, starting_offset: int
    ) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after `starting_offset`
        with timestamp >= `timestamp` (LogSegment.findOffsetByTimestamp)."""
        indexed_offset = self.time_index.lookup(timestamp)[1]
        position = self.offset_index.lookup(max(indexed_offset, starting_offset))[1]
        for batch_position, batch_size, last, max_ts in self.file.walk(position, self.size):
            if last >= starting_offset and max_ts >= timestamp:
                found = self._first_record_at_or_after(
                    batch_position, batch_size, timestamp, starting_offset
                )
                if found is not None:
                    return found
        return None

    def _first_record_at_or_after(
        self, position: int, size: int, timestamp: int, starting_offset: int
    ) -> tuple[int, int] | None:
        data = self.read_batch(position, size)
        header = read_batch_header(data, 0)
        for record in decode_records(data, header):
            if record.timestamp >= timestamp and record.offset >= starting_offset:
                return record.offset, record.timestamp
        return None

    def offset_of_record_with_timestamp(self, timestamp: int, batch_last_offset: int) -> int:
        """The exact offset of the first record with `timestamp` in the batch
        ending at `batch_last_offset` (ListOffsets MAX_TIMESTAMP, KAFKA-16310)."""
        found = self.translate_offset(batch_last_offset)
        if found is None:
            return batch_last_offset
        position, size, _last = found
        data = self.read_batch(position, size)
        header = read_batch_header(data, 0)
        for record in decode_records(data, header):
            if record.timestamp == timestamp:
                return int(record.offset)
        return batch_last_offset

    # -- truncation -------------------------------------------------------

    def truncate_to(self, offset: int, now_ms: int) -> int:
        """Drop the batch containing `offset` and everything after it; returns
        the bytes removed (LogSegment.truncateTo)."""
        found = self.translate_offset(offset)
        if found is None:
            return 0
        position = found[0]
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        removed = self.size - position
        self.truncate_file(position)
        if position == 0:
            self.created_ms = now_ms
        return removed

    def truncate_file(self, size: int) -> None:
        """Cut the .log file at `size` and re-derive the tail state."""
        os.ftruncate(self.file.fd, size)
        self.size = size
        self._next_batch_hint = self._last_found = None
        self.flushed_size = min(self.flushed_size, size)
        self._rolling_timestamp_known = False
        self._max_timestamp = None
        self._recompute_tail_state()

    def reset_indexes(self) -> None:
        """Empty both indexes and the derived state, before a rebuild."""
        # Emptied first, so a stale (perhaps preallocated) file is not read in.
        self.offset_index.reset()
        self.time_index.reset()
        self.offset_index.make_writable()
        self.time_index.make_writable()
        self.bytes_since_last_index_entry = 0
        self._max_timestamp = (-1, self.base_offset)
        self._next_offset = self.base_offset

    # -- flushing ---------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return self.flushed_size != self.size or self.indexes_dirty

    def __repr__(self) -> str:
        return f"LogSegment({self.path}, size={self.size})"
