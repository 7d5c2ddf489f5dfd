"""MemoryStore against the shared store conformance suite."""

from __future__ import annotations

from strom.views import MemoryStore, ViewStore
from tests.views.store_conformance import StoreConformance


class TestMemoryStore(StoreConformance):
    def make_store(self) -> ViewStore:
        return MemoryStore()

    def reopen(self, store: ViewStore) -> ViewStore:
        assert isinstance(store, MemoryStore)
        return store.reopen()
