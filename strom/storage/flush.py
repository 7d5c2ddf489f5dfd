"""Group commit of one partition log: a FlushTicket (strom's own, no file format).

The owner thread prepares a ticket (`prepare_ticket`, called by
PartitionLog.prepare_flush): dup'd fds of every segment with unsynced bytes,
fds of index files trimmed since the last flush, the directory when segments
were created or deleted, a snapshot of the leader epochs if they changed,
and the log end offset it covers. A worker thread runs it (fdatasync each
fd; epoch checkpoint written atomically).
The owner completes it (PartitionLog.complete_flush): the recovery point
moves to the ticket's offset unless the log was truncated meanwhile.

Dup'd fds keep a ticket valid while the owner rolls, deletes or truncates
segments; one ticket covers every batch appended before it was prepared,
which is what makes one fdatasync per group of produce requests enough.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from strom.errors import KafkaStorageError
from strom.storage import disk
from strom.storage.leader_epoch import EpochEntry, LeaderEpochCache

if TYPE_CHECKING:
    from strom.storage.segment import LogSegment

__all__ = ["FlushTicket", "prepare_ticket"]


class FlushTicket:
    """One group commit: fds to fdatasync, prepared on the owner's thread.

    `run` is thread-safe and touches only its own (dup'd) fds and the epoch
    checkpoint file; `PartitionLog.complete_flush` must be called on the
    owner's thread afterwards (also when `run` raised) to close the fds.
    """

    __slots__ = (
        "offset", "_fds", "_dir_fd", "_epochs", "_epoch_cache", "generation",
        "appended_messages", "log_targets", "index_targets", "dir_version", "done",
    )

    def __init__(
        self, *, offset: int, fds: list[int], dir_fd: int,
        epochs: tuple[int, list[EpochEntry]] | None, epoch_cache: LeaderEpochCache,
        generation: int, appended_messages: int, log_targets: list[tuple[LogSegment, int]],
        index_targets: list[LogSegment], dir_version: int,
    ) -> None:
        self.offset = offset
        self._fds = fds
        self._dir_fd = dir_fd
        self._epochs = epochs
        self._epoch_cache = epoch_cache
        self.generation = generation
        self.appended_messages = appended_messages
        self.log_targets = log_targets
        self.index_targets = index_targets
        self.dir_version = dir_version
        self.done = False

    def run(self) -> None:
        """fdatasync every file, then the directory, then the epoch checkpoint."""
        try:
            for fd in self._fds:
                os.fdatasync(fd)
            if self._dir_fd >= 0:
                os.fsync(self._dir_fd)
            if self._epochs is not None:
                self._epoch_cache.write_snapshot(*self._epochs)
        except OSError as exc:
            directory = self._epoch_cache.path.parent
            if exc.errno == errno.ENOENT and not directory.exists():
                # The log was deleted (DeleteTopics) while this ticket waited or
                # ran: nothing is left to make durable, and the file system is
                # fine, so no disk condition (it would make every log's writes
                # answer KAFKA_STORAGE_ERROR until the next append cleared it).
                raise KafkaStorageError(f"cannot flush {directory}: the log was deleted") from exc
            raise disk.storage_error(exc, self._epoch_cache.path, "flush") from exc
        self.done = True

    def close(self) -> None:
        fds, self._fds = self._fds, []
        if self._dir_fd >= 0:
            fds.append(self._dir_fd)
            self._dir_fd = -1
        for fd in fds:
            os.close(fd)


def prepare_ticket(
    segments: Sequence[LogSegment], directory: Path, *, sync_dir: bool, offset: int,
    epoch_cache: LeaderEpochCache, generation: int, appended_messages: int, dir_version: int,
) -> FlushTicket:
    """Owner thread: dup the fds of everything in `segments` not yet durable
    (the directory too if `sync_dir`), for a ticket covering up to `offset`."""
    fds: list[int] = []
    log_targets: list[tuple[LogSegment, int]] = []
    index_targets: list[LogSegment] = []
    dir_fd = -1
    try:
        for segment in segments:
            if segment.flushed_size != segment.size:
                fds.append(os.dup(segment.file.fd))
                log_targets.append((segment, segment.size))
            if segment.indexes_dirty:
                for path in (segment.offset_index.path, segment.time_index.path):
                    try:
                        fds.append(os.open(path, os.O_RDONLY))
                    except FileNotFoundError:
                        pass
                index_targets.append(segment)
        if sync_dir:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        raise KafkaStorageError(f"cannot flush {directory}: {exc}") from exc
    epochs = epoch_cache.snapshot() if epoch_cache.dirty else None
    return FlushTicket(
        offset=offset, fds=fds, dir_fd=dir_fd, epochs=epochs, epoch_cache=epoch_cache,
        generation=generation, appended_messages=appended_messages, log_targets=log_targets,
        index_targets=index_targets, dir_version=dir_version,
    )
