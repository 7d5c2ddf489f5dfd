"""Leader epoch cache and its `leader-epoch-checkpoint` file (Kafka's
LeaderEpochFileCache and LeaderEpochCheckpointFile).

File format (text, Kafka's CheckpointFile):

    0                   version
    2                   number of entries
    0 0                 "<epoch> <start offset>", start offsets increasing
    3 1500

Invariants: epochs and start offsets both strictly increase; an entry's end
offset is the next entry's start offset (the log end offset for the last).

The file is rewritten atomically (temp, fsync, rename, fsync dir). Appends
do not write it inline (no fsync on the produce path): the log's flush
ticket writes the entries current when it was prepared, and recovery
re-derives the epochs of unflushed batches from their headers. Truncation
writes it at once. A version counter keeps an older snapshot, written late
by a flush thread, from overwriting a newer one.
"""

from __future__ import annotations

import bisect
import logging
import threading
from pathlib import Path

from strom.storage import files

__all__ = ["EpochEntry", "LeaderEpochCache", "read_leader_epoch_checkpoint"]

log = logging.getLogger(__name__)

EpochEntry = tuple[int, int]  # (epoch, start offset)
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


def read_leader_epoch_checkpoint(path: Path) -> list[EpochEntry]:
    """Entries of a checkpoint file; [] if it is missing. ValueError if malformed."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return []
    lines = text.splitlines()
    if len(lines) < 2 or lines[0].strip() != "0":
        raise ValueError(f"{path}: unsupported leader epoch checkpoint version")
    count = int(lines[1])
    entries: list[EpochEntry] = []
    for line in lines[2 : 2 + count]:
        epoch, offset = line.split()
        entries.append((int(epoch), int(offset)))
    if len(entries) != count:
        raise ValueError(f"{path}: expected {count} entries, found {len(entries)}")
    return entries


def format_leader_epoch_checkpoint(entries: list[EpochEntry]) -> bytes:
    lines = ["0", str(len(entries))] + [f"{epoch} {offset}" for epoch, offset in entries]
    return ("\n".join(lines) + "\n").encode("ascii")


class LeaderEpochCache:
    """(epoch, start offset) pairs of one partition log."""

    def __init__(self, path: Path, entries: list[EpochEntry] | None = None) -> None:
        self.path = path
        self._epochs: list[int] = []
        self._starts: list[int] = []
        self._version = 0
        self._written_version = 0
        self._file_lock = threading.Lock()
        for epoch, start in entries or []:
            self.assign(epoch, start)

    @classmethod
    def load(cls, path: Path) -> LeaderEpochCache:
        try:
            entries = read_leader_epoch_checkpoint(path)
        except (ValueError, OSError) as exc:
            # Kafka fails the log dir here; the cache is derivable from the log,
            # so start empty and let recovery re-assign what the batches carry.
            log.warning("ignoring unreadable %s: %s", path, exc)
            entries = []
        cache = cls(path, entries)
        cache._version = cache._written_version = 0
        return cache

    # -- queries ----------------------------------------------------------

    def entries(self) -> list[EpochEntry]:
        return list(zip(self._epochs, self._starts, strict=True))

    def latest_epoch(self) -> int | None:
        return self._epochs[-1] if self._epochs else None

    def earliest_entry(self) -> EpochEntry | None:
        return (self._epochs[0], self._starts[0]) if self._epochs else None

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= requested, its end offset);
        (-1, -1) when unknown (LeaderEpochFileCache.endOffsetFor)."""
        if requested_epoch == UNDEFINED_EPOCH or not self._epochs:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested_epoch == self._epochs[-1]:
            return requested_epoch, log_end_offset
        higher = bisect.bisect_right(self._epochs, requested_epoch)
        if higher == len(self._epochs):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:
            return requested_epoch, self._starts[0]
        return self._epochs[higher - 1], self._starts[higher]

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch whose range contains `offset`."""
        i = bisect.bisect_right(self._starts, offset)
        return self._epochs[i - 1] if i else None

    # -- changes ----------------------------------------------------------

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset`; entries it contradicts
        (epoch or start offset not below the new one) are dropped first."""
        if epoch < 0 or start_offset < 0:
            return False
        if self._epochs and epoch == self._epochs[-1] and start_offset >= self._starts[-1]:
            return False
        while self._epochs and (self._epochs[-1] >= epoch or self._starts[-1] >= start_offset):
            self._epochs.pop()
            self._starts.pop()
        self._epochs.append(epoch)
        self._starts.append(start_offset)
        self._version += 1
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop entries starting at or after `end_offset` (follower truncation)."""
        if end_offset < 0 or not self._starts or self._starts[-1] < end_offset:
            return
        keep = bisect.bisect_left(self._starts, end_offset)
        del self._epochs[keep:]
        del self._starts[keep:]
        self._version += 1

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop entries wholly below `start_offset`; the one containing it now
        starts there (log start offset moved)."""
        if not self._starts or self._starts[0] >= start_offset:
            return
        covering = bisect.bisect_right(self._starts, start_offset) - 1
        epoch = self._epochs[covering]
        del self._epochs[: covering + 1]
        del self._starts[: covering + 1]
        self._epochs.insert(0, epoch)
        self._starts.insert(0, start_offset)
        self._version += 1

    def clear(self) -> None:
        if self._epochs:
            self._epochs.clear()
            self._starts.clear()
            self._version += 1

    # -- persistence ------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return self._version != self._written_version

    def snapshot(self) -> tuple[int, list[EpochEntry]]:
        return self._version, self.entries()

    def write_snapshot(self, version: int, entries: list[EpochEntry]) -> None:
        """Write `entries` unless a newer version is already on disk.

        Thread-safe: flush tickets call it from a worker thread.
        """
        with self._file_lock:
            if version <= self._written_version:
                return
            files.write_atomically(self.path, format_leader_epoch_checkpoint(entries))
            self._written_version = version

    def flush(self, *, force: bool = False) -> None:
        """Write the current entries now (truncation, close, a new log)."""
        if self.dirty or force:
            with self._file_lock:
                self._version = max(self._version, self._written_version) + 1
            version, entries = self.snapshot()
            self.write_snapshot(version, entries)
