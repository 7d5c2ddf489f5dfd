"""eager.start: a request's coroutine runs its first step in the callback
that read it, and continues in a task exactly as a task would have run it
(issue 19). Plain asyncio, no broker."""

from __future__ import annotations

import asyncio

import pytest

from strom.broker import eager


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_a_coroutine_that_never_waits_is_done_before_start_returns() -> None:
    steps: list[str] = []

    async def request() -> int:
        steps.append("ran")
        return 7

    async def main() -> None:
        slot = eager.start(asyncio.get_running_loop(), request())
        assert steps == ["ran"]  # no turn of the loop in between
        assert slot.done() and slot.result() == 7

    _run(main())


def test_a_waiting_coroutine_continues_in_a_task_with_what_it_awaited() -> None:
    async def request(fut: asyncio.Future[str], log: list[str]) -> str:
        log.append("before")
        value = await fut  # the task must wait on this very future
        log.append(f"after {value}")
        await asyncio.sleep(0)  # a bare yield to the loop is passed on too
        return value + "!"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        log: list[str] = []
        slot = eager.start(loop, request(fut, log))
        assert log == ["before"]
        assert isinstance(slot, asyncio.Task) and not slot.done()
        for _ in range(5):
            await asyncio.sleep(0)
        assert log == ["before"] and not slot.done()  # still waiting on fut
        fut.set_result("x")
        assert await slot == "x!"
        assert log == ["before", "after x"]

    _run(main())


def test_exceptions_land_in_the_future_at_either_step() -> None:
    async def fails_at_once() -> None:
        raise ValueError("first step")

    async def fails_later(fut: asyncio.Future[None]) -> None:
        await fut
        raise KeyError("second step")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        slot = eager.start(loop, fails_at_once())
        assert slot.done() and isinstance(slot.exception(), ValueError)
        fut: asyncio.Future[None] = loop.create_future()
        later = eager.start(loop, fails_later(fut))
        fut.set_result(None)
        with pytest.raises(KeyError):
            await later

    _run(main())


def test_cancelling_the_task_cancels_the_wait_inside_the_coroutine() -> None:
    async def request(fut: asyncio.Future[None], log: list[str]) -> None:
        try:
            await fut
        except asyncio.CancelledError:
            log.append("cancelled inside")
            raise
        finally:
            log.append("finally")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        log: list[str] = []
        slot = eager.start(loop, request(fut, log))
        await asyncio.sleep(0)
        slot.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slot
        assert log == ["cancelled inside", "finally"]
        assert fut.cancelled()  # as a task cancels the future it waits on

    _run(main())


def test_a_coroutine_may_catch_the_cancellation_and_finish() -> None:
    async def request(fut: asyncio.Future[None]) -> str:
        try:
            await fut
        except asyncio.CancelledError:
            return "answered anyway"
        return "unreachable"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        slot = eager.start(loop, request(fut))
        await asyncio.sleep(0)
        slot.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert slot.done() and not slot.cancelled()
        assert slot.result() == "answered anyway"

    _run(main())


def test_a_failed_wait_leaves_no_reference_cycle_behind() -> None:
    """The exception a task throws in must not keep the awaited future (and
    what its traceback reaches: an inflated batch) alive in a cycle: strom
    serve runs full collections rarely (test_decompression_stall measures
    the RSS this cost)."""
    import gc
    import weakref

    class Inflated:
        pass

    alive: list[weakref.ref[Inflated]] = []

    def validate_on_worker() -> None:
        batch = Inflated()
        alive.append(weakref.ref(batch))
        raise ValueError("no record parses")

    async def request(loop: asyncio.AbstractEventLoop) -> str:
        try:
            await loop.run_in_executor(None, validate_on_worker)
        except ValueError:
            return "INVALID_RECORD"
        return "ok"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            assert await eager.start(loop, request(loop)) == "INVALID_RECORD"

    gc.disable()
    try:
        _run(main())
        assert len(alive) == 3
        assert [ref() for ref in alive] == [None, None, None]  # freed by reference counting
    finally:
        gc.enable()
