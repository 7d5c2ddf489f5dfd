from __future__ import annotations

import random
from pathlib import Path

import pytest
from storage_helpers import T0, make_batch

from strom.errors import KafkaStorageError
from strom.protocol.records import read_batch_header
from strom.storage import file_deleter
from strom.storage.segment import LogSegment

BASE = 100


def new_segment(tmp_path: Path, *, interval: int = 0, index_bytes: int = 4096) -> LogSegment:
    return LogSegment.create(
        tmp_path, BASE, max_index_bytes=index_bytes, index_interval_bytes=interval,
        created_ms=T0,
    )


def fill(segment: LogSegment, stamps: list[int], per_batch: int = 2) -> list[tuple[int, int]]:
    """Append one batch per timestamp; returns (position, size) of each."""
    out = []
    offset = segment.next_offset
    for ts in stamps:
        buf = make_batch([b"v"] * per_batch, [ts] * per_batch, base_offset=offset)
        header = read_batch_header(buf)
        out.append((segment.size, len(buf)))
        segment.append(memoryview(buf), header.last_offset, header.max_timestamp)
        offset = header.next_offset
    return out


def test_append_translate_and_state(tmp_path: Path) -> None:
    segment = new_segment(tmp_path, interval=0)
    layout = fill(segment, [T0 + 5, T0 + 9, T0 + 7, T0 + 9])
    assert segment.next_offset == BASE + 8
    assert segment.max_timestamp_and_offset == (T0 + 9, BASE + 3)
    assert segment.rolling_timestamp() == T0 + 5
    # interval 0: every batch but the first is indexed.
    index = segment.offset_index
    assert [index.entry(i) for i in range(index.entries)] == [
        (BASE + 3, layout[1][0]), (BASE + 5, layout[2][0]), (BASE + 7, layout[3][0])
    ]
    assert segment.translate_offset(BASE) == (0, layout[0][1], BASE + 1)
    assert segment.translate_offset(BASE + 5) == (layout[2][0], layout[2][1], BASE + 5)
    assert segment.translate_offset(BASE + 8) is None
    segment.close()


def test_read_bounds(tmp_path: Path) -> None:
    segment = new_segment(tmp_path, interval=150)
    layout = fill(segment, [T0] * 20)
    size = layout[0][1]
    end = BASE + 40

    def read(start: int, max_offset: int, max_bytes: int, min_one: bool = False
             ) -> tuple[int, int, bool] | None:
        region, stop = segment.read(start, max_offset=max_offset, max_bytes=max_bytes,
                                    min_one_batch=min_one, upper_bound=end)
        return None if region is None else (region.position, region.length, stop)

    assert read(BASE, end, 10**6) == (0, 20 * size, False)
    assert read(BASE + 3, end, 10**6) == (size, 19 * size, False)
    assert read(BASE, end, 5 * size + 3) == (0, 5 * size, True)
    assert read(BASE, BASE + 11, 10**6) == (0, 5 * size, True)  # batch 10..11 reaches 11
    assert read(BASE + 10, BASE + 10, 10**6) is None
    assert read(BASE, end, size - 1) is None
    assert read(BASE, end, size - 1, min_one=True) == (0, size, True)
    assert segment.read(BASE + 40, max_offset=end, max_bytes=100, min_one_batch=True,
                        upper_bound=end) == (None, False)
    segment.close()


def test_should_roll(tmp_path: Path) -> None:
    segment = new_segment(tmp_path, index_bytes=3 * 8)

    def roll(batch_size: int = 10, max_ts: int = T0, last: int = BASE, now: int = T0) -> bool:
        return segment.should_roll(batch_size=batch_size, max_timestamp=max_ts, last_offset=last,
                                   now_ms=now, segment_bytes=1000, segment_ms=100)

    assert not roll(batch_size=1000)  # an empty segment takes a batch of segment.bytes
    assert not roll(now=T0 + 10**6)  # empty: time does not count
    fill(segment, [T0])
    size = segment.size
    assert not roll(batch_size=1000 - size)
    assert roll(batch_size=1000 - size + 1)
    assert not roll(max_ts=T0 + 100)
    assert roll(max_ts=T0 + 101)
    assert roll(last=BASE + 2**31)
    segment.roll_jitter_ms = 50
    assert roll(max_ts=T0 + 51)
    segment.close()


def test_truncate_to_restores_exact_tail_state(tmp_path: Path) -> None:
    segment = new_segment(tmp_path, interval=150)
    layout = fill(segment, [T0 + i for i in (1, 8, 3, 9, 4, 2)])
    removed = segment.truncate_to(BASE + 7, T0)  # batch [6, 7] and after
    assert removed == sum(size for _, size in layout[3:])
    assert segment.size == layout[3][0]
    assert segment.next_offset == BASE + 6
    assert segment.max_timestamp_and_offset == (T0 + 8, BASE + 3)
    assert segment.truncate_to(BASE + 50, T0) == 0
    assert segment.truncate_to(BASE, T0 + 5) == layout[3][0]
    assert segment.size == 0 and segment.next_offset == BASE
    assert segment.created_ms == T0 + 5
    assert segment.max_timestamp_and_offset == (-1, BASE)
    segment.close()


def test_inactive_segment_keeps_its_max_timestamp(tmp_path: Path) -> None:
    segment = new_segment(tmp_path, interval=10**6)  # no index entries while appending
    fill(segment, [T0 + 3, T0 + 9, T0 + 1])
    assert segment.time_index.entries == 0
    segment.on_become_inactive()
    assert segment.time_index.last_entry() == (T0 + 9, BASE + 3)
    segment.close()
    reopened = LogSegment.open(tmp_path, BASE, max_index_bytes=4096, index_interval_bytes=0,
                               created_ms=T0)
    assert reopened.max_timestamp_and_offset == (T0 + 9, BASE + 3)
    assert reopened.next_offset == BASE + 6
    reopened.close()


def test_reopen_active_segment_continues_indexing(tmp_path: Path) -> None:
    segment = new_segment(tmp_path, interval=150)
    fill(segment, [T0] * 5)
    entries = segment.offset_index.entries
    since = segment.bytes_since_last_index_entry
    segment.close()
    reopened = LogSegment.open(tmp_path, BASE, max_index_bytes=4096, index_interval_bytes=150,
                               created_ms=T0)
    reopened.make_active()
    assert reopened.offset_index.entries == entries
    assert reopened.bytes_since_last_index_entry == since
    assert reopened.next_offset == BASE + 10
    fill(reopened, [T0] * 5)
    assert reopened.translate_offset(BASE + 19) is not None
    reopened.close()


def test_walk_rejects_garbage(tmp_path: Path) -> None:
    segment = new_segment(tmp_path)
    fill(segment, [T0])
    with open(segment.path, "ab") as f:
        f.write(b"\x00" * 100)
    segment.size += 100
    with pytest.raises(KafkaStorageError):
        segment.translate_offset(BASE + 5)
    segment.close()


def test_file_region_survives_close_but_not_delete(tmp_path: Path) -> None:
    segment = new_segment(tmp_path)
    fill(segment, [T0])
    region = segment.region(0, segment.size)
    data = region.read()
    segment.close()
    assert region.read() == data  # reopened by path
    with pytest.raises(KafkaStorageError):
        region.fileno()
    segment.delete()
    with pytest.raises(KafkaStorageError):
        region.read()
    # Renamed to .deleted at once, unlinked by the deleter thread.
    assert all(p.name.endswith(".deleted") for p in tmp_path.iterdir())
    assert file_deleter.wait_removed()
    assert list(tmp_path.iterdir()) == []


def _translate_by_walk(segment: LogSegment, offset: int) -> tuple[int, int, int] | None:
    """The reference: the first batch with last offset >= `offset`, walked from 0."""
    for position, size, last, _ in segment.file.walk(0, segment.size):
        if last >= offset:
            return position, size, last
    return None


@pytest.mark.parametrize("seed", range(8))
def test_translate_offset_with_the_next_batch_hint(tmp_path: Path, seed: int) -> None:
    # Sequential reads (which the hint serves), random reads, appends between
    # them and truncations: every answer is the one a walk from 0 gives.
    rng = random.Random(seed)
    segment = new_segment(tmp_path, interval=rng.choice([0, 150, 4096]))
    fill(segment, [T0] * 10, per_batch=rng.randint(1, 3))
    offset = BASE
    for _ in range(300):
        action = rng.random()
        if action < 0.1:
            fill(segment, [T0] * rng.randint(1, 3), per_batch=rng.randint(1, 3))
        elif action < 0.15 and segment.next_offset > BASE + 1:
            segment.truncate_to(rng.randrange(BASE + 1, segment.next_offset), T0)
        elif action < 0.3:
            offset = rng.randrange(BASE, segment.next_offset + 2)
        found = segment.translate_offset(offset)
        assert found == _translate_by_walk(segment, offset)
        offset = found[2] + 1 if found is not None else BASE
    segment.close()


def test_a_cut_file_forgets_the_next_batch_hint(tmp_path: Path) -> None:
    segment = new_segment(tmp_path, interval=4096)
    fill(segment, [T0] * 10, per_batch=2)
    # truncate_to finds the batch at BASE + 4 (hint: BASE + 6 after it), then
    # cuts there; smaller batches take the place of the old ones.
    segment.truncate_to(BASE + 4, T0)
    fill(segment, [T0] * 6, per_batch=1)
    assert segment.translate_offset(BASE + 6) == _translate_by_walk(segment, BASE + 6)
    segment.close()


@pytest.mark.parametrize("directory", ["/data/t-0", "relative/t-0", "/", "."])
def test_segment_paths_are_what_pathlib_joins(directory: str) -> None:
    # files.child skips pathlib's parsing of a one-component name (issue 19).
    from strom.storage import files

    base = Path(directory)
    for name in ("00000000000000000042.log", "leader-epoch-checkpoint", "t-0"):
        made = files.child(base, name)
        assert made == base / name and str(made) == str(base / name)
        assert made.name == name and made.parent == base
    assert files.segment_paths(base, 42) == [
        base / f"{42:020d}{suffix}" for suffix in files.SEGMENT_SUFFIXES]
