"""Share groups (KIP-932): the group, its members, and the simple assignor.

A share group is a modern group without revocation: members subscribe to
topic names, the coordinator bumps the group epoch when subscriptions or the
subscribed topics change, computes a target assignment with the simple
assignor, and a member takes its target at once on its next heartbeat
(Kafka's ShareGroupAssignmentBuilder: records are not owned exclusively, the
share partition hands each record to one consumer at a time, so nothing has
to be revoked first). A partition may be assigned to several members.

Partitions are only assigned once their share state is initialized in the
share coordinator (`initialized`, kept in ShareGroupStatePartitionMetadata),
as Kafka 4.x does: the group coordinator initializes a partition's state with
start offset -1 when a member first subscribes to its topic.

The state is only changed by replaying records (share_protocol.py).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from strom.coordinator.group.errors import GroupIdNotFoundError, NonEmptyGroupError
from strom.coordinator.group.modern import members_tombstones
from strom.coordinator.group.records import RecordPair, encode
from strom.coordinator.group.share_records import (
    ShareGroupCurrentMemberAssignmentKey,
    ShareGroupCurrentMemberAssignmentValue,
    ShareGroupMemberMetadataKey,
    ShareGroupMemberMetadataValue,
    ShareGroupMetadataKey,
    ShareGroupStatePartitionMetadataKey,
    ShareGroupTargetAssignmentMemberKey,
    ShareGroupTargetAssignmentMetadataKey,
)

Assignment = dict[uuid.UUID, frozenset[int]]
LEAVE_GROUP_MEMBER_EPOCH = -1
SIMPLE_ASSIGNOR = "simple"


class ShareGroupState(enum.Enum):
    EMPTY = "Empty"
    """No members. Its share state stays; the group may be deleted, offsets altered."""
    STABLE = "Stable"
    """Has members (there is no rebalance to wait for: assignments apply at once)."""
    DEAD = "Dead"
    """Deleted."""


@dataclass(frozen=True, slots=True)
class ShareGroupMember:
    member_id: str
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    member_epoch: int = 0
    previous_member_epoch: int = 0
    assigned: Mapping[uuid.UUID, frozenset[int]] = field(default_factory=dict)

    def metadata_value(self) -> ShareGroupMemberMetadataValue:
        return ShareGroupMemberMetadataValue(self.rack_id, self.client_id, self.client_host,
                                             tuple(sorted(self.subscribed_topic_names)))

    def assignment_value(self) -> ShareGroupCurrentMemberAssignmentValue:
        # State 0: STABLE, the only state a share member is ever in (no revocation).
        return ShareGroupCurrentMemberAssignmentValue(
            self.member_epoch, self.previous_member_epoch, 0, dict(self.assigned))

    def with_epoch(self, epoch: int, assigned: Mapping[uuid.UUID, frozenset[int]]
                   ) -> ShareGroupMember:
        return replace(self, member_epoch=epoch, previous_member_epoch=self.member_epoch,
                       assigned=dict(assigned))


@dataclass(eq=False)
class ShareGroup:
    group_id: str
    group_epoch: int = 0
    metadata_hash: int = 0
    assignment_epoch: int = 0
    members: dict[str, ShareGroupMember] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    # ShareGroupStatePartitionMetadata: topic id -> (name, partitions)
    initializing: dict[uuid.UUID, tuple[str, frozenset[int]]] = field(default_factory=dict)
    initialized: dict[uuid.UUID, tuple[str, frozenset[int]]] = field(default_factory=dict)
    deleting: dict[uuid.UUID, str] = field(default_factory=dict)
    has_state_metadata: bool = False

    type_name = "share"
    protocol_type = "share"

    @property
    def state(self) -> ShareGroupState:
        return ShareGroupState.STABLE if self.members else ShareGroupState.EMPTY

    @property
    def state_name(self) -> str:
        return self.state.value

    @property
    def is_empty(self) -> bool:
        return not self.members

    def subscribed_topic_names(self, members: Iterable[ShareGroupMember] | None = None
                               ) -> set[str]:
        names: set[str] = set()
        for member in self.members.values() if members is None else members:
            names.update(member.subscribed_topic_names)
        return names

    def is_subscribed_to_topic(self, topic: str) -> bool:
        return topic in self.subscribed_topic_names()

    def initialized_partitions(self) -> dict[uuid.UUID, frozenset[int]]:
        return {t: ps for t, (_, ps) in self.initialized.items()}

    def validate_delete_group(self) -> None:
        if self.members:
            raise NonEmptyGroupError(f"Group {self.group_id} is not empty.")

    def _not_a_consumer_group(self) -> GroupIdNotFoundError:
        # Kafka's ShareGroup: a share group has no committed offsets to commit,
        # fetch or delete (its start offsets are the share coordinator's).
        return GroupIdNotFoundError(f"Group {self.group_id} is not a consumer group.")

    def validate_offset_commit(self, member_id: str, group_instance_id: str | None,
                               generation_id: int, *, transactional: bool = False,
                               api_version: int = 9) -> None:
        raise self._not_a_consumer_group()

    def validate_offset_fetch(self) -> None:
        raise self._not_a_consumer_group()

    def validate_offset_delete(self) -> None:
        raise self._not_a_consumer_group()

    def tombstones(self) -> list[RecordPair]:
        """Records deleting the whole group, in Kafka's order."""
        gid = self.group_id
        out = members_tombstones(gid, self.members, self.target, member_tombstones,
                                 _target_member_tombstone)
        out.append(encode(ShareGroupTargetAssignmentMetadataKey(gid), None))
        if self.has_state_metadata:
            out.append(encode(ShareGroupStatePartitionMetadataKey(gid), None))
        out.append(encode(ShareGroupMetadataKey(gid), None))
        return out


def _target_member_tombstone(group_id: str, member_id: str) -> RecordPair:
    return encode(ShareGroupTargetAssignmentMemberKey(group_id, member_id), None)


def member_tombstones(group_id: str, member_id: str) -> list[RecordPair]:
    return [
        encode(ShareGroupCurrentMemberAssignmentKey(group_id, member_id), None),
        encode(ShareGroupTargetAssignmentMemberKey(group_id, member_id), None),
        encode(ShareGroupMemberMetadataKey(group_id, member_id), None),
    ]


# -- the simple assignor ------------------------------------------------------------------

def simple_assign(subscriptions: Mapping[str, frozenset[uuid.UUID]],
                  assignable: Mapping[uuid.UUID, frozenset[int]],
                  previous: Mapping[str, Mapping[uuid.UUID, frozenset[int]]]
                  ) -> dict[str, Assignment]:
    """Kafka's SimpleAssignor, per topic: every assignable partition goes to at least
    one subscribed member; with more members than partitions each partition is shared
    by ceil(members / partitions) of them so that every member gets one. A member
    keeps the partitions it had while that stays within its share (sticky), and the
    rest are dealt out to the members with the fewest. Pure and deterministic."""
    out: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in subscriptions}
    for topic in sorted(assignable, key=str):
        partitions = sorted(assignable[topic])
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        if not partitions or not members:
            continue
        sharing = -(-len(members) // len(partitions))  # members per partition
        quota = -(-len(partitions) * sharing // len(members))  # partitions per member
        holders: dict[int, list[str]] = {p: [] for p in partitions}
        counts = dict.fromkeys(members, 0)
        for member in members:
            for p in sorted(previous.get(member, {}).get(topic, frozenset())):
                if p in holders and len(holders[p]) < sharing and counts[member] < quota:
                    holders[p].append(member)
                    counts[member] += 1
        for p in partitions:
            while len(holders[p]) < sharing:
                candidates = [m for m in members if m not in holders[p]]
                if not candidates:
                    break
                chosen = min(candidates, key=lambda m: (counts[m], m))
                holders[p].append(chosen)
                counts[chosen] += 1
        for p, owners in holders.items():
            for member in owners:
                out[member].setdefault(topic, set()).add(p)
    return {m: {t: frozenset(ps) for t, ps in topics.items()} for m, topics in out.items()}
