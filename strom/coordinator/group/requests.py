"""What the broker's group handlers hand the group coordinator.

Value types only, apart from the coordinator's modules, so the handlers can
be loaded at start-up without loading the coordinator itself (it is started
on first use; see strom/broker/coordinators.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

# A classic member's (protocol name, metadata) pairs, in its preference order.
Protocols = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    client_id: str
    client_host: str
    reason: str | None = None
    requires_known_member_id: bool = True  # JoinGroup v4+ (KIP-394)
    supports_skip_assignment: bool = True  # JoinGroup v9+


@dataclass(frozen=True, slots=True)
class SyncRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None
    protocol_type: str | None
    protocol_name: str | None
    assignments: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class LeavingMember:
    member_id: str
    group_instance_id: str | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    """A ConsumerGroupHeartbeat (KIP-848)."""

    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None
    rack_id: str | None
    rebalance_timeout_ms: int
    subscribed_topic_names: tuple[str, ...] | None
    subscribed_topic_regex: str | None
    server_assignor: str | None
    owned: tuple[tuple[uuid.UUID, tuple[int, ...]], ...] | None
    client_id: str
    client_host: str
    api_version: int = 1
    #: The topics of a resolved regex this member may see (Kafka 4.x,
    #: KAFKA-18813: a regex is resolved with the ACLs of the member whose
    #: heartbeat refreshed it); None: all of them (no authorizer).
    describable: Callable[[frozenset[str]], frozenset[str]] | None = field(
        default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PartitionCommit:
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


@dataclass(frozen=True, slots=True)
class CommitRequest:
    group_id: str
    generation_id_or_member_epoch: int
    member_id: str
    group_instance_id: str | None
    retention_time_ms: int
    # (topic name, partitions); unknown topics were answered by the caller
    topics: tuple[tuple[str, tuple[PartitionCommit, ...]], ...]
    api_version: int = 9
    # TxnOffsetCommit: KIP-848 members may use it at any version, and a classic
    # group accepts it while completing a rebalance or without a member id.
    transactional: bool = False


@dataclass(frozen=True, slots=True)
class ShareHeartbeatRequest:
    group_id: str
    member_id: str
    member_epoch: int
    rack_id: str | None
    subscribed_topic_names: tuple[str, ...] | None
    client_id: str
    client_host: str
