"""A failed fdatasync is not retried over lost data (issue 13, "fsyncgate").

After an fsync fails with an I/O error the kernel may have dropped the dirty
pages it covered, and a later fsync can succeed although the data is gone. A
log whose flush failed so (anything but ENOSPC/EDQUOT) takes no more appends
or flushes and its recovery point stays put; the broker takes the partition
offline and the next start recovers it. The errors here are the kernel's:
fdatasync of a pipe (EINVAL), a transaction index path that is a directory
(EISDIR); nothing is mocked.

The same for an abort marker whose transaction index entry cannot be
written: the log fails rather than keep a marker read_committed consumers
would not see."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import append, open_log
from test_follower_append import TXN_ABORTED, lead, marker, produced

from strom.errors import LogDirFullError, LogFsyncFailedError
from strom.protocol.records import ControlRecordType
from strom.storage import disk
from strom.storage.files import TXN_INDEX_SUFFIX
from strom.storage.txn_index import AbortedTxn


@pytest.fixture(autouse=True)
def no_disk_condition(tmp_path: Path) -> Iterator[None]:
    yield
    disk.clear(tmp_path)  # process-wide state: never leak a condition to other tests


def test_failed_fdatasync_fails_the_log(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, [b"a", b"b"])
    log.flush()
    assert log.recovery_point == 2
    append(log, [b"c"])
    segment_fd = log.active_segment.file.fd
    original = os.dup(segment_fd)
    read_end, write_end = os.pipe()
    try:
        # The ticket dups the segment's fd: a pipe there makes its fdatasync fail
        # (EINVAL), as a disk whose writeback failed makes it fail with EIO.
        os.dup2(read_end, segment_fd)
        ticket = log.prepare_flush()
        os.dup2(original, segment_fd)
    finally:
        for fd in (original, read_end, write_end):
            os.close(fd)
    with pytest.raises(LogFsyncFailedError, match=r"fsync of .*\.log failed"):
        ticket.run()
    log.complete_flush(ticket)
    assert log.recovery_point == 2  # offset 2 was not acknowledged as durable
    assert log.io_failed is not None and ".log" in log.io_failed
    assert not disk.failing()  # no file-system-wide condition: other logs serve

    # Never flushed again (a later fdatasync could "succeed" over lost pages),
    # and no more appends.
    with pytest.raises(LogFsyncFailedError):
        log.flush()
    with pytest.raises(LogFsyncFailedError):
        append(log, [b"d"])
    assert log.recovery_point == 2
    assert log.log_end_offset == 3
    with pytest.raises(LogFsyncFailedError):
        log.close(flush=True)  # the caller does not mark the shutdown clean

    # Reopened (recovery), the log serves again.
    again = open_log(tmp_path / "t-0", recovery_point=2)
    assert again.io_failed is None
    append(again, [b"d"])
    again.flush()
    assert again.recovery_point == again.log_end_offset == 4
    again.close()


def test_injected_fsync_fault_names_the_file(tmp_path: Path) -> None:
    """The test hook the broker-level tests use behaves as the kernel error."""
    from strom.storage import flush

    log = open_log(tmp_path / "t-0")
    append(log)
    flush.FSYNC_FAULTS[log.directory] = errno.EIO
    try:
        with pytest.raises(LogFsyncFailedError, match=r"\.log failed: Input/output error"):
            log.flush()
    finally:
        del flush.FSYNC_FAULTS[log.directory]
    assert log.recovery_point == 0
    with pytest.raises(LogFsyncFailedError):
        log.flush()
    log.close()


def test_no_space_on_fsync_keeps_the_log_writable(tmp_path: Path) -> None:
    """ENOSPC/EDQUOT stay the full-disk condition (docs/operations.md "Disk
    full"): the log takes appends again once space is freed."""
    from strom.storage import flush

    log = open_log(tmp_path / "t-0")
    append(log)
    flush.FSYNC_FAULTS[log.directory] = errno.ENOSPC
    try:
        with pytest.raises(LogDirFullError):
            log.flush()
    finally:
        del flush.FSYNC_FAULTS[log.directory]
    assert log.io_failed is None
    append(log)
    log.flush()
    assert log.recovery_point == 2
    log.close()


def test_abort_marker_whose_index_entry_fails_fails_the_log(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory)
    lead(log, produced(TXN_ABORTED, 0, transactional=True))  # offsets 0-1
    # The index file cannot be opened for appending: a real OSError (EISDIR).
    index_path = directory / f"{log.active_segment.base_offset:020d}{TXN_INDEX_SUFFIX}"
    index_path.mkdir()
    with pytest.raises(LogFsyncFailedError, match="cannot index the aborted transaction"):
        marker(log, TXN_ABORTED, ControlRecordType.ABORT)  # offset 2
    assert log.io_failed is not None
    with pytest.raises(LogFsyncFailedError):
        lead(log, produced(TXN_ABORTED, 2, transactional=True))
    with pytest.raises(LogFsyncFailedError):
        log.close(flush=True)
    index_path.rmdir()  # the disk is fixed

    # Recovery replays the marker (above the producer-state snapshot) and
    # indexes it: read_committed consumers skip the aborted records.
    again = open_log(directory)
    assert again.log_end_offset == 3
    assert again.txn_index.collect(0, 3) == [AbortedTxn(TXN_ABORTED, 0, 2, 3)]
    again.close()
