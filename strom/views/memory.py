"""MemoryStore: the store protocol in a dict, for tests and throwaway views.

Committed state lives in a `MemoryState` that outlives store objects:
`reopen()` gives a new store over the same committed state and forgets any
open transaction, which is what a process crash does to a durable store.
A transaction buffers its writes in an overlay and applies them under the
state's lock at commit; a snapshot holds that lock while it reads, so it sees
one commit, never half of one (readers are short; the writer waits).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from strom.views.errors import StoreError
from strom.views.store import (
    StoreReader,
    StoreTransaction,
    TopicPartition,
    ViewStore,
    check_key,
    decode_value,
    encode_value,
)

__all__ = ["MemoryStore", "MemoryState"]


class MemoryState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tables: dict[str, dict[str, str]] = {}
        self.offsets: dict[TopicPartition, int] = {}


class _MemoryReader:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    def get(self, table: str, key: str) -> Any:
        return decode_value(self._state.tables.get(table, {}).get(key))

    def items(self, table: str, prefix: str = "", *, limit: int | None = None
              ) -> list[tuple[str, Any]]:
        rows = self._state.tables.get(table, {})
        keys = sorted(k for k in rows if k.startswith(prefix))
        if limit is not None:
            keys = keys[:max(limit, 0)]
        return [(k, decode_value(rows[k])) for k in keys]

    def count(self, table: str) -> int:
        return len(self._state.tables.get(table, {}))

    def offsets(self) -> dict[TopicPartition, int]:
        return dict(self._state.offsets)


class _MemoryTransaction:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._state = store.state
        self._writes: dict[str, dict[str, str | None]] = {}
        self._offsets: dict[TopicPartition, int] = {}
        self._open = True

    def _check(self) -> None:
        if not self._open:
            raise StoreError("transaction is finished")

    def get(self, table: str, key: str) -> Any:
        self._check()
        writes = self._writes.get(table)
        if writes is not None and key in writes:
            return decode_value(writes[key])
        return decode_value(self._state.tables.get(table, {}).get(key))

    def _merged(self, table: str) -> dict[str, str]:
        rows = dict(self._state.tables.get(table, {}))
        for key, text in self._writes.get(table, {}).items():
            if text is None:
                rows.pop(key, None)
            else:
                rows[key] = text
        return rows

    def items(self, table: str, prefix: str = "", *, limit: int | None = None
              ) -> list[tuple[str, Any]]:
        self._check()
        rows = self._merged(table)
        keys = sorted(k for k in rows if k.startswith(prefix))
        if limit is not None:
            keys = keys[:max(limit, 0)]
        return [(k, decode_value(rows[k])) for k in keys]

    def count(self, table: str) -> int:
        self._check()
        return len(self._merged(table))

    def offsets(self) -> dict[TopicPartition, int]:
        self._check()
        merged = dict(self._state.offsets)
        merged.update(self._offsets)
        return merged

    def put(self, table: str, key: str, value: Any) -> None:
        self._check()
        check_key(table, key)
        self._writes.setdefault(table, {})[key] = encode_value(value)

    def delete(self, table: str, key: str) -> None:
        self._check()
        check_key(table, key)
        self._writes.setdefault(table, {})[key] = None

    def set_offset(self, topic: str, partition: int, next_offset: int) -> None:
        self._check()
        self._offsets[(topic, partition)] = next_offset

    def commit(self) -> None:
        self._check()
        if self._store.closed:
            raise StoreError("store is closed (abandoned): nothing committed")
        self._open = False
        self._store.end(self)
        state = self._state
        with state.lock:
            for table, writes in self._writes.items():
                rows = state.tables.setdefault(table, {})
                for key, text in writes.items():
                    if text is None:
                        rows.pop(key, None)
                    else:
                        rows[key] = text
                if not rows:
                    del state.tables[table]
            state.offsets.update(self._offsets)

    def rollback(self) -> None:
        if self._open:
            self._open = False
            self._store.end(self)


class MemoryStore:
    def __init__(self, state: MemoryState | None = None) -> None:
        self.state = state or MemoryState()
        self._tx: _MemoryTransaction | None = None
        self._closed = False

    def reopen(self) -> MemoryStore:
        """A new store over the same committed state, as after a restart; this
        store's open transaction (if any) is abandoned."""
        self._closed = True
        return MemoryStore(self.state)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    def begin(self) -> StoreTransaction:
        self._check()
        if self._tx is not None:
            raise StoreError("a write transaction is already open")
        self._tx = _MemoryTransaction(self)
        return self._tx

    def end(self, tx: _MemoryTransaction) -> None:
        if self._tx is tx:
            self._tx = None

    @contextmanager
    def snapshot(self) -> Iterator[StoreReader]:
        self._check()
        with self.state.lock:
            yield _MemoryReader(self.state)

    def offsets(self) -> dict[TopicPartition, int]:
        self._check()
        with self.state.lock:
            return dict(self.state.offsets)

    def clear(self) -> None:
        self._check()
        with self.state.lock:
            self.state.tables = {}
            self.state.offsets = {}

    def empty_sibling(self) -> ViewStore:
        return MemoryStore()

    def replace_with(self, other: ViewStore) -> None:
        self._check()
        if not isinstance(other, MemoryStore):
            raise StoreError("a MemoryStore can only adopt another MemoryStore")
        with self.state.lock:
            self.state.tables = other.state.tables
            self.state.offsets = other.state.offsets
        other.close()

    def close(self) -> None:
        self._closed = True
