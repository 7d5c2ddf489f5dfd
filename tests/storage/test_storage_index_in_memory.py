"""The active index lives in memory and reaches its file on roll or close
(strom/storage/index.py): lookups while active, after a clean reopen, after
truncation and after crash recovery all agree with a plain sorted list."""

from __future__ import annotations

import bisect
import random
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from storage_helpers import T0, append, crash, make_batch, open_log, read_all

from strom.storage.index import OffsetIndex, TimeIndex
from strom.storage.log import LogConfig

BASE = 100


def _offset_index(path: Path, *, writable: bool, max_bytes: int = 4096) -> OffsetIndex:
    return OffsetIndex(path / "00000000000000000100.index", BASE, max_bytes, writable=writable)


def _time_index(path: Path, *, writable: bool, max_bytes: int = 4096) -> TimeIndex:
    return TimeIndex(path / "00000000000000000100.timeindex", BASE, max_bytes, writable=writable)


def _expected_lookup(entries: list[tuple[int, int]], offset: int) -> tuple[int, int]:
    keys = [o for o, _ in entries]
    i = bisect.bisect_right(keys, offset) - 1
    return entries[i] if i >= 0 else (BASE, 0)


def test_new_index_file_is_empty_and_unmapped_until_it_rolls(tmp_path: Path) -> None:
    index = _offset_index(tmp_path, writable=True, max_bytes=8192)
    for i in range(600):  # more than one page of entries
        index.append(BASE + 2 * i, 10 * i)
    assert index.path.stat().st_size == 0
    assert index.lookup(BASE + 501) == (BASE + 500, 2500)
    index.make_read_only()
    assert index.path.stat().st_size == 600 * 8 and not index.writable
    assert index.lookup(BASE + 501) == (BASE + 500, 2500)  # now through the read-only map
    assert index.raw()[:8] == struct.pack(">ii", 0, 0)


def test_reopened_as_writable_keeps_entries_and_appends_after_them(tmp_path: Path) -> None:
    index = _offset_index(tmp_path, writable=True)
    for i in range(5):
        index.append(BASE + i, 10 * i)
    index.close()
    again = _offset_index(tmp_path, writable=True)
    assert again.entries == 5 and again.last_entry() == (BASE + 4, 40)
    again.append(BASE + 9, 90)
    again.close()
    reread = _offset_index(tmp_path, writable=False)
    assert [reread.entry(i) for i in range(reread.entries)] == [
        (BASE + i, 10 * i) for i in range(5)] + [(BASE + 9, 90)]


def test_truncation_below_the_written_entries_trims_the_file(tmp_path: Path) -> None:
    index = _offset_index(tmp_path, writable=True)
    for i in range(8):
        index.append(BASE + i, 10 * i)
    index.close()
    index.make_writable()
    index.truncate_to(BASE + 3)  # below what the file already holds
    index.append(BASE + 6, 65)
    index.close()
    assert index.path.stat().st_size == 4 * 8
    reread = _offset_index(tmp_path, writable=False)
    assert [reread.entry(i) for i in range(4)] == [
        (BASE, 0), (BASE + 1, 10), (BASE + 2, 20), (BASE + 6, 65)]


def test_time_index_roll_entry_uses_the_reserved_slot(tmp_path: Path) -> None:
    index = _time_index(tmp_path, writable=True, max_bytes=3 * 12)
    index.maybe_append(T0, BASE)
    index.maybe_append(T0 + 1, BASE + 1)
    assert index.is_full()
    index.maybe_append(T0 + 2, BASE + 2, skip_full_check=True)
    index.close()
    reread = _time_index(tmp_path, writable=False, max_bytes=3 * 12)
    assert reread.entries == 3
    assert reread.lookup(T0 + 5) == (T0 + 2, BASE + 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["append", "truncate", "close", "lookup"]),
                          st.integers(0, 40)), max_size=60))
def test_model(tmp_path_factory: object, ops: list[tuple[str, int]]) -> None:
    """Random appends, truncations, close/reopen cycles against a sorted list."""
    path = tmp_path_factory.mktemp("idx")  # type: ignore[attr-defined]
    index = _offset_index(path, writable=True)
    model: list[tuple[int, int]] = []
    for op, arg in ops:
        if op == "append":
            offset = (model[-1][0] if model else BASE - 1) + 1 + arg
            position = (model[-1][1] if model else -1) + 1 + arg
            index.append(offset, position)
            model.append((offset, position))
        elif op == "truncate":
            cut = BASE + arg * 3
            index.truncate_to(cut)
            model = [e for e in model if e[0] < cut]
        elif op == "close":
            index.close()
            assert index.path.stat().st_size == len(model) * 8
            index = _offset_index(path, writable=arg % 2 == 0)
            if not index.writable:
                index.make_writable()
        else:
            assert index.lookup(BASE + arg * 5) == _expected_lookup(model, BASE + arg * 5)
        assert index.entries == len(model)
    index.close()
    reread = _offset_index(path, writable=False)
    assert [reread.entry(i) for i in range(reread.entries)] == model


def _log_config() -> LogConfig:
    batch = len(make_batch([b"x" * 20, b"y" * 20]))
    return LogConfig(segment_bytes=batch * 5, index_interval_bytes=1)


def test_active_index_answers_lookups_after_clean_reopen(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", _log_config())
    for i in range(12):  # two full segments and an active one with entries
        append(log, [b"x" * 20, b"y" * 20], [T0 + 2 * i, T0 + 2 * i + 1])
    active = log.segments[-1]
    assert active.offset_index.entries > 0 and active.offset_index.path.stat().st_size == 0
    before = [(s.offset_index.raw(), s.time_index.raw()) for s in log.segments]
    log.close(flush=True)
    log = open_log(tmp_path / "t-0", _log_config(), had_clean_shutdown=True)
    assert [(s.offset_index.raw(), s.time_index.raw()) for s in log.segments] == before
    for start in range(24):
        assert read_all(log, start)[0].offset == start - start % 2
    assert log.offset_for_timestamp(T0 + 21) == (21, T0 + 21)
    append(log, [b"z"], [T0 + 30])  # the reopened active index takes appends
    assert log.offset_for_timestamp(T0 + 30) == (24, T0 + 30)
    log.close()


def test_active_index_rebuilt_after_crash_matches_the_lost_one(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", _log_config())
    rng = random.Random(7)
    for i in range(13):
        append(log, [b"x" * rng.randrange(1, 30), b"y"], [T0 + 2 * i, T0 + 2 * i + 1])
    log.flush()
    lost = [(s.offset_index.raw(), s.time_index.raw()) for s in log.segments]
    recovery_point = log.recovery_point
    crash(log)
    log = open_log(tmp_path / "t-0", _log_config(), recovery_point=recovery_point)
    assert [(s.offset_index.raw(), s.time_index.raw()) for s in log.segments] == lost
    for start in range(26):
        assert read_all(log, start)[0].offset == start - start % 2
    assert log.max_timestamp() == (T0 + 25, 25)
    log.close()
