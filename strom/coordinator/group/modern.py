"""What the modern group types have in common: KIP-848 consumer groups, KIP-932
share groups and KIP-1071 streams groups.

Each keeps its members by id, a group epoch and the epoch of its target
assignment, and each member its member epoch; their records differ. Here are
the pieces of bookkeeping that are the same for all three: how far a group's
reconciliation has got, finding a member a request names, and the order in
which the records deleting a group's members are written; and the checks of
the ids a consumer or streams group heartbeat carries.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Protocol, TypeVar

from strom.coordinator.group.errors import (
    InvalidRequestError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)
from strom.coordinator.group.records import RecordPair

#: What an offset commit's validation may return: a check of each partition (topic
#: name, topic id if the topic exists, partition) that raises to refuse the whole
#: commit (Kafka 4.4's CommitPartitionValidator).
PartitionCheck = Callable[[str, uuid.UUID | None, int], None]

#: Kafka records a member's STABLE state as 0 in every modern group type.
STABLE_MEMBER_STATE = 0

ASSIGNING = "Assigning"
RECONCILING = "Reconciling"
STABLE = "Stable"


class ReconcilingMember(Protocol):
    @property
    def member_epoch(self) -> int: ...

    @property
    def state(self) -> int: ...


M = TypeVar("M")


def reconciliation_state(group_epoch: int, assignment_epoch: int,
                         members: Iterable[ReconcilingMember]) -> str:
    """Kafka's name of the state of a group with members, as far as its target
    assignment goes: Assigning while the group epoch is ahead of the target's,
    Reconciling while some member has not reached its target, then Stable."""
    if group_epoch > assignment_epoch:
        return ASSIGNING
    for member in members:
        if member.member_epoch != assignment_epoch or member.state != STABLE_MEMBER_STATE:
            return RECONCILING
    return STABLE


def find_member(members: Mapping[str, M], member_id: str, group_id: str) -> M:
    """The member a request names (UNKNOWN_MEMBER_ID if the group has none by that id)."""
    member = members.get(member_id)
    if member is None:
        raise UnknownMemberIdError(f"member {member_id} is not in group {group_id}")
    return member


def check_empty(group_id: str, members: Mapping[str, object]) -> None:
    """A group with members may not be deleted (NON_EMPTY_GROUP)."""
    if members:
        raise NonEmptyGroupError(f"group {group_id} is not empty")


def members_tombstones(group_id: str, members: Collection[str], target: Iterable[str],
                       member_tombstones: Callable[[str, str], list[RecordPair]],
                       target_member_tombstone: Callable[[str, str], RecordPair]
                       ) -> list[RecordPair]:
    """The records deleting a group's members, in Kafka's order: each member's own
    records, then the target assignment of any member that has already left."""
    out: list[RecordPair] = []
    for member_id in members:
        out.extend(member_tombstones(group_id, member_id))
    for member_id in target:
        if member_id not in members:
            out.append(target_member_tombstone(group_id, member_id))
    return out


def check_heartbeat_ids(group_id: str, instance_id: str | None, rack_id: str | None) -> None:
    """Kafka's checks of the ids of a ConsumerGroupHeartbeat or StreamsGroupHeartbeat:
    a group id, and an instance or rack id that is absent or not empty."""
    if not group_id:
        raise InvalidRequestError("GroupId can't be empty.")
    if instance_id == "":
        raise InvalidRequestError("InstanceId can't be empty.")
    if rack_id == "":
        raise InvalidRequestError("RackId can't be empty.")
