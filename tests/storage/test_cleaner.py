"""Log compaction: what a cleaning keeps, removes and rewrites (Kafka's
LogCleanerTest), plus a model-based test against a dict of latest values."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from storage_helpers import T0, open_log
from test_cleaner_helpers import (
    KV,
    append_marker,
    append_records,
    clean,
    log_batches,
    log_records,
    open_compacted,
)

from strom.clock import ManualClock
from strom.protocol.records import Compression, ControlRecordType, batch_crc_ok
from strom.storage import file_deleter
from strom.storage.cleaner import CleanerManager
from strom.storage.cleaner.offset_map import OffsetMap
from strom.storage.cleaner.snapshot import LastRecord, group_segments_by_size


def keyed(i: int, n: int = 1) -> list[KV]:
    return [(b"k%d" % ((i + j) % 7), b"v%d" % (i + j)) for j in range(n)]


def test_latest_value_per_key_survives_and_offsets_do_not_move(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock)
    written = {}
    for i in range(60):
        info = append_records(log, [(b"k%d" % (i % 5), b"v%d" % i)])
        written[info.first_offset] = (b"k%d" % (i % 5), b"v%d" % i)
    log.roll()
    before = log.size_in_bytes
    result = clean(log, clock)
    assert result is not None and result.end_offset == 60
    records = log_records(log)
    assert [(r.key, r.value) for r in records] == [
        written[o] for o in (55, 56, 57, 58, 59)
    ]
    assert [r.offset for r in records] == [55, 56, 57, 58, 59]
    assert log.size_in_bytes < before
    assert log.log_end_offset == 60 and log.log_start_offset == 0
    # Reads by offset still work across the gaps cleaning left.
    data = log.read(3, 1 << 20, max_offset=60, min_one_batch=True).to_bytes()
    assert data and log.read(59, 1 << 20, max_offset=60, min_one_batch=True).size > 0


def test_active_segment_is_never_cleaned(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock, segment_bytes=1 << 20)
    for i in range(20):
        append_records(log, [(b"same", b"v%d" % i)])
    assert clean(log, clock) is None
    assert len(log_records(log)) == 20
    log.roll()
    assert clean(log, clock) is not None
    assert [r.value for r in log_records(log)] == [b"v19"]


def test_untouched_batches_are_copied_byte_for_byte_and_others_keep_their_codec(
        tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock)
    append_records(log, [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], compression=Compression.ZSTD)
    append_records(log, [(b"x", b"1"), (b"y", b"2")], compression=Compression.LZ4)
    append_records(log, [(b"a", b"4")], compression=Compression.GZIP)
    log.roll()
    originals = log_batches(log)
    clean(log, clock)
    batches = log_batches(log)
    assert batches[1].raw == originals[1].raw  # nothing removed: copied as is
    assert batches[2].raw == originals[2].raw
    rebuilt = batches[0]
    assert rebuilt.header.compression == Compression.ZSTD
    assert rebuilt.header.base_offset == 0 and rebuilt.header.last_offset_delta == 2
    assert [(r.offset, r.key, r.value) for r in rebuilt.records] == [(1, b"b", b"2"),
                                                                     (2, b"c", b"3")]
    assert [r.timestamp for r in rebuilt.records] == [T0 + 1, T0 + 2]
    assert rebuilt.header.max_timestamp == T0 + 2
    assert all(batch_crc_ok(b.raw, b.header) for b in batches)


def test_tombstones_get_a_delete_horizon_and_go_after_delete_retention(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock, delete_retention_ms=5000)
    append_records(log, [(b"a", b"1"), (b"b", b"1")])
    append_records(log, [(b"a", None)], timestamp=T0 + 10)
    log.roll()
    manager = CleanerManager([tmp_path])
    clean(log, clock, manager=manager)
    tombstone = [b for b in log_batches(log) if any(r.value is None for r in b.records)][0]
    assert tombstone.header.has_delete_horizon
    assert tombstone.header.base_timestamp == T0 + 5000  # KIP-534: the horizon
    assert [r.timestamp for r in tombstone.records] == [T0 + 10]  # timestamps unchanged
    assert [(r.key, r.value) for r in log_records(log)] == [(b"b", b"1"), (b"a", None)]

    # Another cleaning before the horizon keeps it (new dirty data triggers it).
    clock.advance(4999)
    append_records(log, [(b"c", b"1")])
    log.roll()
    clean(log, clock, manager=manager)
    assert (b"a", None) in [(r.key, r.value) for r in log_records(log)]
    clock.advance(1)
    append_records(log, [(b"d", b"1")])
    log.roll()
    clean(log, clock, manager=manager)
    assert [(r.key, r.value) for r in log_records(log)] == [
        (b"b", b"1"), (b"c", b"1"), (b"d", b"1")]


def test_last_batch_of_an_active_producer_keeps_its_header(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock)
    info = append_records(log, [(b"a", b"1"), (b"b", b"1")], producer_id=42, producer_epoch=3,
                          base_sequence=7)
    append_records(log, [(b"a", b"2"), (b"b", b"2")])
    append_records(log, [(b"z", b"1")])
    log.roll()
    producers = {42: LastRecord(info.last_offset, 3)}
    clean(log, clock, producers=producers)
    empty = log_batches(log)[0]
    assert empty.header.producer_id == 42 and empty.header.records_count == 0
    assert empty.header.base_sequence == 7 and empty.header.last_offset_delta == 1
    assert empty.header.producer_epoch == 3
    # Without the producer the batch goes entirely.
    clean_again = open_compacted(tmp_path / "u-0", clock)
    append_records(clean_again, [(b"a", b"1")], producer_id=42, producer_epoch=3,
                   base_sequence=0)
    append_records(clean_again, [(b"a", b"2")])
    append_records(clean_again, [(b"z", b"1")])
    clean_again.roll()
    clean(clean_again, clock)
    assert [b.header.producer_id for b in log_batches(clean_again)] == [-1, -1]


def test_last_batch_of_the_cleaned_range_keeps_its_header(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock)
    append_records(log, [(b"a", b"1")])
    append_records(log, [(None, b"keyless")])
    append_records(log, [(b"b", b"1")])
    append_records(log, [(None, b"keyless")])
    log.roll()
    clean(log, clock)
    # Both keyless batches lose their record; the one ending the cleaned
    # range keeps its header, so the range's last offset survives.
    assert [(b.header.base_offset, b.header.records_count) for b in log_batches(log)] == [
        (0, 1), (2, 1), (3, 0)]


def test_aborted_transactions_are_removed_and_markers_go_after_delete_retention(
        tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock, delete_retention_ms=1000)
    append_records(log, [(b"a", b"aborted")], producer_id=5, producer_epoch=0,
                   base_sequence=0, transactional=True)
    append_records(log, [(b"b", b"plain")])
    append_marker(log, ControlRecordType.ABORT, 5)
    append_records(log, [(b"c", b"committed")], producer_id=6, producer_epoch=0,
                   base_sequence=0, transactional=True)
    append_marker(log, ControlRecordType.COMMIT, 6)
    log.roll()
    manager = CleanerManager([tmp_path])
    clean(log, clock, manager=manager)
    batches = log_batches(log)
    assert [(r.key, r.value) for r in log_records(log)] == [(b"b", b"plain"),
                                                            (b"c", b"committed")]
    markers = [b for b in batches if b.header.is_control]
    # The ABORT marker stays while its transaction was still in the log this
    # time; the COMMIT marker stays while its data does.
    assert [m.header.producer_id for m in markers] == [5, 6]
    assert not any(m.header.has_delete_horizon for m in markers)
    # Next cleaning: the aborted data is gone, so its marker gets a horizon...
    append_records(log, [(b"x", b"1")])
    log.roll()
    clean(log, clock, manager=manager)
    markers = [b for b in log_batches(log) if b.header.is_control]
    assert [(m.header.producer_id, m.header.has_delete_horizon) for m in markers] == [
        (5, True), (6, False)]
    # ...and goes once delete.retention.ms has passed.
    clock.advance(1000)
    append_records(log, [(b"x", b"2")])
    log.roll()
    clean(log, clock, manager=manager)
    assert [b.header.producer_id for b in log_batches(log) if b.header.is_control] == [6]
    # A commit marker goes once its transaction's records are all superseded.
    append_records(log, [(b"c", b"newer")])
    log.roll()
    clean(log, clock, manager=manager)
    append_records(log, [(b"x", b"3")])
    log.roll()
    clean(log, clock, manager=manager)
    clock.advance(1000)
    append_records(log, [(b"x", b"4")])
    log.roll()
    clean(log, clock, manager=manager)
    assert not [b for b in log_batches(log) if b.header.is_control]
    assert sorted((r.key, r.value) for r in log_records(log)) == [
        (b"b", b"plain"), (b"c", b"newer"), (b"x", b"4")]


def test_small_segments_are_grouped_up_to_segment_bytes(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock, segment_bytes=400)
    for i in range(40):
        append_records(log, [(b"k%d" % (i % 4), b"v%d" % i)])
    log.roll()
    assert len(log.segments) > 8
    manager = CleanerManager([tmp_path])
    clean(log, clock, manager=manager)
    # Kafka groups by the sources' sizes: full segments stay one per group...
    first_round = len(log.segments)
    append_records(log, [(b"k0", b"last")])
    log.roll()
    clean(log, clock, manager=manager)
    # ...and the now small ones merge.
    assert len(log.segments) < first_round
    assert sorted(r.value for r in log_records(log)) == [b"last", b"v37", b"v38", b"v39"]


def test_group_segments_by_size_keeps_offsets_within_int32(tmp_path: Path) -> None:
    from strom.storage.cleaner.snapshot import SourceSegment

    def source(base: int, size: int) -> SourceSegment:
        return SourceSegment(None, base, 0, size, -1, False, 8, 12, 0)  # type: ignore[arg-type]

    top = 2**31 + 150
    segments = [source(0, 10), source(100, 10), source(200, 10), source(top, 10)]
    # 200 cannot join 0: its last offset (estimated from the next base) is too far.
    groups = group_segments_by_size(segments, 1000, 1000, top + 50)
    assert [[s.base_offset for s in g] for g in groups] == [[0, 100], [200, top]]
    assert [len(g) for g in group_segments_by_size(segments, 15, 1000, top + 50)] == [1] * 4
    # Two time indexes (12 bytes each) exceed a 20-byte index limit.
    assert [len(g) for g in group_segments_by_size(segments, 1000, 20, top + 50)] == [1] * 4


def test_a_full_offset_map_cleans_up_to_where_it_got(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock)
    for i in range(200):
        append_records(log, [(b"key%03d" % (i % 100), b"v%d" % i)])
    log.roll()
    manager = CleanerManager([tmp_path])
    memory = int((117 + 6) * 40 / 0.9) + 1  # room for about 40 keys
    result = clean(log, clock, manager=manager, memory=memory)
    assert result is not None and 30 < result.end_offset < 200
    # Repeated cleanings converge to one record per key.
    for _ in range(20):
        if manager.checkpointed(("t", 0), log) == log.active_segment.base_offset:
            break
        clean(log, clock, manager=manager, memory=memory)
    values = sorted(r.value for r in log_records(log) if r.value is not None)
    assert values == sorted(b"v%d" % i for i in range(100, 200))


def test_offset_map_budget() -> None:
    m = OffsetMap(4000, 1.0)
    stored = 0
    while m.put(b"k%d" % stored, stored):
        stored += 1
    assert 20 <= stored <= 4000 // 117
    assert m.put(b"k0", 99)  # an update always fits
    assert m.get(b"k0") == 99 and m.get(b"nope") == -1
    long_key = b"x" * 500
    m.clear()
    assert m.put(long_key, 5) and m.get(long_key) == 5 and m.get(b"x" * 499) == -1
    with pytest.raises(ValueError):
        OffsetMap(100)


def test_records_without_keys_are_dropped_as_kafka_does(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock)
    append_records(log, [(None, b"keyless"), (b"a", b"1")])
    append_records(log, [(b"a", b"2")])
    log.roll()
    clean(log, clock)
    assert [(r.key, r.value) for r in log_records(log)] == [(b"a", b"2")]


def test_reopened_log_after_cleaning_reads_the_same(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    directory = tmp_path / "t-0"
    log = open_compacted(directory, clock)
    for i in range(80):
        append_records(log, keyed(i, 3))
    log.roll()
    clean(log, clock)
    expected = [(r.offset, r.key, r.value) for r in log_records(log)]
    log.close(flush=True)
    reopened = open_log(directory, log.config, clock=clock, recovery_point=0)
    assert [(r.offset, r.key, r.value) for r in log_records(reopened)] == expected
    assert file_deleter.wait_removed()
    assert not [p for p in directory.iterdir() if p.suffix in (".cleaned", ".swap", ".deleted")]


# -- model-based ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_model_random_writes_and_tombstones(tmp_path: Path, seed: int) -> None:
    """Random keyed writes, tombstones, rolls, cleanings and restarts against a
    dict of the latest value per key. After every cleaning: each key's latest
    write is there (or, for a tombstone, gone only after delete.retention.ms
    from the cleaning that first saw it), every record still sits at the offset
    it was written at, in order, and below the cleaned offset no key repeats."""
    rng = random.Random(seed)
    clock = ManualClock(T0)
    directory = tmp_path / "t-0"
    retention = 3000
    config = dict(segment_bytes=rng.choice([300, 700, 1500]), delete_retention_ms=retention,
                  index_interval_bytes=rng.choice([0, 64, 4096]))
    log = open_compacted(directory, clock, **config)
    manager = CleanerManager([tmp_path])
    # Odd seeds get an offset map of about 12 keys: cleanings stop where it fills.
    memory = int((117 + 4) * 12 / 0.9) + 1 if seed % 2 else 1 << 20
    written: dict[int, KV] = {}
    latest: dict[bytes, int] = {}
    first_seen: dict[int, int] = {}  # tombstone offset -> time of the first cleaning over it
    keys = [b"k%d" % i for i in range([3, 10, 40][seed % 3])]
    codecs = [Compression.NONE, Compression.NONE, Compression.GZIP, Compression.ZSTD]
    for _step in range(rng.choice([150, 250])):
        op = rng.random()
        if op < 0.65:
            batch: list[KV] = []
            for _ in range(rng.choice([1, 1, 2, 5])):
                key = rng.choice(keys)
                batch.append((key, None if rng.random() < 0.2 else b"v%d" % rng.randrange(10**6)))
            info = append_records(log, batch, timestamp=clock.wall_ms(),
                                  compression=rng.choice(codecs))
            for i, (key, value) in enumerate(batch):
                written[info.first_offset + i] = (key, value)
                assert key is not None
                latest[key] = info.first_offset + i
        elif op < 0.75:
            log.roll()
        elif op < 0.87:
            bases = [s.base_offset for s in log.segments]
            now = clock.wall_ms()
            result = clean(log, clock, manager=manager, memory=memory)
            if result is not None:
                # A tombstone's horizon is set by the first cleaning that copies
                # its segment: every segment starting below the cleaned offset.
                for offset, (_key, value) in written.items():
                    if value is None and offset not in first_seen:
                        floor = max(b for b in bases if b <= offset)
                        if floor < result.end_offset:
                            first_seen[offset] = now
                check(log, written, latest, first_seen, clock.wall_ms(), retention,
                      manager.checkpointed(("t", 0), log) or 0)
        else:
            clock.advance(rng.choice([100, 1000, 4000]))
        if rng.random() < 0.02:
            log.close(flush=True)
            log = open_log(directory, log.config, clock=clock,
                           recovery_point=log.log_end_offset, had_clean_shutdown=True)
    # Converge: roll, then clean until nothing is dirty; every key appears once.
    log.roll()
    for _ in range(30):
        if clean(log, clock, manager=manager, memory=memory) is None:
            break
    check(log, written, latest, first_seen, clock.wall_ms(), retention,
          manager.checkpointed(("t", 0), log) or 0)
    survivors = log_records(log)
    assert len({r.key for r in survivors}) == len(survivors)
    # Once delete.retention.ms has passed, the next cleaning drops every tombstone.
    clock.advance(retention)
    append_records(log, [(b"filler", b"x")], timestamp=clock.wall_ms())
    log.roll()
    for _ in range(30):
        if clean(log, clock, manager=manager, memory=memory) is None:
            break
    assert [r for r in log_records(log) if r.value is None] == []
    expected = {k: written[o][1] for k, o in latest.items() if written[o][1] is not None}
    expected[b"filler"] = b"x"
    assert {r.key: r.value for r in log_records(log)} == expected


def check(log: object, written: dict[int, KV], latest: dict[bytes, int],
          first_seen: dict[int, int], now: int, retention: int, cleaned_to: int) -> None:
    from strom.storage.log import PartitionLog

    assert isinstance(log, PartitionLog)
    records = log_records(log)
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets)), "order kept, no duplicates"
    for record in records:
        assert written[record.offset] == (record.key, record.value), "offsets unchanged"
    present = {r.offset for r in records}
    for key, offset in latest.items():
        value = written[offset][1]
        if value is not None:
            assert offset in present, f"latest value of {key!r} at {offset} lost"
        elif offset not in present:
            seen = first_seen.get(offset)
            assert seen is not None and now >= seen + retention, (
                f"tombstone of {key!r} at {offset} removed before delete.retention.ms")
    below = [r.key for r in records if r.offset < cleaned_to]
    assert len(below) == len(set(below)), "a key repeats below the cleaned offset"
