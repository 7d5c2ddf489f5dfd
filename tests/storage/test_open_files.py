"""Logs keep their open files within a bound (hardening #4, storage/open_files.py).

Segment files and mapped indexes open on use and the least recently used close
beyond the bound; a closed one reopens transparently. New logs of a batch
create no segment files until written to.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.clock import ManualClock
from strom.storage import log_open
from strom.storage.log import LogConfig
from strom.storage.new_logs import NewLogSync
from strom.storage.open_files import open_files
from tests.storage.storage_helpers import T0, append, open_log, read_all

BOUND = 8


@pytest.fixture
def bounded() -> Iterator[None]:
    before = open_files.capacity
    open_files.capacity = BOUND
    try:
        yield
    finally:
        open_files.capacity = before


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_logs_with_several_segments_stay_within_the_bound(tmp_path: Path,
                                                               bounded: None) -> None:
    fds_before = _fds()
    logs = [open_log(tmp_path / f"t-{p}") for p in range(30)]
    for round_ in range(3):
        for p, log in enumerate(logs):
            append(log, [b"%d-%d" % (p, round_)])
            log.roll()  # inactive segments with mapped indexes too
    for p, log in enumerate(logs):
        assert [r.value for r in read_all(log)] == [b"%d-%d" % (p, r) for r in range(3)]
        assert log.offset_for_timestamp(T0) == (0, T0)
    assert len(open_files) <= BOUND
    assert _fds() - fds_before <= BOUND
    assert open_files.evictions > 0
    for log in logs:
        log.close(flush=True)
    reopened = [open_log(tmp_path / f"t-{p}") for p in range(30)]
    assert [len(read_all(log)) for log in reopened] == [3] * 30
    assert _fds() - fds_before <= BOUND
    for log in reopened:
        log.close()


def test_a_new_log_of_a_batch_has_no_directory_until_written(tmp_path: Path) -> None:
    pending = NewLogSync()
    directory = tmp_path / "t-0"
    topic_id = uuid.uuid4()
    log = log_open.open_log(directory, LogConfig(), clock=ManualClock(T0),
                            topic_id=topic_id, new_logs=pending)
    assert len(pending) == 0
    log.assign_epoch_start_offset(3, 0)
    log.truncate_to(0)  # a follower's truncation to its own end: epochs stay in memory
    log.close(flush=True)  # closing an unwritten log creates nothing
    assert not directory.exists()
    log = log_open.open_log(directory, LogConfig(), clock=ManualClock(T0),
                            topic_id=topic_id, new_logs=pending)
    log.assign_epoch_start_offset(3, 0)
    append(log, [b"a"])
    # The first append makes the directory and the segment; its first flush
    # writes partition.metadata and the epochs.
    assert sorted(p.name for p in directory.iterdir()) == ["00000000000000000000.log"]
    log.close(flush=True)
    assert {"00000000000000000000.log", "00000000000000000000.index",
            "00000000000000000000.timeindex", "partition.metadata",
            "leader-epoch-checkpoint"} <= {p.name for p in directory.iterdir()}
    # The epoch assigned before the directory existed (epoch 3 from offset 0).
    assert (directory / "leader-epoch-checkpoint").read_text().splitlines()[-1] == "3 0"
    reopened = log_open.open_log(directory, LogConfig(), clock=ManualClock(T0), topic_id=topic_id)
    assert reopened.topic_id == topic_id
    assert [r.value for r in read_all(reopened)] == [b"a"]
