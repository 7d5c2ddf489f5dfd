"""The log's two entry points: append_as_leader (producer checks, offsets
assigned) and append_as_follower (batches as the leader wrote them). Both
keep the producer state and the transaction index with the bytes; a follower
that copies a leader's log ends with the leader's state."""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_helpers import T0, open_log

from strom.errors import CorruptRecordError, InvalidProducerEpochError, OutOfOrderSequenceError
from strom.protocol.records import (
    ControlRecordType,
    RecordSpec,
    build_batch,
    build_control_batch,
    read_batch_header,
)
from strom.storage.log import AppendInfo, AppendOrigin, PartitionLog, UnexpectedAppendOffsetError
from strom.storage.txn_index import AbortedTxn

IDEMPOTENT, TXN_ABORTED, TXN_COMMITTED = 7, 9, 11
EPOCH = 3


def produced(producer_id: int, base_sequence: int, count: int = 2, *,
             transactional: bool = False, epoch: int = 0) -> bytearray:
    specs = [RecordSpec(key=b"k", value=b"v%d" % i, timestamp=T0 + i) for i in range(count)]
    return bytearray(build_batch(specs, producer_id=producer_id, producer_epoch=epoch,
                                 base_sequence=base_sequence, transactional=transactional))


def lead(log: PartitionLog, buf: bytearray,
         origin: AppendOrigin = AppendOrigin.CLIENT) -> AppendInfo:
    header = read_batch_header(buf)
    return log.append_as_leader(memoryview(buf), header, leader_epoch=EPOCH,
                                max_timestamp=header.max_timestamp,
                                offset_delta_of_max_timestamp=header.last_offset_delta,
                                now_ms=T0, origin=origin)


def marker(log: PartitionLog, producer_id: int, kind: ControlRecordType) -> AppendInfo:
    buf = bytearray(build_control_batch(kind, producer_id=producer_id, producer_epoch=0,
                                        coordinator_epoch=5, timestamp=T0))
    return lead(log, buf, AppendOrigin.COORDINATOR)


def leader_log(directory: Path) -> PartitionLog:
    """Idempotent batches, an aborted and a committed transaction, and one left open."""
    log = open_log(directory)
    lead(log, produced(IDEMPOTENT, 0))
    lead(log, produced(TXN_ABORTED, 0, transactional=True))
    lead(log, produced(IDEMPOTENT, 2))
    marker(log, TXN_ABORTED, ControlRecordType.ABORT)
    lead(log, produced(TXN_COMMITTED, 0, transactional=True))
    marker(log, TXN_COMMITTED, ControlRecordType.COMMIT)
    lead(log, produced(TXN_ABORTED, 2, transactional=True))  # open
    return log


def everything(log: PartitionLog) -> bytes:
    return log.read(log.log_start_offset, 1 << 20, max_offset=log.log_end_offset,
                    min_one_batch=True).to_bytes()


def producer_view(log: PartitionLog) -> dict[int, tuple[int, int, int, int]]:
    return {pid: (e.epoch, e.last_sequence, e.current_txn_first_offset, e.coordinator_epoch)
            for pid, e in log.producer_state.entries.items()}


def test_a_follower_copying_the_leader_has_its_producer_state_and_aborted_transactions(
        tmp_path: Path) -> None:
    leader = leader_log(tmp_path / "leader-0")
    follower = open_log(tmp_path / "follower-0")
    info = follower.append_as_follower(memoryview(everything(leader)))
    assert info is not None
    assert (info.first_offset, info.last_offset) == (0, leader.log_end_offset - 1)
    assert everything(follower) == everything(leader)
    assert follower.latest_epoch() == EPOCH
    assert producer_view(follower) == producer_view(leader)
    assert follower.producer_state.first_unstable_offset == \
        leader.producer_state.first_unstable_offset == 10
    assert follower.txn_index.entries == leader.txn_index.entries == [
        AbortedTxn(TXN_ABORTED, 2, 6, 7)]
    # Reopened, each rebuilds the same state from its bytes.
    for log, name in ((leader, "leader-0"), (follower, "follower-0")):
        log.close(flush=True)
        again = open_log(tmp_path / name)
        assert producer_view(again) == producer_view(follower)
        assert again.txn_index.entries == [AbortedTxn(TXN_ABORTED, 2, 6, 7)]
        again.close()


def test_the_follower_makes_no_sequence_checks_the_leader_does(tmp_path: Path) -> None:
    leader = open_log(tmp_path / "leader-0")
    lead(leader, produced(IDEMPOTENT, 0))
    with pytest.raises(OutOfOrderSequenceError):
        lead(leader, produced(IDEMPOTENT, 5))
    retry = lead(leader, produced(IDEMPOTENT, 0))
    assert retry.duplicate and (retry.first_offset, retry.last_offset) == (0, 1)
    assert leader.log_end_offset == 2
    # An epoch older than the producer's newest is fenced, whoever writes it.
    lead(leader, produced(TXN_COMMITTED, 0, epoch=1))
    with pytest.raises(InvalidProducerEpochError):
        lead(leader, produced(TXN_COMMITTED, 0, epoch=0), AppendOrigin.COORDINATOR)

    follower = open_log(tmp_path / "follower-0")
    follower.append_as_follower(memoryview(everything(leader)))
    gap = produced(IDEMPOTENT, 5)  # out of sequence: the follower takes what the leader wrote
    gap[0:8] = follower.log_end_offset.to_bytes(8, "big")
    follower.append_as_follower(memoryview(gap))
    assert follower.producer_state.entries[IDEMPOTENT].last_sequence == 6


def test_a_follower_append_writes_nothing_unless_every_batch_is_whole_and_in_order(
        tmp_path: Path) -> None:
    leader = leader_log(tmp_path / "leader-0")
    data = bytearray(everything(leader))
    follower = open_log(tmp_path / "follower-0")
    damaged = bytearray(data)
    damaged[-3] ^= 0xFF  # a record byte of the last batch: its CRC fails
    with pytest.raises(CorruptRecordError):
        follower.append_as_follower(memoryview(damaged))
    with pytest.raises(CorruptRecordError):
        follower.append_as_follower(memoryview(data[:-1]))  # a torn last batch
    assert follower.log_end_offset == 0 and follower.producer_state.entries == {}
    assert follower.append_as_follower(memoryview(b"")) is None
    follower.append_as_follower(memoryview(data))
    end = follower.log_end_offset
    with pytest.raises(UnexpectedAppendOffsetError):
        follower.append_as_follower(memoryview(data))  # offsets below the log end
    assert follower.log_end_offset == end


def test_truncation_takes_the_producer_state_back_with_the_bytes(tmp_path: Path) -> None:
    log = leader_log(tmp_path / "t-0")
    log.producer_state.take_snapshot()  # a snapshot past the truncation point is dropped
    log.truncate_to(6)  # before the ABORT marker at 6
    assert log.txn_index.entries == []
    assert log.producer_state.entries[TXN_ABORTED].current_txn_first_offset == 2
    assert log.producer_state.first_unstable_offset == 2
    assert log.producer_state.entries[IDEMPOTENT].last_sequence == 3
    assert TXN_COMMITTED not in log.producer_state.entries
    log.truncate_fully_and_start_at(100)
    assert log.producer_state.entries == {}
    assert log.producer_state.snapshot_files() == []
    lead(log, produced(IDEMPOTENT, 9))  # a producer unknown here may start anywhere
    assert log.producer_state.entries[IDEMPOTENT].batches[-1].first_offset == 100
