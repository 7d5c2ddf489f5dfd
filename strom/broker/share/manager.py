"""SharePartitionManager: the share partitions this broker leads (KIP-932).

One SharePartition per (share group, topic id, partition), made on the first
share fetch that reaches this partition's leader: its state is read through
the Persister (the share coordinator's `__share_group_state`), and a start
offset still unresolved (never initialized, or initialized with -1 by the
group coordinator) is resolved with the group's share.auto.offset.reset:
`latest` (default, the high watermark), `earliest` (the log start offset) or
`by_duration:<ISO-8601 duration>` (the first record at or after now minus the
duration). A new leader epoch reloads the state.

The manager owns the share sessions (sessions.py), the acquisition lock timers
(one timer per share partition, at its earliest lock deadline), and writing the
state back: after acknowledgements (the ShareAcknowledge or ShareFetch answers
once the state is written), and in the background after lock expiries and
releases. Writes of one share partition never overlap: a write in flight
covers changes made before it started, later ones wait for the next.

A member's acquired records are released when its share session closes
(epoch -1), when the connection it last used closes, and (member_left) when
the group coordinator removes it from the group.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from strom.broker.group_configs import ShareGroupSettings, parse_duration_ms, share_group_settings
from strom.broker.partition import Partition
from strom.broker.purgatory import AppendNotifier
from strom.broker.share.reader import read_batches, records_for
from strom.broker.share.sessions import ShareSession, ShareSessionCache, TopicIdPartition
from strom.broker.share.share_partition import (
    Acknowledgement,
    AcquiredRange,
    AcquireMode,
    SharePartition,
)
from strom.clock import Clock
from strom.cluster.image import MetadataImage
from strom.config import BrokerConfig, Value
from strom.coordinator.share.persister import (
    UNINITIALIZED_START_OFFSET,
    Persister,
    ShareState,
)
from strom.errors import FencedLeaderEpochError, FencedStateEpochError, OffsetOutOfRangeError

log = logging.getLogger(__name__)

GroupKey = tuple[str, uuid.UUID, int]  # (group id, topic id, partition)

def _max_share_sessions(config: BrokerConfig) -> int:
    value = config.get("group.share.max.share.sessions")
    return value if isinstance(value, int) else 2000


@dataclass(slots=True)
class SharePartitionHandle:
    key: GroupKey
    share: SharePartition
    leader_epoch: int
    #: Fires when records become acquirable again (released, lock expired).
    released: AppendNotifier = field(default_factory=AppendNotifier)
    version: int = 0  # bumped by every change to persist
    written: int = 0  # the version the persister last stored
    writing: asyncio.Future[None] | None = None
    timer: asyncio.TimerHandle | None = None
    timer_at: int | None = None


@dataclass(frozen=True, slots=True)
class ShareFetchResult:
    records: list[memoryview]
    size: int
    acquired: list[AcquiredRange]


def _apply_limits(share: SharePartition, settings: ShareGroupSettings) -> None:
    """A group's share.delivery.count.limit and share.partition.max.record.locks
    may change at any time; the next transition uses the new values (KIP-1240:
    a record past a lowered limit gets its final delivery)."""
    share.delivery_count_limit = settings.delivery_count_limit
    share.max_record_locks = settings.partition_max_record_locks


class SharePartitionManager:
    def __init__(self, persister: Callable[[], Persister], config: BrokerConfig, clock: Clock,
                 group_configs: Callable[[str], Mapping[str, Value]]) -> None:
        #: The Persister, asked for when first needed (the share coordinator
        #: behind it starts on first use).
        self.persister_source = persister
        self.config = config
        self.clock = clock
        self._group_configs = group_configs
        self.sessions = ShareSessionCache(_max_share_sessions(config))
        self._partitions: dict[GroupKey, SharePartitionHandle] = {}
        self._loading: dict[GroupKey, asyncio.Future[SharePartitionHandle]] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- settings ------------------------------------------------------------

    def now_ms(self) -> int:
        return round(self.clock.monotonic() * 1000)

    def group_settings(self, group_id: str) -> ShareGroupSettings:
        """The group's share.* configs, else the broker's group.share.* ones."""
        return share_group_settings(self.config, self._group_configs(group_id))

    # -- share partitions ----------------------------------------------------

    def handle(self, key: GroupKey) -> SharePartitionHandle | None:
        return self._partitions.get(key)

    async def share_partition(self, group_id: str, topic_id: uuid.UUID,
                              partition: Partition) -> SharePartitionHandle:
        """The share partition, loaded (once, whoever asks first) from the Persister."""
        key = (group_id, topic_id, partition.index)
        handle = self._partitions.get(key)
        if handle is not None and handle.leader_epoch == partition.leader_epoch:
            return handle
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key, partition))
            self._loading[key] = loading
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    async def _load(self, key: GroupKey, partition: Partition) -> SharePartitionHandle:
        group_id, topic_id, index = key
        leader_epoch = partition.leader_epoch
        state = await self.persister_source().read_state(group_id, topic_id, index, leader_epoch)
        if state is None:
            # Not initialized by the group coordinator: start it here.
            start = self._reset_offset(group_id, partition)
            await self.persister_source().initialize_state(group_id, topic_id, index, 0, start)
            state = ShareState(0, leader_epoch, start, ())
        elif state.start_offset == UNINITIALIZED_START_OFFSET:
            state = ShareState(state.state_epoch, leader_epoch,
                               self._reset_offset(group_id, partition), ())
            await self.persister_source().write_state(group_id, topic_id, index, state)
        settings = self.group_settings(group_id)
        share = SharePartition(state, delivery_count_limit=settings.delivery_count_limit,
                               max_record_locks=settings.partition_max_record_locks)
        old = self._partitions.get(key)
        if old is not None and old.timer is not None:
            old.timer.cancel()
        handle = self._partitions[key] = SharePartitionHandle(key, share, leader_epoch)
        return handle

    def _reset_offset(self, group_id: str, partition: Partition) -> int:
        reset = self.group_settings(group_id).auto_offset_reset
        if reset == "earliest":
            return partition.log_start_offset
        if reset.startswith("by_duration:"):
            try:
                duration = parse_duration_ms(reset.removeprefix("by_duration:"))
            except ValueError:  # checked when set; a bad value is taken as latest
                duration = 0
            since = self.clock.wall_ms() - duration
            found = partition.log.offset_for_timestamp(since)
            if found is not None and found[0] < partition.high_watermark:
                return max(found[0], partition.log_start_offset)
        return partition.high_watermark

    # -- fetch and acknowledge -----------------------------------------------

    def acquire(self, handle: SharePartitionHandle, partition: Partition, member_id: str, *,
                max_records: int, max_bytes: int, first: bool, settings: ShareGroupSettings,
                mode: AcquireMode = AcquireMode.BATCH_OPTIMIZED) -> ShareFetchResult:
        """Read from the next fetch offset and acquire what can be handed out."""
        share = handle.share
        _apply_limits(share, settings)
        if share.advance_log_start(partition.log_start_offset):
            handle.version += 1
        offset = share.next_fetch_offset()
        upper = partition.last_stable_offset if settings.read_committed \
            else partition.high_watermark
        if offset is None or offset >= upper or max_records <= 0:
            return ShareFetchResult([], 0, [])
        try:
            fetched = partition.fetch(offset, max_bytes, read_committed=settings.read_committed,
                                      min_one_batch=first, zero_copy=False)
        except OffsetOutOfRangeError:
            return ShareFetchResult([], 0, [])
        read = read_batches(fetched.records, fetched.aborted_transactions)
        now = self.now_ms()
        acquired = share.acquire(member_id, offset, [r.batch for r in read],
                                 max_records=max_records,
                                 lock_duration_ms=settings.record_lock_duration_ms,
                                 now_ms=now, mode=mode)
        if acquired:
            self._schedule(handle, now + settings.record_lock_duration_ms)
        chunks, size = records_for(read, acquired)
        return ShareFetchResult(chunks, size, acquired)

    async def acknowledge(self, handle: SharePartitionHandle, member_id: str,
                          acks: Sequence[Acknowledgement], *, renew_allowed: bool,
                          settings: ShareGroupSettings) -> None:
        """Apply and persist; raises the acknowledgement's or the Persister's error."""
        _apply_limits(handle.share, settings)
        handle.share.acknowledge(member_id, acks, lock_duration_ms=settings.record_lock_duration_ms,
                                 now_ms=self.now_ms(), renew_allowed=renew_allowed)
        handle.version += 1
        handle.released.notify()
        await self.persist(handle)

    async def persist(self, handle: SharePartitionHandle) -> None:
        """Store the share partition's state as of now (one write at a time)."""
        target = handle.version
        while handle.written < target:
            if handle.writing is None:
                handle.writing = asyncio.ensure_future(self._write(handle))
            await asyncio.shield(handle.writing)

    async def _write(self, handle: SharePartitionHandle) -> None:
        version = handle.version
        group_id, topic_id, index = handle.key
        try:
            await self.persister_source().write_state(group_id, topic_id, index,
                                                      handle.share.snapshot(handle.leader_epoch))
            handle.written = max(handle.written, version)
        except (FencedStateEpochError, FencedLeaderEpochError):
            # The state was reset (AlterShareGroupOffsets, a new leader): what
            # is in memory is stale; the next use loads the stored state.
            if self._partitions.get(handle.key) is handle:
                self.forget(handle.key)
            raise
        finally:
            handle.writing = None

    def _persist_later(self, handle: SharePartitionHandle) -> None:
        self._background_task(self.persist(handle))

    def _background_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("writing share partition state failed: %s", task.exception())

    # -- lock timers ---------------------------------------------------------

    def _schedule(self, handle: SharePartitionHandle, deadline: int | None) -> None:
        """Have the lock timer fire by `deadline` (a lock just taken or renewed).
        It may fire early (records settled or renewed meanwhile): it then
        finds nothing expired and sets itself for the earliest lock left, so
        no lock is looked for outside a firing timer (that scan of the window
        on every fetch was a second of a 100,000-record ETL)."""
        if deadline is None or (handle.timer_at is not None and handle.timer_at <= deadline):
            return
        if handle.timer is not None:
            handle.timer.cancel()
        delay = max(deadline - self.now_ms(), 0) / 1000.0
        handle.timer = asyncio.get_running_loop().call_later(delay, self._expire, handle)
        handle.timer_at = deadline

    def _expire(self, handle: SharePartitionHandle) -> None:
        handle.timer, handle.timer_at = None, None
        if self._partitions.get(handle.key) is not handle:
            return
        if handle.share.expire_locks(self.now_ms()):
            self._changed(handle)
        self._schedule(handle, handle.share.next_lock_deadline())

    def _changed(self, handle: SharePartitionHandle) -> None:
        handle.version += 1
        handle.released.notify()
        self._persist_later(handle)

    # -- members and sessions ------------------------------------------------

    def release(self, group_id: str, member_id: str,
                partitions: Sequence[TopicIdPartition] | None = None) -> None:
        """Release what the member holds (in the given partitions, or all of
        the group's here), persisting in the background."""
        for key, handle in list(self._partitions.items()):
            if key[0] != group_id or (partitions is not None and key[1:] not in partitions):
                continue
            if handle.share.release_member(member_id):
                self._changed(handle)

    def session_closed(self, session: ShareSession) -> None:
        self.release(session.group_id, session.member_id)
        self._maybe_group_empty(session.group_id)

    def member_left(self, group_id: str, member_id: str) -> None:
        """The group coordinator removed the member: its session ends too."""
        self.sessions.remove(group_id, member_id)
        self.release(group_id, member_id)
        self._maybe_group_empty(group_id)

    def _maybe_group_empty(self, group_id: str) -> None:
        """No member of the group has a session here any more: its share
        partitions are dropped once their state is written (Kafka's
        onGroupEmpty), so the next member loads what the admin APIs may have
        changed meanwhile (AlterShareGroupOffsets, DeleteShareGroupOffsets
        need an empty group)."""
        if any(s.group_id == group_id for s in self.sessions.sessions()):
            return
        for key, handle in list(self._partitions.items()):
            if key[0] == group_id:
                self._background_task(self._forget_when_written(handle))

    async def _forget_when_written(self, handle: SharePartitionHandle) -> None:
        await self.persist(handle)
        if not any(s.group_id == handle.key[0] for s in self.sessions.sessions()) \
                and self._partitions.get(handle.key) is handle:
            self.forget(handle.key)

    def connection_closed(self, connection_id: int) -> None:
        for session in self.sessions.connection_closed(connection_id):
            self.session_closed(session)

    def on_image(self, old: MetadataImage | None, new: MetadataImage) -> None:
        """A deleted topic's share partitions and session entries go (its id
        never comes back: a topic made again under its name is a new topic)."""
        if old is not None and old.topics is new.topics or not self._partitions:
            return
        live = {topic.topic_id for topic in new.topics.values()}
        for key in [k for k in self._partitions if k[1] not in live]:
            self.forget(key)
            self.sessions.forget_partition(key[1:])

    def forget(self, key: GroupKey) -> None:
        """Drop a share partition (leadership moved, state deleted)."""
        handle = self._partitions.pop(key, None)
        if handle is not None and handle.timer is not None:
            handle.timer.cancel()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the timers; give the state writes under way (releases of the
        connections just closed) `timeout` seconds to finish, then cancel them."""
        for handle in self._partitions.values():
            if handle.timer is not None:
                handle.timer.cancel()
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
