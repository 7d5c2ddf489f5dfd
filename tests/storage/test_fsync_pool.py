"""The GIL-free fsync threads (strom/storage/_fsync.c) and a ticket's outcome
through them (issue 19): the same durability and the same errors as a ticket
run on a Python thread. The failures are the kernel's: fdatasync of a pipe
answers EINVAL, of a closed fd EBADF."""

from __future__ import annotations

import errno
import os
import select
import time
from pathlib import Path

import pytest
from storage_helpers import append, open_log

from strom.errors import LogFsyncFailedError
from strom.storage.flush import FlushTicket

pytest.importorskip("strom.storage._fsync", reason="built without the C extensions")

from strom.storage._fsync import Pool  # noqa: E402


def _collect(pool: Pool, count: int, timeout_s: float = 10.0) -> list[tuple[int, int, int]]:
    """Jobs as the event loop gets them: wait for the eventfd, then drain."""
    got: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(got)} of {count} jobs reported"
        select.select([pool.fileno()], [], [], left)
        got += pool.completed()
    return got


def test_jobs_report_their_first_failure(tmp_path: Path) -> None:
    pool = Pool(2)
    fd = os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY)
    dir_fd = os.open(tmp_path, os.O_RDONLY)
    read_end, write_end = os.pipe()
    try:
        os.write(fd, b"x" * 100)
        pool.submit(1, [fd], [dir_fd])
        pool.submit(2, [fd, read_end, fd], [])  # stops at the pipe: index 1
        pool.submit(3, [fd], [read_end])  # a directory fd's index follows the data fds
        pool.submit(4, [], [])
        got = sorted(_collect(pool, 4))
        assert got == [(1, 0, -1), (2, errno.EINVAL, 1), (3, errno.EINVAL, 1), (4, 0, -1)]
        assert pool.completed() == []  # each job is reported once
    finally:
        pool.shutdown()
        for f in (fd, dir_fd, read_end, write_end):
            os.close(f)


def test_many_jobs_from_many_threads_are_all_reported(tmp_path: Path) -> None:
    pool = Pool(8)
    fds = [os.open(tmp_path / f"f{i}", os.O_CREAT | os.O_WRONLY) for i in range(6)]
    try:
        for token in range(600):
            pool.submit(token, [fds[token % 6]], [])
        got = _collect(pool, 600)
        assert sorted(t for t, _, _ in got) == list(range(600))
        assert all(err == 0 for _, err, _ in got)
    finally:
        pool.shutdown()
        for f in fds:
            os.close(f)


def test_shutdown_runs_what_was_submitted_then_refuses(tmp_path: Path) -> None:
    pool = Pool(1)
    fd = os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY)
    try:
        for token in range(20):
            pool.submit(token, [fd], [])
        pool.shutdown()
        assert sorted(t for t, _, _ in pool.completed()) == list(range(20))
        with pytest.raises(RuntimeError, match="shut down"):
            pool.submit(99, [fd], [])
    finally:
        os.close(fd)


@pytest.mark.parametrize("bad", [[-1], ["3"], [2**40]])
def test_bad_fds_are_refused_at_submit(bad: list[object]) -> None:
    pool = Pool(1)
    try:
        with pytest.raises((ValueError, TypeError, OverflowError)):
            pool.submit(1, bad, [])  # type: ignore[arg-type]
    finally:
        pool.shutdown()
    assert pool.completed() == []


def _sync_in_pool(ticket: FlushTicket) -> tuple[int, int]:
    """What the flusher does with a ticket that only syncs: (errno, failed_at)."""
    sync = ticket.sync_fds()
    assert sync is not None
    pool = Pool(1)
    try:
        pool.submit(7, *sync)
        [(token, error, failed_at)] = _collect(pool, 1)
    finally:
        pool.shutdown()
    assert token == 7
    return error, failed_at


def test_a_ticket_synced_by_the_pool_moves_the_recovery_point(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, [b"a", b"b"])
    log.flush()  # the first flush writes partition.metadata: not a pool ticket
    append(log, [b"c"])
    ticket = log.prepare_flush()
    error, failed_at = _sync_in_pool(ticket)
    ticket.synced(error, failed_at)
    log.complete_flush(ticket)
    assert log.recovery_point == 3


def test_a_failed_pool_sync_fails_the_log_as_a_thread_would(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, [b"a", b"b"])
    log.flush()
    append(log, [b"c"])
    segment_fd = log.active_segment.file.fd
    original = os.dup(segment_fd)
    read_end, write_end = os.pipe()
    try:
        os.dup2(read_end, segment_fd)  # the ticket dups a pipe: EINVAL, as EIO would
        ticket = log.prepare_flush()
        os.dup2(original, segment_fd)
    finally:
        for fd in (original, read_end, write_end):
            os.close(fd)
    error, failed_at = _sync_in_pool(ticket)
    assert error == errno.EINVAL
    with pytest.raises(LogFsyncFailedError, match=r"fsync of .*\.log failed"):
        ticket.synced(error, failed_at)
    log.complete_flush(ticket)
    assert log.recovery_point == 2  # offset 2 was not acknowledged as durable
    with pytest.raises(LogFsyncFailedError):
        log.prepare_flush()  # the log takes no more flushes


def test_a_syncfs_job_syncs_or_reports_the_kernels_error(tmp_path: Path) -> None:
    """syncfs of a directory's file system answers 0; an O_PATH fd is refused
    by the kernel (EBADF at index 0); a negative fd is refused at submit."""
    pool = Pool(2)
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    path_fd = os.open(tmp_path, os.O_PATH)
    try:
        os.write(fd := os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY), b"x" * 100)
        os.close(fd)
        pool.submit_syncfs(1, dir_fd, -1)
        pool.submit_syncfs(2, path_fd, -1)
        assert sorted(_collect(pool, 2)) == [(1, 0, -1), (2, errno.EBADF, 0)]
        with pytest.raises(ValueError, match="not a file descriptor"):
            pool.submit_syncfs(3, -1, -1)
    finally:
        pool.shutdown()
        os.close(dir_fd)
        os.close(path_fd)


def test_a_syncfs_job_steps_aside_when_the_page_cache_is_dirty(tmp_path: Path) -> None:
    """Above max_dirty bytes (Dirty + Writeback of /proc/meminfo) a syncfs
    would first write everything else the machine has dirty: the job does not
    sync and reports -1, and the flusher syncs each file instead."""
    pool = Pool(1)
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = os.open(tmp_path / "dirty", os.O_CREAT | os.O_WRONLY)
        os.write(fd, b"d" * (8 << 20))  # 8 MiB the kernel has not written back yet
        os.close(fd)
        pool.submit_syncfs(1, dir_fd, 0)
        assert _collect(pool, 1) == [(1, -1, -1)]
        pool.submit_syncfs(2, dir_fd, 1 << 50)
        assert _collect(pool, 1) == [(2, 0, -1)]
    finally:
        pool.shutdown()
        os.close(dir_fd)
