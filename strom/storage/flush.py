"""Group commit of one partition log: a FlushTicket (strom's own, no file format).

The owner thread prepares a ticket (`prepare_ticket`, called by
PartitionLog.prepare_flush): dup'd fds of every segment with unsynced bytes,
fds of index files trimmed since the last flush, the directory when segments
were created or deleted, a snapshot of the leader epochs if they changed,
and the log end offset it covers. A worker thread runs it (fdatasync each
fd; epoch checkpoint written atomically). The first flush of a log whose
directory was made lazily (log.py) also writes its partition.metadata
atomically and fsyncs the data directory, so the directory's name is as
durable as the records in it.
The owner completes it (PartitionLog.complete_flush): the recovery point
moves to the ticket's offset unless the log was truncated meanwhile.

Dup'd fds keep a ticket valid while the owner rolls, deletes or truncates
segments; one ticket covers every batch appended before it was prepared,
which is what makes one fdatasync per group of produce requests enough.

An fdatasync failing with anything but ENOSPC/EDQUOT (EIO: writeback failed)
raises LogFsyncFailedError and marks the ticket `fsync_failed`: Linux may
have dropped the dirty pages it covered and a later fdatasync would succeed
over lost data (PostgreSQL's "fsyncgate"), so the log must not be flushed
again; the broker takes the partition offline (as Kafka's LogDirFailureChannel
takes the log directory offline) and the next start recovers it.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from strom.errors import KafkaStorageError, LogFsyncFailedError
from strom.storage import disk, files
from strom.storage.leader_epoch import EpochEntry, LeaderEpochCache

if TYPE_CHECKING:
    from strom.storage.log_segments import LogSegments
    from strom.storage.segment import LogSegment

__all__ = ["FSYNC_FAULTS", "FSYNC_STALLS", "FlushTicket", "prepare_ticket"]

#: Fault injection for tests only: log directory -> errno its tickets'
#: fdatasyncs fail with (a disk whose writeback fails, without device-mapper).
#: Empty in production; one dict check per ticket.
FSYNC_FAULTS: dict[Path, int] = {}
#: Fault injection for tests only: log directory -> an event its tickets wait
#: for before they sync (a disk that is slow to write back).
FSYNC_STALLS: dict[Path, threading.Event] = {}

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class FlushTicket:
    """One group commit: fds to fdatasync, prepared on the owner's thread.

    `run` is thread-safe and touches only its own (dup'd) fds and the epoch
    checkpoint file; `PartitionLog.complete_flush` must be called on the
    owner's thread afterwards (also when `run` raised) to close the fds.
    """

    __slots__ = (
        "offset", "_fds", "_paths", "_dir_fd", "fsync_failed", "_epochs", "_epoch_cache",
        "generation", "appended_messages", "log_targets", "index_targets", "dir_version", "done",
        "_parent_fd", "syncs_parent", "_partition_metadata",
    )

    def __init__(
        self, *, offset: int, fds: list[int], paths: list[Path], dir_fd: int,
        epochs: tuple[int, list[EpochEntry]] | None, epoch_cache: LeaderEpochCache,
        generation: int, appended_messages: int, log_targets: list[tuple[LogSegment, int]],
        index_targets: list[LogSegment], dir_version: int, parent_fd: int = -1,
        partition_metadata: bytes | None = None, syncs_parent: bool = False,
    ) -> None:
        self.offset = offset
        self._fds = fds
        self._paths = paths
        self._dir_fd = dir_fd
        #: Why an fdatasync failed with an I/O error, if one did: the log's
        #: unsynced data may be lost (module docstring).
        self.fsync_failed: str | None = None
        self._epochs = epochs
        self._epoch_cache = epoch_cache
        self.generation = generation
        self.appended_messages = appended_messages
        self.log_targets = log_targets
        self.index_targets = index_targets
        self.dir_version = dir_version
        #: The data directory, to fsync after the log's own (its name is new).
        self._parent_fd = parent_fd
        #: Whether it syncs the data directory (and so the log's name).
        self.syncs_parent = syncs_parent or parent_fd >= 0
        #: partition.metadata to write (a lazily made directory's first flush).
        self._partition_metadata = partition_metadata
        self.done = False


    def run(self) -> None:
        """fdatasync every file, then the directory, then the epoch checkpoint."""
        directory = self._epoch_cache.path.parent
        path = directory  # the file being synced, for the error
        try:
            fault = FSYNC_FAULTS.get(directory) if FSYNC_FAULTS else None
            stall = FSYNC_STALLS.get(directory) if FSYNC_STALLS else None
            if stall is not None:
                stall.wait()
            for i, fd in enumerate(self._fds):
                path = self._paths[i]
                if fault is not None:
                    raise OSError(fault, os.strerror(fault))
                os.fdatasync(fd)
            path = directory
            if self._dir_fd >= 0:
                os.fsync(self._dir_fd)
            if self._parent_fd >= 0:
                path = directory.parent
                os.fsync(self._parent_fd)
        except OSError as exc:
            self._sync_failed(exc, path)
        self._write_files()

    def sync_fds(self) -> tuple[list[int], list[int]] | None:
        """The fds to fdatasync and then the directory fds to fsync, when
        syncing them is all this ticket does (nearly every flush): a GIL-free
        pool runs those (strom.storage._fsync) and the owner calls
        `synced` with the result. None when it writes files too (a lazily
        made log's partition.metadata, changed leader epochs) or a test
        injects a fault: `run` on a Python thread then."""
        if self._partition_metadata is not None or self._epochs is not None:
            return None
        if (FSYNC_FAULTS or FSYNC_STALLS) and (self._epoch_cache.path.parent in FSYNC_FAULTS
                                               or self._epoch_cache.path.parent in FSYNC_STALLS):
            return None
        dirs = [fd for fd in (self._dir_fd, self._parent_fd) if fd >= 0]
        return self._fds, dirs

    def synced(self, error: int, failed_at: int) -> None:
        """Owner thread: the outcome of the fds of `sync_fds` (an errno and
        the index of the fd that failed, or 0). Raises as `run` would."""
        if error == 0:
            self.done = True
            return
        directory = self._epoch_cache.path.parent
        if failed_at < len(self._paths):
            path = self._paths[failed_at]
        elif failed_at == len(self._paths) and self._dir_fd >= 0:
            path = directory
        else:
            path = directory.parent
        self._sync_failed(OSError(error, os.strerror(error)), path)

    def _sync_failed(self, exc: OSError, path: Path) -> NoReturn:
        directory = self._epoch_cache.path.parent
        code = exc.errno or 0
        if code in _NO_SPACE or (code == errno.ENOENT and not directory.exists()):
            self._failed(exc)
        reason = os.strerror(code) if code else str(exc)
        self.fsync_failed = f"fsync of {path} failed: {reason}"
        raise LogFsyncFailedError(self.fsync_failed) from exc

    def _write_files(self) -> None:
        directory = self._epoch_cache.path.parent
        try:
            if self._partition_metadata is not None:
                files.write_atomically(directory / files.PARTITION_METADATA,
                                       self._partition_metadata)
            if self._epochs is not None:
                self._epoch_cache.write_snapshot(*self._epochs)
        except OSError as exc:
            self._failed(exc)
        self.done = True

    def _failed(self, exc: OSError) -> NoReturn:
        """Raise the KafkaStorageError for `exc`: a full disk, a deleted log,
        or the epoch checkpoint (written atomically: nothing of it is lost)."""
        directory = self._epoch_cache.path.parent
        if exc.errno == errno.ENOENT and not directory.exists():
            # The log was deleted (DeleteTopics) while this ticket waited or
            # ran: nothing is left to make durable, and the file system is
            # fine, so no disk condition (it would make every log's writes
            # answer KAFKA_STORAGE_ERROR until the next append cleared it).
            raise KafkaStorageError(f"cannot flush {directory}: the log was deleted") from exc
        raise disk.storage_error(exc, self._epoch_cache.path, "flush") from exc

    def close(self) -> None:
        fds, self._fds = self._fds, []
        if self._dir_fd >= 0:
            fds.append(self._dir_fd)
            self._dir_fd = -1
        if self._parent_fd >= 0:
            fds.append(self._parent_fd)
            self._parent_fd = -1
        for fd in fds:
            os.close(fd)

    def settle(self, segments: LogSegments) -> bool:
        """Owner thread, after `run` succeeded: mark what it made durable in
        `segments` (the directory's version, trimmed indexes, each segment's
        flushed size). False if the log was truncated since the ticket was
        prepared: its offset may name other data, and no size is marked."""
        segment_files = segments.files
        segment_files.synced_version = max(segment_files.synced_version, self.dir_version)
        for segment in self.index_targets:
            if not segment.active:
                segment.indexes_dirty = False
        if self.generation != segments.generation:
            return False
        for segment, size in self.log_targets:
            segment.flushed_size = max(segment.flushed_size, size)
        return True


def prepare_ticket(
    segments: Sequence[LogSegment], directory: Path, *, sync_dir: bool, offset: int,
    epoch_cache: LeaderEpochCache, generation: int, appended_messages: int, dir_version: int,
    write_epochs: bool = True, sync_parent: bool = False,
    partition_metadata: bytes | None = None, dup_fds: bool = True,
) -> FlushTicket:
    """Owner thread: dup the fds of everything in `segments` not yet durable
    (the directory too if `sync_dir`), for a ticket covering up to `offset`.
    `write_epochs`: False while the log has no directory (the epochs wait in
    memory). The first flush of a lazily made log: `sync_parent` (fsync the
    data directory after the log's) and `partition_metadata` (its bytes).
    `dup_fds` False: a ticket without fds, for a flush that syncs the whole
    file system (syncfs, broker/flusher.py): what it covers, nothing to run."""
    fds: list[int] = []
    paths: list[Path] = []  # of fds, for the error that names the file
    log_targets: list[tuple[LogSegment, int]] = []
    index_targets: list[LogSegment] = []
    dir_fd = parent_fd = -1
    try:
        for segment in segments:
            if segment.flushed_size != segment.size:
                if dup_fds:
                    fds.append(os.dup(segment.file.fd))
                    paths.append(segment.file.path)
                log_targets.append((segment, segment.size))
            if segment.indexes_dirty:
                for path in (segment.offset_index.path, segment.time_index.path) \
                        if dup_fds else ():
                    try:
                        fds.append(os.open(path, os.O_RDONLY))
                        paths.append(path)
                    except FileNotFoundError:
                        pass
                index_targets.append(segment)
        if sync_dir and dup_fds:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        if sync_parent and dup_fds:
            parent_fd = os.open(directory.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        if dir_fd >= 0:
            os.close(dir_fd)
        raise KafkaStorageError(f"cannot flush {directory}: {exc}") from exc
    epochs = epoch_cache.snapshot() if write_epochs and epoch_cache.dirty else None
    return FlushTicket(
        offset=offset, fds=fds, paths=paths, dir_fd=dir_fd, epochs=epochs, epoch_cache=epoch_cache,
        generation=generation, appended_messages=appended_messages, log_targets=log_targets,
        index_targets=index_targets, dir_version=dir_version, parent_fd=parent_fd,
        partition_metadata=partition_metadata, syncs_parent=sync_parent,
    )
