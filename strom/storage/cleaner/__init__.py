"""Log compaction (Kafka's log cleaner): keep at least the latest record of
every key of a `cleanup.policy=compact` log. docs/compaction.md is the guide.

    offset_map.py      key -> latest offset within a memory budget
    records.py         record scanning, rebuilding batches from kept records
    transactions.py    aborted transactions, when markers may go
    segment_writer.py  one `.cleaned` output segment and its indexes
    cleaner.py         cleaning one log; the swap protocol's thread split
    manager.py         which log next; cleaner-offset-checkpoint

Synchronous and asyncio-free like the rest of storage: the broker runs
`Cleaner.clean` on worker threads and its swap steps on the event loop
(strom/broker/log_cleaner.py).
"""

from strom.storage.cleaner.cleaner import (
    Cleaner,
    CleanerConfig,
    CleanerStats,
    CleaningAborted,
    CleanResult,
    OwnerStep,
    run_inline,
)
from strom.storage.cleaner.manager import CleanerCandidate, CleanerManager, LogToClean
from strom.storage.cleaner.snapshot import CleaningSnapshot, LastRecord, take_snapshot

__all__ = [
    "CleanResult",
    "Cleaner",
    "CleanerCandidate",
    "CleanerConfig",
    "CleanerManager",
    "CleanerStats",
    "CleaningAborted",
    "CleaningSnapshot",
    "LastRecord",
    "LogToClean",
    "OwnerStep",
    "clean_log_now",
    "run_inline",
    "take_snapshot",
]


def clean_log_now(
    manager: CleanerManager, cleaner: Cleaner, candidate: CleanerCandidate, *,
    now_ms: int, producers: dict[int, LastRecord] | None = None, force: bool = True,
) -> CleanResult | None:
    """Clean one log on the calling thread, which must own it (tests, tools).
    With `force` the dirty ratio is ignored. None if there was nothing to clean."""
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
