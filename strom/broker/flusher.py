"""Group-commit fsync for acks=all.

An acks=all produce asks `durable(partition, end_offset)`. Each partition log
has at most one flush in flight: a ticket (dup'd fds and the offset they
cover, PartitionLog.prepare_flush) run on a small pool of fsync threads.
Requests that arrive while it runs wait together, and when it ends the
waiters it covered complete and one new flush starts for the rest, so one
fdatasync per partition serves every request waiting on it (PERFORMANCE.md:
one fsync per 1 MiB instead of per 16 KiB is 16x the durable throughput).
Partitions do not wait for each other: a round over all partitions made
each wait for the slowest fsync of the round. The event loop never blocks
on fsync.

Why concurrent: fdatasyncs issued together share ext4 journal commits, and a
thread needs the GIL again after every fdatasync returns, which a busy event
loop hands over only every switch interval (5 ms). Measured here with 12
partitions written at 10 MiB/s: 12 fdatasyncs in a row took 2.2 ms a round
on an idle interpreter, the same 12 from 12 threads 0.6 ms; inside the broker
under the 50-producer soak the serial round took 170-470 ms (p50), so fsync
rounds, not the disk, capped acks=all throughput.

Why not Python threads: at one-record requests a flush covers one to three
requests, and each fdatasync on a Python thread took the GIL back twice
(after the syscall, to hand the result to the loop), against a loop that
holds it nearly all the time: 67,000 futex calls a second for 3,400
fdatasyncs in the fleet workload. A ticket that only syncs fds (nearly all)
runs on C threads that never take the GIL (strom.storage._fsync) and wake the
loop through one eventfd for any number of finished flushes; a ticket that
also writes files, or strom without its C extensions, uses the Python threads.

Why one syncfs for many partitions: in the soak (10,000 one-record requests/s
over 12 partitions) each partition's fdatasync took ~1 ms as the loop saw it
and 6,400 ran a second. syncfs(2) writes back and commits the whole file
system once: measured here, 16 files with a fresh 1 KiB each took 0.31 ms and
93 µs of CPU in one syncfs, 1.6 ms and 650 µs as 16 fdatasyncs. So while the
log directory's file system has little else to write (Dirty + Writeback in
/proc/meminfo at most `strom.log.flush.syncfs.max.dirty.bytes`, checked by
the C thread before each syncfs), every partition of the directory that has
waiters joins one *round*: one syncfs in flight per log directory, the next
round collecting everything that arrived meanwhile. Above the limit (bulk
acks=1 traffic or another process's writes would make the syncfs wait for
them) or when syncfs fails, each partition of the round is flushed with its
own fdatasync as before.

Errors: syncfs reports a writeback error of any file of the file system, once
per open file it is called on (errseq), so each directory's rounds use one fd
opened at start() and run one at a time: no round misses an error another
took. An error does not say whose file failed, so the round's partitions are
flushed again one by one, whose fdatasync reports an error of its own file
(a per-file cursor syncfs does not move), and syncfs stays off for that
directory until the broker restarts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from strom.broker.stats import SHORT_BUCKETS, Histogram
from strom.errors import KafkaStorageError, LogFsyncFailedError
from strom.storage.log import FlushTicket, PartitionLog

try:
    from strom.storage import _fsync
except ImportError:  # built without the C extensions: Python threads only
    _fsync = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


Flushable = PartitionLog

#: fsync threads: partitions flushed at once. More only add GIL hand-overs.
FSYNC_THREADS = 8
#: Tickets prepared at once. A ticket holds dup'd fds until it completes, so
#: acks=all produce to thousands of partitions at once ran out of fds
#: (hardening #4); a log waiting for a slot is prepared when one frees, and
#: its ticket then covers everything appended meanwhile.
MAX_TICKETS = 4 * FSYNC_THREADS
#: After a syncfs round found the page cache too dirty, logs flush with their
#: own fdatasync this long before trying a round again.
SYNCFS_PAUSE_S = 0.1
#: A log with more unsynced bytes than this gets its own fdatasync rather than
#: a place in a syncfs round: syncfs hands all writeback to one kernel thread,
#: while fdatasyncs of large flushes on several threads write in parallel
#: (bulk acks=all librdkafka, 6 partitions: 1,155 and 1,224 MiB/s with every
#: flush in rounds; 1,158-1,372, median 1,283, before rounds; 1,207-1,332,
#: median 1,264, with this limit; bench/run.py, 2-6 rounds each).
ROUND_MAX_BYTES = 256 * 1024
#: syncfs rounds of one log directory at once, each on its own fd (a writeback
#: error is reported once per fd, so no two rounds may share one). One: with
#: two the fleet row's ack p50 was 1.25 ms against 0.90-1.05, and the fsync
#: threads used 1.95 s of CPU against 1.31 s (each round covered less).
ROUNDS_IN_FLIGHT = 1


class GroupCommitFlusher:
    """One flush pipeline per partition log: while a log's fdatasync runs, the
    requests that arrive for it wait together and the next fdatasync starts the
    moment the previous one ends, independently of other partitions (a round
    over all partitions made every partition wait for the slowest one)."""

    def __init__(self) -> None:
        self._waiters: dict[Flushable, list[tuple[int, asyncio.Future[None]]]] = {}
        self._in_flight: dict[Flushable, asyncio.Future[None]] = {}
        #: Logs with waiters, waiting for a ticket slot (in order).
        self._queued: dict[Flushable, None] = {}
        #: Logs with waiters whose flush starts at the next turn of the loop.
        self._soon: dict[Flushable, None] = {}
        self._closed = False
        self._pool: _FsyncThreads | None = None
        #: The GIL-free threads and the loop that watches their eventfd.
        self._c_pool: _fsync.Pool | None = None
        self._c_loop: asyncio.AbstractEventLoop | None = None
        self._c_runs: dict[int, tuple[Flushable, FlushTicket, float]] = {}
        self._tokens = itertools.count()
        #: Called (on the loop) when a log's fdatasync failed with an I/O
        #: error: the replica manager takes its partition offline.
        self.on_fsync_failed: Callable[[Flushable, LogFsyncFailedError], None] | None = None
        #: Seconds from a flush's start to its end as the loop sees it (the
        #: fdatasync and the wait for a free fsync thread): /metrics.
        self.fsync_seconds = Histogram(SHORT_BUCKETS)
        #: Log directory -> the fds its syncfs rounds run on that no round is
        #: using now (module docstring); a directory syncfs is off for has none.
        self._syncfs_fds: dict[Path, list[int]] = {}
        self._syncfs_max_dirty = -1
        #: Logs with waiters whose flush joins their directory's next round.
        self._round_next: dict[Flushable, None] = {}
        self._c_rounds: dict[int, tuple[Path, int, list[tuple[Flushable, FlushTicket, float]]]] = {}
        #: Rounds that synced, and rounds answered by per-partition fdatasyncs
        #: instead (too much dirty data, or syncfs failed): /metrics.
        self.syncfs_rounds = 0
        self.syncfs_fallbacks = 0
        #: After a round found too much dirty data: loop time from which the
        #: next logs try rounds again (each try costs the loop a wake-up).
        self._syncfs_resume_at = 0.0

    def start(self, log_dirs: Iterable[Path] = (), syncfs_max_dirty_bytes: int = 0) -> None:
        """Open each log directory's syncfs fd (before any request appends: a
        writeback error is reported to the fds open when it happens), unless
        `syncfs_max_dirty_bytes` is 0 or the C extension is missing. The fsync
        threads start on first use."""
        if _fsync is None or syncfs_max_dirty_bytes <= 0:
            return
        self._syncfs_max_dirty = syncfs_max_dirty_bytes
        for directory in log_dirs:
            if directory not in self._syncfs_fds:
                self._syncfs_fds[directory] = [
                    os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
                    for _ in range(ROUNDS_IN_FLIGHT)]

    async def stop(self) -> None:
        self._closed = True
        running = list(self._in_flight.values())
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self.fail_all(lambda: KafkaStorageError("broker shutting down"))
        if self._pool is not None:
            self._pool.shutdown()
        if self._c_pool is not None and self._c_loop is not None:
            self._c_loop.remove_reader(self._c_pool.fileno())
            self._c_pool.shutdown()
            self._c_pool = self._c_loop = None
        fds, self._syncfs_fds = self._syncfs_fds, {}
        for idle in fds.values():
            for fd in idle:
                os.close(fd)

    async def wait_durable(self, log: Flushable, end_offset: int) -> None:
        """Return once every offset below `end_offset` is fsync'd."""
        fut = self.durable(log, end_offset)
        if fut is not None:
            await fut

    def durable(self, log: Flushable, end_offset: int) -> asyncio.Future[None] | None:
        """A future done once every offset below `end_offset` is fsync'd; None
        if that is already so. A caller that gives up cancels it.

        A bare future, not a task: a produce request waits on one per
        partition, and a task (coroutine, frame, context) per wait was a
        measurable share of the per-request cost and of the objects the
        cyclic GC had to scan while requests waited for their fsync."""
        if log.recovery_point >= end_offset:
            return None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self._closed:
            fut.set_exception(KafkaStorageError("broker shutting down"))
            return fut
        waiters = self._waiters.get(log)
        if waiters is None:
            self._waiters[log] = [(end_offset, fut)]
        else:
            waiters.append((end_offset, fut))
        if log not in self._in_flight and log not in self._queued and log not in self._soon \
                and log not in self._round_next:
            # Started once the requests handled in this turn of the loop have
            # appended: those to the same partition share the fdatasync (at
            # one record per request, started at once, the second waited for
            # the first's fsync and then ran its own).
            self._soon[log] = None
            if len(self._soon) == 1:
                loop.call_soon(self._start_soon, loop)
        return fut

    def _start_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        soon, self._soon = self._soon, {}
        if self._closed:
            return
        for log_ in soon:
            if log_ in self._waiters and log_ not in self._in_flight and log_ not in self._queued:
                self._start(log_, loop)
        self._start_rounds(loop)

    def forget(self, log: Flushable, error: Callable[[], Exception]) -> None:
        """Fail the waiters of a log that is going away (topic deleted)."""
        self._queued.pop(log, None)
        self._soon.pop(log, None)
        self._round_next.pop(log, None)
        for _, fut in self._waiters.pop(log, []):
            if not fut.done():
                fut.set_exception(error())

    def fail_all(self, error: Callable[[], Exception]) -> None:
        for log_ in list(self._waiters):
            self.forget(log_, error)

    def _start(self, log_: Flushable, loop: asyncio.AbstractEventLoop) -> None:
        """Flush `log_` next: in its directory's next syncfs round (started by
        `_start_rounds`, which callers run once they have started every log
        they had), or with its own fdatasync."""
        if self._syncfs_fds and log_.log_dir in self._syncfs_fds \
                and log_.unflushed_active_bytes <= ROUND_MAX_BYTES \
                and loop.time() >= self._syncfs_resume_at:
            self._round_next[log_] = None
        else:
            self._start_own(log_, loop)

    def _start_own(self, log_: Flushable, loop: asyncio.AbstractEventLoop) -> None:
        if len(self._in_flight) >= MAX_TICKETS:
            self._queued[log_] = None
        else:
            self._flush(log_, loop)

    def _start_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queued and len(self._in_flight) < MAX_TICKETS and not self._closed:
            log_ = next(iter(self._queued))
            del self._queued[log_]
            if log_ in self._waiters:
                self._flush(log_, loop)

    def _start_rounds(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a syncfs round in every directory that has logs waiting for
        one and an fd no round is using. A round's tickets hold no fds (syncfs needs
        none), so rounds do not count against MAX_TICKETS."""
        if not self._round_next or self._closed:
            return
        pool = self._c_pool_on(loop)
        rounds: dict[Path, list[tuple[Flushable, FlushTicket, float]]] = {}
        for log_ in list(self._round_next):
            directory = log_.log_dir
            idle = self._syncfs_fds.get(directory)
            if idle is not None and not idle:
                continue  # every fd of the directory is in a round: the next one
            del self._round_next[log_]
            if log_ not in self._waiters or log_ in self._in_flight:
                continue
            if pool is None or idle is None:
                # No GIL-free pool on this loop, or syncfs failed in this
                # directory while the log waited for its next round.
                self._start_own(log_, loop)
                continue
            try:
                ticket = log_.prepare_flush(dup_fds=False)
            except KafkaStorageError as exc:
                self._fail(log_, exc)
                continue
            if ticket.sync_fds() is None:
                # It writes files (partition.metadata, leader epochs) or a
                # test injects a fault: a ticket of its own on a Python thread.
                log_.complete_flush(ticket)
                self._start_own(log_, loop)
                continue
            rounds.setdefault(directory, []).append((log_, ticket, time.perf_counter()))
        for directory, entries in rounds.items():
            assert pool is not None
            run: asyncio.Future[None] = loop.create_future()
            for log_, _, _ in entries:
                self._in_flight[log_] = run
            token = next(self._tokens)
            fd = self._syncfs_fds[directory].pop()
            self._c_rounds[token] = (directory, fd, entries)
            pool.submit_syncfs(token, fd, self._syncfs_max_dirty)

    def _round_done(self, token: int, error_code: int, loop: asyncio.AbstractEventLoop) -> None:
        directory, fd, entries = self._c_rounds.pop(token)
        if error_code > 0 and directory in self._syncfs_fds:
            log.warning("syncfs of %s failed (%s): flushing each partition with "
                        "fdatasync from now on", directory, os.strerror(error_code))
            for idle in self._syncfs_fds.pop(directory):
                os.close(idle)
        if directory in self._syncfs_fds:
            self._syncfs_fds[directory].append(fd)
        else:
            os.close(fd)  # syncfs is off there: this round's or another's error
        run = self._in_flight.get(entries[0][0])
        if error_code == 0:
            self.syncfs_rounds += 1
            for log_, ticket, started in entries:
                ticket.synced(0, -1)
                self._flushed(log_, ticket, None, loop, started)
        else:
            self.syncfs_fallbacks += 1
            if error_code < 0:
                self._syncfs_resume_at = loop.time() + SYNCFS_PAUSE_S
            for log_, ticket, _ in entries:
                del self._in_flight[log_]
                log_.complete_flush(ticket)  # not done: nothing moves
                if self._closed:
                    continue
                if log_ in self._waiters:
                    self._start_own(log_, loop)
        if run is not None:
            _settle(run, None)

    def _flush(self, log_: Flushable, loop: asyncio.AbstractEventLoop) -> None:
        """Start one fdatasync of everything `log_` has appended so far."""
        try:
            ticket = log_.prepare_flush()
        except KafkaStorageError as exc:
            self._fail(log_, exc)
            return
        # Done when the flush has been settled (stop() waits for it).
        run: asyncio.Future[None] = loop.create_future()
        self._in_flight[log_] = run
        started = time.perf_counter()
        sync = ticket.sync_fds() if _fsync is not None else None
        pool = self._c_pool_on(loop) if sync is not None else None
        if sync is not None and pool is not None:
            token = next(self._tokens)
            self._c_runs[token] = (log_, ticket, started)
            pool.submit(token, *sync)
            return
        if self._pool is None:
            self._pool = _FsyncThreads(FSYNC_THREADS)
        self._pool.submit(ticket, run, loop)
        run.add_done_callback(lambda done: self._thread_flushed(
            log_, ticket, done.exception() if not done.cancelled()
            else KafkaStorageError("cancelled"), loop, started))

    def _thread_flushed(self, log_: Flushable, ticket: FlushTicket, error: BaseException | None,
                        loop: asyncio.AbstractEventLoop, started: float) -> None:
        self._flushed(log_, ticket, error, loop, started)
        self._start_rounds(loop)

    def _c_pool_on(self, loop: asyncio.AbstractEventLoop) -> _fsync.Pool | None:
        """The GIL-free pool, watched by `loop`; None on another loop than the
        first (an embedded broker moved between loops: Python threads)."""
        if self._c_pool is None:
            self._c_pool = _fsync.Pool(FSYNC_THREADS)
            self._c_loop = loop
            loop.add_reader(self._c_pool.fileno(), self._c_completed)
        return self._c_pool if loop is self._c_loop else None

    def _c_completed(self) -> None:
        """The eventfd is readable: settle every flush the C threads finished,
        here rather than through a future's done callback, which would cost
        the waiting requests one more turn of a busy loop each."""
        if self._c_pool is None or self._c_loop is None:
            return
        loop = self._c_loop
        for token, error_code, failed_at in self._c_pool.completed():
            if token in self._c_rounds:
                self._round_done(token, error_code, loop)
                continue
            log_, ticket, started = self._c_runs.pop(token)
            error: BaseException | None = None
            try:
                ticket.synced(error_code, failed_at)
            except BaseException as exc:  # the flush's outcome, as a thread's
                error = exc
            run = self._in_flight.get(log_)
            self._flushed(log_, ticket, error, loop, started)
            if run is not None:
                _settle(run, error)
                if error is not None:
                    run.exception()  # retrieved: stop() gathers only to wait
        self._start_rounds(loop)

    def _flushed(self, log_: Flushable, ticket: FlushTicket, error: BaseException | None,
                 loop: asyncio.AbstractEventLoop, started: float) -> None:
        self.fsync_seconds.observe(time.perf_counter() - started)
        del self._in_flight[log_]
        log_.complete_flush(ticket)  # closes its dup'd fds in any case
        self._start_queued(loop)
        if error is not None:
            # The recovery point stays put; the waiters learn of it. A storage
            # error was logged once per condition where it was raised.
            if not isinstance(error, KafkaStorageError):
                log.error("fsync of %s failed: %s", log_.directory, error)
            # Every waiter fails, also those that came after the ticket was
            # prepared: after an I/O error the log takes no more flushes.
            self._fail(log_, error)
            if isinstance(error, LogFsyncFailedError) and self.on_fsync_failed is not None:
                self.on_fsync_failed(log_, error)
            return
        waiters = self._waiters.pop(log_, None)
        if not waiters:
            return
        rest = []
        for end_offset, fut in waiters:
            if fut.done():
                continue
            if log_.recovery_point >= end_offset:
                fut.set_result(None)
            else:
                rest.append((end_offset, fut))
        if rest:
            self._waiters[log_] = rest
            if not self._closed:
                self._start(log_, loop)

    def _fail(self, log_: Flushable, error: BaseException) -> None:
        for _, fut in self._waiters.pop(log_, []):
            if not fut.done():
                fut.set_exception(KafkaStorageError(f"fsync failed: {error}"))


class _FsyncThreads:
    """Threads that run flush tickets and settle each ticket's future on its
    loop. Not a ThreadPoolExecutor: its submit, the concurrent future and
    wrap_future's chaining were ~30 Python-level calls per flush on the two
    threads (locks, conditions, callbacks); at one-record acks=all requests
    a flush covers one to a few requests (docs/benchmarks.md, issue 19)."""

    def __init__(self, size: int) -> None:
        self._queue: queue.SimpleQueue[
            tuple[FlushTicket, asyncio.Future[None], asyncio.AbstractEventLoop] | None
        ] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"strom-fsync_{i}",
                                          daemon=True) for i in range(size)]
        for thread in self._threads:
            thread.start()

    def submit(self, ticket: FlushTicket, run: asyncio.Future[None],
               loop: asyncio.AbstractEventLoop) -> None:
        self._queue.put((ticket, run, loop))

    def shutdown(self) -> None:
        """Threads end once the tickets queued before this have run."""
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            ticket, run, loop = item
            error: BaseException | None = None
            try:
                ticket.run()
            except BaseException as exc:  # handed to the loop, as an executor would
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, run, error)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for this flush any more


def _settle(run: asyncio.Future[None], error: BaseException | None) -> None:
    if run.done():
        return
    if error is None:
        run.set_result(None)
    else:
        run.set_exception(error)
