"""acks=all requests waiting for a partition's high watermark to pass their
batches (Kafka's delayed produce), in the order their batches end."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable


class HighWatermarkWaiters:
    def __init__(self) -> None:
        #: (end offset, arrival, future): a heap by end offset.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    def add(self, end_offset: int) -> asyncio.Future[None]:
        """A future done once `complete_up_to` passes `end_offset`."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (end_offset, next(self._arrival), fut))
        return fut

    def complete_up_to(self, high_watermark: int,
                       error: Callable[[], Exception | None]) -> None:
        """Complete every waiter whose batch ends at or below the HW, each
        with the error `error()` names then (None: success)."""
        waiters = self._waiters
        while waiters and waiters[0][0] <= high_watermark:
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():  # its caller may have given up
                failure = error()
                if failure is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(failure)

    def fail_all(self, error: Callable[[], Exception]) -> None:
        waiters, self._waiters = self._waiters, []
        for _, _, fut in waiters:
            if not fut.done():
                fut.set_exception(error())
