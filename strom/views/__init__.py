"""Event sourcing and CQRS over any Kafka-compatible cluster.

- `EventRegistry`: typed events (dataclasses), type and schema version in
  record headers, upcasters for old versions.
- `Publisher`: the write side; idempotent, keyed by entity id.
- `View`: a read model fed by topics into a local store (`SQLiteStore` by
  default, `MemoryStore` for tests), offsets stored with the state, so every
  event is applied exactly once; catch-up, lag, snapshots, rebuild.

It talks to the cluster only through confluent-kafka; it does not use
consumer groups. See docs/views.md.
"""

from strom.views.errors import (
    BrokerUnavailable,
    CatchUpTimeout,
    EventError,
    PublishError,
    StoreError,
    TransactionsUnsupported,
    UnknownEventType,
    UnknownEventVersion,
    ViewClosed,
    ViewFailed,
    ViewsError,
)
from strom.views.events import EncodedEvent, EventRegistry
from strom.views.kafka import ensure_topic
from strom.views.memory import MemoryStore
from strom.views.progress import Progress, ViewState
from strom.views.publisher import Delivery, Publisher
from strom.views.sqlite import SQLiteStore
from strom.views.store import StoreReader, StoreTransaction, TopicPartition, ViewStore
from strom.views.view import Context, View

__all__ = [
    "BrokerUnavailable",
    "CatchUpTimeout",
    "Context",
    "Delivery",
    "EncodedEvent",
    "EventError",
    "EventRegistry",
    "MemoryStore",
    "Progress",
    "PublishError",
    "Publisher",
    "SQLiteStore",
    "StoreError",
    "StoreReader",
    "StoreTransaction",
    "TopicPartition",
    "TransactionsUnsupported",
    "UnknownEventType",
    "UnknownEventVersion",
    "View",
    "ViewClosed",
    "ensure_topic",
    "ViewFailed",
    "ViewState",
    "ViewStore",
    "ViewsError",
]
