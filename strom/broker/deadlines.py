"""Waiting for many futures with a deadline, one loop timer per tick.

An acks=all produce waits for the flush of every partition it wrote
(broker/flusher.py) until its timeout; `wait_all` does that without
asyncio.wait's set, tasks and per-call timer, which were a measurable share
of the one-record request path (docs/benchmarks.md, issue 19).
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol


async def wait_all(futures: list[asyncio.Future[None]], timeout_s: float) -> None:
    """Return when every future is done or `timeout_s` has passed (asyncio.wait
    without its set, tasks and per-call checks); the caller inspects them.

    The timeout may fire up to `DEADLINE_TICK_S` late, never early: deadlines
    share one timer per tick (`_Deadlines`) instead of one timer per call. An
    acks=all produce calls this once per request, ~10,000 times a second in
    the soak (one-record requests); with a timer and a closure per call it took
    12% of the event loop there, 6% without (py-spy, docs/benchmarks.md)."""
    pending = 0
    last: asyncio.Future[None] | None = None
    for fut in futures:
        if not fut.done():
            pending += 1
            last = fut
    if last is None:
        return
    loop = asyncio.get_running_loop()
    if pending == 1:
        # Nearly every acks=all request waits for one partition: await its
        # future itself. A countdown future in between cost every request one
        # more turn of the loop (~1 ms when it is busy) between its fsync and
        # its response. The futures are the caller's own, so the deadline may
        # fail this one with DeadlinePassed (the caller counts it as timed out).
        deadlines = deadlines_of(loop)
        bucket = deadlines.add(last, timeout_s, fail=True)
        try:
            await last
        except Exception:  # noqa: S110 - the caller inspects the future
            pass
        finally:
            deadlines.discard(bucket, last)
        return
    all_done: asyncio.Future[None] = loop.create_future()
    counter = _Countdown(pending, all_done)
    for fut in futures:
        if not fut.done():
            fut.add_done_callback(counter.one_done)
    deadlines = deadlines_of(loop)
    bucket = deadlines.add(all_done, timeout_s)
    try:
        await all_done
    finally:
        bucket.discard(all_done)
        if counter.remaining:
            for fut in futures:
                fut.remove_done_callback(counter.one_done)


class _Countdown:
    __slots__ = ("remaining", "_done")

    def __init__(self, remaining: int, done: asyncio.Future[None]) -> None:
        self.remaining = remaining
        self._done = done

    def one_done(self, _: asyncio.Future[None]) -> None:
        self.remaining -= 1
        if self.remaining == 0 and not self._done.done():
            self._done.set_result(None)


class DeadlinePassed(Exception):
    """wait_all gave up on a future that was the caller's own."""


#: Granularity of wait_all's timeouts: deadlines are rounded up to a tick.
DEADLINE_TICK_S = 0.005


class Expiring(Protocol):
    """What a deadline may end besides a future (parked.py's Parked)."""

    def expire(self) -> None: ...


Waiting = asyncio.Future[None] | Expiring


class _Deadlines:
    """Futures to complete at a deadline, one loop timer per tick that has any,
    rather than a timer per wait that is created and then, as the wait nearly
    always ends first, cancelled."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._ticks: dict[int, set[Waiting]] = {}
        #: Futures the deadline fails rather than completes (wait_all's own).
        self._failing: set[asyncio.Future[None]] = set()

    def add(self, fut: asyncio.Future[None], timeout_s: float,
            fail: bool = False) -> set[Waiting]:
        """Complete `fut` at or up to one tick after `timeout_s` from now, with
        None or, if `fail`, with DeadlinePassed; the set returned holds it:
        discard it there once it is done (`discard` for a failing one)."""
        bucket = self._bucket(timeout_s)
        bucket.add(fut)
        if fail:
            self._failing.add(fut)
        return bucket

    def add_expiring(self, waiting: Expiring, timeout_s: float) -> set[Waiting]:
        """Call `waiting.expire()` at or up to one tick after `timeout_s` from
        now unless it is discarded from the set returned first."""
        bucket = self._bucket(timeout_s)
        bucket.add(waiting)
        return bucket

    def _bucket(self, timeout_s: float) -> set[Waiting]:
        tick = math.ceil((self.loop.time() + max(timeout_s, 0.001)) / DEADLINE_TICK_S)
        bucket = self._ticks.get(tick)
        if bucket is None:
            bucket = self._ticks[tick] = set()
            self.loop.call_at(tick * DEADLINE_TICK_S, self._expire, tick)
        return bucket

    def discard(self, bucket: set[Waiting], fut: asyncio.Future[None]) -> None:
        bucket.discard(fut)
        self._failing.discard(fut)

    def _expire(self, tick: int) -> None:
        for fut in self._ticks.pop(tick, ()):
            if not isinstance(fut, asyncio.Future):
                fut.expire()
                continue
            fail = fut in self._failing
            if fail:
                self._failing.discard(fut)
            if fut.done():
                continue
            if fail:
                fut.set_exception(DeadlinePassed("deadline passed"))
            else:
                fut.set_result(None)


# The running loop's deadlines; another loop (tests, embedded brokers) gets its own.
_current: _Deadlines | None = None


def deadlines_of(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    global _current
    current = _current
    if current is None or current.loop is not loop:
        current = _current = _Deadlines(loop)
    return current
