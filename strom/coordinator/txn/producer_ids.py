"""Producer ids, unique across the cluster and across restarts.

The controller hands out blocks of ids recorded in the metadata image (as
Kafka's ProducerIdControlManager does); a broker serves ids from its block
and reserves the next block when it runs out. A restart wastes the rest of
the block, never reuses an id.
"""

from __future__ import annotations

from strom.cluster.store import MetadataStore

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store
        self._next = 0
        self._end = 0

    def next_producer_id(self) -> int:
        if self._next >= self._end:
            start, records = self._store.producer_id_block_records(BLOCK_SIZE)
            self._store.commit(records)
            self._next, self._end = start, start + BLOCK_SIZE
        producer_id = self._next
        self._next += 1
        return producer_id
