"""SQLiteStore against the shared store conformance suite, plus its file format."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from strom.views import SQLiteStore, StoreError, ViewStore
from tests.views.store_conformance import StoreConformance


class TestSQLiteStore(StoreConformance):
    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.names = itertools.count()

    def make_store(self) -> ViewStore:
        return SQLiteStore(self.dir / f"view-{next(self.names)}.db")

    def reopen(self, store: ViewStore) -> ViewStore:
        # Like a crash: the old connection is never committed; a new one opens the file.
        assert isinstance(store, SQLiteStore)
        return SQLiteStore(store.path)


def test_refuses_a_newer_format(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="format 99"):
        SQLiteStore(path)


def test_interrupted_rebuild_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    store = SQLiteStore(path)
    tx = store.begin()
    tx.put("t", "live", 1)
    tx.commit()
    sibling = store.empty_sibling()
    tx = sibling.begin()
    tx.put("t", "half-built", 1)
    tx.commit()
    sibling.close()
    store.close()  # crash before replace_with
    store = SQLiteStore(path)
    with store.snapshot() as snap:
        assert snap.items("t") == [("live", 1)]
    tables = {r[0] for r in sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"strom_meta", "strom_kv_0", "strom_offsets_0"}
    store.close()


def test_snapshot_taken_before_a_swap_keeps_reading_the_old_state(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "v.db")
    tx = store.begin()
    tx.put("t", "k", "old")
    tx.commit()
    sibling = store.empty_sibling()
    tx = sibling.begin()
    tx.put("t", "k", "new")
    tx.commit()
    with store.snapshot() as snap:
        assert snap.get("t", "k") == "old"
        store.replace_with(sibling)
        # the swap drops the old tables only once no reader uses them (SQLite waits)
        assert snap.get("t", "k") == "old"
    with store.snapshot() as snap:
        assert snap.get("t", "k") == "new"
    store.close()
