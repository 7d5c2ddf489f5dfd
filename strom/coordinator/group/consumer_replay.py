"""Replay of the consumer group (KIP-848) records: the only code that changes a
ConsumerGroup (CONVENTIONS 5). The heartbeat, the classic members and the
migrations compute these records; the runtime replays them after appending
them, and again when it loads the partition.

A member's current assignment also decides who holds each partition
(`ConsumerGroup.partition_epochs`): replaying it releases the partitions the
member held at its old epoch and takes its new ones at the new epoch. A
tombstone of the group's metadata deletes the group and cancels its members'
timers.
"""

from __future__ import annotations

from dataclasses import replace

from strom.coordinator.group import records as rec
from strom.coordinator.group.consumer import (
    ConsumerGroup,
    ConsumerGroupMember,
    MemberState,
    ResolvedRegex,
)
from strom.coordinator.group.consumer_timers import ConsumerGroupTimers
from strom.coordinator.group.context import ShardContext


def replay(ctx: ShardContext, timers: ConsumerGroupTimers, key: rec.Key,
           value: rec.Value | None) -> None:
    group_id = getattr(key, "group_id", None)
    assert isinstance(group_id, str)
    if value is None:
        _replay_tombstone(ctx, timers, key, group_id)
        return
    group = _group_for_replay(ctx, group_id)
    if isinstance(value, rec.ConsumerGroupMetadataValue):
        group.group_epoch = value.epoch
        group.metadata_hash = value.metadata_hash
    elif isinstance(value, rec.ConsumerGroupMemberMetadataValue):
        assert isinstance(key, rec.ConsumerGroupMemberMetadataKey)
        old = group.members.get(key.member_id) or ConsumerGroupMember(key.member_id)
        if old.instance_id is not None:
            group.static_members.pop(old.instance_id, None)
        member = replace(
            old, instance_id=value.instance_id, rack_id=value.rack_id,
            client_id=value.client_id, client_host=value.client_host,
            subscribed_topic_names=tuple(value.subscribed_topic_names),
            subscribed_topic_regex=value.subscribed_topic_regex or None,
            rebalance_timeout_ms=value.rebalance_timeout_ms,
            server_assignor=value.server_assignor,
            classic=value.classic_member_metadata)
        group.members[key.member_id] = member
        if member.instance_id is not None:
            group.static_members[member.instance_id] = key.member_id
    elif isinstance(value, rec.ConsumerGroupTargetAssignmentMetadataValue):
        group.assignment_epoch = value.assignment_epoch
    elif isinstance(value, rec.ConsumerGroupTargetAssignmentMemberValue):
        assert isinstance(key, rec.ConsumerGroupTargetAssignmentMemberKey)
        group.target[key.member_id] = dict(value.partitions)
    elif isinstance(value, rec.ConsumerGroupCurrentMemberAssignmentValue):
        assert isinstance(key, rec.ConsumerGroupCurrentMemberAssignmentKey)
        old = group.members.get(key.member_id) or ConsumerGroupMember(key.member_id)
        _release(group, old)
        member = replace(
            old, member_epoch=value.member_epoch,
            previous_member_epoch=value.previous_member_epoch,
            state=(MemberState(value.state) if value.state in MemberState._value2member_map_
                   else MemberState.UNKNOWN),
            assigned=dict(value.assigned_partitions),
            pending_revocation=dict(value.partitions_pending_revocation),
            assignment_epochs=dict(value.assignment_epochs))
        group.members[key.member_id] = member
        _own(group, member)
    elif isinstance(value, rec.ConsumerGroupRegularExpressionValue):
        assert isinstance(key, rec.ConsumerGroupRegularExpressionKey)
        group.regexes[key.regular_expression] = ResolvedRegex(
            frozenset(value.topics), value.version, value.timestamp)


def _group_for_replay(ctx: ShardContext, group_id: str) -> ConsumerGroup:
    group = ctx.groups.get(group_id)
    if not isinstance(group, ConsumerGroup):
        group = ConsumerGroup(group_id)
        ctx.groups[group_id] = group
    return group


def _replay_tombstone(ctx: ShardContext, timers: ConsumerGroupTimers, key: rec.Key,
                      group_id: str) -> None:
    group = ctx.groups.get(group_id)
    if not isinstance(group, ConsumerGroup):
        return
    if isinstance(key, rec.ConsumerGroupMetadataKey):
        del ctx.groups[group_id]
        for member_id in group.members:
            timers.cancel_timers(group_id, member_id)
    elif isinstance(key, rec.ConsumerGroupMemberMetadataKey):
        member = group.members.pop(key.member_id, None)
        if member is not None:
            _release(group, member)
            if member.instance_id is not None \
                    and group.static_members.get(member.instance_id) == key.member_id:
                del group.static_members[member.instance_id]
    elif isinstance(key, rec.ConsumerGroupTargetAssignmentMetadataKey):
        group.assignment_epoch = 0
    elif isinstance(key, rec.ConsumerGroupTargetAssignmentMemberKey):
        group.target.pop(key.member_id, None)
    elif isinstance(key, rec.ConsumerGroupCurrentMemberAssignmentKey):
        member = group.members.get(key.member_id)
        if member is not None:
            _release(group, member)
            group.members[key.member_id] = replace(
                member, member_epoch=0, previous_member_epoch=0,
                state=MemberState.STABLE, assigned={}, pending_revocation={},
                assignment_epochs={})
    elif isinstance(key, rec.ConsumerGroupRegularExpressionKey):
        group.regexes.pop(key.regular_expression, None)


def _release(group: ConsumerGroup, member: ConsumerGroupMember) -> None:
    for partitions in (member.assigned, member.pending_revocation):
        for topic, ps in partitions.items():
            for p in ps:
                if group.partition_epochs.get((topic, p)) == member.member_epoch:
                    del group.partition_epochs[(topic, p)]


def _own(group: ConsumerGroup, member: ConsumerGroupMember) -> None:
    for partitions in (member.assigned, member.pending_revocation):
        for topic, ps in partitions.items():
            for p in ps:
                group.partition_epochs[(topic, p)] = member.member_epoch
