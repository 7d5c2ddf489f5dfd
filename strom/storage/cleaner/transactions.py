"""Transactions as the cleaner sees them (Kafka's CleanedTransactionMetadata).

Kafka finds aborted transactions in each segment's transaction index. strom
keeps no .txnindex yet, so `AbortedTransactionScanner` derives the same
(producer id, first offset, last offset) entries from the batch headers: a
transactional data batch opens its producer's transaction if none is open;
an ABORT marker closes it into an aborted entry, a COMMIT marker just
closes it. The cleaner feeds it every batch header from the start of the
log to the end of the snapshot it cleans, so markers written after the
cleaned range are seen too.

While copying, aborted transactions' data batches are dropped, and markers
go once nothing of their transaction is left: an ABORT marker whose batches
were all removed in earlier cleanings, a COMMIT marker none of whose batches
was seen. Such a marker is first kept with a delete horizon, like a
tombstone, and dropped by a later cleaning after delete.retention.ms.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from strom.protocol.records import BatchHeader, ControlRecordType

__all__ = ["AbortedTransactionScanner", "AbortedTxn", "CleanedTransactionMetadata"]


@dataclass(frozen=True, slots=True, order=True)
class AbortedTxn:
    first_offset: int
    producer_id: int
    last_offset: int  # the ABORT marker's offset


class AbortedTransactionScanner:
    def __init__(self) -> None:
        self._open: dict[int, int] = {}
        self.aborted: list[AbortedTxn] = []

    def on_data_batch(self, header: BatchHeader) -> None:
        if header.is_transactional:
            self._open.setdefault(header.producer_id, header.base_offset)

    def on_control_batch(self, header: BatchHeader, control_type: int | None) -> None:
        first = self._open.pop(header.producer_id, None)
        if control_type == ControlRecordType.ABORT:
            self.aborted.append(AbortedTxn(
                header.base_offset if first is None else first, header.producer_id,
                header.last_offset,
            ))


@dataclass(slots=True)
class _OngoingAbort:
    txn: AbortedTxn
    saw_batch: bool = False


class CleanedTransactionMetadata:
    """State carried through one pass over the log, batch by batch."""

    def __init__(self, aborted: list[AbortedTxn]) -> None:
        self.aborted = list(aborted)  # a heap by first offset
        heapq.heapify(self.aborted)
        self._ongoing_committed: set[int] = set()
        self._ongoing_aborted: dict[int, _OngoingAbort] = {}

    def _consume_aborted_up_to(self, offset: int) -> None:
        aborted = self.aborted
        while aborted and aborted[0].first_offset <= offset:
            txn = heapq.heappop(aborted)
            self._ongoing_aborted.setdefault(txn.producer_id, _OngoingAbort(txn))

    def on_control_batch_read(self, header: BatchHeader, control_type: int | None) -> bool:
        """Whether the marker can go (once its delete horizon has passed)."""
        self._consume_aborted_up_to(header.last_offset)
        if control_type is None:
            return True  # emptied by an earlier cleaning
        producer_id = header.producer_id
        if control_type == ControlRecordType.ABORT:
            ongoing = self._ongoing_aborted.pop(producer_id, None)
            # Kept while any batch of the transaction is still in the log.
            return ongoing is None or not ongoing.saw_batch
        if control_type == ControlRecordType.COMMIT:
            if producer_id in self._ongoing_committed:
                self._ongoing_committed.discard(producer_id)
                return False
            return True
        return False

    def on_batch_read(self, header: BatchHeader) -> bool:
        """Whether the data batch belongs to an aborted transaction."""
        self._consume_aborted_up_to(header.last_offset)
        if not header.is_transactional:
            return False
        ongoing = self._ongoing_aborted.get(header.producer_id)
        if ongoing is not None:
            ongoing.saw_batch = True
            return True
        self._ongoing_committed.add(header.producer_id)
        return False
