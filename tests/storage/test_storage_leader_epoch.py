from __future__ import annotations

from pathlib import Path

import pytest

from strom.storage.leader_epoch import LeaderEpochCache, read_leader_epoch_checkpoint


def cache(tmp_path: Path, entries: list[tuple[int, int]] | None = None) -> LeaderEpochCache:
    return LeaderEpochCache(tmp_path / "leader-epoch-checkpoint", entries)


def test_assign_is_monotonic(tmp_path: Path) -> None:
    c = cache(tmp_path)
    assert c.assign(2, 10)
    assert not c.assign(2, 15)  # same epoch, later offset: nothing new
    assert c.assign(4, 20)
    assert c.entries() == [(2, 10), (4, 20)]
    # A lower epoch or offset removes the entries it contradicts.
    assert c.assign(3, 15)
    assert c.entries() == [(2, 10), (3, 15)]
    assert c.assign(5, 12)
    assert c.entries() == [(2, 10), (5, 12)]
    assert not c.assign(-1, 30)
    assert c.latest_epoch() == 5


def test_end_offset_for(tmp_path: Path) -> None:
    c = cache(tmp_path, [(1, 0), (3, 10), (6, 25)])
    leo = 40
    assert c.end_offset_for(6, leo) == (6, 40)  # latest epoch: the log end
    assert c.end_offset_for(3, leo) == (3, 25)
    assert c.end_offset_for(4, leo) == (3, 25)  # largest epoch <= requested
    assert c.end_offset_for(1, leo) == (1, 10)
    assert c.end_offset_for(0, leo) == (0, 0)  # below the first: its start offset
    assert c.end_offset_for(7, leo) == (-1, -1)  # above the latest: unknown
    assert c.end_offset_for(-1, leo) == (-1, -1)
    assert cache(tmp_path).end_offset_for(0, leo) == (-1, -1)
    assert c.epoch_for_offset(12) == 3 and c.epoch_for_offset(0) == 1


def test_truncate_from_end(tmp_path: Path) -> None:
    c = cache(tmp_path, [(1, 0), (3, 10), (6, 25)])
    c.truncate_from_end(30)
    assert c.entries() == [(1, 0), (3, 10), (6, 25)]
    c.truncate_from_end(25)
    assert c.entries() == [(1, 0), (3, 10)]
    c.truncate_from_end(5)
    assert c.entries() == [(1, 0)]


def test_truncate_from_start(tmp_path: Path) -> None:
    c = cache(tmp_path, [(1, 0), (3, 10), (6, 25)])
    c.truncate_from_start(0)
    assert c.entries() == [(1, 0), (3, 10), (6, 25)]
    c.truncate_from_start(12)
    assert c.entries() == [(3, 12), (6, 25)]
    c.truncate_from_start(25)
    assert c.entries() == [(6, 25)]
    c.truncate_from_start(30)
    assert c.entries() == [(6, 30)]


def test_file_format_round_trip(tmp_path: Path) -> None:
    c = cache(tmp_path, [(1, 0), (3, 10)])
    c.flush(force=True)
    assert c.path.read_text() == "0\n2\n1 0\n3 10\n"
    assert read_leader_epoch_checkpoint(c.path) == [(1, 0), (3, 10)]
    assert LeaderEpochCache.load(c.path).entries() == [(1, 0), (3, 10)]
    assert not LeaderEpochCache.load(c.path).dirty


def test_load_missing_or_malformed(tmp_path: Path) -> None:
    path = tmp_path / "leader-epoch-checkpoint"
    assert LeaderEpochCache.load(path).entries() == []
    path.write_text("1\n1\n0 0\n")
    with pytest.raises(ValueError):
        read_leader_epoch_checkpoint(path)
    assert LeaderEpochCache.load(path).entries() == []
    path.write_text("0\n3\n0 0\n")
    assert LeaderEpochCache.load(path).entries() == []


def test_older_snapshot_never_overwrites_newer(tmp_path: Path) -> None:
    c = cache(tmp_path)
    c.assign(1, 0)
    old = c.snapshot()
    c.assign(2, 5)
    c.truncate_from_end(5)
    c.flush()  # truncation writes at once
    c.write_snapshot(*old)  # a flush thread finishing late
    assert read_leader_epoch_checkpoint(c.path) == [(1, 0)]
    c.assign(3, 7)
    newer = c.snapshot()
    c.write_snapshot(*newer)
    assert read_leader_epoch_checkpoint(c.path) == [(1, 0), (3, 7)]
    c.write_snapshot(*old)
    assert read_leader_epoch_checkpoint(c.path) == [(1, 0), (3, 7)]
