"""Log compaction in the broker: `log.cleaner.threads` cleaner tasks, each
taking the dirtiest compacted partition every `log.cleaner.backoff.ms` and
cleaning it on a worker thread (strom/storage/cleaner). The only work done
on the event loop is choosing the log, dup'ing its segments' fds, and the
swap steps (renames and the segment list), so produce and fetch never wait
on a cleaning. docs/compaction.md describes the whole.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from strom.clock import Clock
from strom.config import BrokerConfig
from strom.storage.cleaner import CleanerCandidate, CleanerConfig, CleanerManager, LogToClean

if TYPE_CHECKING:
    from strom.broker.replica_manager import ReplicaManager
    from strom.storage.cleaner.cleaner import Cleaner, CleanResult, OwnerStep

__all__ = ["LogCleanerService"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class _Done:
    __slots__ = ("result",)

    def __init__(self, result: CleanResult) -> None:
        self.result = result


def _resume(steps: Generator[OwnerStep, bool, CleanResult], value: bool | None,
            ) -> OwnerStep | _Done:
    """Worker thread: run the cleaning until its next owner step."""
    try:
        return next(steps) if value is None else steps.send(value)
    except StopIteration as done:
        return _Done(done.value)


class LogCleanerService:
    def __init__(self, config: BrokerConfig, replicas: ReplicaManager, clock: Clock) -> None:
        self.replicas = replicas
        self.clock = clock
        self.enabled = bool(config.get("log.cleaner.enable"))
        self.threads = _int(config, "log.cleaner.threads")
        self.backoff_s = max(_int(config, "log.cleaner.backoff.ms"), 1) / 1000.0
        per_thread = max(self.threads, 1)
        rate = config.get("log.cleaner.io.max.bytes.per.second")
        self.cleaner_config = CleanerConfig(
            dedupe_buffer_bytes=_int(config, "log.cleaner.dedupe.buffer.size") // per_thread,
            io_buffer_bytes=max(_int(config, "log.cleaner.io.buffer.size") // per_thread // 2,
                                64 * 1024),
            load_factor=_float(config, "log.cleaner.io.buffer.load.factor"),
            # Kafka's throttler is shared by the threads: each gets its share.
            max_io_bytes_per_second=(float(rate) / per_thread
                                     if isinstance(rate, int | float) and rate < 1e300
                                     else float("inf")),
        )
        self.manager = CleanerManager(config.log_dirs)
        self._abort = threading.Event()
        self._job_aborts: dict[TopicPartition, threading.Event] = {}
        self._finished = asyncio.Event()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    # -- the background tasks ----------------------------------------------------

    async def run(self) -> None:
        """The cleaner tasks, until cancelled (then the threads are stopped)."""
        try:
            if not self.enabled or self.threads <= 0:
                await asyncio.Event().wait()  # only clean_now cleans; wait to be cancelled
            async with asyncio.TaskGroup() as group:
                for i in range(self.threads):
                    group.create_task(self._cleaner_task(), name=f"log-cleaner-{i}")
        finally:
            self.shutdown()

    async def _cleaner_task(self) -> None:
        cleaner: Cleaner | None = None  # made for the first log to clean
        while True:
            try:
                ltc = self.manager.grab_filthiest(self._candidates(), self.clock.wall_ms())
            except Exception:  # keep cleaning the other logs
                log.exception("choosing a log to clean failed")
                ltc = None
            if ltc is None:
                await asyncio.sleep(self.backoff_s)
                continue
            if cleaner is None:
                cleaner = self._new_cleaner()
            # Like Kafka, no backoff after a cleaning: the next dirtiest log goes now.
            await self._clean(ltc, cleaner)

    def _candidates(self) -> list[CleanerCandidate]:
        return [
            CleanerCandidate(key, partition.log, partition.last_stable_offset)
            for key, partition in self.replicas.partitions.items()
            if partition.log.config.compact
        ]

    # -- one cleaning ------------------------------------------------------------

    def _new_cleaner(self) -> Cleaner:
        """A cleaner task's Cleaner. The cleaning code (strom/storage/cleaner's
        docstring) is imported here, for the first log to clean, not by every
        broker at start (issue 19)."""
        from strom.storage.cleaner.cleaner import Cleaner

        return Cleaner(self.cleaner_config, abort=self._abort)

    async def _clean(self, ltc: LogToClean, cleaner: Cleaner) -> CleanResult | None:
        """Clean one log marked in progress; always unmarks it."""
        # Loaded by _new_cleaner, which made `cleaner`.
        from strom.storage.cleaner.cleaner import CleaningAborted
        from strom.storage.cleaner.snapshot import LastRecord, take_snapshot

        loop = asyncio.get_running_loop()
        pool = self._executor()
        result: CleanResult | None = None
        failed = False
        abort = threading.Event()
        generation = ltc.log.generation
        self._job_aborts[ltc.key] = abort
        try:
            partition = self.replicas.partitions.get(ltc.key)
            if self._abort.is_set() or partition is None or partition.log is not ltc.log:
                return None
            producers = {
                pid: LastRecord(entry.batches[-1].last_offset if entry.batches else None,
                                entry.epoch)
                for pid, entry in partition.producer_state.entries.items()
            }
            snap = take_snapshot(ltc.log, ltc.first_dirty_offset, ltc.first_uncleanable_offset,
                                 producers=producers, now_ms=self.clock.wall_ms())
            snap.abort = abort
            steps = cleaner.clean(snap)
            value: bool | None = None
            while True:
                future = loop.run_in_executor(pool, _resume, steps, value)
                try:
                    outcome = await asyncio.shield(future)
                except asyncio.CancelledError:
                    abort.set()
                    await asyncio.wait([future])  # the thread stops at its next check
                    if not future.cancelled():
                        future.exception()  # retrieved: it is the abort we asked for
                    steps.close()
                    raise
                if isinstance(outcome, _Done):
                    result = outcome.result
                    break
                try:
                    value = outcome()  # a swap step: here, on the log's owner
                except Exception:
                    await loop.run_in_executor(pool, steps.close)
                    raise
            log.info("cleaned %s-%d up to offset %d: %s", *ltc.key, result.end_offset,
                     result.stats.summary())
            return result
        except CleaningAborted as exc:
            log.info("cleaning of %s-%d stopped: %s", *ltc.key, exc)
            return None
        except Exception:
            if ltc.log.closed or ltc.log.generation != generation:
                # Truncated or deleted under the cleaning: its reads may have
                # failed for that reason alone. The next round starts afresh.
                log.info("cleaning of %s-%d stopped: the log changed", *ltc.key)
                return None
            failed = True
            log.exception("cleaning %s-%d failed; it is skipped until it is reopened", *ltc.key)
            return None
        finally:
            ltc.log.abort_swap()  # a no-op unless a swap was left half done
            self._job_aborts.pop(ltc.key, None)
            if failed:
                self.manager.mark_uncleanable(ltc)
            self.manager.done_cleaning(ltc, result.end_offset if result is not None else None)
            if not self._abort.is_set():  # at shutdown, `shutdown` writes them
                for directory, version, entries in self.manager.pending_checkpoints():
                    pool.submit(self.manager.write_checkpoint, directory, version,
                                entries).add_done_callback(_log_failure)
            self._finished.set()
            self._finished = asyncio.Event()

    async def clean_now(self, topic: str) -> int:
        """Clean every compacted partition of `topic` once, now, whatever its
        dirty ratio; returns how many partitions were cleaned."""
        cleaner = self._new_cleaner()
        cleaned = 0
        for key in sorted(k for k in self.replicas.partitions if k[0] == topic):
            while key in self.manager.in_progress:
                await self._finished.wait()
            partition = self.replicas.partitions.get(key)
            if partition is None or not partition.log.config.compact:
                continue
            ltc = self.manager.log_to_clean(
                CleanerCandidate(key, partition.log, partition.last_stable_offset),
                self.clock.wall_ms())
            if ltc.cleanable_bytes <= 0 or not self.manager.start(ltc):
                continue
            if await self._clean(ltc, cleaner) is not None:
                cleaned += 1
        return cleaned

    def forget(self, key: TopicPartition) -> None:
        """The partition's log is being deleted: stop cleaning it."""
        abort = self._job_aborts.get(key)
        if abort is not None:
            abort.set()
        self.manager.forget(key)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(self.threads, 1) + 1, thread_name_prefix="log-cleaner")
        return self._pool

    def shutdown(self) -> None:
        """Stop the threads (they check between batches) and wait for them."""
        self._abort.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.manager.write_checkpoints()


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("writing %s failed (retried after the next cleaning): %s",
                  "cleaner-offset-checkpoint", exc)


def _int(config: BrokerConfig, name: str) -> int:
    value: Any = config.get(name)
    return int(value)


def _float(config: BrokerConfig, name: str) -> float:
    value: Any = config.get(name)
    return float(value)

