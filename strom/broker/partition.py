"""One partition replica on this broker: its log, role, leader epoch and HW.

A single node is a cluster of one: it is the leader, the ISR is itself, and
the high watermark advances to the log end offset as soon as a batch is
appended (`_replication` is None: no per-append cost beyond that).

Replicated (cluster mode), the role comes from the metadata image
(`update_state`). A leader keeps its followers' fetch offsets in a
LeaderReplicaState (replica_state.py): the HW is the smallest log end offset
over the ISR, acks=all waits for it (`replicated`), and ISR changes are
proposed to the controller through `on_isr_change` (the replica manager sends
them). A follower only appends what its fetcher brings (`append_as_follower`),
truncates where the leader says its log diverged, and refuses clients.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from strom.broker.batch_worker import AppendTurn, on_worker
from strom.broker.flusher import GroupCommitFlusher
from strom.broker.hw_waiters import HighWatermarkWaiters, failed_future, min_isr_error
from strom.broker.partition_answers import FollowerFetch, LeaderAppend, PartitionFetch
from strom.broker.partition_config import (
    MAX_UNCOMPRESSED_BYTES,
    AppendSettings,
    delete_records_target,
    log_config_for,
    stamp_timestamps,
)
from strom.broker.purgatory import AppendNotifier
from strom.broker.replica_state import LeaderReplicaState
from strom.clock import Clock
from strom.config import TopicConfig
from strom.errors import (
    FencedLeaderEpochError,
    KafkaError,
    NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
    UnknownLeaderEpochError,
)
from strom.protocol.records import (
    ControlRecordType,
    TimestampType,
    ValidatedBatch,
    build_control_batch,
    read_batch_header,
    validate_produced_batch,
)
from strom.storage.log import AppendOrigin, FileRegion, PartitionLog
from strom.storage.producer_state import ProducerStateManager

_NO_RECORDS: list[bytes | memoryview] = []


class Partition:
    def __init__(self, topic: str, index: int, topic_id: uuid.UUID, log: PartitionLog,
                 config: TopicConfig, *, leader_epoch: int, node_id: int, clock: Clock,
                 flusher: GroupCommitFlusher, leader_id: int | None = None,
                 append_settings: AppendSettings | None = None) -> None:
        """`append_settings`: `AppendSettings.of(config)`, when the caller
        has it (resolving it is most of a new partition's cost: a topic of
        1,000 partitions resolves it once)."""
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.log = log
        self.config = config
        self.append_settings = append_settings or AppendSettings.of(config)
        self.leader_epoch = leader_epoch
        self.leader_id = node_id if leader_id is None else leader_id
        self.node_id = node_id
        self.replicas: tuple[int, ...] = (node_id,)
        self.isr: tuple[int, ...] = (node_id,)
        self.partition_epoch = 0
        self.high_watermark = log.log_end_offset
        #: Wakes consumers' fetches: the HW moved (or the partition went away).
        self.appended = AppendNotifier()
        #: Wakes followers' fetches: the leader's log grew.
        self.replica_appended = AppendNotifier()
        #: The leader's view of its followers; None on a follower and on a
        #: leader without followers (a single node).
        self._replication: LeaderReplicaState | None = None
        #: acks=all requests waiting for the HW to reach their batches.
        self._hw_waiters = HighWatermarkWaiters()
        #: Called with a proposed ISR (the replica manager sends AlterPartition).
        self.on_isr_change: Callable[[Partition, tuple[int, ...]], None] | None = None
        #: Whether a broker may join an ISR (registered, not shutting down):
        #: the controller would refuse it (INELIGIBLE_REPLICA), and a follower
        #: fetching every few milliseconds would be proposed again each time.
        self.isr_eligible: Callable[[int], bool] = lambda _replica: True
        self._append_tail: asyncio.Future[None] | None = None
        self._clock = clock
        self._flusher = flusher
        self.become_leader(leader_epoch)

    @property
    def producer_state(self) -> ProducerStateManager:
        """The log's producer state (read-only here: the log changes it with its bytes)."""
        return self.log.producer_state

    def become_leader(self, leader_epoch: int) -> None:
        """Start a leader epoch at the log end, as Kafka's makeLeader does, so
        OffsetForLeaderEpoch can answer for it even before anything is written."""
        self.leader_epoch = leader_epoch
        if not self.is_leader:
            return
        latest = self.log.latest_epoch()
        if latest is None or latest < leader_epoch:
            self.log.assign_epoch_start_offset(leader_epoch, self.log.log_end_offset)

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.node_id

    @property
    def replicated(self) -> bool:
        """A leader with followers: the HW waits for them."""
        return self._replication is not None

    def update_state(self, leader: int, leader_epoch: int, replicas: tuple[int, ...],
                     isr: tuple[int, ...], partition_epoch: int) -> bool:
        """Apply this partition's state from the metadata image (Kafka's
        makeLeader / makeFollower); True if this broker's role or the leader
        it follows changed (its fetcher must be re-pointed)."""
        now = self._clock.wall_ms()
        if leader == self.node_id:
            if not self.is_leader or leader_epoch > self.leader_epoch:
                self._make_leader(leader_epoch, replicas, isr, partition_epoch, now)
                return True
            if partition_epoch >= self.partition_epoch:
                self.replicas, self.isr, self.partition_epoch = replicas, isr, partition_epoch
                state = self._replication
                if state is None and replicas != (self.node_id,):
                    self._make_leader(leader_epoch, replicas, isr, partition_epoch, now)
                elif state is not None:
                    state.update_assignment(replicas, isr, partition_epoch, now)
                    self._maybe_increment_high_watermark(state)
                    self._complete_hw_waiters()  # the ISR may have shrunk below min
            return False
        changed = self.is_leader or leader != self.leader_id or leader_epoch != self.leader_epoch
        self.replicas, self.isr = replicas, isr
        self.partition_epoch = max(self.partition_epoch, partition_epoch)
        if changed:
            self._make_follower(leader, leader_epoch)
        return changed

    def restore_high_watermark(self, checkpointed: int) -> None:
        """A replicated partition opens at its checkpointed HW (bounded by the log)."""
        self.high_watermark = max(min(checkpointed, self.log.log_end_offset),
                                  self.log.log_start_offset)

    def _make_leader(self, leader_epoch: int, replicas: tuple[int, ...],
                     isr: tuple[int, ...], partition_epoch: int, now_ms: int) -> None:
        self.leader_id = self.node_id
        self.replicas, self.isr, self.partition_epoch = replicas, isr, partition_epoch
        self.become_leader(leader_epoch)
        if replicas == (self.node_id,):
            self._replication = None
            self._maybe_advance_high_watermark()
            return
        # The HW stays where this replica had it: followers' offsets are unknown
        # until they fetch from this leader epoch (Kafka's makeLeader).
        self._replication = LeaderReplicaState(
            self.node_id, replicas, isr, partition_epoch=partition_epoch,
            epoch_start_offset=self.log.log_end_offset, now_ms=now_ms)
        self._maybe_increment_high_watermark(self._replication)

    def _make_follower(self, leader: int, leader_epoch: int) -> None:
        self.leader_id = leader
        self.leader_epoch = leader_epoch
        self._replication = None
        self.fail_waiters(lambda: NotLeaderOrFollowerError(
            f"{self.topic}-{self.index} is now led by broker {leader}"))

    def update_config(self, config: TopicConfig) -> None:
        self.config = config
        self.append_settings = AppendSettings.of(config)
        self.log.update_config(log_config_for(config))

    def check_leader_epoch(self, requested: int) -> None:
        """Kafka's epoch fencing: -1 means the client does not know the epoch."""
        if requested == -1:
            return
        if requested < self.leader_epoch:
            raise FencedLeaderEpochError(
                f"epoch {requested} is older than the current leader epoch {self.leader_epoch}"
            )
        if requested > self.leader_epoch:
            raise UnknownLeaderEpochError(
                f"epoch {requested} is newer than the current leader epoch {self.leader_epoch}"
            )

    def append_records_as_leader(self, records: memoryview, *,
                                 max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES
                                 ) -> LeaderAppend:
        """Validate one produced batch and append it; raises typed KafkaErrors.
        DecompressedSizeError past `max_uncompressed_bytes`: the produce
        handler passes a small limit and retries past it with
        `append_records_as_leader_on_worker`."""
        if self.leader_id != self.node_id:  # _check_leader inline: two calls a batch
            self._check_leader()
        now = self._clock.wall_ms()
        settings = self.append_settings
        # settings.validator's call, without building the partial (per batch).
        validated = validate_produced_batch(
            records, max_message_bytes=settings.max_message_bytes, compacted=settings.compacted,
            timestamp_type=settings.timestamp_type, now_ms=now,
            timestamp_before_max_ms=settings.timestamp_before_max_ms,
            timestamp_after_max_ms=settings.timestamp_after_max_ms,
            max_uncompressed_bytes=max_uncompressed_bytes)
        return self._append_validated(records, validated, now, settings.timestamp_type)

    async def append_records_as_leader_on_worker(self, records: memoryview) -> LeaderAppend:
        """As append_records_as_leader, decompressing and validating on a
        worker thread (batch_worker); the append itself stays on the loop."""
        self._check_leader()
        now = self._clock.wall_ms()
        settings = self.append_settings
        validated = await on_worker(
            settings.validator(records, now, MAX_UNCOMPRESSED_BYTES))
        self._check_leader()  # leadership may have moved meanwhile
        return self._append_validated(records, validated, now, settings.timestamp_type)

    def take_append_turn(self) -> AppendTurn:
        """A place in this partition's queue of appends (batch_worker)."""
        turn = AppendTurn.take(self._append_tail)
        self._append_tail = turn.tail
        return turn

    @property
    def append_queued(self) -> bool:
        """True while an append that waits for a worker holds a turn here."""
        return self._append_tail is not None and not self._append_tail.done()

    def _check_leader(self) -> None:
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")

    def _append_validated(self, records: memoryview, validated: ValidatedBatch, now: int,
                          timestamp_type: TimestampType) -> LeaderAppend:
        max_timestamp, offset_delta, log_append_time = stamp_timestamps(
            records, validated, now, timestamp_type)
        info = self.log.append_as_leader(
            records,
            validated.header,
            leader_epoch=self.leader_epoch,
            max_timestamp=max_timestamp,
            offset_delta_of_max_timestamp=offset_delta,
            now_ms=now,
        )
        if info.duplicate:
            # A retry of a batch already written: answered with its original offsets.
            return LeaderAppend(info, -1)
        self._maybe_advance_high_watermark()
        return LeaderAppend(info, log_append_time)

    def _maybe_advance_high_watermark(self) -> None:
        state = self._replication
        if state is not None:
            # Followers are woken to fetch what was appended; the HW moves
            # when they have it.
            self.replica_appended.notify()
            self._maybe_increment_high_watermark(state)
            return
        # With the ISR being this broker alone the HW is the log end offset.
        new_hw = self.log.log_end_offset
        if new_hw != self.high_watermark:
            self.high_watermark = new_hw
            self.appended.notify()

    def _maybe_increment_high_watermark(self, state: LeaderReplicaState) -> None:
        """The smallest log end offset over the (maximal) ISR, never backwards."""
        new_hw = state.high_watermark(self.log.log_end_offset)
        if new_hw > self.high_watermark:
            self.high_watermark = new_hw
            self.appended.notify()
            self._complete_hw_waiters()

    def after_log_change(self) -> None:
        """Re-derive the HW after truncation, DeleteRecords or retention."""
        self.high_watermark = min(max(self.high_watermark, self.log.log_start_offset),
                                  self.log.log_end_offset)
        if self.is_leader:  # a follower's HW is the leader's (append_as_follower)
            self._maybe_advance_high_watermark()

    # -- acks=all -----------------------------------------------------------------------

    def check_min_isr(self) -> None:
        """acks=all is refused before appending while the ISR is smaller than
        min.insync.replicas (Kafka's NOT_ENOUGH_REPLICAS)."""
        error = min_isr_error(self.isr, self.append_settings.min_insync_replicas,
                              self.topic, self.index, after_append=False)
        if error is not None:
            raise error

    def replicated_to_isr(self, end_offset: int) -> asyncio.Future[None] | None:
        """A future done once the HW reaches `end_offset` (None: it has, with
        enough replicas in the ISR); it fails with NOT_ENOUGH_REPLICAS_AFTER_APPEND
        if the ISR then is smaller than min.insync.replicas, and with
        NOT_LEADER_OR_FOLLOWER if leadership moves first. The caller cancels it
        when it gives up."""
        if self._replication is None and self.leader_id == self.node_id:  # is_leader
            return None  # the HW is the log end offset: the batch is in
        if self.high_watermark >= end_offset:
            error = self._after_append_error()
            return None if error is None else failed_future(error)
        if not self.is_leader:
            return failed_future(NotLeaderOrFollowerError(
                f"not the leader of {self.topic}-{self.index}"))
        return self._hw_waiters.add(end_offset)

    def _after_append_error(self) -> KafkaError | None:
        return min_isr_error(self.isr, self.append_settings.min_insync_replicas,
                             self.topic, self.index, after_append=True)

    def _complete_hw_waiters(self) -> None:
        self._hw_waiters.complete_up_to(self.high_watermark, self._after_append_error)

    def fail_waiters(self, error: Callable[[], Exception]) -> None:
        """Leadership moved or the partition went away: acks=all waiters fail,
        fetches waiting on it re-read (and get the error)."""
        self._hw_waiters.fail_all(error)
        self.appended.notify()
        self.replica_appended.notify()

    @property
    def last_stable_offset(self) -> int:
        """The first offset of the earliest open transaction, bounded by the HW."""
        first = self.log.producer_state.first_unstable_offset
        return self.high_watermark if first is None else min(first, self.high_watermark)

    # -- transactions -------------------------------------------------------------------

    def write_txn_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int,
                         commit: bool) -> int:
        """Append a COMMIT or ABORT marker for the producer's transaction; the end offset."""
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")
        now = self._clock.wall_ms()
        batch = bytearray(build_control_batch(
            ControlRecordType.COMMIT if commit else ControlRecordType.ABORT,
            producer_id=producer_id, producer_epoch=producer_epoch,
            coordinator_epoch=coordinator_epoch, timestamp=now))
        header = read_batch_header(batch)
        # Fenced by producer epoch; an ABORT is indexed (Kafka's appendEndTxnMarker).
        info = self.log.append_as_leader(
            memoryview(batch), header, leader_epoch=self.leader_epoch, max_timestamp=now,
            offset_delta_of_max_timestamp=0, now_ms=now, origin=AppendOrigin.COORDINATOR)
        self._maybe_advance_high_watermark()
        return info.last_offset + 1

    def append_coordinator_batch(self, records: memoryview) -> int:
        """A coordinator's transactional batch (TxnOffsetCommit): no sequence
        numbers, fenced by producer epoch; its first offset."""
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")
        header = read_batch_header(records)
        # The runtime stamps its records with the time of the write.
        info = self.log.append_as_leader(
            records, header, leader_epoch=self.leader_epoch, max_timestamp=header.max_timestamp,
            offset_delta_of_max_timestamp=header.last_offset_delta,
            now_ms=self._clock.wall_ms(), origin=AppendOrigin.COORDINATOR)
        self._maybe_advance_high_watermark()
        return info.first_offset

    def aborted_transactions(self, fetch_offset: int, upper_bound_offset: int
                             ) -> list[dict[str, int]]:
        """For a read_committed fetch of [fetch_offset, upper_bound_offset)."""
        return [{"producer_id": e.producer_id, "first_offset": e.first_offset}
                for e in self.log.txn_index.collect(fetch_offset, upper_bound_offset)]

    # -- reads, offsets, durability: what handlers and coordinators ask of a partition --

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    def fetch(self, fetch_offset: int, max_bytes: int, *, read_committed: bool,
              min_one_batch: bool, zero_copy: bool) -> PartitionFetch:
        """Whole batches from `fetch_offset` below the high watermark (the last
        stable offset when read_committed), within max_bytes (KIP-74: the first
        batch even if larger, when min_one_batch). zero_copy: the chunks are
        views of the mapped segment files (FileRegion.view), else bytes.
        OffsetOutOfRangeError outside [log start, log end]."""
        if not self.is_leader:
            # Consumers read from the leader (no fetch from followers, KIP-392).
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")
        high_watermark = self.high_watermark
        last_stable = self.last_stable_offset
        upper = last_stable if read_committed else high_watermark
        result = self.log.read(fetch_offset, max_bytes, max_offset=upper,
                               min_one_batch=min_one_batch)
        regions = result.regions
        if regions:
            load = FileRegion.view if zero_copy else FileRegion.read
            records = [load(region) for region in regions]
        else:
            records = []  # most partitions of a fetch over many
        return PartitionFetch(
            records, result.size, high_watermark,
            last_stable, self.log.log_start_offset,
            self.aborted_transactions(fetch_offset, upper) if read_committed else None,
        )

    def read_to_end(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from `offset` up to the log end offset, the first even
        if larger than max_bytes, as one buffer (a coordinator loading its state)."""
        log = self.log
        return log.read(offset, max_bytes, max_offset=log.log_end_offset,
                        min_one_batch=True).to_bytes()

    def delete_records(self, offset: int) -> int:
        """DeleteRecords on the leader: records below `offset`
        (DELETE_TO_HIGH_WATERMARK: the high watermark) become unreadable and
        segments wholly below it are deleted; the new log start offset. An
        offset below the log start changes nothing."""
        name = f"{self.topic}-{self.index}"
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"Leader not local for partition {name}")
        target = delete_records_target(offset, high_watermark=self.high_watermark,
                                       config=self.config, name=name)
        self.log.advance_log_start_offset(target)
        self.after_log_change()
        return self.log.log_start_offset

    def end_offset_for_epoch(self, leader_epoch: int, current_leader_epoch: int = -1
                             ) -> tuple[int, int]:
        """OffsetForLeaderEpoch on the leader: (the largest epoch <= leader_epoch,
        its end offset), (-1, -1) if the log knows none. current_leader_epoch
        fences a stale caller (-1 skips the check)."""
        self.check_leader_epoch(current_leader_epoch)
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"not the leader of {self.topic}-{self.index}")
        return self.log.end_offset_for_epoch(leader_epoch)

    def durable(self, end_offset: int) -> asyncio.Future[None] | None:
        """A future done once every offset below `end_offset` is fsync'd (None:
        it already is); group commit (flusher.py)."""
        return self._flusher.durable(self.log, end_offset)

    async def wait_durable(self, end_offset: int) -> None:
        """Return once every offset below `end_offset` is committed: on the
        ISR (below the HW) and fsync'd here (coordinators' writes)."""
        replicated = self.replicated_to_isr(end_offset)
        if replicated is not None:
            try:
                await replicated
            finally:
                if not replicated.done():
                    replicated.cancel()
        await self._flusher.wait_durable(self.log, end_offset)

    # -- replication: the leader's side ---------------------------------------------------

    def fetch_for_follower(self, replica_id: int, fetch_offset: int, last_fetched_epoch: int,
                           max_bytes: int, *, min_one_batch: bool,
                           zero_copy: bool) -> FollowerFetch:
        """A follower's fetch (replica id >= 0): records up to the log end
        offset. With `last_fetched_epoch` (Fetch v12+, -1 if none) the
        follower's log is first checked against this one: where they diverge
        the answer is the diverging epoch, no records, and the fetch offset is
        not taken as the follower's log end offset (KIP-595's truncation as
        Kafka's followers do it since 2.7). Otherwise the fetch offset is the
        follower's log end offset: the HW may advance, and the follower may
        join the ISR."""
        self._check_leader()
        state = self._replication
        if state is None or not state.is_replica(replica_id):
            raise NotLeaderOrFollowerError(
                f"broker {replica_id} is not a replica of {self.topic}-{self.index}")
        log = self.log
        if last_fetched_epoch >= 0:
            epoch, end_offset = log.end_offset_for_epoch(last_fetched_epoch)
            if epoch < last_fetched_epoch or end_offset < fetch_offset:
                return FollowerFetch(_NO_RECORDS, 0, self.high_watermark,
                                     log.log_start_offset, (epoch, end_offset))
        if fetch_offset < log.log_start_offset or fetch_offset > log.log_end_offset:
            raise OffsetOutOfRangeError(
                f"offset {fetch_offset} is outside [{log.log_start_offset}, "
                f"{log.log_end_offset}] of {self.topic}-{self.index}")
        state.record_fetch(replica_id, fetch_offset, self._clock.wall_ms(), log.log_end_offset)
        self._maybe_increment_high_watermark(state)
        expanded = state.expansion(replica_id, self.high_watermark)
        if expanded is not None and self.isr_eligible(replica_id):
            self._propose_isr(state, expanded)
        result = log.read(fetch_offset, max_bytes, max_offset=log.log_end_offset,
                          min_one_batch=min_one_batch)
        load = FileRegion.view if zero_copy else FileRegion.read
        return FollowerFetch([load(region) for region in result.regions], result.size,
                             self.high_watermark, log.log_start_offset, None)

    def maybe_shrink_isr(self, max_lag_ms: int) -> None:
        """Propose the ISR without the followers that have not caught up for
        `replica.lag.time.max.ms` (Kafka's maybeShrinkIsr)."""
        state = self._replication
        if state is None or not self.is_leader:
            return
        shrunk = state.shrink(self._clock.wall_ms(), max_lag_ms, self.log.log_end_offset)
        if shrunk is not None:
            self._propose_isr(state, shrunk)

    def _propose_isr(self, state: LeaderReplicaState, new_isr: tuple[int, ...]) -> None:
        if self.on_isr_change is None:
            return  # no controller to ask (a partition outside a replica manager)
        state.propose(new_isr)
        self.on_isr_change(self, new_isr)

    @property
    def pending_isr(self) -> tuple[int, ...] | None:
        state = self._replication
        return state.pending_isr if state is not None else None

    def isr_change_failed(self, proposed: tuple[int, ...]) -> None:
        """The controller refused `proposed` without a newer state to wait for
        (INELIGIBLE_REPLICA, OPERATION_NOT_ATTEMPTED): it may be proposed again."""
        state = self._replication
        if state is not None and state.pending_isr == proposed:
            state.proposal_failed()

    # -- replication: the follower's side -------------------------------------------------

    @property
    def last_fetched_epoch(self) -> int:
        """The epoch of this log's last batch, sent with a follower's fetch (-1: none)."""
        latest = self.log.latest_epoch()
        return -1 if latest is None else latest

    def append_as_follower(self, records: memoryview, leader_high_watermark: int,
                           leader_log_start_offset: int) -> None:
        """Batches fetched from the leader, appended as they are; the HW follows
        the leader's (bounded by this log's end), and so does the log start."""
        if self.is_leader:
            raise NotLeaderOrFollowerError(f"{self.topic}-{self.index} is led here")
        log = self.log
        if len(records):
            log.append_as_follower(records)
        self.high_watermark = max(min(leader_high_watermark, log.log_end_offset),
                                  log.log_start_offset)
        start = min(leader_log_start_offset, self.high_watermark)
        if start > log.log_start_offset:
            log.advance_log_start_offset(start)

    def truncate_to(self, offset: int) -> None:
        """Follower truncation: drop what this log holds at and past `offset`
        (its leader epochs there too)."""
        self.log.truncate_to(offset)
        self.high_watermark = min(self.high_watermark, self.log.log_end_offset)
        self.after_log_change()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """The leader's log starts past this one's end: start over there, empty."""
        self.log.truncate_fully_and_start_at(offset)
        self.high_watermark = offset
        self.after_log_change()

    def end_offset_for_epoch_local(self, leader_epoch: int) -> tuple[int, int]:
        """(largest epoch <= leader_epoch, its end offset) in this log, whatever
        the role: a follower finding where to truncate."""
        return self.log.end_offset_for_epoch(leader_epoch)
