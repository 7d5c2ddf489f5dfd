"""Compaction's segment swap: the crash-safe file protocol that replaces a
run of a log's segments by their cleaned copy, on the log's LogSegments.

The cleaner writes `<base>.log|.index|.timeindex.cleaned` and fsyncs them on
its worker thread; then, on the log's owner thread:
  1. `prepare` renames the `.cleaned` files to `.swap` (the caller then
     fsyncs the directory);
  2. `complete` renames the replaced segments' files to `.deleted`, the
     `.swap` files to their final names, switches the segment list, and
     removes the `.deleted` files (Kafka's LocalLog.replaceSegments).
A crash between any two steps leaves files the loader completes or rolls
back (strom/storage/loader.py). A swap whose segments changed meanwhile
(truncation, retention, DeleteRecords) is refused and its files removed.
PartitionLog.prepare_swap, complete_swap and abort_swap are the doors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from strom.storage import file_deleter, files
from strom.storage.log_segments import LogSegments
from strom.storage.segment import LogSegment

__all__ = ["PendingSwap", "SwapHook", "abort", "complete", "prepare"]


@dataclass(frozen=True, slots=True)
class PendingSwap:
    """A cleaned copy of `old`, renamed to .swap, waiting for `complete`."""

    base_offset: int
    old: tuple[LogSegment, ...]
    generation: int


SwapHook = Callable[[str], None]


def no_hook(_step: str) -> None:
    pass


def prepare(
    segments: LogSegments, base_offset: int, old: Sequence[LogSegment], generation: int, *,
    hook: SwapHook = no_hook,
) -> bool:
    """Swap step 1: rename the cleaned copy of `old`
    (`<base>.log|.index|.timeindex.cleaned`, fsynced by the cleaner) to
    `.swap`. False, touching nothing, if `old` is no longer a run of
    inactive segments of this log or the log was truncated since
    `generation`. The caller fsyncs the directory before `complete`."""
    if (segments.closed or segments.pending_swap is not None
            or not segments.is_inactive_run(old, generation)
            or old[0].base_offset != base_offset):
        return False
    segments.pending_swap = PendingSwap(base_offset, tuple(old), generation)
    directory = segments.directory
    cleaned = files.compacted_segment_paths(directory, base_offset, files.CLEANED_SUFFIX)
    swap = files.compacted_segment_paths(directory, base_offset, files.SWAP_SUFFIX)
    for source, target in zip(cleaned, swap, strict=True):
        os.replace(source, target)
        hook(f"swap renamed {target.name}")
    return True


def complete(segments: LogSegments, *, hook: SwapHook = no_hook) -> bool:
    """Swap step 2 (after the .swap renames are durable): rename the
    replaced segments' files to .deleted, the .swap files to their final
    names, switch the segment list, then remove the .deleted files (Kafka's
    LocalLog.replaceSegments). False, removing the .swap files, if the log
    changed since `prepare`."""
    pending = segments.pending_swap
    if pending is None:
        return False
    if segments.closed or not segments.is_inactive_run(pending.old, pending.generation):
        abort(segments)
        return False
    directory = segments.directory
    doomed: list[Path] = []
    for segment in pending.old:
        doomed += file_deleter.rename_segment(directory, segment.base_offset,
                                              lambda path: hook(f"deleted {path.name}"))
    swap = files.compacted_segment_paths(directory, pending.base_offset, files.SWAP_SUFFIX)
    final = files.compacted_segment_paths(directory, pending.base_offset, "")
    for source, target in zip(swap, final, strict=True):
        os.replace(source, target)
        hook(f"installed {target.name}")
    segments.pending_swap = None
    segments.replace(pending.old, pending.base_offset)
    hook("swapped")
    file_deleter.remove_later(doomed)
    hook("removed .deleted files")
    return True


def abort(segments: LogSegments, *, durable: bool = False) -> None:
    """Forget a prepared swap and remove its files; with `durable`, fsync
    the directory so a crash cannot bring the .swap files back (needed
    when the log is about to be truncated)."""
    pending, segments.pending_swap = segments.pending_swap, None
    if pending is None:
        return
    directory = segments.directory
    for extra in (files.SWAP_SUFFIX, files.CLEANED_SUFFIX):
        for path in files.compacted_segment_paths(directory, pending.base_offset, extra):
            path.unlink(missing_ok=True)
    segments.files.version += 1
    if durable:
        files.fsync_dir(directory)
