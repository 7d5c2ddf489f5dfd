"""Idempotent producer state: sequence checks, retries, epochs, snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from strom.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from strom.protocol.records import (
    ControlRecordType,
    RecordSpec,
    build_batch,
    build_control_batch,
    read_batch_header,
)
from strom.storage.producer_state import MAX_SEQUENCE, ProducerStateManager


def header(pid: int, epoch: int, seq: int, count: int = 1, base_offset: int = 0):  # type: ignore[no-untyped-def]
    batch = build_batch([RecordSpec(value=b"x")] * count, producer_id=pid, producer_epoch=epoch,
                        base_sequence=seq, base_offset=base_offset)
    return read_batch_header(batch)


def test_in_sequence_batches_and_retry_of_last_five(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    offset = 0
    for seq in range(0, 30, 3):
        h = header(7, 0, seq, count=3)
        assert state.check(h) is None
        state.update(h, offset, 1000)
        offset += 3
    # The last five batches are recognised as retries with their first offset.
    for back in range(5):
        seq = 27 - 3 * back
        dup = state.check(header(7, 0, seq, count=3))
        assert dup is not None and dup.first_offset == seq
    with pytest.raises(OutOfOrderSequenceError):
        state.check(header(7, 0, 12, count=3))  # older than the last five
    with pytest.raises(OutOfOrderSequenceError):
        state.check(header(7, 0, 31))  # a gap


def test_epochs(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    state.update(header(1, 3, 0), 0, 1)
    with pytest.raises(InvalidProducerEpochError):
        state.check(header(1, 2, 1))
    with pytest.raises(OutOfOrderSequenceError):
        state.check(header(1, 4, 5))  # a new epoch starts at 0
    assert state.check(header(1, 4, 0)) is None


def test_unknown_producer_may_start_anywhere_and_sequence_wraps(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    h = header(5, 0, MAX_SEQUENCE)
    assert state.check(h) is None
    state.update(h, 0, 1)
    assert state.check(header(5, 0, 0)) is None


def test_snapshot_round_trip_and_corrupt_snapshot_ignored(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    state.update(header(9, 2, 0, count=4), 10, 123)
    state.update(header(-1, -1, -1), 14, 124)
    path = state.take_snapshot()
    assert path.name == "00000000000000000015.snapshot"
    loaded = ProducerStateManager(tmp_path)
    loaded.load_latest_snapshot(100)
    assert loaded.map_end_offset == 15
    dup = loaded.check(header(9, 2, 0, count=4))
    assert dup is not None and dup.first_offset == 10 and dup.last_offset == 13
    assert loaded.check(header(9, 2, 4)) is None
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    damaged = ProducerStateManager(tmp_path)
    damaged.load_latest_snapshot(100)
    assert damaged.entries == {} and damaged.map_end_offset == 0
    assert not path.exists()


def test_expiry(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    state.update(header(1, 0, 0), 0, 1_000)
    state.update(header(2, 0, 0), 1, 50_000)
    assert state.expire(now_ms=60_000, expiration_ms=30_000) == 1
    assert set(state.entries) == {2}


def txn_header(pid: int, epoch: int, seq: int, count: int = 1):  # type: ignore[no-untyped-def]
    batch = build_batch([RecordSpec(value=b"x")] * count, producer_id=pid, producer_epoch=epoch,
                        base_sequence=seq, transactional=True)
    return read_batch_header(batch)


def marker_header(pid: int, epoch: int, commit: bool):  # type: ignore[no-untyped-def]
    return read_batch_header(build_control_batch(
        ControlRecordType.COMMIT if commit else ControlRecordType.ABORT,
        producer_id=pid, producer_epoch=epoch, coordinator_epoch=0, timestamp=1))


def test_epoch_bumped_by_a_marker_starts_at_sequence_zero(tmp_path: Path) -> None:
    """Transaction version 2 (KIP-890) writes a transaction's marker with the
    bumped epoch, so the producer's entry here has that epoch and no sequence
    yet. Its next transaction must start at 0: a later batch whose first batch
    was refused (a pipelined produce verified after the first one failed
    verification) is out of order, as in Kafka, not the start of the epoch;
    accepted, it made the first batch's retry out of order for good
    (TestTxnEtl against a cluster)."""
    state = ProducerStateManager(tmp_path)
    first = txn_header(4, 0, 0, count=4)
    state.update(first, 0, 1)
    state.update(marker_header(4, 1, commit=False), 4, 2)
    assert state.entries[4].epoch == 1 and state.entries[4].current_txn_first_offset == -1
    with pytest.raises(OutOfOrderSequenceError):
        state.check(txn_header(4, 1, 276, count=2))
    assert state.check(txn_header(4, 1, 0, count=276)) is None


def test_transaction_version_1_continues_its_sequence_across_markers(tmp_path: Path) -> None:
    """Transaction version 1 keeps its epoch across transactions: the marker
    has the producer's epoch and its sequence goes on where it was."""
    state = ProducerStateManager(tmp_path)
    state.update(txn_header(6, 2, 0, count=3), 0, 1)
    state.update(marker_header(6, 2, commit=True), 3, 2)
    assert state.check(txn_header(6, 2, 3)) is None
    with pytest.raises(OutOfOrderSequenceError):
        state.check(txn_header(6, 2, 0))


@pytest.mark.parametrize("seed", range(6))
def test_first_unstable_offset_follows_every_change(tmp_path: Path, seed: int) -> None:
    """The kept first unstable offset equals a scan of every producer after
    any mix of transactional batches, markers, plain batches, epoch bumps,
    snapshots, truncation and expiry (each of which can move it or not)."""
    import random

    rng = random.Random(seed)
    state = ProducerStateManager(tmp_path / str(seed))
    (tmp_path / str(seed)).mkdir()
    offset = 0
    epochs = {pid: 0 for pid in range(4)}
    sequences = {pid: 0 for pid in range(4)}

    def scanned() -> int | None:
        open_ = [e.current_txn_first_offset for e in state.entries.values()
                 if e.current_txn_first_offset >= 0]
        return min(open_) if open_ else None

    for _ in range(300):
        pid = rng.randrange(4)
        op = rng.random()
        if op < 0.35:
            state.update(txn_header(pid, epochs[pid], sequences[pid]), offset, offset)
            sequences[pid] += 1
            offset += 1
        elif op < 0.55:
            bump = rng.random() < 0.3
            epochs[pid] += bump
            sequences[pid] = 0 if bump else sequences[pid]
            state.update(marker_header(pid, epochs[pid], commit=rng.random() < 0.5), offset,
                         offset)
            offset += 1
        elif op < 0.75:
            state.update(header(pid + 10, 0, sequences[pid], base_offset=offset), offset, offset)
            sequences[pid] += 1
            offset += 1
        elif op < 0.82:
            state.take_snapshot()
        elif op < 0.9:
            state.truncate(0, rng.randint(0, offset))
            # Replayed state is not rebuilt here: later batches just go on.
        elif op < 0.95:
            state.expire(now_ms=offset, expiration_ms=rng.randint(0, 50))
        else:
            state.truncate_fully_and_start_at(offset)
        assert state.first_unstable_offset == scanned()
