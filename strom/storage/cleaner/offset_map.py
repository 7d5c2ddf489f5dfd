"""The cleaner's key -> latest offset map, within a memory budget (Kafka's
SkimpyOffsetMap).

Kafka stores a 16-byte MD5 of every key in a fixed array. Here keys of up to
`MAX_RAW_KEY` bytes are stored as they are (exact, and no hashing: MD5 costs
~1.1 us a key in CPython, more than the rest of the map building), longer
ones as their 16-byte MD5 in a second dict, so a raw key never collides with
a digest. A collision between two long keys' digests would drop a record;
at 2^-128 per pair Kafka accepts the same risk.

Memory is accounted, not measured: each entry costs `ENTRY_OVERHEAD` plus its
key (measured with tracemalloc on CPython 3.11: 125 bytes for an 8-byte key
with an offset above 256, 133 for a digest). The map is full when the next
new key would exceed `memory_bytes * load_factor`
(log.cleaner.dedupe.buffer.size / log.cleaner.threads, and
log.cleaner.io.buffer.load.factor).
"""

from __future__ import annotations

import hashlib

__all__ = ["ENTRY_OVERHEAD", "MAX_RAW_KEY", "OffsetMap"]

ENTRY_OVERHEAD = 117
MAX_RAW_KEY = 64


class OffsetMap:
    """Not thread-safe: one cleaner thread owns it."""

    def __init__(self, memory_bytes: int, load_factor: float = 0.9) -> None:
        self.capacity_bytes = int(memory_bytes * load_factor)
        if self.capacity_bytes < ENTRY_OVERHEAD + MAX_RAW_KEY:
            raise ValueError(
                f"an offset map of {memory_bytes} bytes cannot hold a single key; raise "
                "log.cleaner.dedupe.buffer.size or lower log.cleaner.threads"
            )
        self._raw: dict[bytes, int] = {}
        self._hashed: dict[bytes, int] = {}
        self.used_bytes = 0
        #: The last offset the map covers; records above it are not judged by it.
        self.latest_offset = -1

    def clear(self) -> None:
        self._raw = {}
        self._hashed = {}
        self.used_bytes = 0
        self.latest_offset = -1

    def __len__(self) -> int:
        return len(self._raw) + len(self._hashed)

    @property
    def utilization(self) -> float:
        return self.used_bytes / self.capacity_bytes

    def put(self, key: bytes, offset: int) -> bool:
        """Map `key` to `offset`; False (nothing stored) if that needs room the
        budget does not have. Updating a key already present always fits."""
        if len(key) <= MAX_RAW_KEY:
            table, stored = self._raw, key
        else:
            table, stored = self._hashed, hashlib.md5(key, usedforsecurity=False).digest()
        if stored not in table:
            cost = ENTRY_OVERHEAD + len(stored)
            if self.used_bytes + cost > self.capacity_bytes:
                return False
            self.used_bytes += cost
        table[stored] = offset
        return True

    def put_records(self, base_offset: int, start: int, offset_deltas: list[int],
                    keys: list[bytes | None]) -> bool:
        """`put` the key of each record of a batch at `base_offset` whose
        offset is at least `start`; False as soon as one does not fit. The
        loop of the offset map build, kept here to save a call a record."""
        raw = self._raw
        for offset_delta, key in zip(offset_deltas, keys, strict=True):
            if key is None:
                continue
            offset = base_offset + offset_delta
            if offset < start:
                continue
            if len(key) <= MAX_RAW_KEY and key in raw:
                raw[key] = offset
            elif not self.put(key, offset):
                return False
        return True

    def get(self, key: bytes) -> int:
        """The latest offset of `key`, or -1 if it is not in the map."""
        if len(key) <= MAX_RAW_KEY:
            return self._raw.get(key, -1)
        return self._hashed.get(hashlib.md5(key, usedforsecurity=False).digest(), -1)

    def update_latest_offset(self, offset: int) -> None:
        if offset > self.latest_offset:
            self.latest_offset = offset
