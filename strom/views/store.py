"""The store protocol every view backend implements.

A store is a set of tables, each an ordered map from string keys to
JSON-compatible values, plus the view's consumed offsets: for each
(topic, partition), the offset of the next record to apply. A write
transaction changes both; `commit` makes them durable together or not at
all. That is what makes a view exactly-once without consumer-group commits:
after a crash the view restarts from the offsets that match its state.

One writer at a time (the view's loop); any number of readers, each reading
a consistent snapshot of the last commit (`snapshot()`), never a
transaction in progress.

Values are stored as JSON text by every backend, so a value read back is a
fresh copy and a value that is not JSON-compatible is refused at `put`, by
every backend alike. Keys sort as Python sorts strings (by code point, which
is also SQLite's BINARY order of their UTF-8 bytes).

Tables whose names start with `__` belong to the toolkit (the outbox).

Implementations: `MemoryStore` (tests), `SQLiteStore` (default). Both pass
tests/views/store_conformance.py.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any, Protocol

from strom.views.errors import StoreError

__all__ = ["TopicPartition", "StoreReader", "StoreTransaction", "ViewStore",
           "encode_value", "decode_value", "prefix_upper_bound"]

TopicPartition = tuple[str, int]


class StoreReader(Protocol):
    def get(self, table: str, key: str) -> Any:
        """The value at `key`, or None."""

    def items(self, table: str, prefix: str = "", *, limit: int | None = None
              ) -> list[tuple[str, Any]]:
        """(key, value) pairs whose key starts with `prefix`, in key order."""

    def count(self, table: str) -> int:
        """How many keys `table` holds."""

    def offsets(self) -> dict[TopicPartition, int]:
        """Next offset to apply, per (topic, partition), as of this read."""


class StoreTransaction(StoreReader, Protocol):
    """Reads see the transaction's own writes."""

    def put(self, table: str, key: str, value: Any) -> None: ...

    def delete(self, table: str, key: str) -> None: ...

    def set_offset(self, topic: str, partition: int, next_offset: int) -> None: ...

    def commit(self) -> None:
        """Make every write and offset durable at once."""

    def rollback(self) -> None:
        """Forget every write of this transaction."""


class ViewStore(Protocol):
    def begin(self) -> StoreTransaction:
        """Start the (single) write transaction."""

    def snapshot(self) -> AbstractContextManager[StoreReader]:
        """A read-only view of the last commit, stable while the block runs."""

    def offsets(self) -> dict[TopicPartition, int]: ...

    def clear(self) -> None:
        """Erase every table and offset, atomically."""

    def empty_sibling(self) -> ViewStore:
        """A new, empty store of the same kind, to rebuild into."""

    def replace_with(self, other: ViewStore) -> None:
        """Atomically adopt `other`'s content (a sibling), then close `other`.
        Snapshots taken before keep reading the old content."""

    def close(self) -> None: ...


# --- helpers shared by the backends ------------------------------------------------------


# One encoder and decoder, built once: json.dumps with arguments builds a new
# JSONEncoder per call, a third of the cost of a small put (measured).
# ensure_ascii: lone surrogates survive as escapes in every backend.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_decode = json.JSONDecoder().decode


def encode_value(value: Any) -> str:
    try:
        return _encode(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"value is not JSON-compatible: {exc}") from None


def decode_value(text: str | None) -> Any:
    return None if text is None else _decode(text)


def check_key(table: str, key: str) -> None:
    if type(key) is not str or type(table) is not str or not table:
        if not isinstance(table, str) or not table:
            raise StoreError(f"table name must be a non-empty string, not {table!r}")
        if not isinstance(key, str):
            raise StoreError(f"keys are strings, not {type(key).__name__}: {key!r}")
    if key.isascii() and table.isascii():
        return
    try:
        key.encode()
        table.encode()
    except UnicodeEncodeError:
        raise StoreError(f"not valid Unicode text: {table!r}/{key!r}") from None


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`
    (None: no bound, every key from `prefix` on matches)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates are never in a valid key
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None
