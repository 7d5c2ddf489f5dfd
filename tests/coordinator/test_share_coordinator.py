"""The share coordinator shard (KIP-932) on the real runtime, with the log in
memory (tests/coordinator/harness.py): records as Kafka 4.4 writes them,
snapshots every N updates, epoch fencing, and replay after a restart."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strom.clock import ManualClock
from strom.coordinator.runtime import CoordinatorRuntime, Timer
from strom.coordinator.share import coordinator_key, parse_coordinator_key
from strom.coordinator.share import records as rec
from strom.coordinator.share.batches import combine
from strom.coordinator.share.persister import DeliveryState, StateBatch
from strom.coordinator.share.shard import (
    ShareCoordinatorShard,
    UninitializedShareStateError,
    WriteData,
)
from strom.errors import (
    FencedLeaderEpochError,
    FencedStateEpochError,
    UnknownTopicOrPartitionError,
)
from strom.protocol.records import decode_records, scan_batches

from .harness import ManualScheduler, MemoryLog

TOPIC_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
KEY = rec.ShareKey("g", TOPIC_ID, 0)
A, ACK, ARC = DeliveryState.AVAILABLE, DeliveryState.ACKNOWLEDGED, DeliveryState.ARCHIVED


class ShareHarness:
    def __init__(self, updates_per_snapshot: int = 3) -> None:
        self.clock = ManualClock()
        self.log = MemoryLog()
        self.loop = asyncio.new_event_loop()
        self.updates_per_snapshot = updates_per_snapshot
        self.topics = {TOPIC_ID: 2}
        self._start()

    def _start(self) -> None:
        self.runtime: CoordinatorRuntime[ShareCoordinatorShard] = CoordinatorRuntime(
            "share", self._shard, self.clock, scheduler=ManualScheduler(self.clock))

        async def load() -> None:
            self.runtime.load(0, self.log)
            await self.runtime.wait_loaded()
        self.run(load())

    def _shard(self, partition: int, timer: Timer) -> ShareCoordinatorShard:
        return ShareCoordinatorShard(
            partition, timer, self.clock, updates_per_snapshot=self.updates_per_snapshot,
            topic_exists=lambda t, p: 0 <= p < self.topics.get(t, 0))

    def restart(self) -> None:
        self.run(self.runtime.close())
        self._start()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def write(self, op: Any) -> Any:
        return self.run(self.runtime.write(0, op))

    def shard(self) -> ShareCoordinatorShard:
        return self.runtime.read(0, lambda s: s)

    def record_types(self) -> list[tuple[int, bool]]:
        """(key type, is tombstone) of every record written, in order."""
        data = b"".join(self.log.batches)
        out = []
        for header in scan_batches(data):
            for record in decode_records(data, header):
                assert record.key is not None
                decoded = rec.decode_key(record.key)
                assert decoded is not None
                out.append((decoded[0], record.value is None))
        return out


@pytest.fixture
def h() -> Any:
    harness = ShareHarness()
    yield harness
    harness.run(harness.runtime.close())
    harness.loop.close()


def batch(first: int, last: int, state: DeliveryState, count: int) -> StateBatch:
    return StateBatch(first, last, state, count)


def test_snapshot_every_n_updates_and_replay(h: ShareHarness) -> None:
    h.write(lambda s: s.initialize(KEY, 0, 10))
    for i in range(5):
        h.write(lambda s, i=i: s.write(KEY, WriteData(0, 1, -1, (batch(10 + i, 10 + i, ACK, 1),))))
    # initialize: a snapshot; then 3 updates; the 4th write is a snapshot again.
    assert h.record_types() == [(0, False), (1, False), (1, False), (1, False), (0, False),
                                (1, False)]
    state = h.shard().states[KEY]
    assert state.snapshot_epoch == 1
    assert state.batches == (batch(10, 14, ACK, 1),)
    h.restart()
    assert h.shard().states[KEY] == state
    assert h.shard().updates_since_snapshot[KEY] == 1


def test_start_offset_moves_and_prunes(h: ShareHarness) -> None:
    h.write(lambda s: s.initialize(KEY, 0, 0))
    h.write(lambda s: s.write(KEY, WriteData(0, 0, -1, (batch(0, 9, A, 1),))))
    h.write(lambda s: s.write(KEY, WriteData(0, 0, 5, (batch(5, 6, ACK, 1),))))
    read = h.write(lambda s: s.read(KEY, 0))
    assert read.start_offset == 5
    assert read.batches == (batch(5, 6, ACK, 1), batch(7, 9, A, 1))


def test_writes_never_move_the_start_offset_back(h: ShareHarness) -> None:
    """Kafka 4.4: max(written, stored); the delivery-complete count follows it."""
    h.write(lambda s: s.initialize(KEY, 0, 10))
    h.write(lambda s: s.write(KEY, WriteData(0, 0, 12, (), delivery_complete_count=3)))
    h.write(lambda s: s.write(KEY, WriteData(0, 0, 5, (batch(5, 20, A, 1),),
                                             delivery_complete_count=9)))
    state = h.shard().states[KEY]
    assert (state.start_offset, state.delivery_complete_count) == (12, 3)
    assert state.batches == (batch(12, 20, A, 1),)
    h.write(lambda s: s.write(KEY, WriteData(0, 0, 12, (), delivery_complete_count=1)))
    assert h.shard().states[KEY].delivery_complete_count == 3  # same start: the larger
    h.restart()
    assert h.shard().states[KEY].start_offset == 12


def test_leader_epoch_fencing(h: ShareHarness) -> None:
    h.write(lambda s: s.initialize(KEY, 0, 0))
    # A leader takes its epoch on when it reads the state; writes keep the stored
    # one (Kafka 4.4): a write from epoch 5 does not fence epoch 3.
    h.write(lambda s: s.read(KEY, 3))
    h.write(lambda s: s.write(KEY, WriteData(0, 5, -1, ())))
    assert h.shard().states[KEY].leader_epoch == 3
    h.write(lambda s: s.write(KEY, WriteData(0, 3, -1, ())))
    with pytest.raises(FencedLeaderEpochError):
        h.write(lambda s: s.write(KEY, WriteData(0, 2, -1, ())))
    with pytest.raises(FencedLeaderEpochError):
        h.write(lambda s: s.read(KEY, 2))
    # A read from a newer leader records its epoch: the old leader is fenced.
    before = len(h.record_types())
    h.write(lambda s: s.read(KEY, 4))
    assert len(h.record_types()) == before + 1
    with pytest.raises(FencedLeaderEpochError):
        h.write(lambda s: s.write(KEY, WriteData(0, 3, -1, ())))
    h.restart()
    assert h.shard().leader_epochs[KEY] == 4
    # The same epoch again writes nothing.
    h.write(lambda s: s.read(KEY, 4))
    assert len(h.record_types()) == before + 1


def test_state_epoch_fencing(h: ShareHarness) -> None:
    h.write(lambda s: s.initialize(KEY, 1, 0))
    with pytest.raises(FencedStateEpochError):
        h.write(lambda s: s.write(KEY, WriteData(0, 0, -1, ())))
    with pytest.raises(FencedStateEpochError):
        h.write(lambda s: s.initialize(KEY, 0, 0))
    h.write(lambda s: s.write(KEY, WriteData(1, 0, -1, (batch(0, 0, ACK, 1),))))
    # Re-initializing (an offsets reset) starts over: new start, no batches.
    h.write(lambda s: s.initialize(KEY, 2, 100))
    state = h.write(lambda s: s.read(KEY, 0))
    assert (state.state_epoch, state.start_offset, state.batches) == (2, 100, ())
    with pytest.raises(FencedStateEpochError):
        h.write(lambda s: s.write(KEY, WriteData(1, 0, -1, ())))


def test_uninitialized_and_unknown_topic(h: ShareHarness) -> None:
    with pytest.raises(UninitializedShareStateError):
        h.write(lambda s: s.read(KEY, 0))
    with pytest.raises(UninitializedShareStateError):
        h.write(lambda s: s.write(KEY, WriteData(0, 0, 0, ())))
    assert h.runtime.read(0, lambda s: s.summary(KEY)) is None
    other = rec.ShareKey("g", uuid.uuid4(), 0)
    with pytest.raises(UnknownTopicOrPartitionError):
        h.write(lambda s: s.initialize(other, 0, 0))
    with pytest.raises(UnknownTopicOrPartitionError):
        h.write(lambda s: s.initialize(rec.ShareKey("g", TOPIC_ID, 2), 0, 0))
    assert h.log.batches == []


def test_delete_writes_a_tombstone_that_survives_replay(h: ShareHarness) -> None:
    h.write(lambda s: s.initialize(KEY, 0, 7))
    h.write(lambda s: s.delete(KEY))
    assert h.record_types()[-1] == (0, True)
    h.write(lambda s: s.delete(KEY))  # nothing left: success, no record
    assert len(h.record_types()) == 2
    h.restart()
    assert KEY not in h.shard().states
    assert KEY not in h.shard().state_epochs


def test_deleted_topics_state_is_forgotten(h: ShareHarness) -> None:
    other = rec.ShareKey("g", uuid.uuid4(), 0)
    h.topics[other.topic_id] = 1
    h.write(lambda s: s.initialize(KEY, 0, 0))
    h.write(lambda s: s.initialize(other, 0, 0))
    h.write(lambda s: s.forget_topics(frozenset({TOPIC_ID})))
    assert set(h.shard().states) == {other}
    h.restart()
    assert set(h.shard().states) == {other}


def test_last_redundant_offset(h: ShareHarness) -> None:
    """Pruning may delete below every live key's latest snapshot (snapshot every 3)."""
    other = rec.ShareKey("h", TOPIC_ID, 1)
    assert h.shard().last_redundant_offset() == 0
    h.write(lambda s: s.initialize(KEY, 0, 0))  # offset 0: snapshot
    h.write(lambda s: s.initialize(other, 0, 0))  # offset 1: snapshot
    for _ in range(4):  # offsets 2-4 updates, 5 a snapshot of KEY
        h.write(lambda s: s.write(KEY, WriteData(0, 0, -1, ())))
    assert h.shard().last_redundant_offset() == 1
    h.write(lambda s: s.delete(other))  # offset 6: tombstone; `other` needs nothing
    assert h.shard().last_redundant_offset() == 5
    h.write(lambda s: s.delete(KEY))
    assert h.shard().last_redundant_offset() == 8  # nothing live: all of it


def test_cold_snapshots_let_pruning_pass(h: ShareHarness) -> None:
    """An idle share partition's old snapshot would hold pruning back for good; a
    cold snapshot (same state, next snapshot epoch) moves it forward."""
    other = rec.ShareKey("h", TOPIC_ID, 1)
    h.write(lambda s: s.initialize(KEY, 0, 0))  # offset 0
    h.write(lambda s: s.write(KEY, WriteData(0, 0, -1, (batch(0, 1, ACK, 1),))))
    h.clock.advance(1000)
    h.write(lambda s: s.initialize(other, 0, 0))  # offset 2
    before = h.shard().states[KEY]
    assert h.shard().last_redundant_offset() == 0
    h.write(lambda s: s.snapshot_cold(1000))  # KEY is 1000 ms old, `other` is new
    after = h.shard().states[KEY]
    assert after.snapshot_epoch == before.snapshot_epoch + 1
    assert (after.batches, after.start_offset) == (before.batches, before.start_offset)
    assert h.shard().last_redundant_offset() == 2
    h.restart()
    assert h.shard().states[KEY].batches == before.batches


def test_records_round_trip() -> None:
    snapshot = rec.Snapshot(2, 3, 4, 50, -1, 111, 222, (batch(50, 60, ARC, 5),))
    k, v = rec.snapshot_record(KEY, snapshot)
    assert rec.decode_key(k) == (rec.SNAPSHOT_TYPE, KEY)
    assert rec.decode_snapshot(v) == snapshot
    update = rec.Update(2, -1, -1, 9, (batch(61, 61, ACK, 1),))
    k, v = rec.update_record(KEY, update)
    assert rec.decode_key(k) == (rec.UPDATE_TYPE, KEY)
    assert rec.decode_update(v) == update
    # Kafka's layout: int16 type, then group id (int16 length), 16-byte uuid, int32.
    assert k == b"\x00\x01" + b"\x00\x01g" + TOPIC_ID.bytes + b"\x00\x00\x00\x00"


def test_coordinator_key_is_kafkas() -> None:
    # Kafka's Uuid.toString is URL-safe base64 without padding.
    assert coordinator_key("g", TOPIC_ID, 3) == "g:EjRWeBI0VngSNFZ4EjRWeA:3"
    assert parse_coordinator_key("a:b:EjRWeBI0VngSNFZ4EjRWeA:3") == ("a:b", TOPIC_ID, 3)
    for bad in ("g:EjRWeBI0VngSNFZ4EjRWeA", ":EjRWeBI0VngSNFZ4EjRWeA:1", "g:xx:1",
                "g:EjRWeBI0VngSNFZ4EjRWeA:-1", "g:EjRWeBI0VngSNFZ4EjRWeA:x"):
        assert parse_coordinator_key(bad) is None


_batches = st.lists(st.builds(
    lambda first, length, state, count: StateBatch(first, first + length, state, count),
    st.integers(0, 40), st.integers(0, 8), st.sampled_from([A, ACK, ARC]), st.integers(0, 4)),
    max_size=8)


@given(_batches, st.integers(-1, 30))
def test_combine_matches_the_per_offset_rule(batches: list[StateBatch], start: int) -> None:
    """Per offset: the highest (delivery count, state) of the runs covering it;
    nothing below the start offset; adjacent equal runs joined."""
    combined = combine(batches, start)
    expected: dict[int, tuple[int, int]] = {}
    for b in batches:
        for offset in range(b.first_offset, b.last_offset + 1):
            if start != -1 and offset < start:
                continue
            rank = (b.delivery_count, int(b.delivery_state))
            expected[offset] = max(expected.get(offset, rank), rank)
    got: dict[int, tuple[int, int]] = {}
    for b in combined:
        for offset in range(b.first_offset, b.last_offset + 1):
            assert offset not in got
            got[offset] = (b.delivery_count, int(b.delivery_state))
    assert got == expected
    for left, right in zip(combined, combined[1:], strict=False):
        assert left.last_offset < right.first_offset
        assert not (left.last_offset + 1 == right.first_offset
                    and (left.delivery_count, left.delivery_state)
                    == (right.delivery_count, right.delivery_state))


class _PrunedLog(MemoryLog):
    """A MemoryLog whose start moves forward, as DeleteRecords moves a partition's."""

    def __init__(self) -> None:
        super().__init__()
        self.start = 0

    @property
    def log_start_offset(self) -> int:
        return self.start


_ops = st.lists(st.one_of(
    st.tuples(st.just("init"), st.integers(0, 1), st.integers(0, 3), st.integers(-1, 20)),
    st.tuples(st.just("write"), st.integers(0, 1), st.integers(-1, 25), _batches),
    st.tuples(st.just("read"), st.integers(0, 1), st.integers(0, 4)),
    st.tuples(st.just("delete"), st.integers(0, 1)),
    st.tuples(st.just("cold"), st.integers(0, 1)),
    st.tuples(st.just("prune"),),
), max_size=25)


@given(_ops)
def test_replay_after_pruning_gives_the_same_state(ops: list[tuple[Any, ...]]) -> None:
    """Any sequence of operations, with the log pruned at last_redundant_offset
    at any point: loading what is left gives the state the coordinator had."""
    h = ShareHarness(updates_per_snapshot=2)
    try:
        h.log = _PrunedLog()
        h.restart()
        keys = [KEY, rec.ShareKey("h", TOPIC_ID, 1)]
        for op in ops:
            kind = op[0]
            try:
                if kind == "init":
                    h.write(lambda s, o=op: s.initialize(keys[o[1]], o[2], o[3]))
                elif kind == "write":
                    key = keys[op[1]]
                    epoch = h.shard().state_epochs.get(key, 0)
                    h.write(lambda s, o=op, k=key, e=epoch: s.write(
                        k, WriteData(e, 4, o[2], tuple(o[3]))))
                elif kind == "read":
                    h.write(lambda s, o=op: s.read(keys[o[1]], o[2]))
                elif kind == "delete":
                    h.write(lambda s, o=op: s.delete(keys[o[1]]))
                elif kind == "cold":
                    h.clock.advance(10)
                    h.write(lambda s: s.snapshot_cold(10))
                else:
                    assert isinstance(h.log, _PrunedLog)
                    h.log.start = max(h.log.start, h.shard().last_redundant_offset())
            except (UninitializedShareStateError, FencedLeaderEpochError,
                    FencedStateEpochError):
                pass
        shard = h.shard()
        before = (dict(shard.states), dict(shard.leader_epochs), dict(shard.state_epochs))
        h.restart()
        shard = h.shard()
        assert (dict(shard.states), dict(shard.leader_epochs), dict(shard.state_epochs)) == \
            before
    finally:
        h.run(h.runtime.close())
        h.loop.close()
