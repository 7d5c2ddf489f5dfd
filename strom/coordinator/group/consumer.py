"""Consumer groups of the next-generation protocol (KIP-848).

The coordinator owns the assignment: members heartbeat their subscription
(topic names and/or a regular expression) and the partitions they own; the
group epoch is bumped when subscriptions or the subscribed topics' metadata
change; a server-side assignor (`assignors.py`) then computes the target
assignment for that epoch, and each member is reconciled towards its target
one heartbeat at a time: partitions it must give up are revoked first (it
keeps its epoch until it acknowledges by no longer reporting them), and a
partition still owned by another member is only handed over once that
member has released it.

Unlike classic groups, every change here is a record (CONVENTIONS 5): an
operation computes the records from the current group without touching it,
the runtime replays them, and replay is the only code that changes a
ConsumerGroup. The records are Kafka's (ConsumerGroupMetadata,
ConsumerGroupMemberMetadata, ConsumerGroupTargetAssignmentMetadata/Member,
ConsumerGroupCurrentMemberAssignment, ConsumerGroupRegularExpression).
"""

from __future__ import annotations

import enum
import hashlib
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from strom.cluster.image import MetadataImage
from strom.coordinator.group import records as rec
from strom.coordinator.group.assignors import Assignment
from strom.coordinator.group.errors import (
    FencedMemberEpochError,
    IllegalGenerationError,
    InvalidRequestError,
    StaleMemberEpochError,
    UnsupportedAssignorError,
    UnsupportedVersionError,
)
from strom.coordinator.group.modern import (
    PartitionCheck,
    check_empty,
    check_heartbeat_ids,
    find_member,
    members_tombstones,
    reconciliation_state,
)
from strom.coordinator.group.requests import HeartbeatRequest
from strom.coordinator.regex import check_regex, full_matcher
from strom.errors import KafkaError

LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2
RecordPair = tuple[bytes, bytes | None]
EMPTY_ASSIGNMENT: Mapping[uuid.UUID, frozenset[int]] = {}


class MemberState(enum.IntEnum):
    """Where a member is in its reconciliation (Kafka's MemberState, as recorded)."""

    STABLE = 0
    UNREVOKED_PARTITIONS = 1
    UNRELEASED_PARTITIONS = 2
    UNKNOWN = 127


class ConsumerGroupState(enum.Enum):
    EMPTY = "Empty"
    """No members; offsets may be committed with epoch -1 (admin tools)."""
    ASSIGNING = "Assigning"
    """The group epoch is ahead of the target assignment's: the next heartbeat assigns."""
    RECONCILING = "Reconciling"
    """Some member has not reached the target assignment yet."""
    STABLE = "Stable"
    """Every member holds its target assignment."""
    DEAD = "Dead"
    """Deleted."""


@dataclass(frozen=True, slots=True)
class ConsumerGroupMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    rebalance_timeout_ms: int = -1
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: Mapping[uuid.UUID, frozenset[int]] = field(default_factory=dict)
    pending_revocation: Mapping[uuid.UUID, frozenset[int]] = field(default_factory=dict)
    # (topic id, partition) -> the epoch each of those partitions was assigned to the member
    # at (Kafka 4.4, KIP-1251): a commit of an older epoch is good for the partitions the
    # member has held since that epoch.
    assignment_epochs: Mapping[tuple[uuid.UUID, int], int] = field(default_factory=dict)
    # Set for a member speaking the classic protocol (JoinGroup/SyncGroup/Heartbeat)
    # in a consumer group: an upgraded group's old members, or a classic client joining.
    classic: rec.ClassicMemberMetadata | None = None

    @property
    def uses_classic_protocol(self) -> bool:
        return self.classic is not None

    def metadata_value(self) -> rec.ConsumerGroupMemberMetadataValue:
        return rec.ConsumerGroupMemberMetadataValue(
            self.instance_id, self.rack_id, self.client_id, self.client_host,
            tuple(sorted(self.subscribed_topic_names)), self.subscribed_topic_regex,
            self.rebalance_timeout_ms, self.server_assignor, self.classic)

    def assignment_value(self) -> rec.ConsumerGroupCurrentMemberAssignmentValue:
        return rec.ConsumerGroupCurrentMemberAssignmentValue(
            self.member_epoch, self.previous_member_epoch, int(self.state),
            dict(self.assigned), dict(self.pending_revocation), self.held_epochs())

    def assignment_epoch(self, topic_id: uuid.UUID, partition: int) -> int | None:
        """The epoch the member was given this partition at, if it holds it (assigned
        or pending revocation); None if it does not."""
        if (partition not in self.assigned.get(topic_id, ())
                and partition not in self.pending_revocation.get(topic_id, ())):
            return None
        return self.assignment_epochs.get((topic_id, partition), max(self.member_epoch, 0))

    def held_epochs(self) -> dict[tuple[uuid.UUID, int], int]:
        """The assignment epoch of every partition the member holds."""
        default = max(self.member_epoch, 0)
        return {tp: self.assignment_epochs.get(tp, default)
                for partitions in (self.assigned, self.pending_revocation)
                for tp in partitions_at(partitions, default)}

    def with_epoch(self, epoch: int, **changes: Any) -> ConsumerGroupMember:
        return replace(self, member_epoch=epoch, previous_member_epoch=self.member_epoch,
                       **changes)


@dataclass(frozen=True, slots=True)
class ResolvedRegex:
    topics: frozenset[str]
    version: int
    timestamp: int


@dataclass(eq=False)
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    metadata_hash: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerGroupMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    regexes: dict[str, ResolvedRegex] = field(default_factory=dict)
    # (topic id, partition) -> epoch of the member that owns it (assigned or revoking)
    partition_epochs: dict[tuple[uuid.UUID, int], int] = field(default_factory=dict)

    type_name = "consumer"
    protocol_type = "consumer"

    @property
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        return ConsumerGroupState(reconciliation_state(
            self.group_epoch, self.assignment_epoch, self.members.values()))

    @property
    def state_name(self) -> str:
        return self.state.value

    @property
    def is_empty(self) -> bool:
        return not self.members

    def current_partition_epoch(self, topic_id: uuid.UUID, partition: int) -> int:
        return self.partition_epochs.get((topic_id, partition), -1)

    def subscribed_topic_names(self, members: Iterable[ConsumerGroupMember] | None = None,
                               regexes: Mapping[str, ResolvedRegex] | None = None) -> set[str]:
        regexes = self.regexes if regexes is None else regexes
        names: set[str] = set()
        for member in self.members.values() if members is None else members:
            names.update(member.subscribed_topic_names)
            if member.subscribed_topic_regex:
                resolved = regexes.get(member.subscribed_topic_regex)
                if resolved is not None:
                    names.update(resolved.topics)
        return names

    def classic_members(self) -> list[ConsumerGroupMember]:
        return [m for m in self.members.values() if m.classic is not None]

    def supports_classic_protocols(self, protocol_type: str, names: Iterable[str]) -> bool:
        """Whether a classic member with these protocols may join: the consumer protocol
        type, and a protocol every classic member already in the group supports."""
        names = set(names)
        if protocol_type != "consumer" or not names:
            return False
        classic = self.classic_members()
        return any(all(name in {n for n, _ in m.classic.supported_protocols}
                       for m in classic if m.classic is not None) for name in names)

    def waiting_on_unreleased_partition(self, member: ConsumerGroupMember) -> bool:
        """A member in UNRELEASED_PARTITIONS some of whose target partitions another
        member still owns."""
        if member.state is not MemberState.UNRELEASED_PARTITIONS:
            return False
        for topic, partitions in self.target.get(member.member_id, {}).items():
            assigned = member.assigned.get(topic, frozenset())
            if any(p not in assigned and self.current_partition_epoch(topic, p) != -1
                   for p in partitions):
                return True
        return False

    def is_subscribed_to_topic(self, topic: str) -> bool:
        return topic in self.subscribed_topic_names()

    def preferred_assignor(self, default: str) -> str:
        counts: dict[str, int] = {}
        for member in self.members.values():
            if member.server_assignor:
                counts[member.server_assignor] = counts.get(member.server_assignor, 0) + 1
        if not counts:
            return default
        return max(sorted(counts), key=lambda name: counts[name])

    # -- validation (offsets, deletion) -------------------------------------------------

    def validate_offset_commit(self, member_id: str, group_instance_id: str | None,
                               generation_id: int, *, transactional: bool = False,
                               api_version: int = 9) -> PartitionCheck | None:
        """Kafka 4.4's ConsumerGroup.validateOffsetCommit. The member's own epoch is
        good; a newer one is refused; for an older one, the check of each partition it
        returns accepts only partitions the member has held since that epoch (assigned
        or being revoked, assignment epoch <= the request's), so a zombie cannot commit
        for a partition that moved. The refusals are STALE_MEMBER_EPOCH, or
        ILLEGAL_GENERATION for a member of the classic protocol (its generation is
        its member epoch)."""
        if generation_id < 0 and not self.members:
            return None  # an admin tool's commit to an empty group
        if (transactional and generation_id == -1 and member_id == ""
                and group_instance_id is None):
            return None  # a transactional producer that names no member (Kafka 4.4)
        member = find_member(self.members, member_id, self.group_id)
        if not transactional and member.classic is None and api_version < 9:
            raise UnsupportedVersionError(
                "OffsetCommit version 9 or above must be used by members using the "
                "consumer group protocol")
        if generation_id == member.member_epoch:
            return None
        refused = _refusal(member)
        if generation_id > member.member_epoch:
            raise refused(f"Received {_epoch_name(member)} {generation_id} is newer than "
                          f"current member epoch {member.member_epoch}.")

        def check(topic: str, topic_id: uuid.UUID | None, partition: int) -> None:
            epoch = (member.assignment_epoch(topic_id, partition) if topic_id is not None
                     else None)
            if epoch is None:
                raise refused(f"Partition {topic}-{partition} is not assigned or pending "
                              "revocation for member.")
            if generation_id < epoch:
                raise refused(f"Received {_epoch_name(member)} {generation_id} is older "
                              f"than assignment epoch {epoch} for partition "
                              f"{topic}-{partition}.")

        return check

    def validate_offset_fetch(self, member_id: str | None, member_epoch: int) -> None:
        """Kafka 4.4: a member id and epoch, when given, must be a member's and its
        epoch exactly."""
        if member_id is None and member_epoch < 0:
            return
        member = find_member(self.members, member_id or "", self.group_id)
        if member_epoch != member.member_epoch:
            raise _refusal(member)(
                f"The received {_epoch_name(member)} {member_epoch} does not match the "
                f"expected member epoch {member.member_epoch}.")

    def validate_offset_delete(self) -> None:
        pass

    def validate_delete_group(self) -> None:
        check_empty(self.group_id, self.members)

    def tombstones(self) -> list[RecordPair]:
        """Records deleting the whole group, in Kafka's order."""
        gid = self.group_id
        out = members_tombstones(gid, self.members, self.target, _member_tombstones,
                                 _target_member_tombstone)
        for regex in self.regexes:
            out.append(rec.encode(rec.ConsumerGroupRegularExpressionKey(gid, regex), None))
        out.append(rec.encode(rec.ConsumerGroupTargetAssignmentMetadataKey(gid), None))
        out.append(rec.encode(rec.ConsumerGroupMetadataKey(gid), None))
        return out


def _refusal(member: ConsumerGroupMember) -> type[KafkaError]:
    """How a commit or fetch of the wrong epoch is refused: a classic member's epoch is
    its generation (ILLEGAL_GENERATION), a consumer member's STALE_MEMBER_EPOCH."""
    return IllegalGenerationError if member.classic is not None else StaleMemberEpochError


def _epoch_name(member: ConsumerGroupMember) -> str:
    return "generation id" if member.classic is not None else "member epoch"


def _target_member_tombstone(group_id: str, member_id: str) -> RecordPair:
    return rec.encode(rec.ConsumerGroupTargetAssignmentMemberKey(group_id, member_id), None)


def _member_tombstones(group_id: str, member_id: str) -> list[RecordPair]:
    return [
        rec.encode(rec.ConsumerGroupCurrentMemberAssignmentKey(group_id, member_id), None),
        rec.encode(rec.ConsumerGroupTargetAssignmentMemberKey(group_id, member_id), None),
        rec.encode(rec.ConsumerGroupMemberMetadataKey(group_id, member_id), None),
    ]


def validate_heartbeat(request: HeartbeatRequest, assignors: tuple[str, ...]) -> None:
    """Kafka's checks of a ConsumerGroupHeartbeat's fields."""
    check_heartbeat_ids(request.group_id, request.instance_id, request.rack_id)
    if request.api_version >= 1 and not request.member_id:
        raise InvalidRequestError("MemberId can't be empty.")
    epoch = request.member_epoch
    if epoch == 0:
        if request.rebalance_timeout_ms == -1:
            raise InvalidRequestError("RebalanceTimeoutMs must be provided in first request.")
        if request.owned is None or request.owned:
            raise InvalidRequestError("TopicPartitions must be empty when (re-)joining.")
        if request.subscribed_topic_names is None and request.subscribed_topic_regex is None:
            raise InvalidRequestError("Either SubscribedTopicNames or SubscribedTopicRegex "
                                      "must be non-null when (re-)joining.")
    elif epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
        if request.instance_id is None:
            raise InvalidRequestError("InstanceId can't be null.")
    elif epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH:
        raise InvalidRequestError("MemberEpoch is invalid.")
    if epoch != 0 and not request.member_id:
        raise InvalidRequestError("MemberId can't be empty.")
    if request.subscribed_topic_regex:
        check_regex(request.subscribed_topic_regex, "SubscribedTopicRegex")
    if request.server_assignor is not None and request.server_assignor not in assignors:
        raise UnsupportedAssignorError(
            f"ServerAssignor {request.server_assignor} is not supported. Supported "
            f"assignors: {', '.join(assignors)}.")


def metadata_hash(names: Iterable[str], image: MetadataImage) -> int:
    """A hash of the subscribed topics' ids and partition counts: a change of it is a
    change of what there is to assign (Kafka 4.1's group metadata hash, our own digest)."""
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(names):
        topic = image.topics.get(name)
        if topic is not None:
            digest.update(f"{name}\0{topic.topic_id}\0{len(topic.partitions)}\n".encode())
    (value,) = struct.unpack(">q", digest.digest())
    return int(value)


def resolve_regex(pattern: str, image: MetadataImage) -> frozenset[str]:
    """Topics whose whole name matches, internal ones included as in Kafka (RE2, as
    Kafka's RE2/J: linear in the names, whatever the pattern)."""
    matches = full_matcher(pattern, "SubscribedTopicRegex")
    return frozenset(name for name in image.topics if matches(name))


def _owns_any(owned: tuple[tuple[uuid.UUID, tuple[int, ...]], ...] | None,
              partitions: Mapping[uuid.UUID, frozenset[int]]) -> bool:
    if owned is None:
        return True
    return any(p in partitions.get(topic, ()) for topic, ps in owned for p in ps)


def _is_subset(owned: tuple[tuple[uuid.UUID, tuple[int, ...]], ...] | None,
               assigned: Mapping[uuid.UUID, frozenset[int]]) -> bool:
    if owned is None:
        return False
    return all(p in assigned.get(topic, ()) for topic, ps in owned for p in ps)


def reconcile(member: ConsumerGroupMember, target_epoch: int, target: Assignment,
              subscribed: frozenset[uuid.UUID], group: ConsumerGroup,
              owned: tuple[tuple[uuid.UUID, tuple[int, ...]], ...] | None
              ) -> ConsumerGroupMember:
    """Kafka's CurrentAssignmentBuilder: the member's next step towards its target."""
    if member.state is MemberState.STABLE:
        off_subscription = any(t not in subscribed for t in member.assigned)
        if member.member_epoch == target_epoch and not off_subscription:
            return member
        return _next_assignment(member, member.member_epoch, target_epoch, target, subscribed,
                                group, owned)
    if member.state is MemberState.UNREVOKED_PARTITIONS:
        if _owns_any(owned, member.pending_revocation):
            return member
        return _next_assignment(member, member.member_epoch, target_epoch, target, subscribed,
                                group, owned)
    if member.state is MemberState.UNRELEASED_PARTITIONS:
        return _next_assignment(member, member.member_epoch, target_epoch, target, subscribed,
                                group, owned)
    if owned is None or owned:
        raise FencedMemberEpochError("member in an unknown state must rejoin without partitions")
    return _next_assignment(member, target_epoch, target_epoch, target, subscribed, group, owned)


def _next_assignment(member: ConsumerGroupMember, epoch: int, target_epoch: int,
                     target: Assignment, subscribed: frozenset[uuid.UUID],
                     group: ConsumerGroup,
                     owned: tuple[tuple[uuid.UUID, tuple[int, ...]], ...] | None
                     ) -> ConsumerGroupMember:
    assigned: dict[uuid.UUID, frozenset[int]] = {}
    revoking: dict[uuid.UUID, frozenset[int]] = {}
    to_assign: dict[uuid.UUID, frozenset[int]] = {}
    unreleased = False
    for topic in set(target) | set(member.assigned):
        wanted = target.get(topic, frozenset()) if topic in subscribed else frozenset()
        current = member.assigned.get(topic, frozenset())
        keep = current & wanted
        revoke = current - keep
        pending = wanted - keep
        mine = member.pending_revocation.get(topic, frozenset())
        blocked = {p for p in pending
                   if group.current_partition_epoch(topic, p) != -1 and p not in mine}
        if blocked:
            unreleased = True
            pending -= blocked
        if keep:
            assigned[topic] = keep
        if revoke:
            revoking[topic] = revoke
        if pending:
            to_assign[topic] = frozenset(pending)
    # A partition keeps the epoch it was assigned at while the member holds it; one
    # newly given gets the target epoch (Kafka 4.4's assignment epochs).
    epochs = {tp: e for tp, e in member.held_epochs().items()
              if tp[1] in assigned.get(tp[0], ()) or tp[1] in revoking.get(tp[0], ())}
    if revoking and _owns_any(owned, revoking):
        # Revoke first: the member keeps its epoch until it has let go of these.
        return member.with_epoch(epoch, state=MemberState.UNREVOKED_PARTITIONS,
                                 assigned=assigned, pending_revocation=revoking,
                                 assignment_epochs=epochs)
    for tp in [tp for tp in epochs if tp[1] in revoking.get(tp[0], ())]:
        del epochs[tp]
    for topic, partitions in to_assign.items():
        assigned[topic] = assigned.get(topic, frozenset()) | partitions
        for p in partitions:
            epochs[(topic, p)] = target_epoch
    state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
    return member.with_epoch(target_epoch, state=state, assigned=assigned,
                             pending_revocation={}, assignment_epochs=epochs)


def partitions_at(partitions: Mapping[uuid.UUID, frozenset[int]],
                  epoch: int) -> dict[tuple[uuid.UUID, int], int]:
    """Every one of `partitions` with `epoch` as its assignment epoch."""
    return {(topic, p): epoch for topic, ps in partitions.items() for p in ps}


def topic_ids(names: Iterable[str], image: MetadataImage) -> frozenset[uuid.UUID]:
    return frozenset(image.topics[n].topic_id for n in names if n in image.topics)


def assignment_response(assigned: Mapping[uuid.UUID, frozenset[int]]) -> dict[str, Any]:
    return {"topic_partitions": [{"topic_id": t, "partitions": sorted(ps)}
                                 for t, ps in sorted(assigned.items(), key=lambda i: str(i[0]))]}

