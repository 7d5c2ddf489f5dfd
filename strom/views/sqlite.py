"""SQLiteStore: the store protocol in one SQLite file (the default backend).

On-disk format (a file strom invents, so it is versioned):

    PRAGMA user_version = 1                    format version
    strom_meta(key, value)                     'generation' -> current generation g
    strom_kv_<g>(tbl, key, value)              the view's tables; value is JSON text
    strom_offsets_<g>(topic, partition, next_offset)

Invariants: a view's tables and its offsets change in the same SQLite
transaction, so after any crash they match. Only generation g is live;
tables of other generations are leftovers of an interrupted rebuild and are
dropped when the store opens. A rebuild writes generation g+1 beside g
(`empty_sibling`) while g keeps serving reads, then switches `generation`
and drops g in one transaction (`replace_with`); a reader's snapshot reads
the generation inside its own read transaction, so it sees one or the other.

Migration: a file with a newer user_version is refused; an older one will be
upgraded in `_migrate`, one version at a time (version 1 is the first).

Journal: WAL, so readers never block the writer and each reader sees the
last commit as of its first read. `synchronous=NORMAL` by default: a power
loss may lose the last commits, but state and offsets roll back together, so
the view re-applies those events and stays exactly-once; pass
synchronous="FULL" to keep every commit.

Speed: a transaction buffers its writes in a dict and writes them with one
executemany at commit, so a key updated by many events of a batch is written
once (restoring a million events: see bench/views_restore.py).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
    prefix_upper_bound,
)

__all__ = ["SQLiteStore"]

FORMAT_VERSION = 1
_MAX_POOLED_READERS = 8


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               isolation_level=None, check_same_thread=False, timeout=30)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=30)
    return conn


class _Queries:
    """SQL text for one generation (table names cannot be bound parameters)."""

    def __init__(self, generation: int) -> None:
        g = int(generation)
        kv, off = f"strom_kv_{g}", f"strom_offsets_{g}"
        self.create = [
            f"CREATE TABLE IF NOT EXISTS {kv} (tbl TEXT NOT NULL, key TEXT NOT NULL, "
            "value TEXT NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {off} (topic TEXT NOT NULL, partition INTEGER "
            "NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition)) "
            "WITHOUT ROWID",
        ]
        self.drop = [f"DROP TABLE IF EXISTS {kv}", f"DROP TABLE IF EXISTS {off}"]
        self.clear = [f"DELETE FROM {kv}", f"DELETE FROM {off}"]
        self.get = f"SELECT value FROM {kv} WHERE tbl = ? AND key = ?"
        self.items_bounded = (f"SELECT key, value FROM {kv} WHERE tbl = ? AND key >= ? "
                              "AND key < ? ORDER BY key LIMIT ?")
        self.items_open = (f"SELECT key, value FROM {kv} WHERE tbl = ? AND key >= ? "
                           "ORDER BY key LIMIT ?")
        self.count = f"SELECT count(*) FROM {kv} WHERE tbl = ?"
        self.upsert = f"INSERT OR REPLACE INTO {kv} (tbl, key, value) VALUES (?, ?, ?)"
        self.delete = f"DELETE FROM {kv} WHERE tbl = ? AND key = ?"
        self.offsets = f"SELECT topic, partition, next_offset FROM {off}"
        self.set_offset = (f"INSERT OR REPLACE INTO {off} (topic, partition, next_offset) "
                           "VALUES (?, ?, ?)")


@functools.lru_cache(maxsize=16)
def _queries(generation: int) -> _Queries:
    return _Queries(generation)


def _read_items(conn: sqlite3.Connection, q: _Queries, table: str, prefix: str,
                limit: int | None) -> list[tuple[str, str]]:
    upper = prefix_upper_bound(prefix)
    n = -1 if limit is None else max(limit, 0)
    if upper is None:
        rows = conn.execute(q.items_open, (table, prefix, n)).fetchall()
    else:
        rows = conn.execute(q.items_bounded, (table, prefix, upper, n)).fetchall()
    return rows


def _read_offsets(conn: sqlite3.Connection, q: _Queries) -> dict[TopicPartition, int]:
    return {(t, int(p)): int(o) for t, p, o in conn.execute(q.offsets)}


class _SQLiteReader:
    def __init__(self, conn: sqlite3.Connection, queries: _Queries) -> None:
        self._conn = conn
        self._q = queries

    def get(self, table: str, key: str) -> Any:
        row = self._conn.execute(self._q.get, (table, key)).fetchone()
        return None if row is None else decode_value(row[0])

    def items(self, table: str, prefix: str = "", *, limit: int | None = None
              ) -> list[tuple[str, Any]]:
        return [(k, decode_value(v))
                for k, v in _read_items(self._conn, self._q, table, prefix, limit)]

    def count(self, table: str) -> int:
        return int(self._conn.execute(self._q.count, (table,)).fetchone()[0])

    def offsets(self) -> dict[TopicPartition, int]:
        return _read_offsets(self._conn, self._q)


class _SQLiteTransaction:
    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._conn = store.writer
        self._q = store.queries
        # table -> key -> JSON text, or None for a delete
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
        row = self._conn.execute(self._q.get, (table, key)).fetchone()
        return None if row is None else decode_value(row[0])

    def _merged_items(self, table: str, prefix: str) -> list[tuple[str, str]]:
        writes = self._writes.get(table)
        rows = _read_items(self._conn, self._q, table, prefix, None)
        if not writes:
            return rows
        merged = dict(rows)
        for key, text in writes.items():
            if not key.startswith(prefix):
                continue
            if text is None:
                merged.pop(key, None)
            else:
                merged[key] = text
        return sorted(merged.items())

    def items(self, table: str, prefix: str = "", *, limit: int | None = None
              ) -> list[tuple[str, Any]]:
        self._check()
        if not self._writes.get(table):
            rows = _read_items(self._conn, self._q, table, prefix, limit)
        else:
            rows = self._merged_items(table, prefix)
            if limit is not None:
                rows = rows[:max(limit, 0)]
        return [(k, decode_value(v)) for k, v in rows]

    def count(self, table: str) -> int:
        self._check()
        if not self._writes.get(table):
            return int(self._conn.execute(self._q.count, (table,)).fetchone()[0])
        return len(self._merged_items(table, ""))

    def offsets(self) -> dict[TopicPartition, int]:
        self._check()
        merged = _read_offsets(self._conn, self._q)
        merged.update(self._offsets)
        return merged

    def put(self, table: str, key: str, value: Any) -> None:
        self._check()
        check_key(table, key)
        writes = self._writes.get(table)
        if writes is None:
            writes = self._writes[table] = {}
        writes[key] = encode_value(value)

    def delete(self, table: str, key: str) -> None:
        self._check()
        check_key(table, key)
        writes = self._writes.get(table)
        if writes is None:
            writes = self._writes[table] = {}
        writes[key] = None

    def set_offset(self, topic: str, partition: int, next_offset: int) -> None:
        self._check()
        self._offsets[(topic, partition)] = next_offset

    def commit(self) -> None:
        self._check()
        self._open = False
        store = self._store
        store.end(self)
        if store.closed:
            raise StoreError("store is closed: nothing committed")
        upserts = [(t, k, v) for t, rows in self._writes.items()
                   for k, v in rows.items() if v is not None]
        deletes = [(t, k) for t, rows in self._writes.items()
                   for k, v in rows.items() if v is None]
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if deletes:
                    conn.executemany(self._q.delete, deletes)
                if upserts:
                    conn.executemany(self._q.upsert, upserts)
                if self._offsets:
                    conn.executemany(self._q.set_offset,
                                     [(t, p, o) for (t, p), o in self._offsets.items()])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"commit to {store.path} failed: {exc}") from exc

    def rollback(self) -> None:
        if self._open:
            self._open = False
            self._store.end(self)


class SQLiteStore:
    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL",
                 _generation: int | None = None) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"bad synchronous level {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self._lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._tx: _SQLiteTransaction | None = None
        self._closed = False
        # A sibling (rebuild target) reads its own generation; the live store reads
        # the current one inside each snapshot, so a swap is atomic for readers.
        self._live = _generation is None
        try:
            self.writer = _connect(self.path, read_only=False)
            self.writer.execute("PRAGMA journal_mode=WAL")
            self.writer.execute(f"PRAGMA synchronous={self.synchronous}")
            self.generation = self._open(_generation)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open view store {self.path}: {exc}") from exc
        self.queries = _queries(self.generation)

    def _open(self, sibling_generation: int | None) -> int:
        conn = self.writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > FORMAT_VERSION:
                raise StoreError(f"{self.path} has store format {version}; this strom reads "
                                 f"up to {FORMAT_VERSION}")
            if version < FORMAT_VERSION:
                self._migrate(version)
            row = conn.execute("SELECT value FROM strom_meta WHERE key = 'generation'"
                               ).fetchone()
            current = int(row[0]) if row else 0
            if row is None:
                conn.execute("INSERT INTO strom_meta VALUES ('generation', '0')")
            if sibling_generation is None:
                # Opening the live store: drop leftovers of an interrupted rebuild.
                for g in self._generations():
                    if g != current:
                        for sql in _Queries(g).drop:
                            conn.execute(sql)
                generation = current
                for sql in _Queries(generation).create:
                    conn.execute(sql)
            else:
                generation = sibling_generation
                for sql in _Queries(generation).drop + _Queries(generation).create:
                    conn.execute(sql)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return generation

    def _migrate(self, version: int) -> None:
        if version == 0:  # a new file
            self.writer.execute("CREATE TABLE IF NOT EXISTS strom_meta "
                                "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.writer.execute(f"PRAGMA user_version = {FORMAT_VERSION}")

    def _generations(self) -> set[int]:
        names = [r[0] for r in self.writer.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND "
            "(name LIKE 'strom_kv_%' OR name LIKE 'strom_offsets_%')")]
        return {int(n.rsplit("_", 1)[1]) for n in names if n.rsplit("_", 1)[1].isdigit()}

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    # --- writing ----------------------------------------------------------------------

    def begin(self) -> StoreTransaction:
        self._check()
        if self._tx is not None:
            raise StoreError("a write transaction is already open")
        self._tx = _SQLiteTransaction(self)
        return self._tx

    def end(self, tx: _SQLiteTransaction) -> None:
        if self._tx is tx:
            self._tx = None

    def clear(self) -> None:
        self._check()
        conn = self.writer
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            for sql in self.queries.clear:
                conn.execute(sql)
            conn.execute("COMMIT")

    def empty_sibling(self) -> ViewStore:
        self._check()
        return SQLiteStore(self.path, synchronous=self.synchronous,
                           _generation=self.generation + 1)

    def replace_with(self, other: ViewStore) -> None:
        self._check()
        if not (isinstance(other, SQLiteStore) and other.path.resolve() == self.path.resolve()):
            raise StoreError("an SQLiteStore can only adopt its own empty_sibling()")
        new_generation = other.generation
        other.close()
        conn = self.writer
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("UPDATE strom_meta SET value = ? WHERE key = 'generation'",
                             (str(new_generation),))
                for sql in self.queries.drop:
                    conn.execute(sql)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self.generation = new_generation
            self.queries = _queries(new_generation)

    # --- reading ----------------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[StoreReader]:
        self._check()
        with self._lock:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            try:
                conn = _connect(self.path, read_only=True)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read view store {self.path}: {exc}") from exc
        try:
            conn.execute("BEGIN")
            # The first read fixes the snapshot; the generation is read inside it.
            row = conn.execute("SELECT value FROM strom_meta WHERE key = 'generation'"
                               ).fetchone()
            generation = (int(row[0]) if row else 0) if self._live else self.generation
            yield _SQLiteReader(conn, _queries(generation))
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with self._lock:
                if not self._closed and len(self._readers) < _MAX_POOLED_READERS:
                    self._readers.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    def offsets(self) -> dict[TopicPartition, int]:
        with self.snapshot() as snap:
            return snap.offsets()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self.writer.close()
