"""A segment's .log file (Kafka's FileRecords): its fd, opened on demand and
closed while idle; walks over its batch headers; and the byte ranges
(FileRegion) fetch sends from it.

LogSegment (segment.py) writes batches through `SegmentFile.fd` and finds
them with `walk`, which preads only the 43-byte prefix of each header (base
offset, length, last offset delta, max timestamp), never the records.
FileRegion is what a read returns: a range of the file, read with pread or
mapped read-only for a zero-copy socket write (see FileRegion.view for why
a later truncation cannot crash the broker).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from strom.errors import KafkaStorageError
from strom.protocol.records import LOG_OVERHEAD
from strom.storage import files
from strom.storage.open_files import open_files

__all__ = ["MAP_THRESHOLD", "FileRegion", "SegmentFile"]

#: FileRegion.view maps regions at least this large and preads smaller ones.
#: A pread into a fresh `bytes` was 40% of the broker's time consuming 1 MiB
#: partition fetches (the allocation faults in new zeroed pages every time);
#: mapping the page cache instead moved 1.7-4x the bytes per second with a
#: third of the CPU on six 1 MiB regions per response. Below ~64 KiB the
#: mmap/munmap pair costs more than a copy into warm, reused heap memory.
MAP_THRESHOLD = 64 * 1024

#: base_offset, batch_length, partition_leader_epoch, magic, crc, attributes,
#: last_offset_delta, base_timestamp, max_timestamp: what walking batches needs.
_PREFIX = struct.Struct(">qiibIhiqq")
_PREFIX_SIZE = _PREFIX.size  # 43
_MAX_TIMESTAMP = struct.Struct(">q")
_MAX_TIMESTAMP_AT = 35
#: Smallest legal batch_length (a header without records).
_MIN_BATCH_LENGTH = 49
#: Batch walks read headers in windows this large: one pread covers ~40
#: small batches, and costs about the same as a 43-byte pread for big ones.
#: Measured on a 1 MiB fetch of 170-byte batches: per-header preads 6 ms.
_WALK_WINDOW = 8192


class SegmentFile:
    """The .log file of a segment; FileRegions read through it.

    Its fd is opened on first use and may be closed while the segment idles,
    to keep the broker's fds bounded (open_files.py): read `fd` for every
    system call, never keep it across anything that may open another file.
    A lazily created file (a brand-new log's first segment) is created by
    its first use, so creating thousands of partitions creates no segment
    files until they are written to.
    """

    __slots__ = ("_base_offset", "_create", "_directory", "_fd", "_path", "closed")

    def __init__(self, path: Path | None, fd: int, *, create: bool = False,
                 directory: Path | None = None, base_offset: int = 0) -> None:
        """`path` None: the .log file at `base_offset` in `directory`, its
        Path made when first used (`path`)."""
        self._path = path
        self._directory = directory
        self._base_offset = base_offset
        self._fd = fd
        #: Open with O_CREAT: the file may not exist yet.
        self._create = create
        #: Closed for good (segment closed or deleted): never reopens.
        self.closed = False
        if fd >= 0:
            open_files.opened(self)

    @property
    def path(self) -> Path:
        # Made on first use, as an index's (index.py): a new log's lazy first
        # segment has no file to name until its first write.
        path = self._path
        if path is None:
            assert self._directory is not None, "a segment file without a path or directory"
            path = self._path = files.log_path(self._directory, self._base_offset)
        return path

    @property
    def fd(self) -> int:
        fd = self._fd
        if fd >= 0:
            open_files.touch(self)
            return fd
        return self._reopen()

    @property
    def pending_create(self) -> bool:
        """True while the file was never created (nothing written to it)."""
        return self._create and self._fd < 0

    def _reopen(self) -> int:
        if self.closed:
            raise KafkaStorageError(f"segment {self.path} is closed")
        flags = os.O_RDWR | (os.O_CREAT if self._create else 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            raise KafkaStorageError(f"segment {self.path} was deleted") from None
        self._fd = fd
        self._create = False
        open_files.opened(self)
        return fd

    # -- batches ----------------------------------------------------------

    def walk(
        self, position: int, size: int, *, strict: bool = True
    ) -> Iterator[tuple[int, int, int, int]]:
        """(position, size, last offset, max timestamp) of each batch from
        `position` to `size`, the segment's end. A header that is not a
        plausible batch raises KafkaStorageError (strict) or ends the walk."""
        # The fd is read per pread, never kept: between two batches the caller
        # may open other files, and the fd may be closed to stay within the
        # bound (open_files.py) and its number reused.
        unpack = _PREFIX.unpack_from
        window = b""
        window_start = position
        while position < size:
            at = position - window_start
            if at + _PREFIX_SIZE > len(window):
                window = os.pread(self.fd, _WALK_WINDOW, position)
                window_start, at = position, 0
            if at + _PREFIX_SIZE > len(window):
                bad = "truncated header"
            else:
                base, length, _epoch, magic, _crc, _attrs, delta, _base_ts, max_ts = unpack(
                    window, at
                )
                batch_size = length + LOG_OVERHEAD
                if magic == 2 and length >= _MIN_BATCH_LENGTH and position + batch_size <= size:
                    yield position, batch_size, base + delta, max_ts
                    position += batch_size
                    continue
                bad = f"implausible header (magic {magic}, length {length})"
            if strict:
                raise KafkaStorageError(f"{self.path}: {bad} at position {position}")
            return

    def batch_prefix(self, position: int, size: int) -> tuple[int, int, int]:
        """(base offset, batch length, last offset) of the batch at `position`;
        base offset -1 when no complete, plausible batch (ending by `size`)
        starts there."""
        raw = os.pread(self.fd, _PREFIX_SIZE, position)
        if len(raw) < _PREFIX_SIZE:
            return -1, 0, -1
        base, length, _epoch, magic, _crc, _attrs, delta, _base_ts, _max_ts = _PREFIX.unpack(raw)
        if magic != 2 or length < _MIN_BATCH_LENGTH or position + length + LOG_OVERHEAD > size:
            return -1, 0, -1
        return base, length, base + delta

    def first_max_timestamp(self, size: int) -> int | None:
        """The first batch's max timestamp; None if the file (of `size`
        bytes) holds no whole batch header."""
        if size >= _PREFIX_SIZE:
            raw = os.pread(self.fd, 8, _MAX_TIMESTAMP_AT)
            if len(raw) == 8:
                return int(_MAX_TIMESTAMP.unpack(raw)[0])
        return None

    # -- the fd -----------------------------------------------------------

    def evict(self) -> None:
        """Close the fd; the next use reopens it."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            open_files.closed(self)
            os.close(fd)

    def close(self) -> None:
        self.closed = True
        self.evict()


@dataclass(frozen=True, slots=True)
class FileRegion:
    """A byte range of a segment file; fetch sends it without decoding.

    Valid until the segment is deleted (retention, truncation, topic
    deletion). Read it on the log owner's thread: the segment's fd is closed
    there when the segment goes away.
    """

    path: Path
    position: int
    length: int
    file: SegmentFile | None = field(default=None, compare=False, repr=False)

    def fileno(self) -> int:
        """The open fd of the segment (for os.sendfile); KafkaStorageError if deleted."""
        if self.file is None:
            raise KafkaStorageError(f"segment {self.path} is closed")
        return self.file.fd

    def view(self) -> bytes | memoryview:
        """The region's bytes for a socket write that happens later, without a
        copy when it is large: a memoryview of a read-only mapping of just this
        range, kept alive (and unmapped) by whoever holds the view.

        The mapping pins the file's inode, so deleting or replacing the segment
        (retention, compaction's swap, topic deletion) leaves it readable. Only
        truncating the file below the range (log truncation) invalidates it:
        then the kernel fails a write from it with EFAULT, which closes that
        connection, but Python code touching the bytes would die of SIGBUS. So
        hand views only to writers that pass the memory straight to the kernel
        (uvloop's transports, which writev from the buffer and never copy it),
        and read the bytes themselves, if at all, before returning to the event
        loop. Falls back to `read()` for small regions and when mapping fails
        (e.g. vm.max_map_count reached).
        """
        if self.length < MAP_THRESHOLD or self.file is None or self.file.closed:
            return self.read()
        start = self.position - self.position % mmap.ALLOCATIONGRANULARITY
        try:
            mapping = mmap.mmap(self.file.fd, self.position + self.length - start,
                                prot=mmap.PROT_READ, offset=start)
        except (OSError, ValueError):
            return self.read()
        return memoryview(mapping)[self.position - start:]

    def read(self) -> bytes:
        if self.file is not None and not self.file.closed:
            data = os.pread(self.file.fd, self.length, self.position)
        else:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                raise KafkaStorageError(f"segment {self.path} was deleted") from None
            try:
                data = os.pread(fd, self.length, self.position)
            finally:
                os.close(fd)
        if len(data) != self.length:
            raise KafkaStorageError(
                f"short read of {self.path}: {len(data)} of {self.length} bytes at {self.position}"
            )
        return data
