"""Removing deleted segments' files off the owner's thread.

Unlinking a segment file frees its page cache and its extents inside the
unlink call: 4.5-5 ms for a 16 MiB segment here, on the event loop for every
segment retention or DeleteRecords removed (the soak's p99.9 rose from 11 ms
in its first minute to 66 ms once retention began deleting, also without
fsync). So a deleted segment's files are renamed to `.deleted` on the owner's
thread (a rename is cheap, and a new segment may take the name at once) and
unlinked here, at once rather than after Kafka's `file.delete.delay.ms`: strom
closes a segment's fds when it deletes it, so nothing reads the files any
more. While a disk condition is active (a full disk) the caller unlinks them
itself: DeleteRecords and DeleteTopics free space there for the write that
follows (docs/operations.md, Disk full). A crash before the unlink leaves
`.deleted` files, which the next start removes (loader.py).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from strom.storage import disk, files

log = logging.getLogger(__name__)

__all__ = ["remove_later", "rename_segment", "wait_removed"]


class _Deleter:
    """One daemon thread unlinking the paths it is given, in order."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[list[Path]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Batches queued and not yet removed (wait_removed).
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def submit(self, paths: list[Path]) -> None:
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="strom-file-deleter",
                                                daemon=True)
                self._thread.start()
        self._queue.put(paths)

    def wait(self, timeout_s: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def _run(self) -> None:
        while True:
            paths = self._queue.get()
            for path in paths:
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:  # the next start removes what is left
                    log.warning("cannot remove %s: %s", path, exc)
            with self._idle:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.notify_all()


_DELETER = _Deleter()


def remove_later(paths: Iterable[Path]) -> None:
    """Unlink `paths` (already renamed to .deleted) on the deleter thread, or
    here while a disk is full (the next write needs the space)."""
    batch = list(paths)
    if not batch:
        return
    if disk.failing():
        for path in batch:
            path.unlink(missing_ok=True)
        return
    _DELETER.submit(batch)


def wait_removed(timeout_s: float = 10.0) -> bool:
    """Wait until every path handed over so far is removed (tests, shutdown)."""
    return _DELETER.wait(timeout_s)


def rename_segment(directory: Path, base_offset: int,
                   renamed: Callable[[Path], None] | None = None) -> list[Path]:
    """Rename every file of the segment at `base_offset` that exists to
    .deleted (`renamed` is told each original path); the new paths."""
    doomed: list[Path] = []
    for path in files.segment_paths(directory, base_offset):
        target = files.with_extra_suffix(path, files.DELETED_SUFFIX)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            continue
        doomed.append(target)
        if renamed is not None:
            renamed(path)
    return doomed
