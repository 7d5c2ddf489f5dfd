"""SegmentFiles: how one PartitionLog opens, creates and deletes its
segments, and whether its directory changed since the last fsync of it.

A segment's creation or deletion is durable only once the directory is
fsynced: every such change bumps `version`, a flush ticket records the
version it synced, and the next flush syncs the directory again only if
`version` moved past it. The first segment of a new log may be `lazy`
(its files created by its first append, see segment.py and new_logs.py).
"""

from __future__ import annotations

import random
from pathlib import Path

from strom.clock import Clock
from strom.storage.log_config import LogConfig
from strom.storage.segment import LogSegment

__all__ = ["SegmentFiles"]


class SegmentFiles:
    """One log's segment factory and directory-change counter (owner thread only)."""

    __slots__ = ("directory", "config", "_clock", "_rng", "lazy_next", "version",
                 "synced_version")

    def __init__(self, directory: Path, config: LogConfig, clock: Clock,
                 rng: random.Random) -> None:
        self.directory = directory
        #: Replaced by the log when its topic configs change.
        self.config = config
        self._clock = clock
        self._rng = rng
        #: The next segment created is a new log's first: files on first append.
        self.lazy_next = False
        #: Bumped by every change to the directory's entries.
        self.version = 0
        #: The highest version a completed flush fsynced.
        self.synced_version = 0

    @property
    def dir_dirty(self) -> bool:
        return self.version != self.synced_version

    def _roll_jitter(self) -> int:
        jitter = self.config.segment_jitter_ms
        if jitter <= 0:
            return 0
        return self._rng.randrange(min(jitter, self.config.segment_ms))

    def open(self, base_offset: int) -> LogSegment:
        config = self.config
        return LogSegment.open(
            self.directory, base_offset,
            max_index_bytes=config.segment_index_bytes,
            index_interval_bytes=config.index_interval_bytes,
            created_ms=self._clock.wall_ms(), roll_jitter_ms=self._roll_jitter(),
        )

    def create(self, base_offset: int) -> LogSegment:
        config = self.config
        self.version += 1
        lazy, self.lazy_next = self.lazy_next, False
        return LogSegment.create(
            self.directory, base_offset,
            max_index_bytes=config.segment_index_bytes,
            index_interval_bytes=config.index_interval_bytes,
            created_ms=self._clock.wall_ms(), roll_jitter_ms=self._roll_jitter(),
            preallocate_bytes=config.segment_bytes if config.preallocate else 0,
            lazy=lazy,
        )

    def delete(self, segment: LogSegment) -> None:
        segment.delete()
        self.version += 1

    @staticmethod
    def close_all(segments: list[LogSegment]) -> OSError | None:
        """Close every segment, even when some fail; the first failure."""
        failure: OSError | None = None
        for segment in segments:
            try:
                segment.close()
            except OSError as exc:
                failure = failure or exc
        return failure
