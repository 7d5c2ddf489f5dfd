"""Online migration between classic and consumer (KIP-848) groups.

`group.consumer.migration.policy` (bidirectional, the default; upgrade;
downgrade; disabled) says which way a non-empty group may change protocol
while its members keep consuming:

- Upgrade: the first ConsumerGroupHeartbeat to a classic group of the
  consumer protocol type turns it into a consumer group. Its members stay, as
  classic members of the consumer group (they keep speaking JoinGroup,
  SyncGroup, Heartbeat and LeaveGroup, see `classic_members.py`): each keeps
  its subscription and current assignment, decoded from its JoinGroup
  metadata and SyncGroup assignment, with the generation as its epoch; the
  group epoch and target assignment epoch are the generation.
- Downgrade: when the last member of the consumer protocol leaves (or is
  fenced) and classic members remain, the group becomes a classic group again
  with generation = group epoch, and a rebalance makes the members rejoin.

Both are written as Kafka writes them: a tombstone of the old group's records
and the records of the new group, in one batch, so a restart replays to the
same group. This module computes those records; it changes nothing.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from kio.schema.consumer_protocol_assignment.v0.data import (
    ConsumerProtocolAssignment as AssignmentV0,
)
from kio.schema.consumer_protocol_assignment.v0.data import TopicPartition as AssignedV0
from kio.schema.consumer_protocol_assignment.v1.data import (
    ConsumerProtocolAssignment as AssignmentV1,
)
from kio.schema.consumer_protocol_assignment.v1.data import TopicPartition as AssignedV1
from kio.schema.consumer_protocol_assignment.v2.data import (
    ConsumerProtocolAssignment as AssignmentV2,
)
from kio.schema.consumer_protocol_assignment.v2.data import TopicPartition as AssignedV2
from kio.schema.consumer_protocol_assignment.v3.data import (
    ConsumerProtocolAssignment as AssignmentV3,
)
from kio.schema.consumer_protocol_assignment.v3.data import TopicPartition as AssignedV3
from kio.schema.consumer_protocol_subscription.v0.data import (
    ConsumerProtocolSubscription as SubscriptionV0,
)
from kio.schema.consumer_protocol_subscription.v1.data import (
    ConsumerProtocolSubscription as SubscriptionV1,
)
from kio.schema.consumer_protocol_subscription.v2.data import (
    ConsumerProtocolSubscription as SubscriptionV2,
)
from kio.schema.consumer_protocol_subscription.v3.data import (
    ConsumerProtocolSubscription as SubscriptionV3,
)
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32

from strom.cluster.image import MetadataImage
from strom.coordinator.group import records as rec
from strom.coordinator.group.classic import (
    CONSUMER_PROTOCOL_TYPE,
    ClassicGroup,
    join_response,
    sync_response,
)
from strom.coordinator.group.consumer import (
    ConsumerGroup,
    ConsumerGroupMember,
    MemberState,
    metadata_hash,
    partitions_at,
)
from strom.coordinator.group.context import GroupConfig
from strom.coordinator.group.errors import GroupIdNotFoundError
from strom.coordinator.group.records import RecordPair
from strom.errors import ErrorCode
from strom.protocol.request_check import check_entity

log = logging.getLogger(__name__)

TopicPartitions = Mapping[uuid.UUID, frozenset[int]]

_SUBSCRIPTIONS: tuple[type, ...] = (SubscriptionV0, SubscriptionV1, SubscriptionV2,
                                    SubscriptionV3)
_ASSIGNMENTS: tuple[tuple[type, type], ...] = (
    (AssignmentV0, AssignedV0), (AssignmentV1, AssignedV1), (AssignmentV2, AssignedV2),
    (AssignmentV3, AssignedV3))


class MalformedProtocolError(ValueError):
    """Embedded consumer protocol bytes that do not parse."""


# -- the embedded consumer protocol ---------------------------------------------------------

def _version(data: bytes) -> int:
    if len(data) < 2:
        raise MalformedProtocolError("embedded consumer protocol shorter than its version")
    return int.from_bytes(data[:2], "big", signed=True)


def parse_subscription(metadata: bytes) -> Any:
    """A ConsumerProtocolSubscription; a version newer than we know is read as the
    newest we know (later versions only add fields at the end, as Kafka's client
    reads them)."""
    version = max(0, min(_version(metadata), len(_SUBSCRIPTIONS) - 1))
    try:
        subscription: Any
        # The bytes are the client's: bound their counts before kio allocates.
        check_entity(_SUBSCRIPTIONS[version], memoryview(metadata)[2:], 0)
        subscription, _ = entity_reader(_SUBSCRIPTIONS[version])(memoryview(metadata)[2:], 0)
    except Exception as exc:
        raise MalformedProtocolError(f"malformed subscription: {exc}") from None
    return subscription


def subscription_version(metadata: bytes) -> int:
    try:
        return max(0, min(_version(metadata), len(_ASSIGNMENTS) - 1))
    except MalformedProtocolError:
        return 0


def parse_assignment(data: bytes) -> tuple[dict[str, frozenset[int]], bytes | None]:
    """(topic name -> partitions, user data) of a ConsumerProtocolAssignment; an empty
    assignment (a member that joined and never synced) is no partitions."""
    if not data:
        return {}, None
    version = max(0, min(_version(data), len(_ASSIGNMENTS) - 1))
    try:
        assignment: Any
        check_entity(_ASSIGNMENTS[version][0], memoryview(data)[2:], 0)
        assignment, _ = entity_reader(_ASSIGNMENTS[version][0])(memoryview(data)[2:], 0)
    except Exception as exc:
        raise MalformedProtocolError(f"malformed assignment: {exc}") from None
    out: dict[str, frozenset[int]] = {}
    for tp in assignment.assigned_partitions:
        out[tp.topic] = out.get(tp.topic, frozenset()) | frozenset(tp.partitions)
    return out, assignment.user_data


def encode_assignment(assigned: TopicPartitions, image: MetadataImage, version: int) -> bytes:
    """The ConsumerProtocolAssignment a classic member gets in SyncGroup."""
    version = max(0, min(version, len(_ASSIGNMENTS) - 1))
    cls, topic_cls = _ASSIGNMENTS[version]
    names = {t.topic_id: t.name for t in image.topics.values()}
    partitions = tuple(
        topic_cls(topic=names[topic_id], partitions=tuple(i32(p) for p in sorted(ps)))
        for topic_id, ps in sorted(assigned.items(), key=lambda i: names.get(i[0], ""))
        if topic_id in names and ps)
    out = io.BytesIO()
    out.write(version.to_bytes(2, "big"))
    entity_writer(cls)(out, cls(assigned_partitions=partitions, user_data=None))
    return out.getvalue()


def to_topic_ids(partitions: Iterable[tuple[str, Iterable[int]]], image: MetadataImage
                 ) -> dict[uuid.UUID, frozenset[int]]:
    """Topic names to ids; partitions of topics that no longer exist are dropped."""
    out: dict[uuid.UUID, frozenset[int]] = {}
    for name, ps in partitions:
        topic = image.topics.get(name)
        if topic is not None:
            out[topic.topic_id] = out.get(topic.topic_id, frozenset()) | frozenset(ps)
    return out


# -- upgrade ------------------------------------------------------------------------------

def validate_upgrade(group: ClassicGroup, config: GroupConfig) -> None:
    """Kafka's checks before a ConsumerGroupHeartbeat converts a classic group."""
    gid = group.group_id
    if not config.upgrade_enabled:
        raise GroupIdNotFoundError(f"Cannot upgrade classic group {gid} to consumer group "
                                   "because online upgrade is disabled.")
    if not group.uses_consumer_protocol:
        raise GroupIdNotFoundError(
            f"Cannot upgrade classic group {gid} to consumer group because the group does "
            "not use the consumer embedded protocol.")
    if len(group.members) > config.consumer_max_size:
        raise GroupIdNotFoundError(
            f"Cannot upgrade classic group {gid} to consumer group because the group size "
            "exceeds the consumer group maximum size.")


def upgrade(group: ClassicGroup, config: GroupConfig, image: MetadataImage,
            records: list[RecordPair]) -> ConsumerGroup:
    """Validate, answer the classic group's parked requests (its members must rejoin),
    append the conversion records to `records` and return the consumer group they
    replay to (not yet registered: the caller's records build on it)."""
    validate_upgrade(group, config)
    gid = group.group_id
    converted = ConsumerGroup(gid, group_epoch=group.generation_id,
                              assignment_epoch=group.generation_id)
    for member in group.members.values():
        metadata = member.metadata(group.protocol_name) or (
            member.protocols[0][1] if member.protocols else b"")
        try:
            subscription = parse_subscription(metadata)
            assigned_names, user_data = parse_assignment(member.assignment)
        except MalformedProtocolError:
            raise GroupIdNotFoundError(
                f"Cannot upgrade classic group {gid} to consumer group because the embedded "
                "consumer protocol is malformed.") from None
        if user_data:
            raise GroupIdNotFoundError(
                f"Cannot upgrade classic group {gid} to consumer group because an "
                "unsupported custom assignor is in use. Please refer to the documentation or "
                "switch to a default assignor before re-attempting the upgrade.")
        assigned = to_topic_ids(assigned_names.items(), image)
        converted.members[member.member_id] = ConsumerGroupMember(
            member.member_id, instance_id=member.group_instance_id,
            rack_id=getattr(subscription, "rack_id", None), client_id=member.client_id,
            client_host=member.client_host,
            subscribed_topic_names=tuple(sorted(set(subscription.topics))),
            rebalance_timeout_ms=member.rebalance_timeout_ms,
            member_epoch=group.generation_id, previous_member_epoch=group.generation_id,
            state=MemberState.STABLE, assigned=assigned,
            assignment_epochs=partitions_at(assigned, group.generation_id),
            classic=rec.ClassicMemberMetadata(member.session_timeout_ms, member.protocols))
        if member.group_instance_id is not None:
            converted.static_members[member.group_instance_id] = member.member_id
        converted.target[member.member_id] = dict(assigned)
        for topic_id, ps in assigned.items():
            for p in ps:
                converted.partition_epochs[(topic_id, p)] = group.generation_id
    converted.metadata_hash = metadata_hash(converted.subscribed_topic_names(), image)

    # Members parked in the classic rebalance learn that another one has begun.
    for member in group.members.values():
        group.complete_join(member, join_response(member.member_id,
                                                  ErrorCode.rebalance_in_progress))
        group.complete_sync(member, sync_response(ErrorCode.rebalance_in_progress))

    records.append(rec.encode(rec.GroupMetadataKey(gid), None))
    records.extend(consumer_group_records(converted))
    log.info("converting classic group %s (generation %d, %d members) to a consumer group",
             gid, group.generation_id, len(group.members))
    return converted


def consumer_group_records(group: ConsumerGroup) -> list[RecordPair]:
    """Every record of a consumer group, in Kafka's order of a conversion."""
    gid = group.group_id
    out = [rec.encode(rec.ConsumerGroupMemberMetadataKey(gid, m.member_id), m.metadata_value())
           for m in group.members.values()]
    out.append(rec.encode(rec.ConsumerGroupMetadataKey(gid),
                          rec.ConsumerGroupMetadataValue(group.group_epoch,
                                                         group.metadata_hash)))
    out.extend(rec.encode(rec.ConsumerGroupTargetAssignmentMemberKey(gid, m.member_id),
                          rec.ConsumerGroupTargetAssignmentMemberValue(
                              group.target.get(m.member_id, {})))
               for m in group.members.values())
    out.append(rec.encode(rec.ConsumerGroupTargetAssignmentMetadataKey(gid),
                          rec.ConsumerGroupTargetAssignmentMetadataValue(group.assignment_epoch)))
    out.extend(rec.encode(rec.ConsumerGroupCurrentMemberAssignmentKey(gid, m.member_id),
                          m.assignment_value())
               for m in group.members.values())
    return out


# -- downgrade -----------------------------------------------------------------------------

def can_downgrade(group: ConsumerGroup, remaining: list[ConsumerGroupMember],
                  config: GroupConfig) -> bool:
    """Whether removing members leaves a group to turn back into a classic group: some
    members remain, all of the classic protocol, and the policy and size allow it."""
    if not remaining or any(m.classic is None for m in remaining):
        return False
    if not config.downgrade_enabled:
        log.info("cannot downgrade consumer group %s to a classic group: online downgrade "
                 "is disabled", group.group_id)
        return False
    if len(remaining) > config.max_size:
        log.info("cannot downgrade consumer group %s to a classic group: %d members is over "
                 "group.max.size", group.group_id, len(remaining))
        return False
    return True


def downgrade(group: ConsumerGroup, remaining: list[ConsumerGroupMember],
              image: MetadataImage, now_ms: int) -> list[RecordPair]:
    """Tombstones of the consumer group, then the GroupMetadata of the classic group
    its classic members make (generation = group epoch; each member's assignment is
    what it owns now)."""
    protocol = _select_protocol(remaining)
    members = []
    for m in remaining:
        assert m.classic is not None
        metadata = dict(m.classic.supported_protocols).get(protocol, b"")
        owned = dict(m.assigned)
        for t, ps in m.pending_revocation.items():
            owned[t] = owned.get(t, frozenset()) | ps
        members.append(rec.MemberMetadata(
            m.member_id, m.instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
            m.classic.session_timeout_ms, metadata,
            encode_assignment(owned, image, subscription_version(metadata))))
    value = rec.GroupMetadataValue(CONSUMER_PROTOCOL_TYPE, group.group_epoch, protocol,
                                   remaining[0].member_id, now_ms, tuple(members))
    log.info("converting consumer group %s (epoch %d, %d classic members) to a classic group",
             group.group_id, group.group_epoch, len(remaining))
    return [*group.tombstones(), rec.encode(rec.GroupMetadataKey(group.group_id), value)]


def _select_protocol(members: list[ConsumerGroupMember]) -> str:
    """The classic vote: among the protocols all support, the one most prefer."""
    supported = [[name for name, _ in m.classic.supported_protocols]
                 for m in members if m.classic is not None]
    common = set(supported[0]).intersection(*supported[1:]) if supported else set()
    votes: dict[str, int] = {}
    firsts = []
    for names in supported:
        choice = next((n for n in names if n in common), names[0] if names else "")
        firsts.append(choice)
        votes[choice] = votes.get(choice, 0) + 1
    best = max(votes.values(), default=0)
    return next((c for c in firsts if votes[c] == best), "")
