"""LogManager: the data directories and every partition log in them (Kafka's
LogManager).

Per data directory (names in files.py, formats in checkpoints.py):
meta.properties, .kafka_cleanshutdown, recovery-point-offset-checkpoint,
replication-offset-checkpoint, log-start-offset-checkpoint, and one
`<topic>-<partition>` directory per log.

Invariants:
- every data directory's meta.properties names the same cluster.id and
  node.id; a mismatch refuses to start rather than mixing clusters' data;
- the clean-shutdown marker exists only while no log of that directory is
  open for writing: it is written last by `shutdown` and removed (durably)
  once the directory's logs are loaded;
- a topic-partition lives in exactly one data directory;
- checkpoint files only name logs that exist: deleting a log rewrites them
  (a log created lazily, log.py, exists before its directory: it is named
  at offset 0, and loading ignores names without a directory).

Flush and retention are scheduled by the owner (the broker's storage task)
through `logs_due_for_flush` and `apply_retention`; nothing here runs on its
own.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from strom.clock import Clock
from strom.errors import KafkaStorageError
from strom.storage import checkpoints, disk, files
from strom.storage.checkpoints import CheckpointError, MetaProperties
from strom.storage.log import LogConfig, PartitionLog
from strom.storage.log_open import new_lazy_log, open_log
from strom.storage.new_logs import NewLogSync

__all__ = ["DoomedLog", "InconsistentClusterIdError", "LogManager", "NewLog", "open_new_logs",
           "remove_log_dirs"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]

#: Threads creating a batch of new logs (open_new_logs), or removing them.
OPEN_THREADS = 4


class InconsistentClusterIdError(KafkaStorageError):
    """meta.properties disagrees with the configured or another directory's ids."""


class LogManager:
    def __init__(
        self, log_dirs: list[Path], *, clock: Clock, node_id: int, cluster_id: str | None
    ) -> None:
        if not log_dirs:
            raise ValueError("at least one log directory is required")
        self.log_dirs = [Path(d) for d in log_dirs]
        self.clock = clock
        self.node_id = node_id
        self._logs: dict[TopicPartition, PartitionLog] = {}
        self._dir_of: dict[TopicPartition, Path] = {}
        #: Logs created since the last `sync_new_logs` (new_logs.py).
        self._new_logs = NewLogSync()
        self.cluster_id = self._init_meta_properties(cluster_id)
        self._recovery_points: dict[TopicPartition, int] = {}
        self._log_start_offsets: dict[TopicPartition, int] = {}
        #: Partitions whose files could not be loaded, and why: offline.
        self.offline: dict[TopicPartition, str] = {}
        #: Data directories holding a log whose fsync failed (take_offline):
        #: never marked cleanly shut down, so the next start recovers them.
        self._unclean_dirs: set[Path] = set()
        #: High watermarks as last checkpointed (the broker restores HWs from it).
        self.high_watermarks: dict[TopicPartition, int] = {}
        for directory in self.log_dirs:
            self._recovery_points.update(
                self._read_checkpoint(directory / files.RECOVERY_POINT_CHECKPOINT)
            )
            self._log_start_offsets.update(
                self._read_checkpoint(directory / files.LOG_START_OFFSET_CHECKPOINT)
            )
            self.high_watermarks.update(
                self._read_checkpoint(directory / files.REPLICATION_OFFSET_CHECKPOINT)
            )

    def _init_meta_properties(self, cluster_id: str | None) -> str:
        metas: dict[Path, MetaProperties | None] = {}
        for directory in self.log_dirs:
            directory.mkdir(parents=True, exist_ok=True)
            try:
                metas[directory] = checkpoints.read_meta_properties(
                    directory / files.META_PROPERTIES
                )
            except (CheckpointError, ValueError) as exc:
                raise KafkaStorageError(
                    f"{exc}; restore it from a backup, or remove it to have a new one "
                    "written (set cluster.id to keep the cluster's id)"
                ) from None
        found = {meta.cluster_id for meta in metas.values() if meta is not None}
        if len(found) > 1:
            raise InconsistentClusterIdError(
                f"log directories belong to different clusters: {sorted(found)}"
            )
        if cluster_id is not None and found and cluster_id not in found:
            raise InconsistentClusterIdError(
                f"configured cluster.id {cluster_id} does not match {found.pop()} "
                f"in meta.properties of {[str(d) for d in self.log_dirs]}"
            )
        for directory, meta in metas.items():
            if meta is not None and meta.node_id != self.node_id:
                raise InconsistentClusterIdError(
                    f"configured node.id {self.node_id} does not match {meta.node_id} "
                    f"in {directory / files.META_PROPERTIES}"
                )
        resolved = cluster_id or (next(iter(found)) if found else None)
        if resolved is None:
            resolved = checkpoints.encode_uuid(checkpoints.random_kafka_uuid())
        for directory, meta in metas.items():
            if meta is None:
                checkpoints.write_meta_properties(
                    directory / files.META_PROPERTIES,
                    MetaProperties(self.node_id, resolved, checkpoints.random_kafka_uuid()),
                )
        return resolved

    @staticmethod
    def _read_checkpoint(path: Path) -> dict[TopicPartition, int]:
        """What can be read of a checkpoint. As in Kafka (LogManager.loadLogs) a
        damaged checkpoint does not stop the broker: a partition without an
        entry is recovered from its first segment and starts at its first
        segment's base offset. Unlike Kafka, only the damaged lines are lost,
        and the warning says what that costs so the operator can check it."""
        try:
            entries, problem = checkpoints.salvage_offset_checkpoint(path)
        except OSError as exc:
            entries, problem = {}, f"{path}: {exc.strerror or exc}"
        if problem is not None:
            log.warning("damaged checkpoint %s; kept %d entries, partitions without one "
                        "are recovered in full and start at their first segment "
                        "(records removed by DeleteRecords may reappear there)",
                        problem, len(entries))
        return entries

    # -- logs -------------------------------------------------------------

    def load_logs(
        self, config_for: Callable[[str], LogConfig]
    ) -> dict[TopicPartition, PartitionLog]:
        """Open every log of every data directory, recovering where needed."""
        for directory in self.log_dirs:
            marker = directory / files.CLEAN_SHUTDOWN_MARKER
            clean = marker.exists()
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
            # A directory without logs (brand-new, or emptied) has nothing to
            # recover: saying it "was not shut down cleanly" would be a false alarm.
            if not clean and any(
                e.is_dir() and files.parse_partition_dir_name(e.name) is not None
                for e in entries
            ):
                log.info("%s was not shut down cleanly; recovering unflushed segments", directory)
            for entry in entries:
                if not entry.is_dir():
                    continue
                path = Path(entry.path)
                if files.is_delete_dir(entry.name):
                    log.info("finishing the deletion of %s", path)
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                parsed = files.parse_partition_dir_name(entry.name)
                if parsed is None:
                    log.debug("ignoring %s: not a partition directory", path)
                    continue
                if parsed in self._logs:
                    raise KafkaStorageError(
                        f"duplicate log directories for {parsed[0]}-{parsed[1]}: "
                        f"{self._logs[parsed].directory} and {path}"
                    )
                try:
                    self._logs[parsed] = open_log(
                        path, config_for(parsed[0]), clock=self.clock,
                        recovery_point=self._recovery_points.get(parsed, 0),
                        log_start_offset=self._log_start_offsets.get(parsed, 0),
                        had_clean_shutdown=clean,
                    )
                except (OSError, ValueError, KafkaStorageError) as exc:
                    # One partition's unreadable files must not stop the
                    # broker: it goes offline (KAFKA_STORAGE_ERROR), the
                    # others serve.
                    self.offline[parsed] = str(exc)
                    log.error("partition %s-%d is offline (clients get KAFKA_STORAGE_ERROR): "
                              "%s", parsed[0], parsed[1], _with_fix(exc, path))
                self._dir_of[parsed] = directory
            checkpoints.consume_clean_shutdown_marker(directory)
        return dict(self._logs)

    def create_log(
        self, topic: str, partition: int, config: LogConfig, topic_id: uuid.UUID,
        *, sync: bool = True,
    ) -> PartitionLog:
        """A new, empty log in the data directory holding the fewest logs;
        the existing one if it is already there with the same topic id.
        sync=False: durable only once `sync_new_logs` ran (for a batch)."""
        key = (topic, partition)
        existing = self._logs.get(key)
        if existing is not None:
            if existing.topic_id is not None and existing.topic_id != topic_id:
                raise KafkaStorageError(f"log {topic}-{partition} exists with another topic id")
            if existing.topic_id is None:
                # partition.metadata was missing (or deleted by the operator
                # to repair it): write it again from the cluster metadata.
                try:
                    with disk.translate(existing.directory, "write partition.metadata in"):
                        checkpoints.write_partition_metadata(
                            existing.directory / files.PARTITION_METADATA, topic_id)
                    existing.topic_id = topic_id
                except KafkaStorageError:
                    pass  # a full disk: the next start writes it
            return existing
        if key in self.offline:
            raise KafkaStorageError(f"{topic}-{partition} is offline: {self.offline[key]}")
        if files.parse_partition_dir_name(files.partition_dir_name(topic, partition)) != key:
            # Only a topic created before names were checked exactly (0098471
            # accepted "evil\n"): its partition stays offline, the broker starts,
            # and DeleteTopics can remove it.
            raise KafkaStorageError(
                f"illegal topic name {topic!r} (created by an older strom): its partitions "
                "stay offline; delete the topic")
        directory = self.log_dirs[0]
        if len(self.log_dirs) > 1:  # counting is a scan of every log: only when it matters
            counts = Counter(self._dir_of.values())
            directory = min(self.log_dirs, key=lambda d: counts[d])
        plog = open_log(
            directory / files.partition_dir_name(topic, partition), config, clock=self.clock,
            topic_id=topic_id, new_logs=None if sync else self._new_logs,
        )
        self._logs[key] = plog
        self._dir_of[key] = directory
        return plog

    def new_log_dirs(self, keys: list[TopicPartition]) -> dict[TopicPartition, Path]:
        """The data directory of each new log: the one holding the fewest logs
        (counted once for the whole batch)."""
        if len(self.log_dirs) == 1:
            return dict.fromkeys(keys, self.log_dirs[0])
        counts = Counter(self._dir_of.values())
        chosen: dict[TopicPartition, Path] = {}
        for key in keys:
            directory = min(self.log_dirs, key=lambda d: counts[d])
            counts[directory] += 1
            chosen[key] = directory
        return chosen

    def take_offline(self, key: TopicPartition, reason: str) -> None:
        """Stop serving a log whose fsync failed with an I/O error (flush.py):
        its files are closed without writing anything more (the disk lost
        data), it stays offline until the broker restarts, and its data
        directory is not marked cleanly shut down, so that start recovers it:
        the segments above its recovery point are read again and truncated to
        the last valid batch. Its checkpointed offsets are kept."""
        plog = self._logs.pop(key, None)
        self.offline[key] = reason
        directory = self._dir_of.get(key)
        if directory is not None:
            self._unclean_dirs.add(directory)
        if plog is not None:
            try:
                plog.close(deleting=True)  # (deleting: no leader-epoch write)
            except KafkaStorageError:
                pass  # a failing disk: the files are closed regardless

    def adopt_log(self, key: TopicPartition, plog: PartitionLog, directory: Path) -> None:
        """Take over a log opened by `open_new_logs` (on a worker thread) in
        data directory `directory`."""
        if key in self._logs:
            raise ValueError(f"log {key[0]}-{key[1]} exists")
        self.offline.pop(key, None)
        self._logs[key] = plog
        self._dir_of[key] = directory

    def delete_log(self, topic: str, partition: int) -> None:
        """Delete one log (`delete_logs`)."""
        self.delete_logs([(topic, partition)])

    def delete_logs(self, keys: list[TopicPartition]) -> None:
        """Delete logs now: `detach_logs`, `remove_log_dirs`, then the
        checkpoints rewritten once for them all."""
        doomed = self.detach_logs(keys)
        for log_ in doomed:
            log_.close()
        errors = remove_log_dirs(doomed)
        self.write_checkpoints_of({d.data_dir for d in doomed})
        if errors:
            raise disk.storage_error(errors[0], errors[0].filename or doomed[0].path, "delete")

    def detach_logs(self, keys: list[TopicPartition]) -> list[DoomedLog]:
        """Forget the logs of `keys`; what is left to do is returned: close
        each (`DoomedLog.close`, on this thread: open_files.py), then
        `remove_log_dirs` (which may run on a worker thread: nobody else uses
        those directories any more)."""
        doomed: list[DoomedLog] = []
        for key in keys:
            plog = self._logs.pop(key, None)
            directory = self._dir_of.pop(key, None)
            offline = self.offline.pop(key, None)
            self._recovery_points.pop(key, None)
            self._log_start_offsets.pop(key, None)
            self.high_watermarks.pop(key, None)
            if directory is None or (plog is None and offline is None):
                continue
            partition_dir = directory / files.partition_dir_name(*key)
            if plog is not None:
                partition_dir = plog.directory
            doomed.append(DoomedLog(key, partition_dir, directory, plog))
        return doomed

    def write_checkpoints_of(self, directories: set[Path]) -> None:
        """Rewrite the checkpoints of `directories` (after logs were deleted
        there); a full disk leaves the old ones, naming logs that are gone,
        which loading ignores."""
        for directory in directories:
            try:
                with disk.translate(directory, "write checkpoints in"):
                    self._write_checkpoints(directory)
            except KafkaStorageError:
                pass

    def partition_dirs_with_records(self) -> list[Path]:
        """Partition directories holding a non-empty segment, before any log is
        opened: what a missing cluster metadata file would orphan. Directories
        without records (a crash during creation) lose nothing if removed."""
        found: list[Path] = []
        for directory in self.log_dirs:
            for entry in os.scandir(directory):
                if (not entry.is_dir() or files.is_delete_dir(entry.name)
                        or files.parse_partition_dir_name(entry.name) is None):
                    continue
                if any(f.name.endswith(files.LOG_SUFFIX) and f.stat().st_size > 0
                       for f in os.scandir(entry.path)):
                    found.append(Path(entry.path))
        return found

    def sync_new_logs(self) -> None:
        """Make the logs created since the last call durable, together (one
        batch of fsyncs per metadata operation instead of five per log)."""
        self._new_logs.sync()

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def logs(self) -> dict[TopicPartition, PartitionLog]:
        return dict(self._logs)

    # -- checkpoints and scheduling ----------------------------------------

    def checkpoint(self, high_watermarks: Mapping[TopicPartition, int]) -> None:
        """Write the three offset checkpoint files of every data directory."""
        for key, value in high_watermarks.items():
            if key in self._logs:
                self.high_watermarks[key] = value
        for directory in self.log_dirs:
            with disk.translate(directory, "write checkpoints in"):
                self._write_checkpoints(directory)

    def _write_checkpoints(self, directory: Path) -> None:
        keys = sorted(key for key, d in self._dir_of.items() if d == directory)
        # An offline log keeps the offsets it was loaded with, for when it is fixed.
        recovery = {key: self._logs[key].recovery_point if key in self._logs
                    else self._recovery_points.get(key, 0) for key in keys}
        start = {key: self._logs[key].log_start_offset if key in self._logs
                 else self._log_start_offsets.get(key, 0) for key in keys}
        hws = self.high_watermarks
        replication = {key: hws[key] for key in keys if key in hws}
        checkpoints.write_offset_checkpoint(directory / files.RECOVERY_POINT_CHECKPOINT, recovery)
        checkpoints.write_offset_checkpoint(directory / files.LOG_START_OFFSET_CHECKPOINT, start)
        checkpoints.write_offset_checkpoint(
            directory / files.REPLICATION_OFFSET_CHECKPOINT, replication
        )
        self._recovery_points.update(recovery)
        self._log_start_offsets.update(start)

    def logs_due_for_flush(self, now_ms: int | None = None) -> list[PartitionLog]:
        """Logs whose flush.messages / flush.ms asks for a flush now."""
        now = self.clock.wall_ms() if now_ms is None else now_ms
        return [plog for plog in self._logs.values() if plog.flush_due(now)]

    def apply_retention(
        self, now_ms: int | None = None,
        high_watermarks: Mapping[TopicPartition, int] | None = None,
    ) -> int:
        """Retention over every log; returns the number of segments deleted."""
        now = self.clock.wall_ms() if now_ms is None else now_ms
        deleted = 0
        for key, plog in self._logs.items():
            hw = None if high_watermarks is None else high_watermarks.get(key)
            deleted += plog.apply_retention(now, high_watermark=hw)
        return deleted

    def shutdown(self, high_watermarks: Mapping[TopicPartition, int]) -> None:
        """Flush and close every log, checkpoint, then mark the shutdown clean.

        A file that cannot be written (a full disk) does not stop the
        shutdown: every log is still closed, and the shutdown is not marked
        clean, so the next start recovers as after a crash."""
        failures: list[KafkaStorageError] = []
        try:
            self._new_logs.sync()
        except OSError as exc:
            failures.append(KafkaStorageError(f"cannot sync new logs: {exc}"))
        for plog in self._logs.values():
            try:
                plog.close(flush=True)
            except KafkaStorageError as exc:
                failures.append(exc)
        try:
            self.checkpoint(high_watermarks)
        except KafkaStorageError as exc:
            failures.append(exc)
        if failures:
            log.warning("shutdown could not write %d file(s), first: %s; the next start "
                        "recovers the logs as after a crash", len(failures), failures[0])
            return
        for directory in self.log_dirs:
            if directory in self._unclean_dirs:
                log.warning("%s is not marked cleanly shut down: a partition there went "
                            "offline after a failed fsync; the next start recovers it", directory)
                continue
            with disk.translate(directory, "write the clean-shutdown marker in"):
                checkpoints.write_clean_shutdown_marker(directory)


def _with_fix(exc: Exception, path: Path) -> str:
    """The error and what the operator can do about it, in one line."""
    if isinstance(exc, KafkaStorageError) and exc.message:
        return exc.message  # names its file and fix (log_open.open_log)
    if isinstance(exc, OSError):
        return (f"cannot read {exc.filename or path}: {exc.strerror or exc}; check the disk "
                "and the file permissions, then restart the broker")
    return (f"{path}: {exc}; move the directory away to recover it by hand, or delete the "
            "topic, then restart the broker")


@dataclass(frozen=True, slots=True)
class DoomedLog:
    """A detached log whose directory is still to be removed."""

    key: TopicPartition
    path: Path
    data_dir: Path
    log: PartitionLog | None

    def close(self) -> None:
        """Close the log's files, writing nothing (it is about to go)."""
        if self.log is not None:
            try:
                self.log.close(deleting=True)
            except KafkaStorageError:
                pass  # index files that could not be written (a full disk) go anyway


def remove_log_dirs(doomed: list[DoomedLog]) -> list[OSError]:
    """Rename each directory to <topic>-<p>.<uuid>-delete (a crash after that
    finishes the deletion at the next start), fsync each data directory once,
    then remove them. Touches only these directories: safe on a worker thread.
    Returns the errors (the rest is still done)."""
    errors: list[OSError] = []
    renamed: list[Path] = []
    for log_ in doomed:
        target = log_.path.with_name(files.delete_dir_name(*log_.key))
        try:
            os.rename(log_.path, target)
            renamed.append(target)
        except FileNotFoundError:
            pass  # never created (a new log that failed), or already gone
        except OSError as exc:
            errors.append(exc)
    for data_dir in {log_.data_dir for log_ in doomed}:
        try:
            files.fsync_dir(data_dir)
        except OSError as exc:
            errors.append(exc)
    # Space first, checkpoints after: on a full disk those only fit then.
    # Removing directories overlaps in the journal like creating them does.
    if len(renamed) < 4 * OPEN_THREADS:
        for target in renamed:
            shutil.rmtree(target, ignore_errors=True)
    else:
        with ThreadPoolExecutor(OPEN_THREADS, thread_name_prefix="strom-log-delete") as pool:
            list(pool.map(lambda target: shutil.rmtree(target, ignore_errors=True), renamed))
    return errors


@dataclass(frozen=True, slots=True)
class NewLog:
    """A log to create: where, with which config and topic id."""

    key: TopicPartition
    data_dir: Path
    config: LogConfig
    topic_id: uuid.UUID


def open_new_logs(new: list[NewLog],
                  clock: Clock) -> tuple[list[PartitionLog | OSError], NewLogSync]:
    """Create the logs of `new` (for one that fails, its error), ready to take
    appends; their partition.metadata is written by the returned
    `NewLogSync.sync`, later (new_logs.py). Touches only their new
    directories and the objects it returns, which nobody else sees before
    `LogManager.adopt_log`: it runs on a worker thread while the event loop
    serves. A log is created lazily: no directory, no file descriptor
    (open_files.py is not touched) until its first write (log.py); only a
    preallocated one is made at once.

    Logs made at once (preallocated) are opened by OPEN_THREADS threads:
    mkdir waits on the filesystem's journal, and several at once overlap
    (2,000 logs on ext4: 0.18 ms per mkdir one at a time, 0.05 ms with 8
    threads). Lazy ones are Python objects only: threads would only contend
    for the GIL."""
    made_at_once = sum(1 for spec in new if spec.config.preallocate)
    if made_at_once < 4 * OPEN_THREADS:  # a few: threads would cost more than they save
        opened = [_open_new(new, clock)]
    else:
        chunks = [new[i::OPEN_THREADS] for i in range(OPEN_THREADS)]
        with ThreadPoolExecutor(OPEN_THREADS, thread_name_prefix="strom-new-log") as pool:
            opened = list(pool.map(lambda chunk: _open_new(chunk, clock), chunks))
    by_key = {spec.key: result for chunk in opened for spec, result in chunk}
    results = [by_key[spec.key] for spec in new]
    pending = NewLogSync()
    for spec, plog in zip(new, results, strict=True):
        if isinstance(plog, PartitionLog) and plog.directory_made:  # (lazy ones: no files yet)
            pending.add(plog.directory, spec.topic_id)
    try:
        pending.sync_names()
    except OSError as exc:
        # Their names are not durable: none of them is used (a retry on use
        # makes them again).
        for plog in results:
            if isinstance(plog, PartitionLog):
                plog.close()
        return [exc] * len(new), NewLogSync()
    return results, pending


def _open_new(new: list[NewLog], clock: Clock) -> list[tuple[NewLog, PartitionLog | OSError]]:
    # Each log registers with a NewLogSync of this thread's own (not shared
    # across threads); open_new_logs syncs them all together.
    deferred = NewLogSync()
    # One generator for the chunk's segment jitters, seeded once: seeding one
    # per log (from os.urandom) was a tenth of making a new log.
    rng = random.Random()
    results: list[tuple[NewLog, PartitionLog | OSError]] = []
    for spec in new:
        directory = files.child(spec.data_dir, files.partition_dir_name(*spec.key))
        try:
            if spec.config.preallocate:
                made = open_log(directory, spec.config, clock=clock, topic_id=spec.topic_id,
                                new_logs=deferred, rng=rng)
            else:  # (what open_log makes of it, without parsing the name again)
                made = new_lazy_log(directory, *spec.key, spec.config, clock=clock,
                                    topic_id=spec.topic_id, rng=rng)
            results.append((spec, made))
        except KafkaStorageError as exc:
            results.append((spec, OSError(errno.EIO, exc.message or str(exc), str(directory))))
        except OSError as exc:
            results.append((spec, exc))
    return results
