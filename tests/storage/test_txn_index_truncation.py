"""The aborted-transaction index follows the log when it is truncated: an entry
whose ABORT marker is at or past the new log end is gone (Kafka's
TransactionIndex.truncateTo), in memory, on disk and after a reopen."""

from __future__ import annotations

from pathlib import Path

from storage_helpers import append, open_log

from strom.storage.log import LogConfig, PartitionLog
from strom.storage.txn_index import AbortedTxn, TxnIndex


def _fill(directory: Path) -> tuple[PartitionLog, list[AbortedTxn]]:
    """Twenty 2-record batches over several segments, and an aborted transaction
    "ending" at every fourth offset, indexed in the segment holding its marker."""
    log = open_log(directory, LogConfig(segment_bytes=300))
    for i in range(20):
        append(log, [b"%d" % i] * 2)
    assert len(log.segments) > 3
    entries = []
    for marker in range(3, 40, 4):
        segment = max(s.base_offset for s in log.segments if s.base_offset <= marker)
        entry = AbortedTxn(marker % 3, marker - 3, marker, marker + 1)
        log.txn_index.append(entry, segment)
        entries.append(entry)
    return log, entries


def test_truncate_to_drops_entries_at_or_past_the_new_end(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log, entries = _fill(directory)
    log.truncate_to(15)  # mid-batch: the log ends at 14
    assert log.log_end_offset == 14
    kept = [e for e in entries if e.last_offset < 14]
    assert kept and len(kept) < len(entries)
    assert log.txn_index.entries == kept
    assert log.txn_index.collect(0, 100) == kept
    assert TxnIndex(directory).entries == kept  # the files were rewritten or deleted
    # A marker written at the truncated offsets again is indexed again.
    again = AbortedTxn(9, 12, 14, 15)
    append(log)
    log.txn_index.append(again, log.active_segment.base_offset)
    assert log.txn_index.entries == [*kept, again]
    log.close()
    reopened = open_log(directory, had_clean_shutdown=True)
    assert reopened.txn_index.entries == [*kept, again]
    reopened.close()


def test_truncate_sees_entries_another_index_appended(tmp_path: Path) -> None:
    """The broker's partition keeps its own TxnIndex over the same files; whatever
    it appended is truncated too, never lost or resurrected."""
    directory = tmp_path / "t-0"
    log, entries = _fill(directory)
    other = TxnIndex(directory)
    late = AbortedTxn(5, 36, 39, 40)
    other.append(late, log.active_segment.base_offset)
    log.truncate_to(30)
    assert TxnIndex(directory).entries == [e for e in entries if e.last_offset < 30]
    log.truncate_to(10)
    assert TxnIndex(directory).entries == [e for e in entries if e.last_offset < 10]
    log.close()


def test_truncate_fully_drops_everything(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log, _ = _fill(directory)
    log.truncate_fully_and_start_at(100)
    assert log.txn_index.entries == []
    assert TxnIndex(directory).entries == []
    log.close()


def test_recovery_drops_entries_of_lost_markers(tmp_path: Path) -> None:
    """The index entry is fsync'd as the marker is appended, before the marker
    itself is durable: a crash can keep the entry and lose the marker. The log
    reopens at its recovered end, and entries past it go."""
    directory = tmp_path / "t-0"
    log = open_log(directory)
    for i in range(5):
        append(log, [b"%d" % i])
    kept = AbortedTxn(1, 0, 3, 4)
    lost = AbortedTxn(2, 4, 5, 6)  # its marker (offset 5) never reached the log
    log.txn_index.append(kept, 0)
    log.txn_index.append(lost, 0)
    log.close()
    reopened = open_log(directory, had_clean_shutdown=True)
    assert reopened.log_end_offset == 5
    assert reopened.txn_index.entries == [kept]
    assert TxnIndex(directory).entries == [kept]
    reopened.close()
