"""The coordinator runtime: state machines kept in the partitions of an internal topic.

A coordinator (groups over `__consumer_offsets`; later transactions over
`__transaction_state`) is one *shard* per partition of its topic that this
broker leads. The runtime loads shards, runs operations on them, and keeps
their timers; it knows nothing of groups.

Operations (CONVENTIONS 5). An operation is a function of the shard that
validates the request and computes a `Result`: the records to write and the
response. It raises a typed KafkaError instead when the request is rejected,
leaving nothing changed. The runtime appends the records as one batch to the
shard's partition (through the partition's own leader append: validation,
offsets, leader epoch, high watermark), replays them into the shard, waits
until the batch is fsync'd (so an acknowledged commit survives kill -9),
then answers. Recovery is the same replay: loading a shard reads its
partition from the log start offset to the end and replays every record.

A Result with `replay=False` is for state Kafka itself keeps only in memory
and records only as a snapshot (a classic group's membership during a
rebalance): the operation has already changed that state, the records are
written for recovery and not replayed now. `on_durable` runs once the
records are durable, or failed, and may return a further Result to write
(Kafka's appendFuture).

Ownership (CONVENTIONS 8). The event loop's thread owns every shard, and an
operation's compute, append and replay run as one synchronous step with no
await inside: operations on a shard are serialized without any lock, and no
state is ever seen half-applied. Only the durability wait is awaited, after
the step; later operations may run meanwhile and see the replayed state, as
in Kafka, where the high watermark (here: the page cache) is what reads see.
If that fsync then fails the broker has lost its disk and answers errors.

Timers (`Timer`) are asyncio timers from an injected scheduler, keyed so a
shard can reschedule or cancel them; a firing timer runs its operation like
any other. Tests inject a manual scheduler and move time themselves.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from strom.clock import Clock
from strom.cluster.image import MetadataImage
from strom.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    KafkaStorageError,
    NotCoordinatorError,
    RequestTimedOutError,
)
from strom.protocol.records import (
    BatchHeader,
    ControlRecordType,
    RecordSpec,
    build_batch,
    decode_end_transaction_marker,
    decode_records,
    read_batch_header,
    scan_batches,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class CoordinatorShard(Protocol):
    """The state machine of one partition."""

    def replay(self, offset: int, key: bytes, value: bytes | None) -> None:
        """Apply one record (a None value is a tombstone)."""

    def on_loaded(self) -> None:
        """The partition is replayed to its end: start timers, serve requests."""

    def on_unloaded(self) -> None:
        """The partition is no longer ours: fail waiting requests, drop state."""


OnDurable = Callable[[BaseException | None], "Result[Any] | None"]


@dataclass(slots=True)
class Result(Generic[T]):
    response: T
    records: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    replay: bool = True
    on_durable: OnDurable | None = None
    # Records written for a producer's transaction (TxnOffsetCommit): a transactional
    # batch, replayed by the shard's `replay_transactional` until its marker arrives.
    producer_id: int = -1
    producer_epoch: int = -1


def empty(response: T) -> Result[T]:
    return Result(response)


class CoordinatorLog(Protocol):
    """What the runtime needs of a partition it leads."""

    @property
    def log_start_offset(self) -> int: ...

    @property
    def log_end_offset(self) -> int: ...

    def append(self, batch: bytes) -> int:
        """Append one batch as leader; its first offset. Raises typed KafkaErrors."""

    async def wait_durable(self, end_offset: int) -> None:
        """Return once every offset below `end_offset` is fsync'd."""

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one holding `offset` (at least one)."""

    def is_live(self) -> bool:
        """False once the partition is gone (its topic deleted, perhaps already
        recreated), even before the metadata change unloads the shard."""


class Handle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Handle: ...


class LoopScheduler:
    """Timers on the running asyncio loop."""

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Handle:
        return asyncio.get_running_loop().call_later(delay_s, callback)


class Timer:
    """A shard's timers, by key: scheduling a key again replaces its timer."""

    def __init__(self, runtime: CoordinatorRuntime[Any], partition: int) -> None:
        self._runtime = runtime
        self._partition = partition
        self._handles: dict[str, Handle] = {}

    def schedule(self, key: str, delay_ms: int, operation: Callable[[], Result[Any]]) -> None:
        self.cancel(key)
        handle: Handle | None = None

        def fire() -> None:
            if self._handles.get(key) is not handle:
                return
            del self._handles[key]
            self._runtime.run_timer(self._partition, key, operation)

        handle = self._runtime.scheduler.call_later(max(delay_ms, 0) / 1000.0, fire)
        self._handles[key] = handle

    def cancel(self, key: str) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def is_scheduled(self, key: str) -> bool:
        return key in self._handles

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()


class ShardState(enum.Enum):
    LOADING = "loading"
    ACTIVE = "active"
    FAILED = "failed"


S = TypeVar("S", bound=CoordinatorShard)


@dataclass(slots=True)
class _Context(Generic[S]):
    partition: int
    log: CoordinatorLog
    shard: S
    timer: Timer
    state: ShardState = ShardState.LOADING
    load_task: asyncio.Task[None] | None = None


class CoordinatorRuntime(Generic[S]):
    def __init__(self, name: str, shard_factory: Callable[[int, Timer], S], clock: Clock, *,
                 scheduler: Scheduler | None = None, load_buffer_bytes: int = 5 * 1024 * 1024,
                 write_timeout_s: float = 5.0) -> None:
        self.name = name
        self.clock = clock
        self.scheduler: Scheduler = scheduler or LoopScheduler()
        self._shard_factory = shard_factory
        self._load_buffer_bytes = load_buffer_bytes
        self._write_timeout_s = write_timeout_s
        self._contexts: dict[int, _Context[S]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        # Records loaded per partition since loading last started from idle,
        # for the one summary line at INFO.
        self._loaded_round: list[int] = []
        self._round_started = clock.monotonic()

    # -- partitions -------------------------------------------------------------------

    def load(self, partition: int, log_: CoordinatorLog) -> None:
        """Become the coordinator of `partition`: replay it in the background."""
        if self._closed or partition in self._contexts:
            return
        timer = Timer(self, partition)
        context = _Context(partition, log_, self._shard_factory(partition, timer), timer)
        if not any(c.state is ShardState.LOADING for c in self._contexts.values()):
            self._round_started = self.clock.monotonic()
        self._contexts[partition] = context
        context.load_task = self._spawn(self._load(context), f"{self.name}-load-{partition}")

    def unload(self, partition: int) -> None:
        context = self._contexts.pop(partition, None)
        if context is None:
            return
        if context.load_task is not None and not context.load_task.done():
            context.load_task.cancel()
        context.timer.cancel_all()
        if context.state is ShardState.ACTIVE:
            context.shard.on_unloaded()

    @property
    def partitions(self) -> list[int]:
        return sorted(self._contexts)

    def follow_leadership(self, led: Iterable[int],
                          open_log: Callable[[int], CoordinatorLog]) -> None:
        """Coordinate exactly the partitions this broker leads: unload the ones it
        lost, load the ones it gained (called on every metadata image change)."""
        wanted = set(led)
        for partition in self.partitions:
            if partition not in wanted or not self._contexts[partition].log.is_live():
                # Lost, or its topic deleted (and maybe recreated): state replayed
                # from a log that is gone must not be served.
                self.unload(partition)
        for partition in sorted(wanted):
            if partition not in self._contexts:
                self.load(partition, open_log(partition))

    def follow_topic(self, image: MetadataImage, topic: str, node_id: int,
                     partition_of: Callable[[int], LeaderPartition]) -> None:
        """`follow_leadership` for the state topic `topic` of `image`: each
        partition this broker leads is opened as a PartitionCoordinatorLog that
        stays live while `partition_of` still returns that same partition
        object (not once the topic is deleted, or deleted and recreated)."""
        info = image.topics.get(topic)
        led = [p.partition for p in info.partitions if p.leader == node_id] \
            if info is not None else []

        def hosted(partition: int) -> object:
            try:
                return partition_of(partition)
            except KafkaError:
                return None

        self.follow_leadership(led, lambda partition: PartitionCoordinatorLog(
            partition_of(partition), current=lambda: hosted(partition)))

    def is_active(self, partition: int) -> bool:
        context = self._contexts.get(partition)
        return context is not None and context.state is ShardState.ACTIVE

    def active_shards(self) -> list[S]:
        """The shards loaded and serving (read at scrape time by /metrics)."""
        return [c.shard for c in self._contexts.values() if c.state is ShardState.ACTIVE]

    def loading_partitions(self) -> list[int]:
        """Partitions still replaying their state (/health/ready waits for them)."""
        return sorted(p for p, c in self._contexts.items() if c.state is ShardState.LOADING)

    async def wait_loaded(self, timeout_s: float = 30.0) -> None:
        """Until every shard has loaded (tests and start-up logs)."""
        tasks = [c.load_task for c in self._contexts.values() if c.load_task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    async def close(self) -> None:
        self._closed = True
        for partition in list(self._contexts):
            self.unload(partition)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _load(self, context: _Context[S]) -> None:
        log_ = context.log
        offset = log_.log_start_offset
        end = log_.log_end_offset
        started = self.clock.monotonic()
        count = 0
        try:
            while offset < end:
                data = log_.read(offset, self._load_buffer_bytes)
                headers = list(scan_batches(data))
                if not headers:
                    break
                for header in headers:
                    if header.next_offset <= offset:
                        continue
                    if header.is_control:
                        if header.is_transactional:
                            self._replay_marker(context, data, header)
                        continue
                    producer_id = header.producer_id if header.is_transactional else -1
                    for record in decode_records(data, header):
                        if record.offset < offset or record.key is None:
                            continue
                        self._replay_one(context, record.offset, record.key, record.value,
                                         producer_id)
                        count += 1
                offset = max(offset, headers[-1].next_offset)
                await asyncio.sleep(0)  # let other partitions and requests run
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: loading partition %d failed", self.name, context.partition)
            context.state = ShardState.FAILED
            return
        context.state = ShardState.ACTIVE
        context.shard.on_loaded()
        elapsed = self.clock.monotonic() - started
        # One line per partition is noise at INFO (50 of them per internal
        # topic on every start); INFO gets one line once a round of loads ends.
        log.debug("%s: loaded partition %d (%d records) in %.3fs", self.name,
                  context.partition, count, elapsed)
        self._loaded_round.append(count)
        if not any(c.state is ShardState.LOADING for c in self._contexts.values()):
            loaded, self._loaded_round = self._loaded_round, []
            log.info("%s: loaded %d partition(s) (%d records) in %.3fs", self.name,
                     len(loaded), sum(loaded), self.clock.monotonic() - self._round_started)

    def _replay_marker(self, context: _Context[S], data: bytes, header: BatchHeader) -> None:
        """A COMMIT/ABORT marker: to the shard's `replay_end_transaction`, if it has one."""
        hook = getattr(context.shard, "replay_end_transaction", None)
        if hook is None:
            return
        records = decode_records(data, header)
        if records:
            kind, _ = decode_end_transaction_marker(records[0])
            hook(header.producer_id, kind is ControlRecordType.COMMIT)

    def _replay_one(self, context: _Context[S], offset: int, key: bytes,
                    value: bytes | None, producer_id: int = -1) -> None:
        try:
            if producer_id >= 0:
                hook = getattr(context.shard, "replay_transactional", None)
                if hook is not None:
                    hook(producer_id, offset, key, value)
                return
            context.shard.replay(offset, key, value)
        except KafkaError as exc:
            # One undecodable record must not make every group of the partition unreachable.
            log.warning("%s: skipping record at %d of partition %d: %s", self.name, offset,
                        context.partition, exc)

    def _active(self, partition: int) -> _Context[S]:
        context = self._contexts.get(partition)
        if context is not None and not context.log.is_live():
            # The state topic was deleted and the metadata change that unloads
            # this shard has not reached us (or failed on the way): never answer
            # from a deleted log. The next image with the topic loads it again.
            log.warning("%s: partition %d was deleted under its coordinator; unloading",
                        self.name, partition)
            self.unload(partition)
            context = None
        if context is None:
            raise NotCoordinatorError(f"not the coordinator of {self.name}-{partition}")
        if context.state is ShardState.LOADING:
            raise CoordinatorLoadInProgressError(f"{self.name}-{partition} is loading")
        if context.state is ShardState.FAILED:
            raise CoordinatorNotAvailableError(f"{self.name}-{partition} failed to load")
        return context

    # -- operations ---------------------------------------------------------------------

    def read(self, partition: int, operation: Callable[[S], T]) -> T:
        """A read-only operation on the current state."""
        return operation(self._active(partition).shard)

    async def write(self, partition: int, operation: Callable[[S], Result[T]]) -> T:
        """Run `operation`, write its records, wait until durable, return its response."""
        context = self._active(partition)
        result = operation(context.shard)
        end = self._commit(context, result)
        if end is not None:
            try:
                await asyncio.wait_for(context.log.wait_durable(end), self._write_timeout_s)
            except Exception as exc:
                error = self._write_error(context, exc)
                self._durable(context, result, error)
                raise error from None
        self._durable(context, result, None)
        return result.response

    def write_now(self, partition: int, operation: Callable[[S], Result[T]]) -> T:
        """Like `write`, answering without waiting for durability (timers, follow-ups,
        and operations that answer through their own responder); a failed write
        reaches the operation's `on_durable` with the error `write` would raise."""
        context = self._active(partition)
        result = operation(context.shard)
        self._submit(context, result)
        return result.response

    def run_timer(self, partition: int, key: str, operation: Callable[[], Result[Any]]) -> None:
        context = self._contexts.get(partition)
        if context is None or context.state is not ShardState.ACTIVE:
            return
        if not context.log.is_live():
            self.unload(partition)
            return
        try:
            self._submit(context, operation())
        except KafkaStorageError as exc:  # logged once per condition (storage.disk)
            log.debug("%s: timer %s of partition %d failed: %s", self.name, key, partition, exc)
        except Exception:
            log.exception("%s: timer %s of partition %d failed", self.name, key, partition)

    def _submit(self, context: _Context[S], result: Result[Any]) -> None:
        end = self._commit(context, result)
        if end is None:
            self._durable(context, result, None)
            return
        self._spawn(self._await_durable(context, result, end),
                    f"{self.name}-durable-{context.partition}")

    async def _await_durable(self, context: _Context[S], result: Result[Any], end: int) -> None:
        try:
            await asyncio.wait_for(context.log.wait_durable(end), self._write_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._durable(context, result, self._write_error(context, exc))
            return
        self._durable(context, result, None)

    def _write_error(self, context: _Context[S], exc: Exception) -> Exception:
        """The error a write that did not become durable fails with."""
        if not context.log.is_live():
            # Deleted while the write waited: the client must find the
            # coordinator again (Kafka fails such writes the same way).
            return NotCoordinatorError(
                f"{self.name}-{context.partition} was deleted during the write")
        if isinstance(exc, TimeoutError):
            return RequestTimedOutError("coordinator write timed out")
        return exc

    def _commit(self, context: _Context[S], result: Result[Any]) -> int | None:
        """Append and replay a result's records; the end offset to wait for, or None."""
        if not result.records:
            return None
        now = self.clock.wall_ms()
        batch = build_batch([RecordSpec(key=k, value=v, timestamp=now)
                             for k, v in result.records],
                            producer_id=result.producer_id,
                            producer_epoch=result.producer_epoch,
                            transactional=result.producer_id >= 0)
        try:
            first = context.log.append(batch)
        except Exception as exc:
            self._durable(context, result, exc)
            raise
        if result.replay:
            for i, (key, value) in enumerate(result.records):
                self._replay_one(context, first + i, key, value, result.producer_id)
        return first + len(result.records)

    def _durable(self, context: _Context[S], result: Result[Any],
                 error: BaseException | None) -> None:
        callback, result.on_durable = result.on_durable, None
        if callback is None:
            return
        follow_up = callback(error)
        if follow_up is not None and self._contexts.get(context.partition) is context:
            try:
                self._submit(context, follow_up)
            except KafkaStorageError as exc:  # logged once per condition (storage.disk)
                log.debug("%s: follow-up write on partition %d failed: %s", self.name,
                          context.partition, exc)
            except Exception:
                log.exception("%s: follow-up write on partition %d failed", self.name,
                              context.partition)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


# -- the broker's partitions as coordinator logs ---------------------------------------
# Typed structurally: the coordinator layer does not import the broker's modules.


class AppendedOffsets(Protocol):
    @property
    def first_offset(self) -> int: ...


class LeaderAppendResult(Protocol):
    @property
    def info(self) -> AppendedOffsets: ...


class LeaderPartition(Protocol):
    """The broker's Partition as a coordinator uses it."""

    @property
    def log_start_offset(self) -> int: ...

    @property
    def log_end_offset(self) -> int: ...

    def append_records_as_leader(self, records: memoryview) -> LeaderAppendResult: ...

    def append_coordinator_batch(self, records: memoryview) -> int: ...

    def read_to_end(self, offset: int, max_bytes: int) -> bytes: ...

    async def wait_durable(self, end_offset: int) -> None: ...


class PartitionCoordinatorLog:
    """A partition this broker leads, through its leader append and group-commit fsync.

    `current` returns the broker's partition object for the same topic and
    index now (None if there is none): the log is live while that is still
    the partition it was opened on.
    """

    def __init__(self, partition: LeaderPartition,
                 current: Callable[[], object] | None = None) -> None:
        self._partition = partition
        self._current = current

    def is_live(self) -> bool:
        return self._current is None or self._current() is self._partition

    @property
    def log_start_offset(self) -> int:
        return self._partition.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._partition.log_end_offset

    def append(self, batch: bytes) -> int:
        if read_batch_header(batch).is_transactional:
            # No sequence numbers: a coordinator's transactional write (Kafka's
            # AppendOrigin.COORDINATOR), fenced by producer epoch only.
            return self._partition.append_coordinator_batch(memoryview(bytearray(batch)))
        appended = self._partition.append_records_as_leader(memoryview(bytearray(batch)))
        return appended.info.first_offset

    async def wait_durable(self, end_offset: int) -> None:
        await self._partition.wait_durable(end_offset)

    def read(self, offset: int, max_bytes: int) -> bytes:
        return self._partition.read_to_end(offset, max_bytes)
