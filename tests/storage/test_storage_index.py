from __future__ import annotations

import bisect
import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.storage.index import CorruptIndexError, OffsetIndex, TimeIndex

BASE = 45


def offset_index(tmp_path: Path, max_bytes: int = 30 * 8, *, writable: bool = True) -> OffsetIndex:
    return OffsetIndex(tmp_path / "00000000000000000045.index", BASE, max_bytes, writable=writable)


def time_index(tmp_path: Path, max_bytes: int = 30 * 12, *, writable: bool = True) -> TimeIndex:
    path = tmp_path / "00000000000000000045.timeindex"
    return TimeIndex(path, BASE, max_bytes, writable=writable)


def test_offset_index_lookup_empty(tmp_path: Path) -> None:
    index = offset_index(tmp_path)
    assert index.lookup(92) == (BASE, 0)
    assert index.last_entry() == (BASE, 0)


def test_offset_index_append_and_lookup(tmp_path: Path) -> None:
    index = offset_index(tmp_path)
    entries = [(BASE + 1, 10), (BASE + 5, 100), (BASE + 9, 250)]
    for offset, position in entries:
        index.append(offset, position)
    assert index.lookup(BASE) == (BASE, 0)
    assert index.lookup(BASE + 1) == (BASE + 1, 10)
    assert index.lookup(BASE + 4) == (BASE + 1, 10)
    assert index.lookup(BASE + 5) == (BASE + 5, 100)
    assert index.lookup(10**9) == (BASE + 9, 250)
    assert index.last_entry() == (BASE + 9, 250)


def test_offset_index_rejects_out_of_order_and_overflow(tmp_path: Path) -> None:
    index = offset_index(tmp_path)
    index.append(BASE + 5, 0)
    with pytest.raises(ValueError):
        index.append(BASE + 5, 10)
    with pytest.raises(ValueError):
        index.append(BASE + 2**31, 10)


def test_offset_index_full(tmp_path: Path) -> None:
    index = offset_index(tmp_path, max_bytes=3 * 8 + 5)  # rounded down to 3 entries
    for i in range(3):
        assert not index.is_full()
        index.append(BASE + i, i * 10)
    assert index.is_full()
    with pytest.raises(ValueError):
        index.append(BASE + 10, 100)


def test_offset_index_in_memory_while_active_and_written_on_close(tmp_path: Path) -> None:
    index = offset_index(tmp_path, max_bytes=1000)
    # The file exists but is neither preallocated nor mapped while active.
    assert index.path.stat().st_size == 0
    index.append(BASE + 3, 7)
    assert index.path.stat().st_size == 0
    assert index.lookup(BASE + 100) == (BASE + 3, 7)
    index.close()
    assert index.path.stat().st_size == 8
    assert index.path.read_bytes() == struct.pack(">ii", 3, 7)
    reopened = offset_index(tmp_path, writable=False)
    assert reopened.entries == 1
    assert reopened.lookup(BASE + 100) == (BASE + 3, 7)


def test_offset_index_truncate_to(tmp_path: Path) -> None:
    index = offset_index(tmp_path)
    for i in range(10):
        index.append(BASE + 2 * i + 1, 100 * i)
    index.truncate_to(BASE + 8)  # removes 9, 11, ...; keeps 1, 3, 5, 7
    assert index.entries == 4 and index.last_entry() == (BASE + 7, 300)
    index.truncate_to(BASE + 7)  # an exact entry goes too
    assert index.last_entry() == (BASE + 5, 200)
    index.truncate_to(BASE)
    assert index.entries == 0
    index.append(BASE + 1, 0)  # appendable again
    assert index.entries == 1


def test_offset_index_truncate_read_only_shrinks_file(tmp_path: Path) -> None:
    index = offset_index(tmp_path)
    for i in range(5):
        index.append(BASE + i, i)
    index.close()
    ro = offset_index(tmp_path, writable=False)
    ro.truncate_to(BASE + 2)
    assert ro.path.stat().st_size == 16
    ro.make_writable()
    ro.append(BASE + 2, 9)
    ro.close()
    assert offset_index(tmp_path, writable=False).last_entry() == (BASE + 2, 9)


def test_offset_index_reopen_writable_keeps_entries(tmp_path: Path) -> None:
    index = offset_index(tmp_path)
    index.append(BASE + 1, 1)
    index.close()
    again = offset_index(tmp_path)
    assert again.entries == 1
    again.append(BASE + 2, 2)
    assert again.lookup(BASE + 5) == (BASE + 2, 2)


def test_offset_index_random_lookup_against_sorted_list(tmp_path: Path) -> None:
    # Kafka's OffsetIndexTest.randomLookupTest: compare with a plain sorted list.
    rng = random.Random(7)
    index = offset_index(tmp_path, max_bytes=10_000 * 8)
    offsets = sorted(rng.sample(range(1, 2**31 - 1), 5000))
    positions = sorted(rng.sample(range(0, 2**31 - 1), 5000))
    model = [(BASE + o, p) for o, p in zip(offsets, positions, strict=True)]
    for offset, position in model:
        index.append(offset, position)
    keys = [o for o, _ in model]
    for _ in range(2000):
        target = rng.randrange(BASE, BASE + 2**31)
        slot = bisect.bisect_right(keys, target) - 1
        expected = model[slot] if slot >= 0 else (BASE, 0)
        assert index.lookup(target) == expected
    index.close()
    reopened = offset_index(tmp_path, writable=False)
    for _ in range(500):
        target = rng.randrange(BASE, BASE + 2**31)
        slot = bisect.bisect_right(keys, target) - 1
        assert reopened.lookup(target) == (model[slot] if slot >= 0 else (BASE, 0))


@settings(max_examples=60, deadline=None)
@given(
    deltas=st.lists(st.integers(1, 1000), min_size=0, max_size=60),
    probes=st.lists(st.integers(-10, 70_000), max_size=30),
    cut=st.integers(-10, 70_000),
)
def test_offset_index_model(tmp_path_factory: pytest.TempPathFactory, deltas: list[int],
                            probes: list[int], cut: int) -> None:
    tmp = tmp_path_factory.mktemp("idx")
    index = offset_index(tmp, max_bytes=100 * 8)
    model: list[tuple[int, int]] = []
    offset = BASE
    for i, delta in enumerate(deltas):
        offset += delta
        index.append(offset, i * 11)
        model.append((offset, i * 11))

    def expected(target: int) -> tuple[int, int]:
        below = [entry for entry in model if entry[0] <= target]
        return below[-1] if below else (BASE, 0)

    for probe in probes:
        assert index.lookup(BASE + probe) == expected(BASE + probe)
    index.truncate_to(BASE + cut)
    model = [entry for entry in model if entry[0] < BASE + cut]
    assert index.entries == len(model)
    for probe in probes:
        assert index.lookup(BASE + probe) == expected(BASE + probe)
    index.close()


def test_time_index_append_only_when_timestamp_grows(tmp_path: Path) -> None:
    index = time_index(tmp_path)
    index.maybe_append(-1, BASE)  # no timestamp: ignored
    assert index.entries == 0
    index.maybe_append(100, BASE + 1)
    index.maybe_append(100, BASE + 2)  # same timestamp: ignored
    index.maybe_append(90, BASE + 3)  # smaller: ignored
    index.maybe_append(200, BASE + 4)
    assert [index.entry(i) for i in range(index.entries)] == [(100, BASE + 1), (200, BASE + 4)]
    with pytest.raises(ValueError):
        index.maybe_append(300, BASE + 3)  # offset going backwards


def test_time_index_lookup(tmp_path: Path) -> None:
    index = time_index(tmp_path)
    for i in range(1, 6):
        index.maybe_append(i * 100, BASE + i * 10)
    assert index.lookup(50) == (-1, BASE)
    assert index.lookup(100) == (100, BASE + 10)
    assert index.lookup(199) == (100, BASE + 10)
    assert index.lookup(10**12) == (500, BASE + 50)


def test_time_index_reserves_last_slot_for_roll(tmp_path: Path) -> None:
    index = time_index(tmp_path, max_bytes=3 * 12)
    index.maybe_append(1, BASE)
    index.maybe_append(2, BASE + 1)
    assert index.is_full()
    with pytest.raises(ValueError):
        index.maybe_append(3, BASE + 2)
    index.maybe_append(3, BASE + 2, skip_full_check=True)
    assert index.last_entry() == (3, BASE + 2)


def test_time_index_truncate_to(tmp_path: Path) -> None:
    index = time_index(tmp_path)
    for i in range(1, 6):
        index.maybe_append(i * 100, BASE + i * 10)
    index.truncate_to(BASE + 30)
    assert index.last_entry() == (200, BASE + 20)
    index.truncate_to(BASE)
    assert index.last_entry() == (-1, BASE)


def test_sanity_check_detects_corruption(tmp_path: Path) -> None:
    index = offset_index(tmp_path)
    for i in range(4):
        index.append(BASE + i, i * 10)
    index.close()
    offset_index(tmp_path, writable=False).sanity_check()

    path = tmp_path / "00000000000000000045.index"
    with open(path, "ab") as f:
        f.write(b"\0\0\0")
    with pytest.raises(CorruptIndexError, match="multiple"):
        offset_index(tmp_path, writable=False).sanity_check()

    path.write_bytes(struct.pack(">iiii", 5, 10, 3, 20))
    with pytest.raises(CorruptIndexError, match="increasing"):
        offset_index(tmp_path, writable=False).sanity_check()

    # A preallocated file after a crash: entries followed by zeros.
    path.write_bytes(struct.pack(">ii", 5, 10) + bytes(80))
    with pytest.raises(CorruptIndexError):
        offset_index(tmp_path, writable=False).sanity_check()

    tpath = tmp_path / "00000000000000000045.timeindex"
    tpath.write_bytes(struct.pack(">qiqi", 100, 1, 50, 2))
    with pytest.raises(CorruptIndexError):
        time_index(tmp_path, writable=False).sanity_check()
    tpath.write_bytes(bytes(13))
    with pytest.raises(CorruptIndexError):
        time_index(tmp_path, writable=False).sanity_check()
