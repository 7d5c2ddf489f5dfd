"""A group coordinator shard on the real runtime, with time and the log in memory.

The runtime, shard and records are the production ones; only the partition
log (a list of batches) and the timers (a manual scheduler over a ManualClock)
are test doubles, so the state machine can be driven deterministically.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strom.clock import ManualClock
from strom.cluster.image import BrokerInfo, MetadataImage, PartitionRecord, TopicRecord
from strom.coordinator.group.context import GroupConfig
from strom.coordinator.group.requests import JoinRequest, LeavingMember, SyncRequest
from strom.coordinator.group.shard import GroupCoordinatorShard
from strom.coordinator.runtime import CoordinatorRuntime, Result, Timer
from strom.protocol.records import read_batch_header, scan_batches


class ManualScheduler:
    """Timers that fire only when the test advances the clock."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, _Handle]] = []
        self._seq = itertools.count()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(callback)
        heapq.heappush(self._heap, (self.clock.monotonic() + delay_s, next(self._seq), handle))
        return handle

    def advance(self, ms: int) -> None:
        target = self.clock.monotonic() + ms / 1000.0
        while self._heap and self._heap[0][0] <= target + 1e-9:
            deadline, _, handle = heapq.heappop(self._heap)
            step = round((deadline - self.clock.monotonic()) * 1000)
            if step > 0:
                self.clock.advance(step)
            if not handle.cancelled:
                handle.callback()
        rest = round((target - self.clock.monotonic()) * 1000)
        if rest > 0:
            self.clock.advance(rest)


@dataclass(eq=False)
class _Handle:
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class MemoryLog:
    """A partition log as a list of batches; optionally failing the next append."""

    def __init__(self) -> None:
        self.batches: list[bytes] = []
        self.end = 0
        self.fail_next: Exception | None = None
        self.live = True  # False: its topic was deleted

    def is_live(self) -> bool:
        return self.live

    @property
    def log_start_offset(self) -> int:
        return 0

    @property
    def log_end_offset(self) -> int:
        return self.end

    def append(self, batch: bytes) -> int:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        header = read_batch_header(batch)
        first = self.end
        data = bytearray(batch)
        struct.pack_into(">q", data, 0, first)
        self.batches.append(bytes(data))
        self.end += header.last_offset_delta + 1
        return first

    async def wait_durable(self, end_offset: int) -> None:
        return None

    def read(self, offset: int, max_bytes: int) -> bytes:
        data = b"".join(self.batches)
        return b"".join(data[h.position:h.end] for h in scan_batches(data)
                        if h.last_offset >= offset)


def image_with(*topics: tuple[str, int]) -> MetadataImage:
    image = MetadataImage("cluster", 1, {1: BrokerInfo(1, "localhost", 9092)})
    records: list[Any] = []
    for name, partitions in topics:
        topic_id = uuid.uuid4()
        records.append(TopicRecord(name, topic_id))
        records.extend(PartitionRecord(topic_id, p, (1,), (1,), 1, 0) for p in range(partitions))
    return image.apply(records)


@dataclass(eq=False)
class Harness:
    config: GroupConfig = field(default_factory=lambda: GroupConfig(
        initial_rebalance_delay_ms=0, min_session_timeout_ms=10))
    image: MetadataImage = field(default_factory=lambda: image_with(("t", 6)))
    log: MemoryLog = field(default_factory=MemoryLog)

    def __post_init__(self) -> None:
        self.clock = ManualClock()
        self.scheduler = ManualScheduler(self.clock)
        self.loop = asyncio.new_event_loop()
        self.runtime: CoordinatorRuntime[GroupCoordinatorShard] = CoordinatorRuntime(
            "test", self._shard, self.clock, scheduler=self.scheduler)
        self.run(self._load())

    def _shard(self, partition: int, timer: Timer) -> GroupCoordinatorShard:
        return GroupCoordinatorShard(partition, timer, self.config, self.clock,
                                     lambda: self.image)

    async def _load(self) -> None:
        self.runtime.load(0, self.log)
        await self.runtime.wait_loaded()

    def close(self) -> None:
        self.run(self.runtime.close())
        self.loop.close()

    def restart(self) -> None:
        """A new runtime replaying the same log (the broker restarted)."""
        self.run(self.runtime.close())
        self.scheduler = ManualScheduler(self.clock)
        self.runtime = CoordinatorRuntime("test", self._shard, self.clock,
                                          scheduler=self.scheduler)
        self.run(self._load())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @property
    def shard(self) -> GroupCoordinatorShard:
        return self.runtime.read(0, lambda s: s)

    def write(self, op: Callable[[GroupCoordinatorShard], Result[Any]]) -> Any:
        return self.run(self.runtime.write(0, op))

    def advance(self, ms: int) -> None:
        """Move time on; due timers run on the loop, as they do in the broker."""

        async def advance() -> None:
            self.scheduler.advance(ms)
            await asyncio.sleep(0)
            await asyncio.sleep(0)

        self.run(advance())

    # -- classic protocol helpers -----------------------------------------------------

    def join(self, group: str, member_id: str = "", *, instance: str | None = None,
             protocols: tuple[tuple[str, bytes], ...] = (("range", b"r"),),
             session_ms: int = 10_000, rebalance_ms: int = 20_000, client: str = "c",
             version: int = 9) -> list[dict[str, Any]]:
        """Send a JoinGroup; the list receives its response when there is one."""
        box: list[dict[str, Any]] = []
        request = JoinRequest(group, member_id, instance, session_ms, rebalance_ms,
                              "consumer", protocols, client, "/127.0.0.1",
                              requires_known_member_id=version >= 4,
                              supports_skip_assignment=version >= 9)
        self.write(lambda s: s.join_group(request, box.append))
        return box

    def sync(self, group: str, member_id: str, generation: int,
             assignments: dict[str, bytes] | None = None,
             instance: str | None = None) -> list[dict[str, Any]]:
        box: list[dict[str, Any]] = []
        request = SyncRequest(group, generation, member_id, instance, "consumer", None,
                              tuple((assignments or {}).items()))
        self.write(lambda s: s.sync_group(request, box.append))
        return box

    def heartbeat(self, group: str, member_id: str, generation: int,
                  instance: str | None = None) -> Any:
        return self.write(lambda s: s.heartbeat(group, member_id, instance, generation))

    def leave(self, group: str, *members: tuple[str, str | None]) -> dict[str, Any]:
        leaving = [LeavingMember(m, i) for m, i in members]
        result: dict[str, Any] = self.write(lambda s: s.leave_group(group, leaving))
        return result

    def join_new(self, group: str, **kw: Any) -> list[dict[str, Any]]:
        """KIP-394: the first JoinGroup gets MEMBER_ID_REQUIRED; join again with the id."""
        first = self.join(group, **kw)
        assert first and first[0]["error_code"] == 79, first
        return self.join(group, first[0]["member_id"], **kw)
