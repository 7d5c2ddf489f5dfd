"""AppendTurn (hardening #6): appends that wait for a worker thread keep the
order in which their requests arrived, and a cancelled waiter neither lets
later turns overtake earlier ones nor cancels the turn it waited for."""

from __future__ import annotations

import asyncio
import threading

from strom.broker.batch_worker import AppendTurn, on_worker


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


class _Queue:
    """A partition's tail, as Partition.take_append_turn keeps it."""

    def __init__(self) -> None:
        self.tail: asyncio.Future[None] | None = None

    def take(self) -> AppendTurn:
        turn = AppendTurn.take(self.tail)
        self.tail = turn.tail
        return turn


def test_turns_run_in_the_order_they_were_taken() -> None:
    async def main() -> None:
        queue = _Queue()
        order: list[int] = []
        turns = [queue.take() for _ in range(5)]

        async def append(index: int, delay_steps: int) -> None:
            turn = turns[index]
            try:
                await turn.wait()
                for _ in range(delay_steps):
                    await asyncio.sleep(0)
                order.append(index)
            finally:
                turn.release()

        # Later turns would finish first if they did not wait.
        await asyncio.gather(*(append(i, 10 - 2 * i) for i in reversed(range(5))))
        assert order == [0, 1, 2, 3, 4]
        assert not AppendTurn.any_outstanding()

    _run(main())


def test_a_cancelled_waiter_does_not_let_later_turns_overtake() -> None:
    async def main() -> None:
        queue = _Queue()
        first, second, third = queue.take(), queue.take(), queue.take()
        order: list[str] = []

        async def waiter(turn: AppendTurn, name: str) -> None:
            try:
                await turn.wait()
                order.append(name)
            finally:
                turn.release()

        second_task = asyncio.create_task(waiter(second, "second"))
        third_task = asyncio.create_task(waiter(third, "third"))
        await asyncio.sleep(0)
        second_task.cancel()  # its request's connection closed
        await asyncio.gather(second_task, return_exceptions=True)
        await asyncio.sleep(0)
        assert not third_task.done()  # still behind `first`
        assert not first.tail.cancelled()
        order.append("first")
        first.release()
        await third_task
        assert order == ["first", "third"]

    _run(main())


def test_a_turn_behind_a_finished_one_does_not_wait() -> None:
    async def main() -> None:
        queue = _Queue()
        turn = queue.take()
        turn.release()
        later = queue.take()
        await asyncio.wait_for(later.wait(), 1)
        later.release()
        later.release()  # idempotent
        assert not AppendTurn.any_outstanding()

    _run(main())


def test_on_worker_runs_off_the_event_loop_thread() -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        worker_thread = await on_worker(threading.get_ident)
        assert worker_thread != loop_thread

    _run(main())
