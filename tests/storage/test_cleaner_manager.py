"""Choosing what to clean (Kafka's LogCleanerManagerTest): dirty ratio,
min/max compaction lag, the active segment and the high watermark as bounds,
and cleaner-offset-checkpoint."""

from __future__ import annotations

from pathlib import Path

from storage_helpers import T0
from test_cleaner_helpers import append_records, clean, log_records, open_compacted

from strom.clock import ManualClock
from strom.storage import checkpoints, files
from strom.storage.cleaner import CleanerCandidate, CleanerManager
from strom.storage.cleaner.manager import cleanable_offsets
from strom.storage.log import PartitionLog


def fill(log: PartitionLog, n: int, *, clock: ManualClock, keys: int = 5) -> None:
    for i in range(n):
        append_records(log, [(b"k%d" % (i % keys), b"v%d" % i)], timestamp=clock.wall_ms())


def candidate(log: PartitionLog, upper: int | None = None) -> CleanerCandidate:
    return CleanerCandidate((log.topic, log.partition), log,
                            log.log_end_offset if upper is None else upper)


def test_the_dirtiest_log_above_its_ratio_is_chosen(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    a = open_compacted(tmp_path / "a-0", clock, min_cleanable_dirty_ratio=0.5)
    b = open_compacted(tmp_path / "b-0", clock, min_cleanable_dirty_ratio=0.5)
    plain = open_compacted(tmp_path / "c-0", clock, cleanup_policy=("delete",))
    for log in (a, b, plain):
        fill(log, 40, clock=clock)
        log.roll()
    manager = CleanerManager([tmp_path])
    clean(a, clock, manager=manager)  # a is now mostly clean
    fill(a, 3, clock=clock)
    a.roll()
    chosen = manager.grab_filthiest([candidate(a), candidate(b), candidate(plain)], T0)
    assert chosen is not None and chosen.key == ("b", 0) and chosen.cleanable_ratio == 1.0
    assert ("b", 0) in manager.in_progress
    # In progress: not chosen twice; a's ratio is below 0.5.
    assert manager.grab_filthiest([candidate(a), candidate(b)], T0) is None
    manager.done_cleaning(chosen, 40)
    assert manager.checkpointed(("b", 0), b) == 40


def test_cleanable_range_stops_at_the_active_segment_and_the_high_watermark(
        tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock, segment_bytes=500)
    fill(log, 30, clock=clock)
    active = log.active_segment.base_offset
    assert cleanable_offsets(log, None, T0, log.log_end_offset) == (0, active, False)
    assert cleanable_offsets(log, None, T0, 7) == (0, 7, False)
    manager = CleanerManager([tmp_path])
    ltc = manager.log_to_clean(candidate(log, 7), T0)
    # Rounded down to the segment holding the high watermark.
    assert ltc.first_uncleanable_offset == max(
        s.base_offset for s in log.segments if s.base_offset <= 7)


def test_min_compaction_lag_keeps_recent_segments_dirty(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock, segment_bytes=500,
                         min_compaction_lag_ms=10_000)
    fill(log, 15, clock=clock)
    clock.advance(20_000)
    log.roll()
    recent = log.active_segment.base_offset  # segments from here on are too young
    fill(log, 15, clock=clock)
    log.roll()
    _, uncleanable, _ = cleanable_offsets(log, None, clock.wall_ms(), log.log_end_offset)
    assert uncleanable == recent
    clock.advance(10_001)
    _, uncleanable, _ = cleanable_offsets(log, None, clock.wall_ms(), log.log_end_offset)
    assert uncleanable == log.active_segment.base_offset


def test_max_compaction_lag_forces_a_cleaning_below_the_ratio(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock, min_cleanable_dirty_ratio=0.99,
                         max_compaction_lag_ms=60_000)
    fill(log, 40, clock=clock)
    log.roll()
    manager = CleanerManager([tmp_path])
    clean(log, clock, manager=manager)
    fill(log, 1, clock=clock)
    log.roll()
    assert manager.grab_filthiest([candidate(log)], clock.wall_ms()) is None
    clock.advance(60_001)
    chosen = manager.grab_filthiest([candidate(log)], clock.wall_ms())
    assert chosen is not None and chosen.need_compaction_now


def test_checkpoint_file_uses_kafkas_format_and_survives_restarts(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "my-topic-3", clock)
    fill(log, 20, clock=clock)
    log.roll()
    manager = CleanerManager([tmp_path])
    clean(log, clock, manager=manager)
    path = tmp_path / files.CLEANER_OFFSET_CHECKPOINT
    assert path.read_text() == "0\n1\nmy-topic 3 20\n"
    assert checkpoints.read_offset_checkpoint(path) == {("my-topic", 3): 20}
    again = CleanerManager([tmp_path])
    assert again.checkpointed(("my-topic", 3), log) == 20
    # Nothing new is dirty: a fresh manager does not clean it again.
    assert again.grab_filthiest([candidate(log)], T0) is None
    again.forget(("my-topic", 3))
    again.write_checkpoints()
    assert checkpoints.read_offset_checkpoint(path) == {}


def test_a_checkpoint_outside_the_log_is_reset(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock, segment_bytes=400)
    fill(log, 30, clock=clock)
    log.roll()
    assert cleanable_offsets(log, 10_000, T0, log.log_end_offset)[0::2] == (0, True)
    log.advance_log_start_offset(log.segments[2].base_offset)
    start = log.log_start_offset
    assert cleanable_offsets(log, 1, T0, log.log_end_offset)[0::2] == (start, True)


def test_compact_and_delete_logs_are_cleaned_too(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "t-0", clock, cleanup_policy=("compact", "delete"))
    fill(log, 20, clock=clock, keys=2)
    log.roll()
    assert clean(log, clock) is not None
    assert len(log_records(log)) == 2
