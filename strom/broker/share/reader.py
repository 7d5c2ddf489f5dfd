"""What a share fetch makes of the batches it read from a partition.

The share partition decides offset by offset what it hands out; it needs each
batch's offsets and whether its records may be delivered at all: control
batches never are, nor (read_committed, share.isolation.level) the batches
of aborted transactions, found as a read_committed consumer finds them, from
the aborted transactions overlapping the read (KIP-98). The response then
carries only the batches holding an acquired offset, as stored.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from strom.broker.share.share_partition import AcquiredRange, FetchedBatch
from strom.protocol.records.batch import scan_batches


@dataclass(frozen=True, slots=True)
class ReadBatch:
    batch: FetchedBatch
    data: memoryview  # the whole stored batch


def read_batches(chunks: Sequence[bytes | memoryview],
                 aborted: Sequence[dict[str, int]] | None) -> list[ReadBatch]:
    """The batches of a partition read, in offset order. `aborted`: the
    read_committed read's aborted transactions (None: read_uncommitted)."""
    pending = sorted((a["first_offset"], a["producer_id"]) for a in aborted or ())
    active: set[int] = set()
    out: list[ReadBatch] = []
    for chunk in chunks:
        view = memoryview(chunk)
        for header in scan_batches(view):
            while pending and pending[0][0] <= header.base_offset:
                active.add(heapq.heappop(pending)[1])
            deliverable = not header.is_control
            if header.is_control:
                # The marker ends the producer's transaction (an abort ends
                # an aborted one; a commit marker never meets an active abort).
                active.discard(header.producer_id)
            elif header.is_transactional and header.producer_id in active:
                deliverable = False
            out.append(ReadBatch(
                FetchedBatch(header.base_offset, header.last_offset, deliverable),
                view[header.position:header.end]))
    return out


def records_for(read: Sequence[ReadBatch], acquired: Sequence[AcquiredRange]
                ) -> tuple[list[memoryview], int]:
    """The stored batches holding at least one acquired offset, and their size."""
    chunks: list[memoryview] = []
    size = 0
    ranges = iter(acquired)
    current = next(ranges, None)
    for item in read:
        batch = item.batch
        while current is not None and current.last_offset < batch.base_offset:
            current = next(ranges, None)
        if current is None:
            break
        if current.first_offset <= batch.last_offset:
            chunks.append(item.data)
            size += len(item.data)
    return chunks, size
