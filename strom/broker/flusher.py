"""Group-commit fsync for acks=all.

An acks=all produce asks `wait_durable(partition, end_offset)`. One flusher
task collects every partition with waiters, takes a flush ticket from each
log (dup'd fds and the offset they cover), fsyncs them all in one worker
thread call, then completes the waiters the flush covered. Batches appended
while a flush runs are covered by the next one, so one fdatasync serves many
requests (PERFORMANCE.md: one fsync per 1 MiB instead of per 16 KiB is 16x
the durable throughput). The event loop never blocks on fsync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from strom.errors import KafkaStorageError
from strom.storage.log import FlushTicket, PartitionLog

log = logging.getLogger(__name__)


Flushable = PartitionLog


class GroupCommitFlusher:
    def __init__(self) -> None:
        self._waiters: dict[Flushable, list[tuple[int, asyncio.Future[None]]]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        self.fail_all(lambda: KafkaStorageError("broker shutting down"))

    async def wait_durable(self, log: Flushable, end_offset: int) -> None:
        """Return once every offset below `end_offset` is fsync'd."""
        if log.recovery_point >= end_offset:
            return
        if self._closed:
            raise KafkaStorageError("broker shutting down")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(log, []).append((end_offset, fut))
        self._wakeup.set()
        await fut

    def forget(self, log: Flushable, error: Callable[[], Exception]) -> None:
        """Fail the waiters of a log that is going away (topic deleted)."""
        for _, fut in self._waiters.pop(log, []):
            if not fut.done():
                fut.set_exception(error())

    def fail_all(self, error: Callable[[], Exception]) -> None:
        for log_ in list(self._waiters):
            self.forget(log_, error)

    async def _run(self) -> None:
        while not self._closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._waiters:
                continue
            batch = list(self._waiters.items())
            self._waiters = {}
            tickets = [(log_, log_.prepare_flush()) for log_, _ in batch]
            try:
                await asyncio.to_thread(_run_tickets, [t for _, t in tickets])
            except (OSError, KafkaStorageError) as exc:
                log.error("fsync failed: %s", exc)
                for _, ticket in tickets:
                    ticket.close()  # its dup'd fds; the recovery point stays put
                for _, waiters in batch:
                    for _, fut in waiters:
                        if not fut.done():
                            fut.set_exception(KafkaStorageError(f"fsync failed: {exc}"))
                continue
            for log_, ticket in tickets:
                log_.complete_flush(ticket)
            for log_, waiters in batch:
                rest = []
                for end_offset, fut in waiters:
                    if fut.done():
                        continue
                    if log_.recovery_point >= end_offset:
                        fut.set_result(None)
                    else:
                        rest.append((end_offset, fut))
                if rest:
                    self._waiters.setdefault(log_, []).extend(rest)
                    self._wakeup.set()


def _run_tickets(tickets: list[FlushTicket]) -> None:
    for ticket in tickets:
        ticket.run()
