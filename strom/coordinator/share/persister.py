"""How a share partition's durable state is read and written (KIP-932).

A share partition (broker/share/) keeps its in-flight records in memory and
persists them through a `Persister`; the share coordinator
(coordinator/share/) stores them in `__share_group_state`, as Kafka 4.x's
persister does with Initialize/Read/Write/DeleteShareGroupState. The group
coordinator uses the same interface to delete a share group's state and the
admin APIs to read and alter its start offsets.

State is keyed by (group id, topic id, partition): a topic deleted and made
again under the same name is a new topic with new state.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Protocol

# A start offset not yet resolved: the share partition resolves it with the
# group's share.auto.offset.reset when it first loads (Kafka's -1).
UNINITIALIZED_START_OFFSET = -1


class DeliveryState(enum.IntEnum):
    """Kafka's RecordState ids as they are persisted (ACQUIRED is never
    persisted: an acquired record is written as AVAILABLE, so a restart
    makes it deliverable again)."""

    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4


@dataclass(frozen=True, slots=True)
class StateBatch:
    """A run of offsets [first_offset, last_offset] in one state."""

    first_offset: int
    last_offset: int
    delivery_state: DeliveryState
    delivery_count: int


@dataclass(frozen=True, slots=True)
class ShareState:
    state_epoch: int
    leader_epoch: int
    start_offset: int  # UNINITIALIZED_START_OFFSET until resolved
    batches: tuple[StateBatch, ...]
    # Offsets at or above the start offset whose delivery is complete
    # (acknowledged or archived; KIP-1226), -1 if not counted. The group's
    # lag (DescribeShareGroupOffsets v1) is computed from it.
    delivery_complete_count: int = -1


@dataclass(frozen=True, slots=True)
class ShareStateSummary:
    state_epoch: int
    leader_epoch: int
    start_offset: int
    delivery_complete_count: int = -1


class Persister(Protocol):
    """Errors are raised as strom.errors.KafkaError subclasses with Kafka's
    codes (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, FENCED_STATE_EPOCH,
    FENCED_LEADER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION, ...)."""

    async def initialize_state(self, group_id: str, topic_id: uuid.UUID, partition: int,
                               state_epoch: int, start_offset: int) -> None:
        """Start (or restart, with a higher state epoch) a partition's state."""
        ...

    async def read_state(self, group_id: str, topic_id: uuid.UUID, partition: int,
                         leader_epoch: int) -> ShareState | None:
        """The state, or None if it was never initialized. A leader epoch below
        the stored one is fenced (FENCED_LEADER_EPOCH)."""
        ...

    async def write_state(self, group_id: str, topic_id: uuid.UUID, partition: int,
                          state: ShareState) -> None:
        """Replace the stored batches and start offset. A state epoch other
        than the stored one is FENCED_STATE_EPOCH."""
        ...

    async def read_summary(self, group_id: str, topic_id: uuid.UUID, partition: int
                           ) -> ShareStateSummary | None:
        ...

    async def delete_state(self, group_id: str, topic_id: uuid.UUID, partition: int) -> None:
        ...
