"""Compaction's segment swap, the crash-safe file protocol on a PartitionLog.

The cleaner writes `<base>.log|.index|.timeindex.cleaned` and fsyncs them on
its worker thread; then, on the log's owner thread:
  1. `prepare_swap` renames the `.cleaned` files to `.swap` (the caller then
     fsyncs the directory);
  2. `complete_swap` renames the replaced segments' files to `.deleted`, the
     `.swap` files to their final names, switches the segment list, and
     removes the `.deleted` files (Kafka's LocalLog.replaceSegments).
A crash between any two steps leaves files the loader completes or rolls
back (strom/storage/loader.py). A swap whose segments changed meanwhile
(truncation, retention, DeleteRecords) is refused and its files removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from strom.storage import files
from strom.storage.segment import LogSegment

if TYPE_CHECKING:
    from strom.storage.log_config import LogConfig
    from strom.storage.segment_files import SegmentFiles

@dataclass(frozen=True, slots=True)
class _PendingSwap:
    base_offset: int
    old: tuple[LogSegment, ...]
    generation: int


SwapHook = Callable[[str], None]


def _no_hook(_step: str) -> None:
    pass


class SegmentSwapping:
    """Mixed into PartitionLog: the state it reads is the log's own."""

    directory: Path
    size_in_bytes: int
    _closed: bool
    _pending_swap: _PendingSwap | None
    _segments: list[LogSegment]
    _bases: list[int]
    segment_files: SegmentFiles
    _generation: int

    config: LogConfig

    def prepare_swap(
        self, base_offset: int, old: Sequence[LogSegment], generation: int, *,
        hook: SwapHook = _no_hook,
    ) -> bool:
        """Owner thread, swap step 1: rename the cleaned copy of `old`
        (`<base>.log|.index|.timeindex.cleaned`, fsynced by the cleaner) to
        `.swap`. False, touching nothing, if `old` is no longer a run of
        inactive segments of this log or the log was truncated since
        `generation`. The caller fsyncs the directory before `complete_swap`."""
        if (self._closed or self._pending_swap is not None
                or not self._is_inactive_run(old, generation)
                or old[0].base_offset != base_offset):
            return False
        self._pending_swap = _PendingSwap(base_offset, tuple(old), generation)
        cleaned = files.compacted_segment_paths(self.directory, base_offset, files.CLEANED_SUFFIX)
        swap = files.compacted_segment_paths(self.directory, base_offset, files.SWAP_SUFFIX)
        for source, target in zip(cleaned, swap, strict=True):
            os.replace(source, target)
            hook(f"swap renamed {target.name}")
        return True

    def complete_swap(self, *, hook: SwapHook = _no_hook) -> bool:
        """Owner thread, swap step 2 (after the .swap renames are durable):
        rename the replaced segments' files to .deleted, the .swap files to
        their final names, switch the segment list, then remove the .deleted
        files (Kafka's LocalLog.replaceSegments). False, removing the .swap
        files, if the log changed since `prepare_swap`."""
        pending = self._pending_swap
        if pending is None:
            return False
        if self._closed or not self._is_inactive_run(pending.old, pending.generation):
            self.abort_swap()
            return False
        directory = self.directory
        doomed: list[Path] = []
        for segment in pending.old:
            for path in files.segment_paths(directory, segment.base_offset):
                target = files.with_extra_suffix(path, files.DELETED_SUFFIX)
                try:
                    os.replace(path, target)
                except FileNotFoundError:
                    continue
                doomed.append(target)
                hook(f"deleted {path.name}")
        swap = files.compacted_segment_paths(directory, pending.base_offset, files.SWAP_SUFFIX)
        final = files.compacted_segment_paths(directory, pending.base_offset, "")
        for source, target in zip(swap, final, strict=True):
            os.replace(source, target)
            hook(f"installed {target.name}")
        self._pending_swap = None
        cleaned = self.segment_files.open(pending.base_offset)
        cleaned.index_interval_bytes = self.config.index_interval_bytes
        first = next(i for i, s in enumerate(self._segments) if s is pending.old[0])
        end = first + len(pending.old)
        self._segments[first:end] = [cleaned]
        self._bases[first:end] = [cleaned.base_offset]
        for segment in pending.old:
            self.size_in_bytes -= segment.size
            segment.close()  # inactive: closes fds and mappings, touches no path
        self.size_in_bytes += cleaned.size
        self.segment_files.version += 1
        hook("swapped")
        for path in doomed:
            path.unlink(missing_ok=True)
        hook("removed .deleted files")
        return True

    def abort_swap(self, *, durable: bool = False) -> None:
        """Forget a prepared swap and remove its files; with `durable`, fsync
        the directory so a crash cannot bring the .swap files back (needed
        when the log is about to be truncated)."""
        pending, self._pending_swap = self._pending_swap, None
        if pending is None:
            return
        for extra in (files.SWAP_SUFFIX, files.CLEANED_SUFFIX):
            for path in files.compacted_segment_paths(self.directory, pending.base_offset, extra):
                path.unlink(missing_ok=True)
        self.segment_files.version += 1
        if durable:
            files.fsync_dir(self.directory)

    def _is_inactive_run(self, old: Sequence[LogSegment], generation: int) -> bool:
        if not old or generation != self._generation:
            return False
        segments = self._segments
        first = next((i for i, s in enumerate(segments) if s is old[0]), None)
        if first is None or first + len(old) >= len(segments):  # the active one is never swapped
            return False
        return all(segments[first + i] is segment for i, segment in enumerate(old))

