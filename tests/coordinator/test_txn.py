"""The transaction coordinator's state machine, records and shard, on the real runtime
with the log and time in memory (tests/coordinator/harness.py)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from strom.clock import ManualClock
from strom.coordinator.runtime import CoordinatorRuntime, Timer
from strom.coordinator.txn import records as rec
from strom.coordinator.txn.shard import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    InvalidTransactionTimeoutError,
    TxnConfig,
    TxnCoordinatorShard,
)
from strom.coordinator.txn.state import (
    TRANSITIONS,
    TransactionMetadata,
    TxnState,
)
from strom.errors import ErrorCode, InvalidTxnStateError, ProducerFencedError
from strom.protocol.records import RecordSpec, build_batch
from strom.storage.producer_state import ProducerStateManager
from strom.storage.txn_index import AbortedTxn, TxnIndex

from .harness import ManualScheduler, MemoryLog


class TxnHarness:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.log = MemoryLog()
        self.ids = itertools.count(1000)
        self.driven: list[TransactionMetadata] = []
        self.loop = asyncio.new_event_loop()
        self.config = TxnConfig(max_timeout_ms=60000, abort_check_interval_ms=100)
        self._start()

    def _start(self) -> None:
        self.scheduler = ManualScheduler(self.clock)
        self.runtime: CoordinatorRuntime[TxnCoordinatorShard] = CoordinatorRuntime(
            "txn", self._shard, self.clock, scheduler=self.scheduler)

        async def load() -> None:
            self.runtime.load(0, self.log)
            await self.runtime.wait_loaded()
        self.run(load())

    def _shard(self, partition: int, timer: Timer) -> TxnCoordinatorShard:
        return TxnCoordinatorShard(partition, timer, self.config, self.clock,
                                   lambda: next(self.ids),
                                   lambda p, m: self.driven.append(m))

    def restart(self) -> None:
        self.run(self.runtime.close())
        self.driven.clear()
        self._start()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def write(self, op: Any) -> Any:
        return self.run(self.runtime.write(0, op))

    def state(self, tid: str) -> TransactionMetadata:
        m = self.runtime.read(0, lambda s: s.describe(tid))
        assert m is not None
        return m

    def advance(self, ms: int) -> None:
        async def advance() -> None:
            self.scheduler.advance(ms)
            for _ in range(5):  # let the durability follow-ups run
                await asyncio.sleep(0)
        self.run(advance())


@pytest.fixture
def h() -> Any:
    harness = TxnHarness()
    yield harness
    harness.run(harness.runtime.close())
    harness.loop.close()


def test_records_round_trip() -> None:
    m = TransactionMetadata("tid", 7, 3, 60000, TxnState.ONGOING,
                            frozenset({("a", 0), ("a", 2), ("b", 1)}), start_ms=5,
                            last_update_ms=9, previous_producer_id=4)
    key, value = rec.encode(m)
    assert rec.decode_key(key) == "tid"
    back = rec.decode_value("tid", value)
    assert back == m
    # v1 starts with its version; untagged defaults are not written.
    assert value[:2] == b"\x00\x01"


def test_transitions_are_checked_in_one_place() -> None:
    m = TransactionMetadata("tid", 1, 0, 1000, TxnState.EMPTY)
    with pytest.raises(InvalidTxnStateError):
        m.transition(TxnState.PREPARE_COMMIT)
    for state, targets in TRANSITIONS.items():
        for target in TxnState:
            start = TransactionMetadata("tid", 1, 0, 1000, state)
            if target in targets:
                assert start.transition(target).state is target
            else:
                with pytest.raises(InvalidTxnStateError):
                    start.transition(target)


def test_init_add_commit_complete(h: TxnHarness) -> None:
    code, pid, epoch = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    assert (code, epoch) == (ErrorCode.none, 0)
    h.write(lambda s: s.add_partitions("t", pid, 0, [("x", 0), ("x", 1)]))
    assert h.state("t").state is TxnState.ONGOING
    h.write(lambda s: s.end_transaction("t", pid, 0, True))
    assert h.state("t").state is TxnState.PREPARE_COMMIT
    assert [m.partitions for m in h.driven] == [frozenset({("x", 0), ("x", 1)})]
    with pytest.raises(ConcurrentTransactionsError):
        h.write(lambda s: s.add_partitions("t", pid, 0, [("x", 0)]))
    h.write(lambda s: s.complete("t", pid, 0))
    assert h.state("t").state is TxnState.COMPLETE_COMMIT
    h.write(lambda s: s.end_transaction("t", pid, 0, True))  # a retry succeeds
    with pytest.raises(InvalidTxnStateError):
        h.write(lambda s: s.end_transaction("t", pid, 0, False))


def test_second_init_fences_and_aborts(h: TxnHarness) -> None:
    _, pid, _ = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    h.write(lambda s: s.add_partitions("t", pid, 0, [("x", 0)]))
    code, _, _ = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    assert code == ErrorCode.concurrent_transactions
    m = h.state("t")
    assert (m.state, m.producer_epoch) == (TxnState.PREPARE_ABORT, 1)
    assert h.driven[-1].producer_epoch == 1  # markers fence epoch 0
    with pytest.raises(ProducerFencedError):
        h.write(lambda s: s.end_transaction("t", pid, 0, True))
    h.write(lambda s: s.complete("t", pid, 1))
    code, pid2, epoch = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    assert (code, pid2, epoch) == (ErrorCode.none, pid, 2)


def test_errors(h: TxnHarness) -> None:
    with pytest.raises(InvalidTransactionTimeoutError):
        h.write(lambda s: s.init_producer_id("t", 10**9, -1, -1))
    with pytest.raises(InvalidProducerIdMappingError):
        h.write(lambda s: s.add_partitions("nobody", 1, 0, [("x", 0)]))
    _, pid, _ = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    with pytest.raises(InvalidTxnStateError):
        h.write(lambda s: s.end_transaction("t", pid, 0, True))  # nothing open


def test_timeout_aborts_with_bumped_epoch(h: TxnHarness) -> None:
    _, pid, _ = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    h.write(lambda s: s.add_partitions("t", pid, 0, [("x", 0)]))
    h.advance(500)
    assert h.state("t").state is TxnState.ONGOING
    h.advance(700)
    m = h.state("t")
    assert (m.state, m.producer_epoch) == (TxnState.PREPARE_ABORT, 1)
    assert h.driven[-1] == m


def test_replay_after_restart_resumes_prepared(h: TxnHarness) -> None:
    _, pid, _ = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    h.write(lambda s: s.add_partitions("t", pid, 0, [("x", 0)]))
    h.write(lambda s: s.end_transaction("t", pid, 0, False))
    h.restart()
    m = h.state("t")
    assert m.state is TxnState.PREPARE_ABORT
    assert h.driven == [m]  # markers are driven again after a restart


def test_kip360_bump_and_retry(h: TxnHarness) -> None:
    _, pid, _ = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    code, _, epoch = h.write(lambda s: s.init_producer_id("t", 1000, pid, 0))
    assert (code, epoch) == (ErrorCode.none, 1)
    code, _, epoch = h.write(lambda s: s.init_producer_id("t", 1000, pid, 0))  # retry
    assert (code, epoch) == (ErrorCode.none, 1)
    with pytest.raises(ProducerFencedError):
        h.write(lambda s: s.init_producer_id("t", 1000, pid + 1, 0))


# -- storage: the aborted-transaction index and open transactions -----------------------


def test_txn_index_model(tmp_path: Path) -> None:
    index = TxnIndex(tmp_path)
    model: list[AbortedTxn] = []
    for i in range(40):
        entry = AbortedTxn(i % 3, i * 10, i * 10 + 5, i * 10 + 6)
        index.append(entry, (i // 10) * 100)
        model.append(entry)
    index.append(model[3], 0)  # a replayed marker is not indexed twice
    for fetch, upper in ((0, 1000), (33, 57), (400, 500), (395, 396)):
        expected = [e for e in model if e.last_offset >= fetch and e.first_offset < upper]
        assert index.collect(fetch, upper) == expected
    assert TxnIndex(tmp_path).entries == model  # reloaded from the files
    index.truncate(205)
    assert TxnIndex(tmp_path).entries == [e for e in model if e.last_offset < 205]
    # Kafka's 34-byte entries
    assert (tmp_path / f"{0:020d}.txnindex").stat().st_size == 10 * 34


def _txn_batch(pid: int, epoch: int, seq: int) -> Any:
    from strom.protocol.records import read_batch_header
    return read_batch_header(build_batch([RecordSpec(key=b"k", value=b"v")], producer_id=pid,
                                         producer_epoch=epoch, base_sequence=seq,
                                         transactional=True))


def test_first_unstable_offset_survives_snapshot(tmp_path: Path) -> None:
    import dataclasses
    state = ProducerStateManager(tmp_path)
    state.update(dataclasses.replace(_txn_batch(1, 0, 0), base_offset=5), 5, 0)
    state.update(dataclasses.replace(_txn_batch(2, 0, 0), base_offset=6), 6, 0)
    state.update(dataclasses.replace(_txn_batch(1, 0, 1), base_offset=7), 7, 0)
    assert state.first_unstable_offset == 5
    state.take_snapshot()
    again = ProducerStateManager(tmp_path)
    again.load_latest_snapshot(100)
    assert again.first_unstable_offset == 5
    assert again.entries[2].current_txn_first_offset == 6


def test_transaction_version_2_bumps_epoch_at_every_end(h: TxnHarness) -> None:
    _, pid, _ = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    h.write(lambda s: s.add_partitions("t", pid, 0, [("x", 0)]))
    assert h.write(lambda s: s.end_transaction("t", pid, 0, True, 2)) == (pid, 1)
    m = h.state("t")
    assert (m.state, m.producer_epoch, m.transaction_version) == (TxnState.PREPARE_COMMIT, 1, 2)
    assert h.driven[-1].producer_epoch == 1  # markers carry the new epoch
    with pytest.raises(ConcurrentTransactionsError):  # a retry while markers are written
        h.write(lambda s: s.end_transaction("t", pid, 0, True, 2))
    h.write(lambda s: s.complete("t", pid, 1))
    assert h.write(lambda s: s.end_transaction("t", pid, 0, True, 2)) == (pid, 1)  # retry
    with pytest.raises(ProducerFencedError):  # the old epoch cannot start anything
        h.write(lambda s: s.add_partitions("t", pid, 0, [("x", 0)]))
    # Version 2 may abort a transaction that added nothing.
    assert h.write(lambda s: s.end_transaction("t", pid, 1, False, 2)) == (pid, 2)
    assert h.driven[-1].partitions == frozenset()
    with pytest.raises(ConcurrentTransactionsError):  # the abort is still completing
        h.write(lambda s: s.end_transaction("t", pid, 2, True, 2))
    h.write(lambda s: s.complete("t", pid, 2))
    with pytest.raises(InvalidTxnStateError):  # nothing to commit
        h.write(lambda s: s.end_transaction("t", pid, 2, True, 2))


def test_idle_transactional_id_expires() -> None:
    harness = TxnHarness()
    harness.config = TxnConfig(abort_check_interval_ms=100, transactional_id_expiration_ms=5000)
    harness.restart()
    try:
        _, pid, _ = harness.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
        harness.advance(4000)
        assert harness.runtime.read(0, lambda s: s.describe("t")) is not None
        harness.advance(2000)
        assert harness.runtime.read(0, lambda s: s.describe("t")) is None
        harness.restart()  # the tombstone is replayed too
        assert harness.runtime.read(0, lambda s: s.describe("t")) is None
        _, pid2, epoch = harness.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
        assert pid2 != pid and epoch == 0
    finally:
        harness.run(harness.runtime.close())
        harness.loop.close()


def test_requests_while_completing_wait_for_it(h: TxnHarness) -> None:
    """Until its markers are written, a transaction's id answers CONCURRENT_TRANSACTIONS
    to its producer, which already holds the epoch EndTxn v5 answered (Kafka's pending
    transition to the COMPLETE state). franz-go ends its next transaction right away
    when it has nothing to commit; INVALID_TXN_STATE there ended its session."""
    _, pid, _ = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    h.write(lambda s: s.add_partitions("t", pid, 0, [("x", 0)]))
    assert h.write(lambda s: s.end_transaction("t", pid, 0, True, 2)) == (pid, 1)
    for request in (lambda s: s.end_transaction("t", pid, 1, False, 2),  # the next txn
                    lambda s: s.end_transaction("t", pid, 1, True, 2),
                    lambda s: s.end_transaction("t", pid, 0, True, 2),   # a retry
                    lambda s: s.add_partitions("t", pid, 1, [("x", 1)]),
                    lambda s: s.add_partitions("t", pid, 0, [("x", 1)])):  # a late batch
        with pytest.raises(ConcurrentTransactionsError):
            h.write(request)
    h.write(lambda s: s.complete("t", pid, 1))
    assert h.write(lambda s: s.end_transaction("t", pid, 1, False, 2)) == (pid, 2)
    h.write(lambda s: s.complete("t", pid, 2))
    with pytest.raises(ProducerFencedError):  # INVALID_PRODUCER_EPOCH on produce
        h.write(lambda s: s.add_partitions("t", pid, 1, [("x", 0)]))
    # Version 1 alike: the other result waits too (Kafka's pending transition).
    _, pid1, _ = h.write(lambda s: s.init_producer_id("v1", 1000, -1, -1))
    h.write(lambda s: s.add_partitions("v1", pid1, 0, [("x", 0)]))
    h.write(lambda s: s.end_transaction("v1", pid1, 0, True))
    with pytest.raises(ConcurrentTransactionsError):
        h.write(lambda s: s.end_transaction("v1", pid1, 0, False))
    with pytest.raises(ProducerFencedError):
        h.write(lambda s: s.end_transaction("v1", pid1, 1, False))


def _seed(h: TxnHarness, m: TransactionMetadata) -> None:
    """Install metadata as if it had been written: the coordinator replays it."""
    from strom.coordinator.runtime import Result
    h.write(lambda s: Result(None, [rec.encode(m)]))


def test_epoch_exhaustion_moves_to_a_new_producer_id(h: TxnHarness) -> None:
    """KIP-890 part 2: the end of a transaction at epoch Short.MAX_VALUE - 1 writes its
    markers at Short.MAX_VALUE and answers a new producer id at epoch 0."""
    pid, last = 7, 32766
    _seed(h, TransactionMetadata("t", pid, last - 1, 1000, TxnState.COMPLETE_COMMIT,
                                 transaction_version=2))
    h.write(lambda s: s.add_partitions("t", pid, last - 1, [("x", 0)]))
    assert h.write(lambda s: s.end_transaction("t", pid, last - 1, True, 2)) == (pid, last)
    h.write(lambda s: s.complete("t", pid, last))
    h.write(lambda s: s.add_partitions("t", pid, last, [("x", 0)]))
    new_pid, epoch = h.write(lambda s: s.end_transaction("t", pid, last, False, 2))
    assert new_pid not in (pid, -1) and epoch == 0
    m = h.state("t")
    assert (m.state, m.producer_id, m.producer_epoch, m.next_producer_id) == (
        TxnState.PREPARE_ABORT, pid, 32767, new_pid)
    assert (h.driven[-1].producer_id, h.driven[-1].producer_epoch) == (pid, 32767)
    with pytest.raises(ConcurrentTransactionsError):  # the new id waits for the markers
        h.write(lambda s: s.add_partitions("t", new_pid, 0, [("x", 0)]))
    h.write(lambda s: s.complete("t", pid, 32767))
    m = h.state("t")
    assert (m.state, m.producer_id, m.producer_epoch, m.previous_producer_id) == (
        TxnState.COMPLETE_ABORT, new_pid, 0, pid)
    # A retry of that EndTxn gets the same answer; the old id is done.
    assert h.write(lambda s: s.end_transaction("t", pid, last, False, 2)) == (new_pid, 0)
    with pytest.raises(InvalidProducerIdMappingError):
        h.write(lambda s: s.add_partitions("t", pid, last, [("x", 0)]))
    h.restart()
    h.write(lambda s: s.add_partitions("t", new_pid, 0, [("x", 0)]))
    assert h.state("t").state is TxnState.ONGOING
    assert h.write(lambda s: s.end_transaction("t", new_pid, 0, True, 2)) == (new_pid, 1)


def test_fencing_abort_at_the_last_epoch_still_bumps(h: TxnHarness) -> None:
    pid = 7
    _seed(h, TransactionMetadata("t", pid, 32766, 1000, TxnState.ONGOING,
                                 partitions=frozenset({("x", 0)}), start_ms=0))
    code, _, _ = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    assert code == ErrorCode.concurrent_transactions
    m = h.state("t")
    assert (m.state, m.producer_id, m.producer_epoch) == (TxnState.PREPARE_ABORT, pid, 32767)
    h.write(lambda s: s.complete("t", pid, 32767))
    code, new_pid, epoch = h.write(lambda s: s.init_producer_id("t", 1000, -1, -1))
    assert code == ErrorCode.none and new_pid != pid and epoch == 0
