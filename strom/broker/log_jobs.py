"""Filesystem work for many partitions at once, off the event loop.

Creating a partition's log costs ~0.5-1.5 ms of syscalls (mkdir,
partition.metadata, fsyncs), deleting one about as much (rename, rmtree):
done inline, a CreateTopics of 8,000 partitions held the event loop, and so
every other client, for 6-11 s, and a DeleteTopics of them for 54 s. The
replica manager hands such work to `LogJobs`: each job runs its filesystem
part on a worker thread while the loop serves, then finishes on the loop.
(A new log now makes its directory at its first write, storage/log.py: a
creation job makes its logs on the loop, in chunks, and has filesystem work
only for preallocated topics; it keeps its place in the order of jobs.)

Ownership stays as elsewhere: the event loop owns the metadata image, the
replica manager's partitions and the log manager's logs. A job's thread only
touches directories and objects nobody else sees: new logs before the loop
adopts them, deleted logs after the loop detached them. One exception, by
design: a new log's partition.metadata is written after the log serves (as
Kafka does), a file nothing else touches while the log is open (the log
manager rewrites it only for a log that was loaded without one).

Jobs run one at a time, in the order they were submitted, and the partitions
a job works on are `busy` until it ends: a partition deleted and created
again (or created while its old directory is still being removed) is done
in order, never by two jobs racing on one directory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)

__all__ = ["LogJobs"]

TopicPartition = tuple[str, int]

#: Jobs submitted while `settled` waits that it waits for too (a bound, not
#: a limit reached in practice: a job submits at most one follow-up).
_MAX_FOLLOW_UPS = 100


class LogJobs:
    """A queue of jobs, run in order on the event loop (their filesystem
    parts on a worker thread). Event loop only."""

    def __init__(self) -> None:
        self._tail: asyncio.Task[None] | None = None
        #: Partitions with a job pending, and how many.
        self._busy: Counter[TopicPartition] = Counter()

    def busy(self, key: TopicPartition) -> bool:
        """Whether a job still has to create or delete `key`'s log."""
        return key in self._busy

    def submit(self, keys: Iterable[TopicPartition],
               job: Callable[[], Awaitable[None]]) -> None:
        """Run `job()` after every job submitted before it."""
        keys = list(keys)
        self._busy.update(keys)
        previous = self._tail

        async def run() -> None:
            try:
                if previous is not None:
                    await asyncio.wait([previous])
                await job()
            except Exception:  # keep the queue going; the partitions say what failed
                log.exception("partition log job failed")
            finally:
                self._busy.subtract(keys)
                for key in keys:
                    if self._busy[key] <= 0:
                        del self._busy[key]

        self._tail = asyncio.get_running_loop().create_task(run(), name="partition-log-job")

    async def settled(self) -> None:
        """Wait until every job submitted so far has ended, and those they
        submitted (a creation finding its topic deleted meanwhile deletes the
        logs it made). Cancelling the waiter does not cancel the jobs (a
        thread cannot be stopped midway)."""
        for _ in range(_MAX_FOLLOW_UPS):
            tail = self._tail
            if tail is None or tail.done():
                return
            await asyncio.shield(tail)
