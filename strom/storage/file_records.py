"""A segment's .log file (Kafka's FileRecords): its fd, opened on demand and
closed while idle, and the byte ranges (FileRegion) fetch sends from it.

LogSegment (segment.py) writes and walks batches through `SegmentFile.fd`;
FileRegion is what a read returns: a range of the file, read with pread or
mapped read-only for a zero-copy socket write (see FileRegion.view for why
a later truncation cannot crash the broker).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

from strom.errors import KafkaStorageError
from strom.storage.open_files import open_files

__all__ = ["MAP_THRESHOLD", "FileRegion", "SegmentFile"]

#: FileRegion.view maps regions at least this large and preads smaller ones.
#: A pread into a fresh `bytes` was 40% of the broker's time consuming 1 MiB
#: partition fetches (the allocation faults in new zeroed pages every time);
#: mapping the page cache instead moved 1.7-4x the bytes per second with a
#: third of the CPU on six 1 MiB regions per response. Below ~64 KiB the
#: mmap/munmap pair costs more than a copy into warm, reused heap memory.
MAP_THRESHOLD = 64 * 1024


class SegmentFile:
    """The .log file of a segment; FileRegions read through it.

    Its fd is opened on first use and may be closed while the segment idles,
    to keep the broker's fds bounded (open_files.py): read `fd` for every
    system call, never keep it across anything that may open another file.
    A lazily created file (a brand-new log's first segment) is created by
    its first use, so creating thousands of partitions creates no segment
    files until they are written to.
    """

    __slots__ = ("_create", "_fd", "closed", "path")

    def __init__(self, path: Path, fd: int, *, create: bool = False) -> None:
        self.path = path
        self._fd = fd
        #: Open with O_CREAT: the file may not exist yet.
        self._create = create
        #: Closed for good (segment closed or deleted): never reopens.
        self.closed = False
        if fd >= 0:
            open_files.opened(self)

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
