"""Crash injection through a log cleaning: a crash between any two steps of
writing the cleaned copy and swapping it in (renames, the segment list, the
removal of the replaced files) must leave a log the loader opens complete,
with every record at its offset and each key's latest value; a log changed
under a cleaning refuses the swap and keeps nothing of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_helpers import T0, crash, open_log
from test_cleaner_helpers import (
    KV,
    append_records,
    clean,
    log_records,
    open_compacted,
)

from strom.clock import ManualClock
from strom.storage import file_deleter
from strom.storage.cleaner import CleanerCandidate, CleanerConfig, CleanerManager
from strom.storage.cleaner.cleaner import Cleaner, CleaningAborted, run_inline
from strom.storage.cleaner.snapshot import take_snapshot
from strom.storage.log import PartitionLog

LEFTOVER_SUFFIXES = (".cleaned", ".swap", ".deleted")


class Crash(BaseException):
    """Not an Exception: no cleanup code of the cleaner sees it, as in a real crash."""


def build(directory: Path, clock: ManualClock) -> tuple[PartitionLog, dict[int, KV]]:
    """Six small segments (rolled early), cleaned as groups of three, two and one."""
    log = open_compacted(directory, clock, segment_bytes=1000)
    written: dict[int, KV] = {}
    for i in range(24):
        key = b"k%d" % (i % 9)
        value = None if i % 11 == 0 else b"v%d" % i
        info = append_records(log, [(key, value), (b"x%d" % (i % 4), b"w%d" % i)])
        written[info.first_offset] = (key, value)
        written[info.first_offset + 1] = (b"x%d" % (i % 4), b"w%d" % i)
        if i % 4 == 3:
            log.roll()
    log.flush()
    return log, written


def cleaning_with_hook(log: PartitionLog, clock: ManualClock, hook: object,
                       keep: list[object] | None = None) -> None:
    """`keep` holds on to the cleaning's generator: closing it (as garbage
    collection would) runs cleanup code a crashed process never runs."""
    manager = CleanerManager([log.directory.parent])
    cleaner = Cleaner(CleanerConfig(dedupe_buffer_bytes=1 << 20, io_buffer_bytes=4096),
                      hook=hook)  # type: ignore[arg-type]
    ltc = manager.log_to_clean(CleanerCandidate(("t", 0), log, log.log_end_offset),
                               clock.wall_ms())
    snap = take_snapshot(log, ltc.first_dirty_offset, ltc.first_uncleanable_offset,
                         producers={}, now_ms=clock.wall_ms())
    steps = cleaner.clean(snap)
    if keep is not None:
        keep.append(steps)
    run_inline(steps)


def steps_of_a_cleaning(tmp_path: Path) -> list[str]:
    clock = ManualClock(T0)
    log, _ = build(tmp_path / "dry" / "t-0", clock)
    steps: list[str] = []
    cleaning_with_hook(log, clock, steps.append)
    return steps


def verify(log: PartitionLog, written: dict[int, KV], end_offset: int) -> None:
    records = log_records(log)
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets))
    for record in records:
        assert written[record.offset] == (record.key, record.value)
    present = {r.offset for r in records}
    latest: dict[bytes | None, int] = {}
    for offset, (key, _value) in sorted(written.items()):
        latest[key] = offset
    for key, offset in latest.items():
        assert offset in present, f"latest record of {key!r} ({offset}) lost"
    assert log.log_end_offset == end_offset
    # Reading by offset works from every offset the log ever had.
    for offset in range(0, end_offset, 7):
        log.read(offset, 1 << 20, max_offset=end_offset, min_one_batch=True)
    assert file_deleter.wait_removed(), "the deleter thread did not remove .deleted files"
    assert not [p.name for p in log.directory.iterdir() if p.suffix in LEFTOVER_SUFFIXES]


def test_a_cleaning_has_the_expected_steps(tmp_path: Path) -> None:
    steps = steps_of_a_cleaning(tmp_path)
    assert steps.count("swap durable") == 3  # groups of 3, 2 and 1 segments
    assert sum(s.startswith("deleted") for s in steps) == 18  # 3 files x 6 segments
    assert steps[:2] == ["cleaning", "cleaned written"]
    assert {s.split()[0] for s in steps} == {
        "cleaning", "cleaned", "swap", "deleted", "installed", "swapped", "removed"}


@pytest.mark.parametrize("full_recovery", [True, False], ids=["recover-all", "recovery-point"])
def test_crash_at_every_step_of_a_cleaning_recovers_a_complete_log(
        tmp_path: Path, full_recovery: bool) -> None:
    steps = steps_of_a_cleaning(tmp_path)
    for crash_at, step in enumerate(steps):
        clock = ManualClock(T0)
        directory = tmp_path / f"run{crash_at}" / "t-0"
        log, written = build(directory, clock)
        end_offset = log.log_end_offset
        calls = 0

        def hook(name: str, crash_at: int = crash_at) -> None:
            nonlocal calls
            calls += 1
            if calls - 1 == crash_at:
                raise Crash(name)

        crashed: list[object] = []
        with pytest.raises(Crash):
            cleaning_with_hook(log, clock, hook, crashed)
        crash(log)
        reopened = open_log(directory, log.config, clock=clock,
                            recovery_point=0 if full_recovery else end_offset,
                            had_clean_shutdown=False)
        try:
            verify(reopened, written, end_offset)
            # And a later cleaning finishes the job.
            while clean(reopened, clock) is not None:
                pass
            verify(reopened, written, end_offset)
            keys = [r.key for r in log_records(reopened)]
            assert len(keys) == len(set(keys)), f"after a crash at {step!r}"
        except AssertionError as exc:
            raise AssertionError(f"crash at step {crash_at} ({step!r}): {exc}") from exc
        finally:
            reopened.close()
            crashed.clear()


def test_a_log_truncated_during_cleaning_refuses_the_swap(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log, _ = build(tmp_path / "t-0", clock)
    manager = CleanerManager([tmp_path])
    ltc = manager.log_to_clean(CleanerCandidate(("t", 0), log, log.log_end_offset), T0)
    snap = take_snapshot(log, ltc.first_dirty_offset, ltc.first_uncleanable_offset,
                         producers={}, now_ms=T0)
    steps = Cleaner(CleanerConfig(dedupe_buffer_bytes=1 << 20)).clean(snap)
    prepare = next(steps)
    log.truncate_to(log.log_end_offset - 5)  # a follower's truncation, say
    assert prepare() is False
    with pytest.raises(CleaningAborted):
        steps.send(False)
    assert file_deleter.wait_removed(), "the deleter thread did not remove .deleted files"
    assert not [p.name for p in log.directory.iterdir() if p.suffix in LEFTOVER_SUFFIXES]


def test_truncation_between_the_swap_steps_aborts_the_swap(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log, written = build(tmp_path / "t-0", clock)
    manager = CleanerManager([tmp_path])
    ltc = manager.log_to_clean(CleanerCandidate(("t", 0), log, log.log_end_offset), T0)
    snap = take_snapshot(log, ltc.first_dirty_offset, ltc.first_uncleanable_offset,
                         producers={}, now_ms=T0)
    steps = Cleaner(CleanerConfig(dedupe_buffer_bytes=1 << 20)).clean(snap)
    prepare = next(steps)
    assert prepare() is True
    assert [p for p in log.directory.iterdir() if p.suffix == ".swap"]
    complete = steps.send(True)
    log.truncate_to(log.log_end_offset - 5)
    assert not [p for p in log.directory.iterdir() if p.suffix == ".swap"]
    assert complete() is False
    with pytest.raises(CleaningAborted):
        steps.send(False)
    assert file_deleter.wait_removed(), "the deleter thread did not remove .deleted files"
    assert not [p.name for p in log.directory.iterdir() if p.suffix in LEFTOVER_SUFFIXES]
    end = log.log_end_offset
    verify(log, {o: kv for o, kv in written.items() if o < end}, end)


def test_retention_during_cleaning_refuses_the_swap_of_the_deleted_segments(
        tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log, _ = build(tmp_path / "t-0", clock)
    manager = CleanerManager([tmp_path])
    ltc = manager.log_to_clean(CleanerCandidate(("t", 0), log, log.log_end_offset), T0)
    snap = take_snapshot(log, ltc.first_dirty_offset, ltc.first_uncleanable_offset,
                         producers={}, now_ms=T0)
    steps = Cleaner(CleanerConfig(dedupe_buffer_bytes=1 << 20)).clean(snap)
    prepare = next(steps)
    log.advance_log_start_offset(log.segments[1].base_offset)  # DeleteRecords
    assert prepare() is False
    with pytest.raises(CleaningAborted):
        steps.send(False)
    assert file_deleter.wait_removed(), "the deleter thread did not remove .deleted files"
    assert not [p.name for p in log.directory.iterdir() if p.suffix in LEFTOVER_SUFFIXES]
