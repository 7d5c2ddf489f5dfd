"""The producer side of a PartitionLog: idempotence and open transactions
(producer_state.py) and the aborted-transaction index (txn_index.py), kept
in step with the batches the log writes, truncates and recovers.

The log owns one ProducerLog. It reads no log state of its own: the log
passes what a step needs (offsets, a segment's base offset, a reader).
The leader's produce path calls `state.check` / `state.update` directly,
one call per batch as before (the path is benchmarked).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from strom.protocol.records import (
    BatchHeader,
    ControlRecordType,
    decode_end_transaction_marker,
    decode_records,
    scan_batches,
)
from strom.storage.log_read import LogReadResult
from strom.storage.producer_state import ProducerStateManager
from strom.storage.txn_index import TxnIndex

__all__ = ["ProducerLog"]

# Producer state is rebuilt from the log in reads of this size.
_REPLAY_CHUNK_BYTES = 16 * 1024 * 1024


class Reader(Protocol):
    """PartitionLog.read."""

    def __call__(self, start_offset: int, max_bytes: int, *, max_offset: int,
                 min_one_batch: bool) -> LogReadResult: ...


class ProducerLog:
    """A log's producer state and transaction index, changed with its bytes."""

    __slots__ = ("state", "txn_index")

    def __init__(self, directory: Path, *, empty: bool = False) -> None:
        """`empty`: `directory` was just made (nothing to read)."""
        #: Idempotence and open transactions, changed with the bytes.
        self.state = ProducerStateManager(directory)
        #: The aborted transactions of the segments (`.txnindex`), truncated with them.
        self.txn_index = TxnIndex(directory, empty=empty)

    def end_transaction(self, data: memoryview | bytes, header: BatchHeader, offset: int,
                        timestamp: int, segment_base_offset: int) -> None:
        """A control batch at `offset`: a transaction marker ends its producer's
        transaction (indexed if it aborts); the producer state moves past it."""
        state = self.state
        if header.is_transactional and header.producer_id >= 0:
            kind, coordinator_epoch = decode_end_transaction_marker(
                decode_records(data, header)[0])
            aborted = state.end_transaction(header.producer_id, offset,
                                            kind is ControlRecordType.COMMIT)
            if aborted is not None:
                self.txn_index.append(aborted, segment_base_offset)
            state.update(header, offset, timestamp)
            state.entries[header.producer_id].coordinator_epoch = coordinator_epoch
        else:
            state.update(header, offset, timestamp)

    def rebuild(self, read: Reader, segment_bases: Sequence[int], *,
                log_start_offset: int, log_end_offset: int) -> None:
        """The newest producer-state snapshot at or below the log end, then the
        batches after it replayed (Kafka's recovery); ABORT markers replayed
        are indexed again (TxnIndex ignores entries it has)."""
        state = self.state
        state.load_latest_snapshot(log_end_offset)
        offset = max(state.map_end_offset, log_start_offset)
        while offset < log_end_offset:
            data = read(offset, _REPLAY_CHUNK_BYTES, max_offset=log_end_offset,
                        min_one_batch=True).to_bytes()
            headers = list(scan_batches(data))
            if not headers:
                break
            for header in headers:
                if header.next_offset <= state.map_end_offset:
                    continue
                if header.is_control:
                    i = max(bisect.bisect_right(segment_bases, header.base_offset) - 1, 0)
                    self.end_transaction(data, header, header.base_offset,
                                         header.max_timestamp, segment_bases[i])
                else:
                    state.update(header, header.base_offset, header.max_timestamp)
            offset = headers[-1].next_offset
        state.map_end_offset = max(state.map_end_offset, log_end_offset)

    def truncate(self, log_start_offset: int, log_end_offset: int) -> None:
        """Forget the aborted transactions and producer state at or past
        `log_end_offset` (the log was truncated there; `rebuild` follows)."""
        self.txn_index.truncate(log_end_offset)
        self.state.truncate(log_start_offset, log_end_offset)

    def restart_at(self, offset: int) -> None:
        """Forget everything: the log restarts, empty, at `offset`."""
        self.txn_index.truncate(offset)
        self.state.truncate_fully_and_start_at(offset)
