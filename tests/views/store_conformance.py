"""One conformance suite for every view-store backend (CONVENTIONS 12).

A backend's test module subclasses `StoreConformance` and provides
`make_store()` (a new, empty store) and `reopen(store)` (the same durable
state seen by a new process: open transactions are lost). Everything a view
relies on is checked here, so a new backend that passes can be used.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strom.views import StoreError, ViewStore


class StoreConformance:
    # --- provided by each backend ---------------------------------------------------------

    def make_store(self) -> ViewStore:
        raise NotImplementedError

    def reopen(self, store: ViewStore) -> ViewStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self) -> Any:
        s = self.make_store()
        yield s
        s.close()

    # --- reads and writes -------------------------------------------------------------------

    def test_empty(self, store: ViewStore) -> None:
        assert store.offsets() == {}
        with store.snapshot() as snap:
            assert snap.get("t", "k") is None
            assert snap.items("t") == []
            assert snap.count("t") == 0
            assert snap.offsets() == {}

    def test_put_get_delete_in_transaction(self, store: ViewStore) -> None:
        tx = store.begin()
        tx.put("t", "a", {"x": 1, "y": [1, 2, "z"], "n": None})
        assert tx.get("t", "a") == {"x": 1, "y": [1, 2, "z"], "n": None}
        tx.put("t", "a", 5)
        assert tx.get("t", "a") == 5
        tx.put("t", "b", "text")
        tx.delete("t", "b")
        assert tx.get("t", "b") is None
        tx.delete("t", "never-there")
        tx.commit()
        with store.snapshot() as snap:
            assert snap.get("t", "a") == 5
            assert snap.get("t", "b") is None
            assert snap.count("t") == 1

    def test_values_round_trip_as_json(self, store: ViewStore) -> None:
        values: list[Any] = [0, -1, 2**53, 1.5, True, False, None, "", "ünïcödé ✓", [], {},
                  {"nested": {"list": [1, {"a": None}]}}]
        tx = store.begin()
        for i, v in enumerate(values):
            tx.put("t", f"k{i}", v)
        tx.commit()
        with store.snapshot() as snap:
            assert [snap.get("t", f"k{i}") for i in range(len(values))] == values

    def test_value_read_back_is_a_copy(self, store: ViewStore) -> None:
        tx = store.begin()
        value = {"list": [1]}
        tx.put("t", "k", value)
        value["list"].append(2)
        got = tx.get("t", "k")
        got["list"].append(3)
        assert tx.get("t", "k") == {"list": [1]}
        tx.commit()

    def test_rejects_values_that_are_not_json(self, store: ViewStore) -> None:
        tx = store.begin()
        for bad in (object(), {1, 2}, b"bytes", float("nan")):
            with pytest.raises(StoreError):
                tx.put("t", "k", bad)
        with pytest.raises(StoreError):
            tx.put("t", 5, 1)  # type: ignore[arg-type]
        with pytest.raises(StoreError):
            tx.put("", "k", 1)
        with pytest.raises(StoreError):
            tx.put("t", "\ud800", 1)
        tx.rollback()

    def test_tables_are_separate(self, store: ViewStore) -> None:
        tx = store.begin()
        tx.put("a", "k", 1)
        tx.put("b", "k", 2)
        tx.commit()
        with store.snapshot() as snap:
            assert (snap.get("a", "k"), snap.get("b", "k")) == (1, 2)
            assert snap.items("a") == [("k", 1)]

    def test_items_in_key_order_with_prefix_and_limit(self, store: ViewStore) -> None:
        keys = ["b", "a", "ab", "a\uffff", "a\U0010ffff", "aa", "b0", "", "é", "\x00"]
        tx = store.begin()
        for k in keys:
            tx.put("t", k, k)
        # uncommitted writes merge into the transaction's own reads
        tx.put("t", "a1", "a1")
        tx.delete("t", "ab")
        expected = sorted(set(keys) - {"ab"} | {"a1"})
        assert [k for k, _ in tx.items("t")] == expected
        assert [k for k, _ in tx.items("t", "a")] == [k for k in expected if k.startswith("a")]
        assert tx.items("t", "a", limit=2) == [(k, k) for k in expected
                                               if k.startswith("a")][:2]
        assert tx.count("t") == len(expected)
        tx.commit()
        with store.snapshot() as snap:
            assert [k for k, _ in snap.items("t")] == expected
            assert [k for k, _ in snap.items("t", "a\uffff")] == ["a\uffff"]
            assert [k for k, _ in snap.items("t", "a\U0010ffff")] == ["a\U0010ffff"]
            assert snap.items("t", "zzz") == []
            assert snap.items("t", limit=0) == []
            assert snap.count("t") == len(expected)

    # --- transactions and offsets --------------------------------------------------------------

    def test_offsets_commit_with_the_state(self, store: ViewStore) -> None:
        tx = store.begin()
        tx.put("t", "k", 1)
        tx.set_offset("orders", 0, 10)
        tx.set_offset("orders", 1, 3)
        assert tx.offsets() == {("orders", 0): 10, ("orders", 1): 3}
        tx.commit()
        assert store.offsets() == {("orders", 0): 10, ("orders", 1): 3}
        tx = store.begin()
        tx.set_offset("orders", 0, 12)
        tx.commit()
        assert store.offsets() == {("orders", 0): 12, ("orders", 1): 3}

    def test_rollback_forgets_state_and_offsets(self, store: ViewStore) -> None:
        tx = store.begin()
        tx.put("t", "k", 1)
        tx.set_offset("o", 0, 1)
        tx.commit()
        tx = store.begin()
        tx.put("t", "k", 2)
        tx.put("t", "new", 2)
        tx.set_offset("o", 0, 2)
        tx.rollback()
        with store.snapshot() as snap:
            assert snap.get("t", "k") == 1
            assert snap.get("t", "new") is None
        assert store.offsets() == {("o", 0): 1}

    def test_one_writer_at_a_time(self, store: ViewStore) -> None:
        tx = store.begin()
        with pytest.raises(StoreError):
            store.begin()
        tx.commit()
        with pytest.raises(StoreError):
            tx.put("t", "k", 1)
        with pytest.raises(StoreError):
            tx.commit()
        store.begin().rollback()

    def test_snapshot_never_sees_uncommitted_writes(self, store: ViewStore) -> None:
        tx = store.begin()
        tx.put("t", "k", 1)
        tx.set_offset("o", 0, 1)
        with store.snapshot() as snap:
            assert snap.get("t", "k") is None
            assert snap.offsets() == {}
        tx.commit()
        with store.snapshot() as snap:
            assert snap.get("t", "k") == 1

    def test_snapshot_is_consistent_while_the_writer_commits(self, store: ViewStore) -> None:
        """Every snapshot sees a whole commit: the two counters never differ."""
        tx = store.begin()
        tx.put("t", "a", 0)
        tx.put("t", "b", 0)
        tx.commit()
        stop = threading.Event()
        errors: list[str] = []

        def write() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                tx = store.begin()
                tx.put("t", "a", i)
                tx.put("t", "b", i)
                tx.set_offset("o", 0, i)
                tx.commit()

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for _ in range(300):
                with store.snapshot() as snap:
                    a = snap.get("t", "a")
                    b = snap.get("t", "b")
                    offset = snap.offsets().get(("o", 0), 0)
                if not a == b == offset:
                    errors.append(f"a={a} b={b} offset={offset}")
        finally:
            stop.set()
            writer.join()
        assert errors == []

    def test_reopen_keeps_commits_and_loses_the_open_transaction(self, store: ViewStore) -> None:
        tx = store.begin()
        tx.put("t", "k", "committed")
        tx.set_offset("o", 0, 5)
        tx.commit()
        tx = store.begin()
        tx.put("t", "k", "lost")
        tx.set_offset("o", 0, 9)
        # no commit: the process dies here
        store2 = self.reopen(store)
        try:
            assert store2.offsets() == {("o", 0): 5}
            with store2.snapshot() as snap:
                assert snap.get("t", "k") == "committed"
            store2.begin().rollback()  # the lost writer does not block the new one
        finally:
            store2.close()

    def test_clear(self, store: ViewStore) -> None:
        tx = store.begin()
        tx.put("t", "k", 1)
        tx.set_offset("o", 0, 5)
        tx.commit()
        store.clear()
        assert store.offsets() == {}
        with store.snapshot() as snap:
            assert snap.items("t") == []

    def test_replace_with_sibling(self, store: ViewStore) -> None:
        tx = store.begin()
        tx.put("t", "old", 1)
        tx.set_offset("o", 0, 5)
        tx.commit()
        sibling = store.empty_sibling()
        assert sibling.offsets() == {}
        tx = sibling.begin()
        tx.put("t", "new", 2)
        tx.set_offset("o", 0, 7)
        tx.commit()
        with store.snapshot() as snap:  # the live store is untouched meanwhile
            assert snap.items("t") == [("old", 1)]
        store.replace_with(sibling)
        assert store.offsets() == {("o", 0): 7}
        with store.snapshot() as snap:
            assert snap.items("t") == [("new", 2)]
        tx = store.begin()
        tx.put("t", "after", 3)
        tx.commit()
        store2 = self.reopen(store)
        try:
            with store2.snapshot() as snap:
                assert snap.items("t") == [("after", 3), ("new", 2)]
        finally:
            store2.close()

    # --- model-based: random operations against a dict ------------------------------------------

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.differing_executors])
    @given(st.lists(st.tuples(
        st.sampled_from(["put", "put", "delete", "commit", "rollback", "reopen", "offset"]),
        st.sampled_from(["t1", "t2"]),
        st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=4),
        st.integers(-5, 5)), max_size=40))
    def test_model(self, ops: list[tuple[str, str, str, int]]) -> None:
        store = self.make_store()
        committed: dict[tuple[str, str], int] = {}
        committed_offsets: dict[tuple[str, int], int] = {}
        pending: dict[tuple[str, str], int | None] = {}
        pending_offsets: dict[tuple[str, int], int] = {}
        tx = None
        try:
            for op, table, key, value in ops:
                if tx is None:
                    tx = store.begin()
                if op == "put":
                    tx.put(table, key, value)
                    pending[(table, key)] = value
                elif op == "delete":
                    tx.delete(table, key)
                    pending[(table, key)] = None
                elif op == "offset":
                    tx.set_offset(table, abs(value), len(key))
                    pending_offsets[(table, abs(value))] = len(key)
                elif op == "commit":
                    tx.commit()
                    tx = None
                    for k, v in pending.items():
                        if v is None:
                            committed.pop(k, None)
                        else:
                            committed[k] = v
                    committed_offsets.update(pending_offsets)
                    pending, pending_offsets = {}, {}
                elif op in ("rollback", "reopen"):
                    if op == "rollback":
                        tx.rollback()
                    else:
                        store = self.reopen(store)
                    tx = None
                    pending, pending_offsets = {}, {}
                # the transaction sees its own writes; snapshots only commits
                view = dict(committed)
                for k, v in pending.items():
                    if v is None:
                        view.pop(k, None)
                    else:
                        view[k] = v
                if tx is not None:
                    for t in ("t1", "t2"):
                        assert tx.items(t) == sorted((k, v) for (tt, k), v in view.items()
                                                     if tt == t)
                with store.snapshot() as snap:
                    for t in ("t1", "t2"):
                        assert snap.items(t) == sorted((k, v) for (tt, k), v in
                                                       committed.items() if tt == t)
                    assert snap.offsets() == committed_offsets
        finally:
            if tx is not None:
                tx.rollback()
            store.close()
