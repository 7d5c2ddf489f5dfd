"""Producer ids, unique across the cluster and across restarts.

The controller hands out blocks of ids recorded in the metadata image (as
Kafka's ProducerIdControlManager does); a broker serves ids from its block
and reserves the next block when it runs out. A restart wastes the rest of
the block, never reuses an id.

Reserving a block is a metadata commit on the controller, which is awaited (in
a cluster an etcd transaction; on another broker an AllocateProducerIds request
to the controller), while ids are handed out synchronously from inside
coordinator operations. So, as Kafka's RPCProducerIdManager: the next block
is fetched in the background once 90% of the current one is used;
`ensure_block` (awaited by InitProducerId before it asks) waits for one; and
an id asked for while no block is at hand is refused with the retriable
COORDINATOR_LOAD_IN_PROGRESS, the fetch under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from strom.errors import CoordinatorLoadInProgressError, KafkaError

log = logging.getLogger(__name__)

BLOCK_SIZE = 1000
#: Used ids of a block past which the next one is fetched (Kafka's 90%).
PREFETCH_AT = BLOCK_SIZE * 9 // 10

AllocateBlock = Callable[[int], Awaitable[tuple[int, int]]]


class ProducerIdManager:
    def __init__(self, allocate: AllocateBlock) -> None:
        """`allocate(size)`: a fresh block (first id, count) from the controller,
        committed by this broker if it is the controller, asked of it if not."""
        self._allocate = allocate
        self._next = 0
        self._end = 0
        #: The block fetched ahead: (start, end) once committed.
        self._spare: tuple[int, int] | None = None
        self._fetch: asyncio.Task[None] | None = None

    async def ensure_block(self) -> None:
        """Return once an id can be handed out; KafkaError if the store
        cannot reserve a block (not the controller, etcd unreachable)."""
        if self._next < self._end or self._spare is not None:
            return
        task = self._start_fetch()
        await asyncio.shield(task)
        if self._spare is None and self._next >= self._end:
            raise CoordinatorLoadInProgressError("no producer id block could be reserved yet")

    def next_producer_id(self) -> int:
        if self._next >= self._end:
            if self._spare is None:
                self._start_fetch()
                raise CoordinatorLoadInProgressError("reserving a block of producer ids")
            (self._next, self._end), self._spare = self._spare, None
        producer_id = self._next
        self._next += 1
        if self._end - self._next <= BLOCK_SIZE - PREFETCH_AT and self._spare is None:
            self._start_fetch()
        return producer_id

    def _start_fetch(self) -> asyncio.Task[None]:
        task = self._fetch
        if task is None or task.done():
            task = self._fetch = asyncio.get_running_loop().create_task(
                self._reserve(), name="producer-id-block")
        return task

    async def _reserve(self) -> None:
        try:
            start, count = await self._allocate(BLOCK_SIZE)
        except KafkaError as exc:
            # The asker gets COORDINATOR_LOAD_IN_PROGRESS and retries.
            log.warning("could not reserve a block of producer ids: %s", exc)
            return
        self._spare = (start, start + count)

    async def stop(self) -> None:
        task, self._fetch = self._fetch, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
