"""A response that is complete except for waits: parked, not run in a task.

An acks=all produce has appended its batches and knows its response; what is
left is to wait until each partition has flushed them (flusher.py) or the ISR
has them (partition.py), or until the request's timeout. Waiting in the
handler's coroutine cost every such request a task (eager.py hands a
coroutine that waits to one), two steps of it, wait_all's bookkeeping, and
the frames of its coroutines, holding the request and its frame, until the
fsync ended: parked, the loop thread used 5% less CPU in the fleet row
(docs/benchmarks.md, issue 19).

A handler that would only wait returns a `Parked` instead: the futures it
waits for, its deadline, and `finish`, which builds the response from what
they came to. The connection parks it (`notify`) as a `ParkedRequest`, and
writes the response from the callback that completes the last wait, in
request order; any other caller awaits it, which is the old path (wait_all),
with the same response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from strom.broker.deadlines import deadlines_of, wait_all

if TYPE_CHECKING:
    from strom.broker.context import RequestContext
    from strom.broker.router import Registration
    from strom.protocol.headers import RequestHeader

__all__ = ["Parked", "ParkedRequest"]


class Parked:
    """Futures to wait for until a deadline, and the response they make.

    `finish` runs once, when every future is done or the deadline has passed;
    a future it finds not done timed out (it cancels it: the producer of the
    future sees that nobody waits any more)."""

    __slots__ = ("_futures", "_timeout_s", "_finish", "_remaining", "_notify", "_bucket")

    def __init__(self, futures: list[asyncio.Future[None]], timeout_s: float,
                 finish: Callable[[], Any]) -> None:
        self._futures = futures
        self._timeout_s = timeout_s
        self._finish = finish
        self._remaining = 0
        self._notify: Callable[[Parked], None] | None = None
        self._bucket: set[Any] | None = None

    def notify(self, notify: Callable[[Parked], None]) -> None:
        """Call `notify(self)` from the callback that completes the last wait,
        or at the deadline; it then calls `finish`. Once only."""
        assert self._notify is None, "parked twice"
        self._notify = notify
        for fut in self._futures:
            if not fut.done():
                self._remaining += 1
                fut.add_done_callback(self._one_done)
        if self._remaining == 0:
            notify(self)
            return
        loop = asyncio.get_running_loop()
        self._bucket = deadlines_of(loop).add_expiring(self, self._timeout_s)

    def finish(self) -> Any:
        return self._finish()

    def _one_done(self, _: asyncio.Future[None]) -> None:
        self._remaining -= 1
        if self._remaining == 0:
            self._fire()

    def expire(self) -> None:
        """The deadline passed (deadlines.py): what is not done timed out."""
        self._bucket = None
        if self._remaining > 0:
            self._remaining = 0
            for fut in self._futures:
                fut.remove_done_callback(self._one_done)
            self._fire()

    def _fire(self) -> None:
        if self._bucket is not None:
            self._bucket.discard(self)
            self._bucket = None
        notify, self._notify = self._notify, None
        if notify is not None:
            notify(self)

    def __await__(self) -> Generator[Any, None, Any]:
        """For callers without a connection to park it with (client quotas,
        a task that already waited): the same response, from a coroutine."""
        yield from wait_all(self._futures, self._timeout_s).__await__()
        return self._finish()


class ParkedRequest:
    """A request whose handler answered with a Parked, as its connection
    parks it: its slot in the connection's response order, and what the
    response needs once the waits are over. The Parked calls it then, and it
    hands itself to `unpark` (the connection's)."""

    __slots__ = ("_unpark", "parked", "slot", "context", "header", "api_version",
                 "registration", "started")

    def __init__(self, unpark: Callable[[ParkedRequest], None], parked: Parked,
                 context: RequestContext, header: RequestHeader, api_version: int,
                 registration: Registration, started: float) -> None:
        self._unpark = unpark
        self.parked = parked
        self.slot: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.context = context
        self.header = header
        self.api_version = api_version
        self.registration = registration
        self.started = started

    def __call__(self, _: Parked) -> None:
        self._unpark(self)
