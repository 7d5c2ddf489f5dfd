"""Which log to clean next and how far each is clean (Kafka's LogCleanerManager).

Per data directory, `cleaner-offset-checkpoint` (Kafka's offset checkpoint
format, checkpoints.py) holds each compacted log's first dirty offset: where
the next cleaning's offset map starts. Everything below it has been cleaned
at least once.

A log's cleanable range is [first dirty offset, first uncleanable offset):
the first uncleanable offset is the lowest of the last stable offset (which
the high watermark bounds), the active segment's base offset, and the base
offset of the first segment holding a record newer than
min.compaction.lag.ms; it is then rounded down to a segment boundary. The
log with the largest dirty ratio (cleanable bytes / (clean + cleanable
bytes)) above its min.cleanable.dirty.ratio is cleaned first; a log whose
oldest dirty segment started longer than max.compaction.lag.ms ago is
cleaned whatever its ratio.

Owner thread only, except `write_checkpoint`, which a cleaner thread may run
(serialised by a lock, and never writing an older state over a newer one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from strom.storage import checkpoints, files
from strom.storage.checkpoints import CheckpointError
from strom.storage.log import PartitionLog
from strom.storage.segment import LogSegment

__all__ = ["CleanerManager", "LogToClean", "cleanable_offsets"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class LogToClean:
    key: TopicPartition
    log: PartitionLog
    data_dir: Path
    first_dirty_offset: int
    first_uncleanable_offset: int
    clean_bytes: int
    cleanable_bytes: int
    need_compaction_now: bool

    @property
    def total_bytes(self) -> int:
        return self.clean_bytes + self.cleanable_bytes

    @property
    def cleanable_ratio(self) -> float:
        return self.cleanable_bytes / self.total_bytes if self.total_bytes else 0.0


def cleanable_offsets(
    plog: PartitionLog, checkpointed: int | None, now_ms: int, last_stable_offset: int,
) -> tuple[int, int, bool]:
    """(first dirty offset, first uncleanable offset, whether the checkpoint
    was invalid and must be rewritten) (LogCleanerManager.cleanableOffsets)."""
    start, end = plog.log_start_offset, plog.log_end_offset
    if checkpointed is None:
        first_dirty, reset = start, False
    elif checkpointed < start or checkpointed > end:
        # Below: retention or DeleteRecords passed it. Above: the log was
        # truncated after it; clean it all again to be safe.
        if checkpointed > end or "delete" not in plog.config.cleanup_policy:
            log.warning("%s: cleaner checkpoint %d is outside [%d, %d]; resetting",
                        plog.directory.name, checkpointed, start, end)
        first_dirty, reset = start, True
    else:
        first_dirty, reset = checkpointed, False
    segments = plog.segments
    bounds = [last_stable_offset, segments[-1].base_offset]
    lag = max(plog.config.min_compaction_lag_ms, 0)
    if lag > 0:
        for i, segment in enumerate(segments[:-1]):
            if segments[i + 1].base_offset <= first_dirty:
                continue
            if segment.largest_timestamp() > now_ms - lag:
                bounds.append(segment.base_offset)
                break
    return first_dirty, max(first_dirty, min(bounds)), reset


def _dirty_segments(plog: PartitionLog, first_dirty: int) -> list[LogSegment]:
    segments = plog.segments
    return [segment for i, segment in enumerate(segments[:-1])
            if segments[i + 1].base_offset > first_dirty]


def max_compaction_delay(plog: PartitionLog, first_dirty: int, now_ms: int) -> int:
    """How far past max.compaction.lag.ms the oldest dirty segment is (0 if not)."""
    stamps = [t for segment in _dirty_segments(plog, first_dirty)
              if (t := segment.rolling_timestamp()) is not None and t > 0]
    if not stamps:
        return 0
    clean_until = now_ms - max(plog.config.max_compaction_lag_ms, 0)
    earliest = min(stamps)
    return clean_until - earliest if earliest < clean_until else 0


def make_log_to_clean(
    key: TopicPartition, plog: PartitionLog, data_dir: Path, first_dirty: int,
    uncleanable: int, need_compaction_now: bool,
) -> LogToClean:
    """Sizes of the clean and cleanable sections; the first uncleanable offset
    is rounded down to its segment's base offset (calculateCleanableBytes)."""
    segments = plog.segments
    first_uncleanable = segments[-1].base_offset
    for i, segment in enumerate(segments[:-1]):
        if segments[i + 1].base_offset > uncleanable:
            first_uncleanable = segment.base_offset
            break
    low = min(first_dirty, first_uncleanable)
    clean_bytes = cleanable_bytes = 0
    for i, segment in enumerate(segments):
        upper = segments[i + 1].base_offset if i + 1 < len(segments) else plog.log_end_offset + 1
        if segment.base_offset < first_dirty:
            clean_bytes += segment.size
        if upper > low and segment.base_offset < first_uncleanable:
            cleanable_bytes += segment.size
    return LogToClean(key, plog, data_dir, first_dirty, first_uncleanable, clean_bytes,
                      cleanable_bytes, need_compaction_now)


@dataclass(frozen=True, slots=True)
class CleanerCandidate:
    """A compacted log as the broker offers it for cleaning."""

    key: TopicPartition
    log: PartitionLog
    last_stable_offset: int


class CleanerManager:
    def __init__(self, log_dirs: Iterable[Path]) -> None:
        self._checkpoints: dict[Path, dict[TopicPartition, int]] = {}
        for directory in log_dirs:
            path = directory / files.CLEANER_OFFSET_CHECKPOINT
            try:
                self._checkpoints[directory] = checkpoints.read_offset_checkpoint(path)
            except (CheckpointError, OSError) as exc:
                log.warning("ignoring unreadable %s: %s", path, exc)
                self._checkpoints[directory] = {}
        #: Logs being cleaned now, by key; the value is the log object itself.
        self.in_progress: dict[TopicPartition, PartitionLog] = {}
        #: Logs whose cleaning failed; skipped until the log object changes.
        self.uncleanable: dict[TopicPartition, PartitionLog] = {}
        self._versions: dict[Path, int] = {}
        self._written: dict[Path, int] = {}
        self._write_lock = threading.Lock()

    @staticmethod
    def data_dir(plog: PartitionLog) -> Path:
        return plog.directory.parent

    def checkpointed(self, key: TopicPartition, plog: PartitionLog) -> int | None:
        return self._checkpoints.setdefault(self.data_dir(plog), {}).get(key)

    def log_to_clean(self, candidate: CleanerCandidate, now_ms: int) -> LogToClean:
        key, plog = candidate.key, candidate.log
        first_dirty, uncleanable, reset = cleanable_offsets(
            plog, self.checkpointed(key, plog), now_ms, candidate.last_stable_offset)
        if reset:
            self.update_checkpoint(key, plog, first_dirty)
        delay = max_compaction_delay(plog, first_dirty, now_ms)
        return make_log_to_clean(key, plog, self.data_dir(plog), first_dirty, uncleanable,
                                 delay > 0)

    def grab_filthiest(self, candidates: Iterable[CleanerCandidate], now_ms: int,
                       ) -> LogToClean | None:
        """The compacted log most in need of cleaning, marked in progress; None
        if no log passes its min.cleanable.dirty.ratio or max.compaction.lag.ms."""
        best: LogToClean | None = None
        for candidate in candidates:
            key, plog = candidate.key, candidate.log
            if (not plog.config.compact or plog.closed or key in self.in_progress
                    or self.uncleanable.get(key) is plog):
                continue
            ltc = self.log_to_clean(candidate, now_ms)
            if ltc.total_bytes <= 0:
                continue
            if not ((ltc.need_compaction_now and ltc.cleanable_bytes > 0)
                    or ltc.cleanable_ratio > plog.config.min_cleanable_dirty_ratio):
                continue
            if best is None or ltc.cleanable_ratio > best.cleanable_ratio:
                best = ltc
        if best is not None:
            self.in_progress[best.key] = best.log
        return best

    def start(self, ltc: LogToClean) -> bool:
        """Mark a log chosen some other way (a forced cleaning) in progress."""
        if ltc.key in self.in_progress:
            return False
        self.in_progress[ltc.key] = ltc.log
        return True

    def done_cleaning(self, ltc: LogToClean, end_offset: int | None) -> None:
        """The cleaning of `ltc` ended; `end_offset` is its result, None if it failed."""
        if self.in_progress.get(ltc.key) is ltc.log:
            del self.in_progress[ltc.key]
        if end_offset is not None and not ltc.log.closed:
            self.update_checkpoint(ltc.key, ltc.log, end_offset)

    def mark_uncleanable(self, ltc: LogToClean) -> None:
        if not ltc.log.closed:
            self.uncleanable[ltc.key] = ltc.log

    def update_checkpoint(self, key: TopicPartition, plog: PartitionLog, offset: int) -> None:
        directory = self.data_dir(plog)
        self._checkpoints.setdefault(directory, {})[key] = offset
        self._versions[directory] = self._versions.get(directory, 0) + 1

    def forget(self, key: TopicPartition) -> None:
        """The log was deleted: drop its checkpoint entry and state."""
        self.uncleanable.pop(key, None)
        for directory, entries in self._checkpoints.items():
            if entries.pop(key, None) is not None:
                self._versions[directory] = self._versions.get(directory, 0) + 1

    def pending_checkpoints(self) -> list[tuple[Path, int, dict[TopicPartition, int]]]:
        """Owner thread: (directory, version, entries) of every checkpoint file
        that changed since it was last written."""
        return [(directory, version, dict(self._checkpoints.get(directory, {})))
                for directory, version in self._versions.items()
                if self._written.get(directory, 0) < version]

    def write_checkpoint(self, directory: Path, version: int,
                         entries: dict[TopicPartition, int]) -> None:
        """Any thread: write one directory's checkpoint file atomically,
        unless a newer version of it is already written."""
        with self._write_lock:
            if self._written.get(directory, 0) >= version:
                return
            checkpoints.write_offset_checkpoint(
                directory / files.CLEANER_OFFSET_CHECKPOINT, entries)
            self._written[directory] = version

    def write_checkpoints(self) -> None:
        for directory, version, entries in self.pending_checkpoints():
            self.write_checkpoint(directory, version, entries)
