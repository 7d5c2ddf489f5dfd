"""Delayed operations: waits on futures with deadlines, completed exactly once.

Two kinds wait here. A fetch that has too few bytes waits for the next append
to any of its partitions (or its max wait). An acks=all produce waits until
its offset is durable: fsync'd by the group-commit flusher, and (in cluster
mode) below the high watermark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class AppendNotifier:
    """Wakes every waiter of a partition on its next append (or HW change)."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def future(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


async def wait_any(notifiers: Iterable[AppendNotifier], timeout: float) -> bool:
    """Wait until one of the notifiers fires or `timeout` seconds pass.

    Returns True if woken by an append. The futures of the others are
    cancelled so nothing accumulates on quiet partitions.
    """
    futures = [n.future() for n in notifiers]
    if not futures or timeout <= 0:
        for fut in futures:
            fut.cancel()
        return False
    try:
        done, _ = await asyncio.wait(futures, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
