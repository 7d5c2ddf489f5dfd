"""One `__share_group_state` partition: the share coordinator shard (KIP-932).

Kafka's ShareCoordinatorShard. It keeps, per share partition (group id, topic
id, partition), the state the partition's leader persisted: state epoch,
leader epoch, start offset and the in-flight batches. Operations validate
and compute (records, response) without changing anything; replay installs
the records (CONVENTIONS 5), at load time as after a write.

Records. The first write of a key is a ShareSnapshot (the whole state).
Later writes are ShareUpdates carrying only the batches written, until
`share.coordinator.snapshot.update.records.per.snapshot` updates have been
written since the last snapshot; the next write is then a snapshot again
(with the snapshot epoch one higher), so loading a key never replays more
than that many updates past its snapshot and compaction keeps one of each.

Fencing. A write or read from a leader epoch older than the stored one is
FENCED_LEADER_EPOCH (a deposed partition leader); a write or an initialize
with a state epoch older than the stored one is FENCED_STATE_EPOCH (the group
coordinator re-initialized the state, e.g. after an offsets reset). A read
with a newer leader epoch records it, so the old leader is fenced from then on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from strom.clock import Clock
from strom.coordinator.runtime import Result, Timer
from strom.coordinator.share import batches as combiner
from strom.coordinator.share import records as rec
from strom.coordinator.share.persister import StateBatch
from strom.errors import (
    FencedLeaderEpochError,
    FencedStateEpochError,
    InvalidRequestError,
    UnknownTopicOrPartitionError,
)

log = logging.getLogger(__name__)


class UninitializedShareStateError(InvalidRequestError):
    """A read or write of a share partition whose state was never initialized
    (Kafka: INVALID_REQUEST)."""


#: The stored state of one share partition (Kafka's ShareGroupOffset): the
#: fields of a ShareSnapshot record, so replaying one stores it as it is.
ShareGroupOffset = rec.Snapshot


@dataclass(frozen=True, slots=True)
class WriteData:
    state_epoch: int
    leader_epoch: int
    start_offset: int  # -1: not moved
    batches: tuple[StateBatch, ...]
    delivery_complete_count: int = -1


Key = rec.ShareKey
#: Whether a (topic id, partition) exists in the metadata image.
TopicExists = Callable[[uuid.UUID, int], bool]


class ShareCoordinatorShard:
    def __init__(self, partition: int, timer: Timer, clock: Clock, *,
                 updates_per_snapshot: int, topic_exists: TopicExists) -> None:
        self.partition = partition
        self.timer = timer
        self.clock = clock
        self.updates_per_snapshot = updates_per_snapshot
        self.topic_exists = topic_exists
        self.states: dict[Key, ShareGroupOffset] = {}
        # Kept apart from `states` as Kafka does: the highest epochs seen for a key.
        self.leader_epochs: dict[Key, int] = {}
        self.state_epochs: dict[Key, int] = {}
        # Updates written since the key's last snapshot.
        self.updates_since_snapshot: dict[Key, int] = {}
        # The offset of each live key's latest snapshot, and the offset after the
        # last record replayed: what pruning may delete (last_redundant_offset).
        self.snapshot_offsets: dict[Key, int] = {}
        self.next_offset = 0

    # -- replay -------------------------------------------------------------------------

    def replay(self, offset: int, key: bytes, value: bytes | None) -> None:
        self.next_offset = max(self.next_offset, offset + 1)
        decoded = rec.decode_key(key)
        if decoded is None:
            return
        kind, share_key = decoded
        if value is None:
            if kind == rec.SNAPSHOT_TYPE:
                self._forget(share_key)
            return
        if kind == rec.SNAPSHOT_TYPE:
            self._replay_snapshot(share_key, rec.decode_snapshot(value))
            self.snapshot_offsets[share_key] = offset
        else:
            self._replay_update(share_key, rec.decode_update(value))

    def _replay_snapshot(self, key: Key, s: rec.Snapshot) -> None:
        self._raise_epoch(self.leader_epochs, key, s.leader_epoch)
        self._raise_epoch(self.state_epochs, key, s.state_epoch)
        self.states[key] = s
        self.updates_since_snapshot[key] = 0

    def _replay_update(self, key: Key, u: rec.Update) -> None:
        self._raise_epoch(self.leader_epochs, key, u.leader_epoch)
        current = self.states.get(key)
        if current is None:
            # An update whose snapshot was compacted away by a later tombstone
            # cannot be replayed on anything (Kafka installs it alone; its
            # state epoch is then unknown). Nothing to build on: skip it.
            return
        start = current.start_offset if u.start_offset == -1 else u.start_offset
        self.states[key] = replace(
            current,
            leader_epoch=current.leader_epoch if u.leader_epoch == -1 else u.leader_epoch,
            start_offset=start,
            delivery_complete_count=u.delivery_complete_count,  # as Kafka's merge
            batches=combiner.combine((*current.batches, *u.batches), start))
        self.updates_since_snapshot[key] = self.updates_since_snapshot.get(key, 0) + 1

    @staticmethod
    def _raise_epoch(epochs: dict[Key, int], key: Key, epoch: int) -> None:
        if epoch > epochs.get(key, -1):
            epochs[key] = epoch

    def _forget(self, key: Key) -> None:
        self.states.pop(key, None)
        self.leader_epochs.pop(key, None)
        self.state_epochs.pop(key, None)
        self.updates_since_snapshot.pop(key, None)
        self.snapshot_offsets.pop(key, None)

    def last_redundant_offset(self) -> int:
        """Records below this offset are needed by no share partition: each live
        key's state is its latest snapshot and the updates after it, and a
        deleted key needs nothing (Kafka's ShareCoordinatorOffsetsManager)."""
        return min(self.snapshot_offsets.values(), default=self.next_offset)

    def on_loaded(self) -> None:
        log.debug("__share_group_state-%d loaded: %d share partition(s)", self.partition,
                  len(self.states))

    def on_unloaded(self) -> None:
        pass

    # -- checks -------------------------------------------------------------------------

    def _check_topic(self, key: Key, action: str) -> None:
        if not self.topic_exists(key.topic_id, key.partition):
            raise UnknownTopicOrPartitionError(
                f"Topic or partition not found in metadata image when {action}: "
                f"{key.group_id}:{key.topic_id}-{key.partition}.")

    def _check_leader_epoch(self, key: Key, leader_epoch: int, what: str) -> None:
        stored = self.leader_epochs.get(key)
        if leader_epoch != -1 and stored is not None and stored > leader_epoch:
            raise FencedLeaderEpochError(
                f"{what} request leader epoch is smaller than last recorded current: "
                f"{stored}, requested: {leader_epoch}.")

    # -- operations ---------------------------------------------------------------------

    def initialize(self, key: Key, state_epoch: int, start_offset: int) -> Result[None]:
        stored = self.state_epochs.get(key)
        if stored is not None and stored > state_epoch:
            raise FencedStateEpochError(
                f"Initialize request state epoch is smaller than last recorded current: "
                f"{stored}, requested: {state_epoch}.")
        self._check_topic(key, "initializing")
        current = self.states.get(key)
        now = self.clock.wall_ms()
        snapshot = rec.Snapshot(
            snapshot_epoch=0 if current is None else current.snapshot_epoch + 1,
            # The leader epoch recorded so far stays in the snapshot: once
            # the records before it are deleted, it is the only record of
            # the fence (a snapshot saying 0 would let a deposed leader write).
            state_epoch=state_epoch, leader_epoch=max(0, self.leader_epochs.get(key, 0)),
            start_offset=start_offset,
            # Kafka's ShareGroupOffset.fromRequest: nothing is complete yet at a
            # known start offset (so lag is computable), unknown before one is.
            delivery_complete_count=-1 if start_offset == -1 else 0,
            create_timestamp=now, write_timestamp=now, batches=())
        return Result(None, [rec.snapshot_record(key, snapshot)])

    def read(self, key: Key, leader_epoch: int) -> Result[ShareGroupOffset]:
        """The state; a newer leader epoch is recorded (Kafka's
        readStateAndMaybeUpdateLeaderEpoch). -1 reads without recording."""
        current = self.states.get(key)
        if current is None:
            raise UninitializedShareStateError(
                "Read operation on uninitialized share partition not allowed.")
        self._check_leader_epoch(key, leader_epoch, "Read")
        self._check_topic(key, "reading")
        if leader_epoch == -1 or self.leader_epochs.get(key) == leader_epoch:
            return Result(current)
        log.info("Read with leader epoch update call for key %s having new leader epoch %d.",
                 key, leader_epoch)
        record = self._state_record(key, WriteData(current.state_epoch, leader_epoch,
                                                   current.start_offset, ()),
                                    update_leader_epoch=True)
        return Result(replace(current, leader_epoch=leader_epoch), [record])

    def write(self, key: Key, data: WriteData) -> Result[None]:
        if key not in self.states:
            raise UninitializedShareStateError(
                "Write operation on uninitialized share partition not allowed.")
        self._check_leader_epoch(key, data.leader_epoch, "Write")
        stored = self.state_epochs.get(key)
        if data.state_epoch != -1 and stored is not None and stored > data.state_epoch:
            raise FencedStateEpochError(
                f"Write request state epoch is smaller than last recorded current: "
                f"{stored}, requested: {data.state_epoch}.")
        self._check_topic(key, "writing")
        return Result(None, [self._state_record(key, data)])

    def summary(self, key: Key) -> ShareGroupOffset | None:
        """The state without its batches' meaning; None if never initialized."""
        self._check_topic(key, "reading summary")
        return self.states.get(key)

    def delete(self, key: Key) -> Result[None]:
        if key not in self.states:
            return Result(None)  # Kafka: nothing to delete is success
        self._check_topic(key, "deleting")
        return Result(None, [rec.tombstone(key)])

    def forget_topics(self, topic_ids: frozenset[uuid.UUID]) -> Result[None]:
        """Tombstones for the state of deleted topics' share partitions (Kafka's
        maybeCleanupShareState): a topic made again under the same name has a
        new id, so this state could never be read again."""
        return Result(None, [rec.tombstone(key) for key in self.states
                             if key.topic_id in topic_ids])

    def snapshot_cold(self, interval_ms: int) -> Result[None]:
        """A new snapshot (the same state, the next snapshot epoch) for every share
        partition whose latest snapshot is `interval_ms` old or more (Kafka's
        snapshotColdPartitions): pruning stops at the oldest latest-snapshot, so an
        idle share partition would otherwise hold back the whole partition's."""
        now = self.clock.wall_ms()
        records: list[tuple[bytes, bytes | None]] = [rec.snapshot_record(key, replace(
            state, snapshot_epoch=state.snapshot_epoch + 1, write_timestamp=now))
            for key, state in self.states.items() if now - state.write_timestamp >= interval_ms]
        return Result(None, records)

    def keys_of_group(self, group_id: str) -> list[Key]:
        return [k for k in self.states if k.group_id == group_id]

    def _state_record(self, key: Key, data: WriteData, *, update_leader_epoch: bool = False
                      ) -> tuple[bytes, bytes | None]:
        """A snapshot once enough updates were written since the last one, else
        an update, each carrying the resolved leader epoch, start offset and
        delivery-complete count (Kafka 4.4's generateShareStateRecord)."""
        current = self.states[key]
        now = self.clock.wall_ms()
        # Only a read from a newer leader records its epoch; a write keeps the
        # stored one (Kafka 4.4: the leader epoch is taken on when it reads).
        leader_epoch = data.leader_epoch if update_leader_epoch else current.leader_epoch
        # A write never moves the start offset back (-1: not moved); only
        # InitializeShareGroupState resets it.
        start = max(data.start_offset, current.start_offset)
        if data.start_offset == current.start_offset:
            complete = max(data.delivery_complete_count, current.delivery_complete_count)
        elif data.start_offset < current.start_offset:
            complete = current.delivery_complete_count
        else:
            complete = data.delivery_complete_count
        if self.updates_since_snapshot.get(key, 0) >= self.updates_per_snapshot:
            return rec.snapshot_record(key, rec.Snapshot(
                snapshot_epoch=current.snapshot_epoch + 1, state_epoch=current.state_epoch,
                leader_epoch=leader_epoch, start_offset=start,
                delivery_complete_count=complete, create_timestamp=now, write_timestamp=now,
                batches=combiner.combine((*current.batches, *data.batches), start)))
        return rec.update_record(key, rec.Update(
            snapshot_epoch=current.snapshot_epoch, leader_epoch=leader_epoch,
            start_offset=start, delivery_complete_count=complete,
            batches=combiner.combine(data.batches, start)))
