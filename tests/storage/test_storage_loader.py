"""Crash recovery: what the loader makes of what a crash leaves behind."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from storage_helpers import (
    T0,
    append,
    crash,
    headers,
    make_batch,
    open_log,
    read_all,
    segment_files,
)

from strom.storage import files
from strom.storage.log import LogConfig, PartitionLog

BATCH = len(make_batch([b"x" * 20, b"y" * 20]))
# Four batches a segment; every batch but the first indexed.
CONFIG = LogConfig(segment_bytes=BATCH * 4, index_interval_bytes=1)


def build(tmp_path: Path, batches: int = 10, *, epoch: int = 0) -> PartitionLog:
    log = open_log(tmp_path / "t-0", CONFIG)
    for i in range(batches):
        append(log, [b"x" * 20, b"y" * 20], [T0 + 2 * i, T0 + 2 * i + 1], epoch=epoch)
    return log


def reopen(tmp_path: Path, *, clean: bool = False, recovery_point: int = 0,
           log_start_offset: int = 0, config: LogConfig = CONFIG) -> PartitionLog:
    return open_log(tmp_path / "t-0", config, had_clean_shutdown=clean,
                    recovery_point=recovery_point, log_start_offset=log_start_offset)


def log_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "t-0").glob("*.log"))


def offsets(log: PartitionLog) -> list[int]:
    return [r.offset for r in read_all(log)]


def test_clean_restart_keeps_everything(tmp_path: Path) -> None:
    log = build(tmp_path)
    log.flush()
    log.close()
    log = reopen(tmp_path, clean=True, recovery_point=20)
    assert (log.log_end_offset, log.recovery_point) == (20, 20)
    assert offsets(log) == list(range(20))
    log.close()


def test_crash_without_damage_loses_nothing(tmp_path: Path) -> None:
    log = build(tmp_path)
    crash(log)
    log = reopen(tmp_path)
    assert log.log_end_offset == 20 and log.recovery_point == 0
    assert offsets(log) == list(range(20))
    # Recovered bytes may only be in the page cache: the next flush syncs them.
    assert all(segment.dirty for segment in log.segments)
    log.flush()
    assert log.recovery_point == 20
    append(log)
    assert log.log_end_offset == 21
    log.close()


@pytest.mark.parametrize("cut", [1, 11, 30, 60, BATCH - 1])
def test_torn_tail(tmp_path: Path, cut: int) -> None:
    log = build(tmp_path)
    crash(log)
    last = log_files(tmp_path)[-1]
    size = last.stat().st_size
    os.truncate(last, size - BATCH + cut)  # the last batch is cut short
    log = reopen(tmp_path)
    assert log.log_end_offset == 18
    assert offsets(log) == list(range(18))
    assert last.stat().st_size == size - BATCH
    info = append(log)
    assert info.first_offset == 18
    log.close()


def test_garbage_appended(tmp_path: Path) -> None:
    log = build(tmp_path)
    crash(log)
    last = log_files(tmp_path)[-1]
    size = last.stat().st_size
    with open(last, "ab") as f:
        f.write(os.urandom(500))
    log = reopen(tmp_path)
    assert offsets(log) == list(range(20))
    assert last.stat().st_size == size
    log.close()


def test_zeros_after_data_from_preallocation(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=BATCH * 4, preallocate=True)
    log = open_log(tmp_path / "t-0", config)
    for _ in range(6):
        append(log, [b"x" * 20, b"y" * 20])
    crash(log)
    assert log_files(tmp_path)[-1].stat().st_size == BATCH * 4
    log = reopen(tmp_path, config=config)
    assert offsets(log) == list(range(12))
    assert log_files(tmp_path)[-1].stat().st_size == BATCH * 2
    log.close()


def test_flipped_byte_in_a_middle_batch_truncates_there(tmp_path: Path) -> None:
    log = build(tmp_path)  # segments of 4 batches: [0..7] [8..15] [16..19]
    crash(log)
    second = log_files(tmp_path)[1]
    with open(second, "r+b") as f:  # a record byte of the second batch of the segment
        f.seek(BATCH + 70)
        byte = f.read(1)
        f.seek(BATCH + 70)
        f.write(bytes([byte[0] ^ 0x01]))
    log = reopen(tmp_path)
    # Everything before the damaged batch survives; it and all after are gone.
    assert offsets(log) == list(range(10))
    assert log.log_end_offset == 10
    assert [f.name for f in log_files(tmp_path)] == [
        "00000000000000000000.log", "00000000000000000008.log"
    ]
    append(log)
    assert log.log_end_offset == 11
    log.close()


def test_flipped_base_offset_is_caught_by_offset_order(tmp_path: Path) -> None:
    # The CRC does not cover base_offset; offsets must still increase.
    log = build(tmp_path, 4)
    crash(log)
    path = log_files(tmp_path)[0]
    with open(path, "r+b") as f:
        f.seek(2 * BATCH)
        f.write(struct.pack(">q", 1))
    log = reopen(tmp_path)
    assert offsets(log) == [0, 1, 2, 3]
    log.close()


def test_recovery_point_is_honoured(tmp_path: Path) -> None:
    log = build(tmp_path)  # segments start at 0, 8, 16
    log.flush()
    crash(log)
    first, _, last = log_files(tmp_path)
    # Damage below the recovery point goes unnoticed (not re-read)...
    with open(first, "r+b") as f:
        f.seek(70)
        f.write(b"\xff")
    # ...damage above it is found.
    with open(last, "r+b") as f:
        f.seek(BATCH + 70)
        f.write(b"\xff")
    log = reopen(tmp_path, recovery_point=16)
    assert log.log_end_offset == 18
    assert offsets(log)[:2] == [0, 1]
    log.close()


def test_segment_holding_the_recovery_point_is_recovered(tmp_path: Path) -> None:
    log = build(tmp_path)
    crash(log)
    middle = log_files(tmp_path)[1]  # offsets 8..15
    with open(middle, "r+b") as f:
        f.seek(3 * BATCH + 70)
        f.write(b"\xff")
    log = reopen(tmp_path, recovery_point=12)
    assert log.log_end_offset == 14
    log.close()


def test_clean_shutdown_skips_recovery(tmp_path: Path) -> None:
    log = build(tmp_path)
    log.close()
    last = log_files(tmp_path)[-1]
    with open(last, "r+b") as f:
        f.seek(70)
        f.write(b"\xff")
    log = reopen(tmp_path, clean=True)
    assert log.log_end_offset == 20  # not re-read: trusted as cleanly closed
    log.close()


@pytest.mark.parametrize("suffix", [files.INDEX_SUFFIX, files.TIME_INDEX_SUFFIX])
def test_missing_index_is_rebuilt(tmp_path: Path, suffix: str) -> None:
    log = build(tmp_path)
    log.close()
    before = {p.name: p.read_bytes() for p in (tmp_path / "t-0").glob("*index")}
    for path in (tmp_path / "t-0").glob("*" + suffix):
        path.unlink()
    log = reopen(tmp_path, clean=True)
    assert offsets(log) == list(range(20))
    assert log.offset_for_timestamp(T0 + 11) == (11, T0 + 11)
    log.close()
    after = {p.name: p.read_bytes() for p in (tmp_path / "t-0").glob("*index")}
    assert after == before


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data + b"\x01\x02",  # not a multiple of the entry size
        lambda data: data[8:16] + data[:8] + data[16:],  # entries out of order
        lambda data: data + bytes(24),  # preallocated zeros after a crash
        lambda data: data[:-8] + struct.pack(">ii", 6, BATCH * 3),  # last entry wrong
        lambda data: data[:-8] + struct.pack(">ii", 900, 10**6),  # points past the log
    ],
)
def test_corrupt_offset_index_is_rebuilt(tmp_path: Path, damage: object) -> None:
    log = build(tmp_path)
    log.close()
    path = tmp_path / "t-0" / "00000000000000000000.index"
    original = path.read_bytes()
    assert len(original) == 24
    path.write_bytes(damage(original))  # type: ignore[operator]
    log = reopen(tmp_path, clean=True)
    assert path.read_bytes() == original
    for start in range(20):
        assert read_all(log, start)[0].offset == start - start % 2  # 2 records a batch
    log.close()


def test_corrupt_time_index_is_rebuilt(tmp_path: Path) -> None:
    log = build(tmp_path)
    log.close()
    path = tmp_path / "t-0" / "00000000000000000000.timeindex"
    original = path.read_bytes()
    path.write_bytes(struct.pack(">qi", T0 + 500, 3) + struct.pack(">qi", T0, 4))
    log = reopen(tmp_path, clean=True)
    assert path.read_bytes() == original
    assert log.max_timestamp() == (T0 + 19, 19)
    log.close()


def test_crash_loses_the_active_index_and_it_is_rebuilt(tmp_path: Path) -> None:
    log = build(tmp_path)
    assert log.segments[-1].offset_index.entries > 0
    crash(log)
    active_index = tmp_path / "t-0" / "00000000000000000016.index"
    assert active_index.stat().st_size == 0  # its entries were only in memory
    log = reopen(tmp_path, recovery_point=16)
    for start in range(20):
        assert read_all(log, start)[0].offset == start - start % 2  # 2 records a batch
    assert log.offset_for_timestamp(T0 + 17) == (17, T0 + 17)
    assert log.max_timestamp() == (T0 + 19, 19)
    log.close()
    assert active_index.stat().st_size == 8 * log.segments[-1].offset_index.entries


def test_leader_epochs_rederived_after_crash(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", CONFIG)
    append(log, epoch=1)
    log.flush()  # the checkpoint now holds epoch 1 only
    append(log, epoch=2)
    append(log, epoch=4)
    crash(log)
    assert (tmp_path / "t-0" / files.LEADER_EPOCH_CHECKPOINT).read_text() == "0\n1\n1 0\n"
    log = reopen(tmp_path, recovery_point=1)
    assert log.leader_epoch_cache.entries() == [(1, 0), (2, 1), (4, 2)]
    log.close()


def test_epoch_checkpoint_past_the_recovered_end_is_truncated(tmp_path: Path) -> None:
    log = build(tmp_path, 3, epoch=1)
    append(log, epoch=5)
    log.flush()
    crash(log)
    last = log_files(tmp_path)[-1]
    os.truncate(last, last.stat().st_size - 10)  # lose the epoch-5 batch
    log = reopen(tmp_path)
    assert log.log_end_offset == 6
    assert log.leader_epoch_cache.entries() == [(1, 0)]
    log.close()


def test_log_start_offset_past_recovered_end(tmp_path: Path) -> None:
    log = build(tmp_path, 3)
    crash(log)
    log = reopen(tmp_path, log_start_offset=50)
    assert (log.log_start_offset, log.log_end_offset) == (50, 50)
    assert append(log).first_offset == 50
    log.close()


def test_log_start_offset_checkpoint_applied(tmp_path: Path) -> None:
    log = build(tmp_path)
    log.close()
    log = reopen(tmp_path, clean=True, log_start_offset=9)
    assert log.log_start_offset == 9
    assert read_all(log)[0].offset == 8
    log.close()


def test_leftover_files_are_removed(tmp_path: Path) -> None:
    log = build(tmp_path, 6)  # segments 0 and 8
    log.close()
    d = tmp_path / "t-0"
    (d / "00000000000000000000.log.deleted").write_bytes(b"old")
    (d / "00000000000000000000.index.deleted").write_bytes(b"old")
    (d / "00000000000000000030.log.cleaned").write_bytes(b"x")
    (d / "00000000000000000040.log.swap").write_bytes(b"x")  # >= min cleaned: incomplete
    (d / "00000000000000000099.index").write_bytes(b"")  # index without a log
    (d / "leader-epoch-checkpoint.tmp").write_bytes(b"half")
    (d / "stray-file.txt").write_bytes(b"not ours")
    log = reopen(tmp_path, clean=True)
    assert offsets(log) == list(range(12))
    names = segment_files(d)
    assert not [n for n in names if n.endswith((".deleted", ".cleaned", ".swap", ".tmp"))]
    assert "00000000000000000099.index" not in names
    assert "stray-file.txt" in names
    log.close()


def test_completed_swap_replaces_segments(tmp_path: Path) -> None:
    log = build(tmp_path, 6)  # segments 0 (offsets 0..7) and 8 (8..11)
    log.close()
    d = tmp_path / "t-0"
    # A compacted replacement for segment 0 holding only offsets 0..3.
    swap = (d / "00000000000000000000.log").read_bytes()[: 2 * BATCH]
    (d / "00000000000000000000.log.swap").write_bytes(swap)
    (d / "00000000000000000000.index.swap").write_bytes(b"")
    log = reopen(tmp_path, clean=True)
    assert [h.base_offset for h in headers(log.read(0, 1 << 20, max_offset=12,
                                                     min_one_batch=True).to_bytes())] == [
        0, 2, 8, 10
    ]
    assert not [n for n in segment_files(d) if n.endswith(".swap")]
    log.close()


def test_empty_directory_gets_a_segment_at_log_start(tmp_path: Path) -> None:
    (tmp_path / "t-0").mkdir()
    log = reopen(tmp_path, log_start_offset=7)
    assert (log.log_start_offset, log.log_end_offset) == (7, 7)
    assert log.segments[0].base_offset == 7
    log.close()


def test_repeated_crashes_and_reopens(tmp_path: Path) -> None:
    log = build(tmp_path, 3)
    for round_ in range(5):
        crash(log)
        log = reopen(tmp_path, recovery_point=log.recovery_point)
        append(log, [b"r%d" % round_])
        if round_ % 2:
            log.flush()
    assert offsets(log) == list(range(11))
    log.close()


def test_garbage_after_a_clean_shutdown_is_still_cut(tmp_path: Path) -> None:
    log = build(tmp_path)
    log.close()
    last = log_files(tmp_path)[-1]
    size = last.stat().st_size
    with open(last, "ab") as f:
        f.write(b"\x00" * 100)
    log = reopen(tmp_path, clean=True)
    assert offsets(log) == list(range(20))
    assert last.stat().st_size == size
    log.close()


def test_recovery_with_a_smaller_segment_index_bytes(tmp_path: Path) -> None:
    log = build(tmp_path)  # 3 index entries a segment
    crash(log)
    small = LogConfig(segment_bytes=BATCH * 4, index_interval_bytes=1, segment_index_bytes=16)
    log = reopen(tmp_path, config=small)
    for start in range(0, 20, 2):
        assert read_all(log, start)[0].offset == start
    log.close()
