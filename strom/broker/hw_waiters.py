"""acks=all requests waiting for a partition's high watermark to pass their
batches (Kafka's delayed produce), in the order their batches end; and the
min.insync.replicas errors they get (`min_isr_error`)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from strom.errors import KafkaError, NotEnoughReplicasAfterAppendError, NotEnoughReplicasError


def min_isr_error(isr: tuple[int, ...], required: int, topic: str, index: int, *,
                  after_append: bool) -> KafkaError | None:
    """None if the ISR of partition `topic`-`index` holds min.insync.replicas
    (`required`); else NOT_ENOUGH_REPLICAS (refused before the append) or,
    `after_append`, NOT_ENOUGH_REPLICAS_AFTER_APPEND (the ISR shrank while
    the batch was replicated)."""
    if len(isr) >= required:
        return None
    if after_append:
        return NotEnoughReplicasAfterAppendError(
            f"The ISR {list(isr)} of {topic}-{index} shrank below "
            f"min.insync.replicas={required} while the batch was replicated")
    return NotEnoughReplicasError(
        f"The size of the current ISR {list(isr)} is insufficient to satisfy "
        f"the min.isr requirement of {required} for partition {topic}-{index}")


def failed_future(error: Exception) -> asyncio.Future[None]:
    """An acks=all wait that already failed."""
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_exception(error)
    return fut


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
