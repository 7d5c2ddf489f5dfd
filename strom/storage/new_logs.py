"""Making new partition logs durable together: one sync per batch of creations.

Most new logs of a batch never come here any more: they are lazy (log.py),
with no directory until their first write, whose first flush writes
partition.metadata and syncs the directory and its data directory (flush.py).
What follows applies to the logs a batch still makes at once: those whose
topic preallocates segments (the first segment needs its file).

Creating a log used to cost five fsyncs (partition.metadata and its directory,
the empty leader-epoch-checkpoint and its directory, the data directory): a
CreateTopics of 3,000 partitions spent 16 of its 26 s in fsync, with the event
loop blocked. A batch of new logs (one metadata operation) now creates only
their directories, and `NewLogSync.sync` writes their partition.metadata and
makes the batch durable at the end, running the fsyncs on a few threads at
once (concurrent fsyncs share journal commits):

  0. write every `partition.metadata.tmp`;
  1. fsync each;
  2. rename each to `partition.metadata`;
  3. fsync every new partition directory, then each data directory once.

A log takes appends before that: `sync_names` (one fsync per data directory)
makes the new directories' names durable, and each log's own flush syncs its
directory. So a big CreateTopics is answered after `sync_names` and the rest
runs after (broker/log_jobs.py), as Kafka writes partition.metadata from its
scheduler after the log exists.

A big batch (SYNCFS_MIN_LOGS or more, on Linux) replaces the fsyncs of
steps 1 and 3 by one syncfs(2) of each data directory's filesystem before
the renames and one after: the same durability (syncfs writes back every
dirty inode and commits the journal, as fsync does for one), and 2,000 new
logs synced in 0.06-0.19 s instead of 0.36-0.52 s. Only for big batches:
syncfs also writes back whatever else is dirty on that filesystem, which a
small batch should not wait for.

A crash before step 2 leaves a log without partition.metadata (at most the
temp file), possibly with records in it: the broker rewrites it from the
cluster metadata when it sees the partition again (LogManager.create_log),
and the loader removes the stray temp file. Never a half-written
partition.metadata: it is renamed into place only once its bytes are
durable. No leader-epoch-checkpoint is written: the log's first flush writes
it atomically, and a missing one loads as no epochs (the cache is rebuilt
from the log anyway). No segment files either: the first append creates them
(LogSegment.create, lazy), and its flush syncs the directory.
"""

from __future__ import annotations

import functools
import os
import sys
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from strom.errors import KafkaStorageError
from strom.storage import checkpoints, files

if TYPE_CHECKING:
    from strom.storage.leader_epoch import LeaderEpochCache

__all__ = ["NewLogSync", "make_directory", "make_lazy_log_directory", "make_new_log_durable"]

#: Threads running the fsyncs of one batch; below this many files a batch
#: syncs on the caller's thread (starting threads would cost more).
SYNC_THREADS = 8
#: Batches of at least this many new logs sync with syncfs(2) (Linux).
SYNCFS_MIN_LOGS = 256


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs(2), None off Linux. Looked up by the first batch big
    enough to use it: ctypes is not imported at start (issue 19)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        syncfs: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return syncfs


def _syncfs(directory: Path) -> None:
    """syncfs(2) of the filesystem holding `directory`."""
    import ctypes

    syncfs = _libc_syncfs()
    assert syncfs is not None
    fd = os.open(directory, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(directory))
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _run_all(action: Callable[[Path], None], paths: Iterable[Path]) -> None:
    paths = list(paths)
    if len(paths) < SYNC_THREADS:
        for path in paths:
            action(path)
        return
    with ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="strom-new-log-sync") as pool:
        for _ in pool.map(action, paths):  # re-raises the first error
            pass


class NewLogSync:
    """The new logs not yet durable. One thread at a time (a batch is made on
    one worker thread and synced on another, after)."""

    def __init__(self) -> None:
        #: Partition directory -> its data directory.
        self._dirs: dict[Path, Path] = {}
        #: Partition directory -> the topic id its partition.metadata names.
        self._topic_ids: dict[Path, uuid.UUID] = {}

    def __len__(self) -> int:
        return len(self._dirs)

    def add(self, partition_dir: Path, topic_id: uuid.UUID | None) -> None:
        """A log created in `partition_dir`, without its partition.metadata
        (written by `sync` when `topic_id` is known)."""
        self._dirs[partition_dir] = partition_dir.parent
        if topic_id is not None:
            self._topic_ids[partition_dir] = topic_id

    def sync_names(self) -> None:
        """Make the added directories' names durable (one fsync per data
        directory): enough for their logs to take appends."""
        for parent in set(self._dirs.values()):
            files.fsync_dir(parent)

    def sync(self) -> None:
        """Write the partition.metadata of every added log and make it all
        durable (the steps above). On an error the logs stay pending and the
        next call retries."""
        if not self._dirs:
            return
        temps: list[Path] = []
        for directory, topic_id in self._topic_ids.items():
            tmp = directory / (files.PARTITION_METADATA + files.TMP_SUFFIX)
            try:
                tmp.write_bytes(checkpoints.format_partition_metadata(topic_id))
            except FileNotFoundError:
                continue  # deleted meanwhile
            temps.append(tmp)
        parents = set(self._dirs.values())
        if len(self._dirs) >= SYNCFS_MIN_LOGS and _libc_syncfs() is not None:
            # One per filesystem: data directories on one device share it.
            filesystems = list({os.stat(p).st_dev: p for p in parents}.values())
            for parent in filesystems:
                _syncfs(parent)
            for tmp in temps:
                os.replace(tmp, tmp.with_name(files.PARTITION_METADATA))
            for parent in filesystems:
                _syncfs(parent)
            self._dirs.clear()
            self._topic_ids.clear()
            return
        _run_all(_fsync_path, temps)
        for tmp in temps:
            os.replace(tmp, tmp.with_name(files.PARTITION_METADATA))
        _run_all(_fsync_path, [d for d in self._dirs if d.exists()])
        for parent in parents:
            files.fsync_dir(parent)
        self._dirs.clear()
        self._topic_ids.clear()


def make_directory(directory: Path) -> bool:
    """Create `directory` (and missing parents); True if this call made it.
    One mkdir for a new log, not a lookup first: in a data directory of
    thousands of entries each lookup is as costly as the mkdir."""
    try:
        directory.mkdir()
    except FileExistsError:
        if not directory.is_dir():
            raise
        return False
    except FileNotFoundError:
        directory.parent.mkdir(parents=True, exist_ok=True)
        return make_directory(directory)
    return True


def make_lazy_log_directory(directory: Path) -> None:
    """The directory of a lazy log, made at its first write. Raises OSError
    (a full disk: the log stays without a directory and the next write tries
    again), or KafkaStorageError if another directory with files in it is
    in the way."""
    if not make_directory(directory):
        # Made meanwhile by someone else: a directory whose removal failed
        # (DeleteTopics on a failing disk) or one an operator put there.
        # Never append into another log's files.
        with os.scandir(directory) as entries:
            if any(True for _ in entries):
                raise KafkaStorageError(
                    f"cannot create the log {directory}: a directory of that name "
                    "with files in it is in the way; move it away")


def make_new_log_durable(new_logs: NewLogSync | None, partition_dir: Path,
                         topic_id: uuid.UUID | None, epoch_cache: LeaderEpochCache) -> None:
    """A log just created in `partition_dir`: durable now, or with its batch."""
    if new_logs is not None:
        # partition.metadata is written by `new_logs.sync`. No
        # leader-epoch-checkpoint yet: the first flush writes it (the
        # epoch this broker leads is assigned before any append), and a
        # missing file loads as no epochs. One file fewer per new log.
        new_logs.add(partition_dir, topic_id)
    else:
        epoch_cache.flush(force=True)
        files.fsync_dir(partition_dir.parent)
