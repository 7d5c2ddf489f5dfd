"""Validating large compressed batches off the event loop (hardening #6).

A produced batch is validated on the event loop with decompression capped at
INLINE_UNCOMPRESSED_BYTES. Past that it is validated again on a worker
thread with the real cap (partition.MAX_UNCOMPRESSED_BYTES): cramjam and
zlib release the GIL while they decompress, and their output buffers are
anonymous mmaps (compression.decompress_view), so a bomb inflating to
200 MiB costs its sender the time, not every other client. Measured on this
machine: validating 4 MiB of decompressed records takes ~4 ms, 200 MiB
~190 ms; the cheap framing walk refuses most bombs before either.

Two threads: at most two batches are decompressed at a time, so the
memory they take is bounded by 2 x MAX_UNCOMPRESSED_BYTES whatever the
number of clients.

Ordering: Kafka appends one connection's produce requests in order (its
socket server reads the next request only after answering the previous).
strom runs a connection's requests as concurrent tasks that append in their
synchronous first step, so a request that has to wait for a worker must not
be overtaken on any of its partitions: it takes an `AppendTurn` on every
partition it writes before its first await, and any later request that
finds a turn pending on one of its partitions queues behind it the same way.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["INLINE_UNCOMPRESSED_BYTES", "AppendTurn", "on_worker"]

#: Decompressed bytes validated on the event loop before a batch moves to a
#: worker: ~4 ms of loop time at most, while every batch Kafka's clients
#: write by default (16 KiB batch.size, 1 MiB max.request.size) stays inline.
INLINE_UNCOMPRESSED_BYTES = 4 * 1024 * 1024

_WORKERS = 2
_executor: ThreadPoolExecutor | None = None

T = TypeVar("T")


async def on_worker(fn: Callable[[], T]) -> T:
    """fn() on a batch-validation thread (created on first use; its idle
    threads end with the interpreter)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_WORKERS,
                                       thread_name_prefix="strom-batch-validation")
    return await asyncio.get_running_loop().run_in_executor(_executor, functools.partial(fn))


class AppendTurn:
    """A place in one partition's append queue (see the module docstring)."""

    __slots__ = ("_done", "_previous")

    #: Turns not yet finished, in this process: while there are none, the
    #: produce handler need not look for them (the common case costs nothing).
    _outstanding = 0

    def __init__(self, previous: asyncio.Future[None] | None,
                 done: asyncio.Future[None]) -> None:
        self._previous = previous
        self._done = done
        AppendTurn._outstanding += 1

    @staticmethod
    def any_outstanding() -> bool:
        return AppendTurn._outstanding > 0

    @classmethod
    def take(cls, tail: asyncio.Future[None] | None) -> AppendTurn:
        """A turn behind `tail` (the partition's last turn, if pending);
        the caller stores `turn.tail` as the partition's new last turn."""
        previous = tail if tail is not None and not tail.done() else None
        return cls(previous, asyncio.get_running_loop().create_future())

    @property
    def tail(self) -> asyncio.Future[None]:
        return self._done

    async def wait(self) -> None:
        """Until every earlier turn on the partition is over. asyncio.wait
        rather than await: cancelling this waiter must not cancel the turn
        it waits for."""
        if self._previous is not None and not self._previous.done():
            await asyncio.wait([self._previous])

    def release(self) -> None:
        """The partition is free for the next turn -- once every earlier turn
        is over too, should this one end early (its request cancelled)."""
        previous = self._previous
        if previous is not None and not previous.done():
            previous.add_done_callback(lambda _: self._finish())
        else:
            self._finish()

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)
            AppendTurn._outstanding -= 1
