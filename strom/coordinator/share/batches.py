"""Combining state batches, as Kafka's PersisterStateBatchCombiner does.

A share partition's persisted state is a list of runs of offsets, each in a
delivery state with a delivery count. A write (or an update record replayed
on a snapshot) brings new runs that may overlap the stored ones. Kafka's rule
for an offset covered by several runs: the run with the higher delivery count
wins, then the higher delivery state (AVAILABLE 0 < ACKNOWLEDGED 2 < ARCHIVED
4). Both only grow for a record, so the winner is the most recent news of it
whichever order the runs arrive in. Runs below the start offset are dropped
(cut at it), and adjacent runs with the same state and count are joined, so
the result is sorted, disjoint and as short as it can be.

This is the same function, computed by a sweep over run boundaries instead
of Kafka's pairwise merging of a TreeSet.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from strom.coordinator.share.persister import StateBatch

NO_START = -1


def _rank(batch: StateBatch) -> tuple[int, int]:
    return batch.delivery_count, int(batch.delivery_state)


def combine(batches: Iterable[StateBatch], start_offset: int = NO_START) -> tuple[StateBatch, ...]:
    """The combined runs of `batches`, cut at `start_offset` (-1: not cut)."""
    runs = []
    for b in batches:
        first = b.first_offset if start_offset == NO_START else max(b.first_offset, start_offset)
        if b.last_offset < first:
            continue
        runs.append((first, b.last_offset, b))
    if not runs:
        return ()
    runs.sort(key=lambda r: r[0])
    out: list[StateBatch] = []
    # Runs covering the current position: (-rank, sequence, last offset, batch).
    active: list[tuple[tuple[int, int], int, int, StateBatch]] = []
    i = 0
    position = runs[0][0]
    while i < len(runs) or active:
        if not active and i < len(runs) and runs[i][0] > position:
            position = runs[i][0]
        while i < len(runs) and runs[i][0] <= position:
            first, last, b = runs[i]
            rank = _rank(b)
            heapq.heappush(active, ((-rank[0], -rank[1]), i, last, b))
            i += 1
        while active and active[0][2] < position:
            heapq.heappop(active)
        if not active:
            continue
        _, _, top_last, top = active[0]
        # The winner holds until it ends or a new run starts (which may outrank it).
        end = top_last
        if i < len(runs):
            end = min(end, runs[i][0] - 1)
        _append(out, StateBatch(position, end, top.delivery_state, top.delivery_count))
        position = end + 1
        while active and active[0][2] < position:
            heapq.heappop(active)
    return tuple(out)


def _append(out: list[StateBatch], batch: StateBatch) -> None:
    if out:
        last = out[-1]
        if (last.last_offset + 1 == batch.first_offset
                and _rank(last) == _rank(batch)):
            out[-1] = StateBatch(last.first_offset, batch.last_offset, last.delivery_state,
                                 last.delivery_count)
            return
    out.append(batch)
