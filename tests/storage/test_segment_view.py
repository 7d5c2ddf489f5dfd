"""FileRegion.view: the mapped (zero-copy) read of a region that fetch sends."""

from __future__ import annotations

from pathlib import Path

from storage_helpers import append, open_log

from strom.storage.file_records import MAP_THRESHOLD
from strom.storage.log import LogConfig, PartitionLog


def _log_with_segments(tmp_path: Path, batches: int = 40, value_size: int = 40_000
                       ) -> PartitionLog:
    log = open_log(tmp_path / "view-0", LogConfig(segment_bytes=300_000))
    for i in range(batches):
        append(log, [bytes([i % 251]) * value_size, b"x%d" % i])
    assert len(log.segments) > 3
    return log


def test_view_equals_read_for_large_and_small_regions(tmp_path: Path) -> None:
    log = _log_with_segments(tmp_path)
    result = log.read(3, 1 << 30, max_offset=log.log_end_offset, min_one_batch=True)
    assert len(result.regions) == len(log.segments)
    for region in result.regions:
        # The regions start at unaligned positions (not at page boundaries).
        view = region.view()
        assert isinstance(view, memoryview)
        assert len(view) == region.length
        assert bytes(view) == region.read()
    small = log.read(0, 1, max_offset=2, min_one_batch=True).regions[0]
    assert small.length < MAP_THRESHOLD
    assert small.view() == small.read()
    log.close()


def test_view_survives_deletion_of_its_segment(tmp_path: Path) -> None:
    log = _log_with_segments(tmp_path)
    result = log.read(0, 1 << 30, max_offset=log.log_end_offset, min_one_batch=True)
    expected = [region.read() for region in result.regions]
    views = [region.view() for region in result.regions]
    # As retention does: every segment but the active one goes, files unlinked
    # and fds closed, while the views are still waiting to be written.
    log.advance_log_start_offset(log.segments[-1].base_offset)
    assert len(log.segments) == 1
    assert not result.regions[0].path.exists()
    assert [bytes(v) for v in views] == expected
    log.close()


def test_view_of_a_closed_segment_falls_back_to_reading_its_path(tmp_path: Path) -> None:
    log = _log_with_segments(tmp_path)
    region = log.read(0, 1 << 30, max_offset=log.log_end_offset, min_one_batch=True).regions[0]
    expected = region.read()
    log.close()
    assert region.view() == expected
