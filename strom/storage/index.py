"""Offset and time indexes of one segment, Kafka's `.index` and `.timeindex`.

On disk (big-endian, no header, no checksum; rebuilt from the log after a
crash, like Kafka's):

    .index      entries of 8 bytes:  int32 relative offset, int32 position
    .timeindex  entries of 12 bytes: int64 timestamp,       int32 relative offset

Relative offsets are `offset - segment base offset`. An offset index entry
(O, P) says the batch starting at byte P of the .log file has last offset O
(Kafka indexes the batch's last offset since 3.0). A time index entry (T, O)
says every record with a timestamp above T comes after offset O.

Invariants: offset index offsets and positions strictly increase; time index
timestamps strictly increase and offsets never decrease. Entries are sparse:
one every `index.interval.bytes` of log, appended by the segment.

While its segment is active an index lives in memory: entries are appended
to a bytearray, which also answers lookups, and reach the file (one pwrite of
the entries not yet there) when the segment rolls or closes. The file is
created empty with the segment and is never preallocated or mapped for
writing. Measured here (ext4 on virtio): the first store into a page of a
freshly ftruncated, mmap'd index cost 1.9 ms (a write fault allocating a
block), munmap + truncate 0.9 ms, so 1,000 fresh partitions stalled the
event loop for seconds on their first index entries; a bytearray append
costs well under a microsecond and the pwrite at roll ~5 us. Crash safety is
unchanged: the index of the active segment was never synced before, and
after an unclean shutdown the segment holding the recovery point and every
later one (so always the active one) is recovered and its indexes rebuilt
from the log. A rolled segment's trimmed files are fsynced by the next flush
ticket, as before. Inactive indexes are mapped read-only, lazily, on first
use (Kafka's LazyIndex): most old segments are never looked up again.

The time index reserves its last slot (`is_full` at max_entries - 1) for the
entry written when the segment becomes inactive (TimeIndex.isFull).
"""

from __future__ import annotations

import mmap
import operator
import os
import struct
from pathlib import Path
from typing import ClassVar

from strom.storage import files
from strom.storage.open_files import open_files

__all__ = ["CorruptIndexError", "OffsetIndex", "TimeIndex"]

_INT32_MAX = 2**31 - 1
_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")


class CorruptIndexError(Exception):
    """An index file fails its sanity check; the loader rebuilds it."""


class _Index:
    entry_size: ClassVar[int]
    #: The file name's suffix, after the base offset.
    suffix: ClassVar[str]

    def __init__(
        self, path: Path | None, base_offset: int, max_index_size: int, *, writable: bool,
        new: bool = False, lazy: bool = False, directory: Path | None = None,
    ) -> None:
        """`path` None: the file of this index at `base_offset` in `directory`,
        its Path made when first used (`path`)."""
        self._path = path
        self._directory = directory
        self.base_offset = base_offset
        self.max_index_size = max_index_size
        #: At least two slots, so the time index keeps one usable slot besides
        #: the one reserved for the roll entry. An attribute, not a property:
        #: every append asks (is_full, twice a batch).
        self.max_entries = max(2, max_index_size // self.entry_size)
        self._mm: mmap.mmap | None = None
        #: The entries of a writable index; None while read-only.
        self._buf: bytearray | None = None
        #: Leading entries of _buf that the file already holds.
        self._synced = 0
        #: Entries the writable index may hold (max_entries, or more when an
        #: existing file already had more).
        self._capacity = 0
        self._loaded = False
        if new:
            size = 0
        else:
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                size = 0
        self._file_size = size
        self._entries = size // self.entry_size
        #: The file is not created yet (a lazily created segment, segment.py):
        #: it is, when the entries are first written.
        self._missing = False
        if writable:
            self.make_writable(new=new, create=not lazy)

    @property
    def path(self) -> Path:
        # Made on first use: a new log's first segment (lazy, segment.py) has
        # no file to name until its first write, and a Path is ~0.5 us and
        # ~150 bytes of the ~10 us a new partition costs (3 per segment).
        path = self._path
        if path is None:
            assert self._directory is not None, "an index without a path or directory"
            path = self._path = files.child(
                self._directory, files.offset_prefix(self.base_offset) + self.suffix)
        return path

    # -- mapping ----------------------------------------------------------

    @property
    def entries(self) -> int:
        return self._entries

    @property
    def writable(self) -> bool:
        return self._buf is not None

    def is_full(self) -> bool:
        return self._entries >= self.max_entries

    def _unmap(self) -> None:
        """Drop the read mapping, and a writable index's unwritten entries (a
        killed process loses them too; recovery rebuilds the index)."""
        if self._mm is not None:
            self._mm.close()
            self._mm = None
            open_files.closed(self)
        self._buf = None
        self._loaded = False

    def evict(self) -> None:
        """Unmap a read-only index (its mapping holds an fd); the next lookup
        maps it again (open_files.py)."""
        if self._buf is None and self._mm is not None:
            self._unmap()

    def _view(self) -> mmap.mmap | bytearray | None:
        """What to read entries from (None when there are none). Use it at
        once: a mapping may be unmapped when another file opens."""
        if self._buf is not None:
            return self._buf
        if not self._loaded:
            self._load_read_only()
        elif self._mm is not None:
            open_files.touch(self)
        return self._mm

    def _load_read_only(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._entries = 0
            self._loaded = True
            return
        try:
            self._file_size = os.fstat(fd).st_size
            self._entries = self._file_size // self.entry_size
            if self._entries:
                self._mm = mmap.mmap(fd, self._entries * self.entry_size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        self._loaded = True
        if self._mm is not None:
            open_files.opened(self)

    def make_writable(self, *, new: bool = False, create: bool = True) -> None:
        """Take the entries into memory for appends; create the file if missing.
        `new`: the file was just removed (a new segment), so nothing to read;
        with `create` False it is not created before the entries are written."""
        if self._buf is not None:
            return
        self._unmap()
        if new and not create:
            self._buf = bytearray()
            self._entries = self._synced = self._file_size = 0
            self._capacity = self.max_entries
            self._loaded = True
            self._missing = True
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if new:
                data = b""
                self._file_size = 0
            else:
                self._file_size = os.fstat(fd).st_size
                entries = self._file_size // self.entry_size
                data = os.pread(fd, entries * self.entry_size, 0) if entries else b""
        finally:
            os.close(fd)
        self._buf = bytearray(data)
        self._entries = self._synced = len(data) // self.entry_size
        del self._buf[self._entries * self.entry_size :]  # a short read of a torn file
        self._capacity = max(self.max_entries, self._entries)
        self._loaded = True

    def make_read_only(self) -> None:
        """Write the entries the file lacks, trim it to them, drop the buffer."""
        buf = self._buf
        if buf is None:
            return
        size = self._entries * self.entry_size
        written = self._synced * self.entry_size
        if written < size or self._file_size != size or self._missing:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                view = memoryview(buf)
                while written < size:
                    written += os.pwrite(fd, view[written:size], written)
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, size)
            finally:
                os.close(fd)
            self._file_size = size
            self._missing = False
        self._synced = self._entries
        self._buf = None
        self._loaded = False

    def close(self) -> None:
        self.make_read_only()
        self._unmap()

    def abandon(self) -> None:
        """Close without writing the entries the file lacks (they could not be
        written); only after an unclean shutdown, whose recovery rebuilds them."""
        self._unmap()

    def close_deleted(self) -> None:
        """Unmap without writing anything: the file is about to be deleted."""
        self._unmap()
        self._entries = 0

    def rename(self, path: Path) -> None:
        os.replace(self.path, path)
        self._path = path

    def _require_writable(self) -> bytearray:
        if self._buf is None:
            raise ValueError(f"index {self.path} is not writable")
        return self._buf

    def truncate_to_entries(self, entries: int) -> None:
        if entries < self._entries:
            if self._buf is not None:
                del self._buf[entries * self.entry_size :]
                self._entries = entries
                self._synced = min(self._synced, entries)
            else:
                self._unmap()
                os.truncate(self.path, entries * self.entry_size)
                self._file_size = entries * self.entry_size
                self._entries = entries

    def reset(self) -> None:
        """Drop every entry (before a rebuild)."""
        self.truncate_to_entries(0)

    def raw(self) -> bytes:
        """The valid entries' bytes (tests and sanity checks)."""
        view = self._view()
        return b"" if view is None else bytes(view[: self._entries * self.entry_size])

    def _check_file_size(self) -> None:
        if self._buf is not None:
            return  # whole entries in memory; the file is written on roll
        size = os.stat(self.path).st_size
        if size % self.entry_size:
            raise CorruptIndexError(
                f"{self.path}: size {size} is not a multiple of {self.entry_size}")


#: Entries at the end of an index that the sanity check compares pairwise.
#: A crash damages the tail (preallocated zeros, unwritten pages); checking
#: every entry of a full 2 MiB index costs 15-200 ms in Python, this ~1 ms.
SANITY_WINDOW = 2048


def _increasing(values: list[int], *, strict: bool) -> bool:
    compare = operator.lt if strict else operator.le
    return all(map(compare, values, values[1:]))


class OffsetIndex(_Index):
    """Sparse map from offset to file position (Kafka's OffsetIndex)."""

    entry_size = 8
    suffix = files.INDEX_SUFFIX

    def append(self, offset: int, position: int) -> None:
        buf = self._require_writable()
        n = self._entries
        if n >= self.max_entries:
            raise ValueError(f"offset index {self.path} is full ({n} entries)")
        relative = offset - self.base_offset
        if n and relative <= _INT32.unpack_from(buf, (n - 1) * 8)[0]:
            raise ValueError(f"offset {offset} is not above the last entry of {self.path}")
        if not 0 <= relative <= _INT32_MAX:
            raise ValueError(f"offset {offset} does not fit segment {self.base_offset}")
        buf += _OFFSET_ENTRY.pack(relative, position)
        self._entries = n + 1

    def entry(self, n: int) -> tuple[int, int]:
        view = self._view()
        if view is None or not 0 <= n < self._entries:
            raise IndexError(n)
        relative, position = _OFFSET_ENTRY.unpack_from(view, n * 8)
        return self.base_offset + relative, position

    def last_entry(self) -> tuple[int, int]:
        if self._entries == 0:
            return self.base_offset, 0
        return self.entry(self._entries - 1)

    def _slot_for(self, offset: int) -> int:
        """Slot of the largest entry with offset <= `offset`, or -1."""
        view = self._view()
        if view is None or self._entries == 0:
            return -1
        target = offset - self.base_offset
        unpack = _INT32.unpack_from
        lo, hi = 0, self._entries - 1
        if unpack(view, 0)[0] > target:
            return -1
        # Invariant: entry lo <= target; find the last such entry.
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if unpack(view, mid * 8)[0] <= target:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the largest entry <= offset; (base, 0) if none."""
        slot = self._slot_for(offset)
        if slot < 0:
            return self.base_offset, 0
        return self.entry(slot)

    def floor_position(self, position: int) -> int:
        """The largest indexed batch position <= `position` (0 if none): where
        to start walking to find the last batch boundary before `position`."""
        view = self._view()
        if view is None or self._entries == 0:
            return 0
        unpack = _INT32.unpack_from
        if unpack(view, 4)[0] > position:
            return 0
        lo, hi = 0, self._entries - 1
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if unpack(view, mid * 8 + 4)[0] <= position:
                lo = mid
            else:
                hi = mid - 1
        return int(unpack(view, lo * 8 + 4)[0])

    def truncate_to(self, offset: int) -> None:
        """Remove every entry with offset >= `offset`."""
        slot = self._slot_for(offset)
        if slot < 0:
            self.truncate_to_entries(0)
        elif self.entry(slot)[0] == offset:
            self.truncate_to_entries(slot)
        else:
            self.truncate_to_entries(slot + 1)

    def sanity_check(self) -> None:
        """Raise CorruptIndexError unless the file looks like a valid index:
        a whole number of entries, non-negative, increasing over the first
        entry and the last SANITY_WINDOW ones (AbstractIndex.sanityCheck and
        more)."""
        self._check_file_size()
        view = self._view()
        if view is None or self._entries == 0:
            return
        first = max(self._entries - SANITY_WINDOW, 0)
        pairs = [_OFFSET_ENTRY.unpack_from(view, 0)]
        pairs += _OFFSET_ENTRY.iter_unpack(view[first * 8 : self._entries * 8])
        if first == 0:
            pairs.pop(0)
        offsets = [pair[0] for pair in pairs]
        positions = [pair[1] for pair in pairs]
        if offsets[0] < 0 or positions[0] < 0:
            raise CorruptIndexError(f"{self.path}: negative first entry")
        if not _increasing(offsets, strict=True) or not _increasing(positions, strict=True):
            raise CorruptIndexError(f"{self.path}: entries are not increasing")


class TimeIndex(_Index):
    """Sparse map from timestamp to offset (Kafka's TimeIndex)."""

    entry_size = 12
    suffix = files.TIME_INDEX_SUFFIX

    def is_full(self) -> bool:
        return self._entries >= self.max_entries - 1

    def entry(self, n: int) -> tuple[int, int]:
        view = self._view()
        if view is None or not 0 <= n < self._entries:
            raise IndexError(n)
        timestamp, relative = _TIME_ENTRY.unpack_from(view, n * 12)
        return timestamp, self.base_offset + relative

    def last_entry(self) -> tuple[int, int]:
        """(timestamp, offset) of the last entry; (-1, base offset) if none."""
        if self._entries == 0:
            return -1, self.base_offset
        return self.entry(self._entries - 1)

    def maybe_append(self, timestamp: int, offset: int, *, skip_full_check: bool = False) -> None:
        """Append (timestamp, offset) if the timestamp grew (TimeIndex.maybeAppend)."""
        buf = self._require_writable()
        n = self._entries
        if n:
            last_timestamp, last_offset = self.entry(n - 1)
            if offset < last_offset:
                raise ValueError(f"offset {offset} is below the last entry of {self.path}")
            if timestamp <= last_timestamp:
                return
        elif timestamp <= -1:
            return
        if n >= self._capacity or (not skip_full_check and self.is_full()):
            raise ValueError(f"time index {self.path} is full ({n} entries)")
        relative = offset - self.base_offset
        if not 0 <= relative <= _INT32_MAX:
            raise ValueError(f"offset {offset} does not fit segment {self.base_offset}")
        buf += _TIME_ENTRY.pack(timestamp, relative)
        self._entries = n + 1

    def _slot_for_timestamp(self, timestamp: int) -> int:
        view = self._view()
        if view is None or self._entries == 0:
            return -1
        unpack = _INT64.unpack_from
        if unpack(view, 0)[0] > timestamp:
            return -1
        lo, hi = 0, self._entries - 1
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if unpack(view, mid * 12)[0] <= timestamp:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """(timestamp, offset) of the largest entry with timestamp <= target;
        (-1, base offset) if none."""
        slot = self._slot_for_timestamp(timestamp)
        if slot < 0:
            return -1, self.base_offset
        return self.entry(slot)

    def truncate_to(self, offset: int) -> None:
        """Remove every entry with offset >= `offset` (TimeIndex.truncateTo)."""
        # Offsets are non-decreasing, so a linear scan from the end stops early.
        n = self._entries
        while n and self.entry(n - 1)[1] >= offset:
            n -= 1
        self.truncate_to_entries(n)

    def sanity_check(self) -> None:
        """As OffsetIndex.sanity_check: timestamps strictly increase, offsets
        never decrease, over the first entry and the last SANITY_WINDOW."""
        self._check_file_size()
        view = self._view()
        if view is None or self._entries == 0:
            return
        first = max(self._entries - SANITY_WINDOW, 0)
        pairs = [_TIME_ENTRY.unpack_from(view, 0)]
        pairs += _TIME_ENTRY.iter_unpack(view[first * 12 : self._entries * 12])
        if first == 0:
            pairs.pop(0)
        timestamps = [pair[0] for pair in pairs]
        offsets = [pair[1] for pair in pairs]
        if offsets[0] < 0:
            raise CorruptIndexError(f"{self.path}: negative first offset")
        if not _increasing(timestamps, strict=True) or not _increasing(offsets, strict=False):
            raise CorruptIndexError(f"{self.path}: entries are not increasing")
