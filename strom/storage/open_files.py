"""A bound on the file descriptors the logs hold: an LRU of open handles.

Every open segment file holds a file descriptor, and so does every mapped
index (Python 3.11's mmap keeps a dup of the fd it maps). A broker hosting
more partitions than RLIMIT_NOFILE allows failed to restart ("Too many open
files") and, before that, to accept connections. Kafka asks operators to
raise the limit; strom bounds its own use instead. Handles register here
when they open; opening one beyond the bound closes the least recently used
other one, which reopens (by path) on its next use. Produce and fetch on a
working set smaller than the bound never reopen anything: a use only moves
the handle to the end of the LRU (an OrderedDict.move_to_end, ~100 ns).

Reopening by path is safe because a live segment's files are renamed or
removed only while it is being closed or deleted (compaction's swap, the
loader's recovery, retention, truncation), after which its handles refuse
to reopen. The bound is per process, like the limit: half the soft
RLIMIT_NOFILE, read when a handle opens (`strom serve` raises the soft limit
to the hard one at start-up), leaving the rest for client connections,
checkpoint writes and flush tickets.

Owner thread only (the event loop); worker threads use dup'd fds.
"""

from __future__ import annotations

import resource
from collections import OrderedDict
from typing import Protocol

__all__ = ["Evictable", "OpenFiles", "open_files"]

#: Never bound below this many handles, whatever the limit says.
MIN_HANDLES = 16


class Evictable(Protocol):
    def evict(self) -> None:
        """Release the fd (or mapping); reopen on the next use."""


def _default_capacity() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(MIN_HANDLES, soft // 2)


class OpenFiles:
    """The open handles, least recently used first."""

    def __init__(self, capacity: int | None = None) -> None:
        #: A fixed bound (tests); None: derived from RLIMIT_NOFILE.
        self.capacity = capacity
        self._lru: OrderedDict[Evictable, None] = OrderedDict()
        #: Handles closed to stay within the bound, since start (a gauge for tests).
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._lru)

    def bound(self) -> int:
        return self.capacity if self.capacity is not None else _default_capacity()

    def touch(self, handle: Evictable) -> None:
        """`handle` was used: it is the most recently used now."""
        try:
            self._lru.move_to_end(handle)
        except KeyError:
            self._lru[handle] = None

    def opened(self, handle: Evictable) -> None:
        """`handle` has just opened an fd: evict others beyond the bound."""
        self._lru[handle] = None
        self._lru.move_to_end(handle)
        excess = len(self._lru) - self.bound()
        while excess > 0:
            oldest = next(iter(self._lru))
            if oldest is handle:
                break
            del self._lru[oldest]
            oldest.evict()
            self.evictions += 1
            excess -= 1

    def closed(self, handle: Evictable) -> None:
        """`handle` released its fd (evicted, closed or deleted)."""
        self._lru.pop(handle, None)


#: The process's handles: the fd limit is per process.
open_files = OpenFiles()
