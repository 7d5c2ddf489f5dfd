"""Start a request's coroutine at once, in the callback that read it.

A task runs its coroutine's first step in a later turn of the event loop,
and its done callbacks in the turn after it finishes. Most requests (acks=1
and acks=0 produce, acks=all without fsync, Metadata, a Fetch with data to
return) never wait for anything, so a task cost them two turns of the loop
between reading the request and writing the response: on a busy loop (one
record per request, 10,000 requests/s) each turn is hundreds of
microseconds, and the task itself is a measurable share of the ~200k
instructions a one-record request costs (docs/benchmarks.md, issue 19).

`start` runs the first step inline: a coroutine that finishes there gets a
done future, and the caller may write its response at once; one that waits
is handed to a task at the point where it waits, and the task goes on
exactly as if it had run the coroutine from the start (the future it waits
on is the one the task then waits on; cancellation is thrown into it).
Python 3.12's eager tasks do the same inside asyncio; strom runs on 3.11.

The connection starts only small requests so (a frame that is a bytearray of
its own): bulk produce requests started inline cost acks=1 librdkafka up to
2.8x its throughput, not yet understood (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

__all__ = ["start"]


def start(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run `coro` up to its first wait; a done future if it never waits,
    else a task that continues it."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(stop.value)
        return done
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # as a task would: the future holds it
        failed: asyncio.Future[T] = loop.create_future()
        failed.set_exception(exc)
        return failed
    return loop.create_task(_continue(_Resumed(coro, yielded)))


async def _continue(resumed: _Resumed[T]) -> T:
    return await resumed


class _Resumed(Generic[T]):
    """Awaitable that delegates to a coroutine already started, beginning by
    yielding what it yielded (`yield from` would send it None first). It
    gives up its references on the first step: the generator's frame owns
    them."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, T], yielded: object) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, T]:
        coro, yielded = self._coro, self._yielded
        del self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                # The task throws in what the awaited future failed with (and
                # cancellation). Raised here first, the exception's traceback
                # now starts at this frame, whose locals hold that future,
                # which holds the exception: a cycle that kept everything the
                # traceback reached (a 256 MiB inflated batch) until a full
                # collection. The inner coroutine gets it without this frame.
                tb = exc.__traceback__
                if tb is not None and tb.tb_frame.f_code is _AWAIT_CODE:
                    exc.__traceback__ = tb.tb_next
                del tb
                yielded = None
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return cast(T, stop.value)
                continue
            # Neither frame keeps a future it waited on: one that failed holds
            # its exception, whose traceback may reach a batch inflated on a
            # worker, which would then live until the request finished.
            yielded = None
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return cast(T, stop.value)


_AWAIT_CODE = _Resumed.__await__.__code__
