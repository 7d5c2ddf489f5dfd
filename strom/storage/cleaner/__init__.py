"""Log compaction (Kafka's log cleaner): keep at least the latest record of
every key of a `cleanup.policy=compact` log. docs/compaction.md is the guide.

    offset_map.py      key -> latest offset within a memory budget
    records.py         record scanning, rebuilding batches from kept records
    transactions.py    aborted transactions, when markers may go
    segment_writer.py  one `.cleaned` output segment and its indexes
    cleaner.py         cleaning one log; the swap protocol's thread split
    config.py          a cleaner thread's settings
    manager.py         which log next; cleaner-offset-checkpoint

Synchronous and asyncio-free like the rest of storage: the broker runs
`Cleaner.clean` on worker threads and its swap steps on the event loop
(strom/broker/log_cleaner.py).

The package itself loads the manager and the settings only (the broker's
cleaner tasks choose logs with them from start-up on): the cleaning code, cleaner.py and what it
imports (~5 ms), is imported from its modules by the first cleaning, not by
every broker at start (issue 19).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strom.storage.cleaner.config import CleanerConfig
from strom.storage.cleaner.manager import CleanerCandidate, CleanerManager, LogToClean

if TYPE_CHECKING:
    from strom.storage.cleaner.cleaner import Cleaner, CleanResult
    from strom.storage.cleaner.snapshot import LastRecord

__all__ = [
    "CleanerCandidate",
    "CleanerConfig",
    "CleanerManager",
    "LogToClean",
    "clean_log_now",
]


def clean_log_now(
    manager: CleanerManager, cleaner: Cleaner, candidate: CleanerCandidate, *,
    now_ms: int, producers: dict[int, LastRecord] | None = None, force: bool = True,
) -> CleanResult | None:
    """Clean one log on the calling thread, which must own it (tests, tools).
    With `force` the dirty ratio is ignored. None if there was nothing to clean."""
    from strom.storage.cleaner.cleaner import run_inline
    from strom.storage.cleaner.snapshot import take_snapshot

    ltc = manager.log_to_clean(candidate, now_ms)
    if ltc.cleanable_bytes <= 0 or (
        not force and ltc.cleanable_ratio <= candidate.log.config.min_cleanable_dirty_ratio
        and not ltc.need_compaction_now
    ):
        return None
    if not manager.start(ltc):
        return None
    result: CleanResult | None = None
    try:
        snap = take_snapshot(ltc.log, ltc.first_dirty_offset, ltc.first_uncleanable_offset,
                             producers=producers or {}, now_ms=now_ms)
        result = run_inline(cleaner.clean(snap))
        return result
    finally:
        ltc.log.abort_swap()
        manager.done_cleaning(ltc, result.end_offset if result is not None else None)
        manager.write_checkpoints()
