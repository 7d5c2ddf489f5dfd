from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest
from storage_helpers import (
    T0,
    append,
    append_batch,
    headers,
    make_batch,
    open_log,
    read_all,
    records,
    segment_files,
)

from strom.clock import ManualClock
from strom.errors import InvalidRecordError, OffsetOutOfRangeError, RecordBatchTooLargeError
from strom.protocol.records import Compression, read_batch_header
from strom.storage import checkpoints, files, log_open
from strom.storage.log import LogConfig, UnexpectedAppendOffsetError


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def test_open_new_log_creates_directory_and_metadata(tmp_path: Path) -> None:
    topic_id = uuid.uuid4()
    log = open_log(tmp_path / "my-topic-3", topic_id=topic_id)
    assert (log.topic, log.partition) == ("my-topic", 3)
    assert log.log_start_offset == log.log_end_offset == log.recovery_point == 0
    assert log.size_in_bytes == 0
    assert checkpoints.read_partition_metadata(log.directory / files.PARTITION_METADATA) == topic_id
    assert (log.directory / files.LEADER_EPOCH_CHECKPOINT).read_text() == "0\n0\n"
    assert segment_files(log.directory) == [
        "00000000000000000000.index", "00000000000000000000.log",
        "00000000000000000000.timeindex", "leader-epoch-checkpoint", "partition.metadata",
    ]
    log.close()
    reopened = open_log(tmp_path / "my-topic-3")
    assert reopened.topic_id == topic_id
    reopened.close()


def test_open_rejects_other_topic_id(tmp_path: Path) -> None:
    open_log(tmp_path / "t-0", topic_id=uuid.uuid4()).close()
    with pytest.raises(Exception, match="topic id"):
        open_log(tmp_path / "t-0", topic_id=uuid.uuid4())


def test_append_assigns_offsets_in_callers_buffer(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    info = append(log, [b"a", b"b", b"c"], [T0, T0 + 5, T0 + 2], epoch=7)
    assert (info.first_offset, info.last_offset) == (0, 2)
    assert (info.max_timestamp, info.offset_of_max_timestamp) == (T0 + 5, 1)
    buf = make_batch([b"d", b"e"])
    info = append_batch(log, buf, epoch=7)
    header = read_batch_header(buf)
    assert (header.base_offset, header.partition_leader_epoch) == (3, 7)
    assert (info.first_offset, info.last_offset, info.log_start_offset) == (3, 4, 0)
    assert log.log_end_offset == 5
    # Stored byte for byte as patched.
    data = log.read(3, 1000, max_offset=5, min_one_batch=False).to_bytes()
    assert data == bytes(buf)
    assert [r.value for r in read_all(log)] == [b"a", b"b", b"c", b"d", b"e"]
    log.close()


def test_append_rejects_wrong_size_and_too_large(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=200))
    buf = make_batch([b"x"])
    header = read_batch_header(buf)
    with pytest.raises(InvalidRecordError):
        log.append_as_leader(memoryview(buf)[:-1], header, leader_epoch=0, max_timestamp=T0,
                             offset_delta_of_max_timestamp=0, now_ms=T0)
    with pytest.raises(RecordBatchTooLargeError):
        append(log, [b"x" * 300])
    assert log.log_end_offset == 0
    log.close()


def test_follower_append_keeps_offsets(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    info = append_batch(log, make_batch([b"a", b"b"], base_offset=10, leader_epoch=4),
                        assign_offsets=False)
    assert (info.first_offset, info.last_offset, log.log_end_offset) == (10, 11, 12)
    assert log.latest_epoch() == 4
    with pytest.raises(UnexpectedAppendOffsetError):
        append_batch(log, make_batch([b"c"], base_offset=11), assign_offsets=False)
    assert [(r.offset, r.value) for r in read_all(log, 10)] == [(10, b"a"), (11, b"b")]
    log.close()


def test_read_out_of_range(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    for _ in range(3):
        append(log)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(4, 100, max_offset=3, min_one_batch=True)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100, max_offset=3, min_one_batch=True)
    assert log.read(3, 100, max_offset=3, min_one_batch=True).size == 0
    log.advance_log_start_offset(2)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(1, 100, max_offset=3, min_one_batch=True)
    log.close()


def test_read_whole_batches_max_bytes_and_min_one(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    sizes = []
    for i in range(5):
        buf = make_batch([b"x" * (50 + i)] * 2)
        sizes.append(len(buf))
        append_batch(log, buf)
    # Start inside a batch: the whole batch comes back.
    result = log.read(3, 10_000, max_offset=10, min_one_batch=False)
    assert [h.base_offset for h in headers(result.to_bytes())] == [2, 4, 6, 8]
    assert result.size == sum(sizes[1:])
    # max_bytes cuts at a batch boundary.
    result = log.read(0, sizes[0] + sizes[1] + 1, max_offset=10, min_one_batch=True)
    assert [h.base_offset for h in headers(result.to_bytes())] == [0, 2]
    # The first batch is larger than max_bytes.
    assert log.read(0, 10, max_offset=10, min_one_batch=False).size == 0
    result = log.read(0, 10, max_offset=10, min_one_batch=True)
    assert [h.base_offset for h in headers(result.to_bytes())] == [0]
    # max_offset (high watermark) is exclusive and excludes batches reaching it.
    result = log.read(0, 10_000, max_offset=5, min_one_batch=True)
    assert [h.base_offset for h in headers(result.to_bytes())] == [0, 2]
    assert log.read(4, 10_000, max_offset=5, min_one_batch=True).size == 0
    assert log.read(5, 10_000, max_offset=5, min_one_batch=True).size == 0
    log.close()


def test_read_spans_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=300))
    for i in range(20):
        append(log, [b"%03d" % i] * 2)
    assert len(log.segments) > 3
    result = log.read(5, 1 << 20, max_offset=log.log_end_offset, min_one_batch=True)
    assert len(result.regions) == len(log.segments) - 1 or len(result.regions) == len(log.segments)
    assert [r.offset for r in records(result.to_bytes())] == list(range(4, 40))
    assert result.size == sum(region.length for region in result.regions)
    # A budget that ends in a later segment.
    one = len(make_batch([b"000"] * 2))
    result = log.read(0, one * 7, max_offset=40, min_one_batch=True)
    assert [h.base_offset for h in headers(result.to_bytes())] == list(range(0, 14, 2))
    # A max_offset that ends in a later segment.
    result = log.read(0, 1 << 20, max_offset=23, min_one_batch=True)
    assert headers(result.to_bytes())[-1].last_offset == 21
    log.close()


def test_roll_by_size(tmp_path: Path) -> None:
    size = len(make_batch([b"x" * 100]))
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=size * 3))
    for _ in range(7):
        append(log, [b"x" * 100])
    assert [s.base_offset for s in log.segments] == [0, 3, 6]
    assert [s.size for s in log.segments] == [size * 3, size * 3, size]
    # Rolled segments are trimmed and read-only; the active one is in memory
    # (its file exists, empty, and is written when the segment closes).
    assert (log.directory / "00000000000000000000.index").stat().st_size == 0
    assert (log.directory / "00000000000000000006.index").stat().st_size == 0
    log.close()
    assert (log.directory / "00000000000000000006.index").stat().st_size == 0


def test_roll_by_time_uses_first_batch_timestamp(tmp_path: Path, clock: ManualClock) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_ms=1000), clock=clock)
    append(log, timestamps=[T0])
    append(log, timestamps=[T0 + 1000])  # waited == segment.ms: no roll yet
    assert len(log.segments) == 1
    append(log, timestamps=[T0 + 1001])
    assert [s.base_offset for s in log.segments] == [0, 2]
    # The wall clock does not matter while batches carry timestamps.
    clock.advance(10_000)
    append(log, timestamps=[T0 + 1002])
    assert len(log.segments) == 2
    log.close()


def test_roll_by_time_without_timestamps_uses_clock(tmp_path: Path, clock: ManualClock) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_ms=1000), clock=clock)
    append(log, timestamps=[-1])
    clock.advance(1000)
    append(log, timestamps=[-1])
    assert len(log.segments) == 1
    clock.advance(1)
    append(log, timestamps=[-1])
    assert len(log.segments) == 2
    log.close()


def test_roll_jitter(tmp_path: Path) -> None:
    import random

    log = log_open.open_log(
        tmp_path / "t-0", LogConfig(segment_ms=1000, segment_jitter_ms=500),
        clock=ManualClock(T0), rng=random.Random(3),
    )
    jitter = log.active_segment.roll_jitter_ms
    assert 0 <= jitter < 500
    append(log, timestamps=[T0])
    append(log, timestamps=[T0 + 1000 - jitter])
    assert len(log.segments) == 1
    append(log, timestamps=[T0 + 1001 - jitter])
    assert len(log.segments) == 2
    log.close()


def test_roll_when_index_full(tmp_path: Path) -> None:
    # 3 offset index entries; one batch per entry (index.interval.bytes=0).
    log = open_log(tmp_path / "t-0", LogConfig(segment_index_bytes=24, index_interval_bytes=0))
    for _ in range(10):
        append(log)
    assert len(log.segments) > 1
    for segment in log.segments:
        assert segment.offset_index.entries <= 3
    assert [r.offset for r in read_all(log)] == list(range(10))
    log.close()


def test_explicit_roll(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    log.roll()  # empty active segment: nothing to do
    assert len(log.segments) == 1
    append(log)
    log.roll()
    assert [s.base_offset for s in log.segments] == [0, 1]
    append(log)
    assert [r.offset for r in read_all(log)] == [0, 1]
    log.close()


def test_sparse_offset_index(tmp_path: Path) -> None:
    size = len(make_batch([b"x" * 100]))
    log = open_log(tmp_path / "t-0", LogConfig(index_interval_bytes=size * 2))
    for _ in range(10):
        append(log, [b"x" * 100])
    index = log.active_segment.offset_index
    # Kafka's rule: an entry once more than index.interval.bytes were appended
    # since the last one (the first batch is never indexed).
    assert [index.entry(i) for i in range(index.entries)] == [
        (3, 3 * size), (6, 6 * size), (9, 9 * size)
    ]
    for start in range(10):
        assert read_all(log, start)[0].offset == start
    log.close()


def test_offset_for_timestamp_and_max_timestamp(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=200, index_interval_bytes=0))
    stamps = [10, 30, 20, 50, 40, 50, 60, 5]
    for i in range(0, len(stamps), 2):
        append(log, [b"a", b"b"], [T0 + s for s in stamps[i : i + 2]])
    assert len(log.segments) > 1
    def lookup(ts: int) -> tuple[int, int] | None:
        return log.offset_for_timestamp(T0 + ts)
    assert lookup(0) == (0, T0 + 10)
    assert lookup(11) == (1, T0 + 30)
    assert lookup(30) == (1, T0 + 30)
    assert lookup(31) == (3, T0 + 50)
    assert lookup(55) == (6, T0 + 60)
    assert lookup(61) is None
    assert log.max_timestamp() == (T0 + 60, 6)
    log.advance_log_start_offset(2)
    assert lookup(0) == (2, T0 + 20)
    log.close()
    reopened = open_log(tmp_path / "t-0", log_start_offset=2, had_clean_shutdown=True)
    assert reopened.offset_for_timestamp(T0 + 31) == (3, T0 + 50)
    assert reopened.max_timestamp() == (T0 + 60, 6)
    reopened.close()


def test_max_timestamp_is_exact_record_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    assert log.max_timestamp() == (-1, -1)
    append(log, [b"a", b"b", b"c"], [T0 + 1, T0 + 9, T0 + 3])
    append(log, [b"d"], [T0 + 9])
    assert log.max_timestamp() == (T0 + 9, 1)
    log.close()


def test_compressed_batches(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(index_interval_bytes=0))
    for i in range(5):
        append(log, [b"v%d" % i] * 3, [T0 + i * 10 + j for j in range(3)],
               compression=Compression.GZIP)
    assert log.offset_for_timestamp(T0 + 21) == (7, T0 + 21)
    assert [r.offset for r in read_all(log, 7)] == list(range(6, 15))
    log.close()


def test_leader_epochs(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    assert log.latest_epoch() is None
    assert log.end_offset_for_epoch(0) == (-1, -1)
    append(log, epoch=1)
    append(log, epoch=1)
    append(log, epoch=3)
    append(log, epoch=3)
    append(log, epoch=5)
    assert log.leader_epoch_cache.entries() == [(1, 0), (3, 2), (5, 4)]
    assert log.end_offset_for_epoch(5) == (5, 5)
    assert log.end_offset_for_epoch(3) == (3, 4)
    assert log.end_offset_for_epoch(2) == (1, 2)
    assert log.end_offset_for_epoch(0) == (0, 0)
    assert log.end_offset_for_epoch(6) == (-1, -1)
    log.truncate_to(3)
    assert log.leader_epoch_cache.entries() == [(1, 0), (3, 2)]
    assert log.end_offset_for_epoch(3) == (3, 3)
    log.assign_epoch_start_offset(8, 3)
    assert log.end_offset_for_epoch(3) == (3, 3)
    log.flush()
    log.close()
    assert (log.directory / files.LEADER_EPOCH_CHECKPOINT).read_text() == "0\n3\n1 0\n3 2\n8 3\n"
    reopened = open_log(tmp_path / "t-0", had_clean_shutdown=True)
    # Like Kafka's loader, entries starting at or past the log end are dropped;
    # a leader re-assigns its epoch when it takes over again.
    assert reopened.leader_epoch_cache.entries() == [(1, 0), (3, 2)]
    reopened.close()


def test_truncate_to(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=300))
    for i in range(10):
        append(log, [b"%d" % i] * 2)
    assert len(log.segments) > 2
    log.flush()
    log.truncate_to(100)  # past the end: nothing
    assert log.log_end_offset == 20
    log.truncate_to(9)  # mid-batch: the batch [8, 9] goes
    assert log.log_end_offset == 8
    assert log.recovery_point == 8
    assert [r.offset for r in read_all(log)] == list(range(8))
    assert log.size_in_bytes == sum(s.size for s in log.segments)
    for i in range(3):
        append(log, [b"new%d" % i])
    assert [r.offset for r in read_all(log)] == list(range(11))
    assert read_all(log, 8)[0].value == b"new0"
    log.close()
    reopened = open_log(tmp_path / "t-0", had_clean_shutdown=True)
    assert [r.offset for r in read_all(reopened)] == list(range(11))
    reopened.close()


def test_truncate_to_segment_base(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=300))
    for _ in range(10):
        append(log, [b"x"] * 2)
    base = log.segments[1].base_offset
    log.truncate_to(base)
    assert log.log_end_offset == base
    assert log.segments[-1].base_offset == base and log.segments[-1].size == 0
    append(log)
    assert log.log_end_offset == base + 1
    log.close()


def test_truncate_below_first_segment_starts_over(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=300))
    for _ in range(10):
        append(log, [b"x"] * 2)
    log.advance_log_start_offset(10)
    first = log.segments[0].base_offset
    assert first > 0
    log.truncate_to(first - 1)
    assert log.log_start_offset == log.log_end_offset == first - 1
    assert len(log.segments) == 1 and log.size_in_bytes == 0
    log.close()


def test_truncate_fully_and_start_at(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=300))
    for _ in range(10):
        append(log, [b"x"] * 2, epoch=2)
    log.truncate_fully_and_start_at(1000)
    assert (log.log_start_offset, log.log_end_offset, log.recovery_point) == (1000, 1000, 1000)
    assert log.latest_epoch() is None
    assert [p for p in segment_files(log.directory) if p.endswith(".log")] == [
        "00000000000000001000.log"
    ]
    info = append(log)
    assert info.first_offset == 1000
    log.close()


def test_advance_log_start_offset_deletes_whole_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=300))
    for _ in range(10):
        append(log, [b"x"] * 2, epoch=1)
    bases = [s.base_offset for s in log.segments]
    log.advance_log_start_offset(bases[2] + 1)
    assert log.log_start_offset == bases[2] + 1
    assert [s.base_offset for s in log.segments] == bases[2:]
    assert read_all(log)[0].offset == bases[2]  # the batch holding the start offset
    assert log.leader_epoch_cache.entries() == [(1, bases[2] + 1)]
    log.advance_log_start_offset(3)  # backwards: ignored
    assert log.log_start_offset == bases[2] + 1
    with pytest.raises(OffsetOutOfRangeError):
        log.advance_log_start_offset(21)
    log.advance_log_start_offset(20)  # up to the end: the active segment stays
    assert log.log_start_offset == 20
    assert log.read(20, 100, max_offset=20, min_one_batch=True).size == 0
    log.close()


def test_retention_by_time(tmp_path: Path, clock: ManualClock) -> None:
    size = len(make_batch([b"x"]))
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=size * 2, retention_ms=1000),
                   clock=clock)
    for i in range(6):
        append(log, [b"x"], [T0 + i * 100])
    # Segments [0,1] max T0+100, [2,3] max T0+300, [4,5] max T0+500.
    assert log.apply_retention(T0 + 1100) == 0
    assert log.apply_retention(T0 + 1101) == 1
    assert log.log_start_offset == 2
    assert log.apply_retention(T0 + 1400) == 1
    # Everything expired: roll first so an active segment remains.
    assert log.apply_retention(T0 + 10_000) == 1
    assert log.log_start_offset == log.log_end_offset == 6
    assert [s.base_offset for s in log.segments] == [6]
    assert log.apply_retention(T0 + 10_000) == 0  # an empty active segment stays
    append(log)
    assert read_all(log)[0].offset == 6
    log.close()


def test_retention_respects_high_watermark(tmp_path: Path) -> None:
    size = len(make_batch([b"x"]))
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=size * 2, retention_ms=0))
    for i in range(6):
        append(log, [b"x"], [T0 + i])
    assert log.apply_retention(T0 + 10, high_watermark=3) == 1
    assert log.apply_retention(T0 + 10, high_watermark=4) == 1
    assert log.log_start_offset == 4
    log.close()


def test_retention_by_size(tmp_path: Path) -> None:
    size = len(make_batch([b"x"]))
    config = LogConfig(segment_bytes=size * 2, retention_bytes=size * 3, retention_ms=-1)
    log = open_log(tmp_path / "t-0", config)
    for _ in range(7):
        append(log, [b"x"])
    assert log.size_in_bytes == size * 7
    # Delete oldest segments while the rest stays >= retention.bytes.
    assert log.apply_retention() == 2
    assert log.size_in_bytes == size * 3
    assert log.log_start_offset == 4
    assert log.apply_retention() == 0
    log.close()


def test_retention_disabled(tmp_path: Path, clock: ManualClock) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=200, retention_ms=-1), clock=clock)
    for _ in range(5):
        append(log, [b"x" * 50], [1])
    assert log.apply_retention(T0 * 10) == 0
    log.update_config(LogConfig(segment_bytes=200, retention_ms=1))
    segments = len(log.segments)
    assert log.apply_retention(T0 * 10) == segments
    assert log.log_start_offset == log.log_end_offset == 5
    log.close()


def test_flush_ticket_group_commit(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=300))
    for _ in range(5):
        append(log, [b"x"] * 2)
    assert log.recovery_point == 0 and log.unflushed_messages == 10
    ticket = log.prepare_flush()
    assert ticket.offset == 10
    for _ in range(3):  # appends while the flush runs in another thread
        append(log, [b"y"])
    worker = threading.Thread(target=ticket.run)
    worker.start()
    worker.join()
    log.complete_flush(ticket)
    assert log.recovery_point == 10
    assert log.unflushed_messages == 3
    log.flush()
    assert log.recovery_point == 13 and log.unflushed_messages == 0
    assert all(not s.dirty for s in log.segments)
    log.close()


def test_flush_ticket_ignored_after_truncation(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    for _ in range(5):
        append(log)
    ticket = log.prepare_flush()
    log.truncate_to(2)
    for _ in range(5):
        append(log)
    ticket.run()
    log.complete_flush(ticket)
    assert log.recovery_point == 0  # offset 5 of the ticket named other data
    log.close()


def test_flush_ticket_failure_leaves_recovery_point(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log)
    ticket = log.prepare_flush()
    log.complete_flush(ticket)  # never ran
    assert log.recovery_point == 0
    log.close()


def test_flush_due(tmp_path: Path, clock: ManualClock) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(flush_messages=3, flush_ms=1000), clock=clock)
    append(log, [b"x"] * 2)
    assert not log.flush_due(clock.wall_ms())
    append(log)
    assert log.flush_due(clock.wall_ms())
    log.flush()
    append(log)
    assert not log.flush_due(clock.wall_ms() + 999)
    assert log.flush_due(clock.wall_ms() + 1000)
    log.close()


def test_file_region_read_until_deleted(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=200, retention_ms=0))
    for _ in range(4):
        append(log, [b"x" * 60], [T0])
    region = log.read(0, 1 << 20, max_offset=4, min_one_batch=True).regions[0]
    assert region.read() == os.pread(region.fileno(), region.length, region.position)
    log.roll()
    assert len(region.read()) == region.length
    log.apply_retention(T0 + 10)
    with pytest.raises(Exception, match="deleted|closed"):
        region.read()
    log.close()


def test_update_config_changes_index_interval(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    log.update_config(LogConfig(index_interval_bytes=0))
    for _ in range(4):
        append(log)
    assert log.active_segment.offset_index.entries == 3
    log.close()


def test_preallocate(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=4096, preallocate=True))
    assert (log.directory / "00000000000000000000.log").stat().st_size == 4096
    for _ in range(3):
        append(log, [b"x" * 1000])
    assert len(log.segments) == 1
    append(log, [b"x" * 1000])
    assert len(log.segments) == 2
    size0 = log.segments[0].size
    assert (log.directory / "00000000000000000000.log").stat().st_size == size0
    log.close()
    assert (log.directory / "00000000000000000003.log").stat().st_size == log.segments[1].size
    reopened = open_log(tmp_path / "t-0", LogConfig(segment_bytes=4096, preallocate=True),
                        had_clean_shutdown=True)
    assert [r.offset for r in read_all(reopened)] == [0, 1, 2, 3]
    reopened.close()


def test_delete(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log)
    log.delete()
    assert not (tmp_path / "t-0").exists()
