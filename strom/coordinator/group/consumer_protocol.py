"""ConsumerGroupHeartbeat and ConsumerGroupDescribe: the KIP-848 protocol.

Each heartbeat runs Kafka's three steps on a snapshot of the group, producing
records only: (1) create or update the member, bumping the group epoch when
subscriptions or the subscribed topics' metadata changed; (2) when the group
epoch is ahead of the target assignment's, run the server-side assignor and
record the new target; (3) move the member one step towards its target
(`consumer.reconcile`). The records are replayed by the runtime; replay
(`consumer_replay.py`) is what changes the group.

Leaving and fencing are here too: a fenced member's records are removed and the
group epoch moves, or the group goes back to being a classic group
(`migration.py`). The members' session and rebalance timers, which fence them,
are `consumer_timers.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from strom.cluster.image import MetadataImage
from strom.coordinator.group import consumer_replay, migration
from strom.coordinator.group import records as rec
from strom.coordinator.group.assignors import ASSIGNORS, Assignment, MemberSpec
from strom.coordinator.group.classic import ClassicGroup
from strom.coordinator.group.consumer import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    ConsumerGroup,
    ConsumerGroupMember,
    MemberState,
    ResolvedRegex,
    _is_subset,
    _member_tombstones,
    assignment_response,
    metadata_hash,
    partitions_at,
    reconcile,
    resolve_regex,
    topic_ids,
    validate_heartbeat,
)
from strom.coordinator.group.consumer_timers import ConsumerGroupTimers
from strom.coordinator.group.context import ShardContext
from strom.coordinator.group.errors import (
    FencedInstanceIdError,
    FencedMemberEpochError,
    GroupIdNotFoundError,
    GroupMaxSizeReachedError,
    UnknownMemberIdError,
    UnreleasedInstanceIdError,
)
from strom.coordinator.group.records import RecordPair
from strom.coordinator.group.requests import HeartbeatRequest
from strom.coordinator.runtime import Result
from strom.errors import ErrorCode

#: The version of a regex recorded but not resolved yet (never an image offset).
UNRESOLVED = -1


def _member_topics(member: ConsumerGroupMember,
                   regexes: dict[str, ResolvedRegex]) -> set[str]:
    names = set(member.subscribed_topic_names)
    if member.subscribed_topic_regex:
        resolved = regexes.get(member.subscribed_topic_regex)
        if resolved is not None:
            names.update(resolved.topics)
    return names


class ConsumerGroupManager:
    def __init__(self, ctx: ShardContext) -> None:
        self.ctx = ctx
        # Set by the shard: what follows a downgrade once the classic group is replayed.
        self.on_downgraded: Callable[[str], Result[Any] | None] | None = None
        self.timers = ConsumerGroupTimers(ctx, self.find, self.fence)

    def find(self, group_id: str) -> ConsumerGroup | None:
        group = self.ctx.groups.get(group_id)
        return group if isinstance(group, ConsumerGroup) else None

    # -- records and loading ------------------------------------------------------------

    def replay(self, key: rec.Key, value: rec.Value | None) -> None:
        consumer_replay.replay(self.ctx, self.timers, key, value)

    def on_loaded(self, group: ConsumerGroup) -> None:
        self.timers.on_loaded(group)

    # -- heartbeat --------------------------------------------------------------------

    def validate(self, request: HeartbeatRequest) -> None:
        validate_heartbeat(request, self.ctx.config.consumer_assignors)

    def heartbeat(self, request: HeartbeatRequest) -> Result[dict[str, Any]]:
        self.validate(request)
        if request.member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
            return self._leave(request)
        ctx = self.ctx
        config = ctx.config
        group_id = request.group_id
        records: list[RecordPair] = []

        existing = ctx.groups.get(group_id)
        if isinstance(existing, ConsumerGroup):
            group = existing
        elif existing is not None and not isinstance(existing, ClassicGroup):
            # A share (or other modern) group's id: no migration between those.
            raise GroupIdNotFoundError(f"Group {group_id} is not a consumer group.")
        else:
            if request.member_epoch != 0:
                raise GroupIdNotFoundError(f"Consumer group {group_id} not found.")
            if isinstance(existing, ClassicGroup) and (existing.members
                                                       or not existing.is_empty):
                # KIP-848 online upgrade: the classic members stay, as classic members.
                group = migration.upgrade(existing, config, ctx.image(), records)
                for member in group.members.values():
                    self.timers.schedule_session_timeout(group_id, member)
            else:
                if isinstance(existing, ClassicGroup):
                    # An empty classic group (offsets only) becomes a consumer group.
                    records.append(rec.encode(rec.GroupMetadataKey(group_id), None))
                group = ConsumerGroup(group_id)

        member_id = request.member_id or str(uuid.uuid4())
        if len(group.members) >= config.consumer_max_size and member_id not in group.members:
            raise GroupMaxSizeReachedError(
                f"The consumer group has reached its maximum capacity of "
                f"{config.consumer_max_size} members.")

        member, replaced = self._member(group, request, member_id, records)
        regex = member.subscribed_topic_regex
        if request.subscribed_topic_regex is not None:
            regex = request.subscribed_topic_regex or None
        updated = replace(
            member,
            instance_id=request.instance_id if request.instance_id is not None
            else member.instance_id,
            rack_id=request.rack_id if request.rack_id is not None else member.rack_id,
            rebalance_timeout_ms=request.rebalance_timeout_ms
            if request.rebalance_timeout_ms != -1 else member.rebalance_timeout_ms,
            server_assignor=request.server_assignor if request.server_assignor is not None
            else member.server_assignor,
            subscribed_topic_names=tuple(sorted(request.subscribed_topic_names))
            if request.subscribed_topic_names is not None else member.subscribed_topic_names,
            subscribed_topic_regex=regex,
            client_id=request.client_id, client_host=request.client_host, classic=None)
        reconciled = self.update_member(group, member, updated, replaced, request.owned,
                                        records, request.describable)
        self.timers.schedule_session_timeout(group_id, reconciled)

        response: dict[str, Any] = {
            "throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
            "member_id": member_id, "member_epoch": reconciled.member_epoch,
            "heartbeat_interval": config.heartbeat_interval_ms(
                ctx.image().group_configs.get(group_id, {})), "assignment": None,
        }
        full = (request.rebalance_timeout_ms != -1 and request.owned is not None
                and (request.subscribed_topic_names is not None
                     or request.subscribed_topic_regex is not None))
        if (request.member_epoch == 0 or full
                or _normalized(reconciled.assigned) != _normalized(member.assigned)):
            response["assignment"] = assignment_response(reconciled.assigned)
        return Result(response, records)

    def update_member(self, group: ConsumerGroup, member: ConsumerGroupMember,
                      updated: ConsumerGroupMember, replaced: ConsumerGroupMember | None,
                      owned: tuple[tuple[uuid.UUID, tuple[int, ...]], ...] | None,
                      records: list[RecordPair],
                      describable: Callable[[frozenset[str]], frozenset[str]] | None = None,
                      ) -> ConsumerGroupMember:
        """Kafka's three steps for a member that (re)joined or heartbeats, over either
        protocol: (1) record the member, bumping the group epoch when subscriptions or
        the subscribed topics' metadata changed; (2) compute the target assignment of a
        new epoch; (3) move the member one step towards its target. Records only."""
        ctx = self.ctx
        image = ctx.image()
        now = ctx.now_ms()
        group_id = group.group_id
        member_id = updated.member_id
        is_new = member_id not in group.members
        bump = group.group_epoch == 0
        if is_new or updated.metadata_value() != member.metadata_value():
            records.append(rec.encode(
                rec.ConsumerGroupMemberMetadataKey(group_id, member_id),
                updated.metadata_value()))
        if (set(updated.subscribed_topic_names) != set(member.subscribed_topic_names)
                or updated.server_assignor != member.server_assignor):
            bump = True
        regexes = dict(group.regexes)
        others = [m for m in group.members.values()
                  if m.member_id not in (member_id, replaced.member_id if replaced else None)]
        if updated.subscribed_topic_regex != member.subscribed_topic_regex:
            bump = True
            old = member.subscribed_topic_regex
            if old and old in regexes and not any(m.subscribed_topic_regex == old
                                                  for m in others):
                records.append(rec.encode(rec.ConsumerGroupRegularExpressionKey(group_id, old),
                                          None))
                del regexes[old]
        in_use = {m.subscribed_topic_regex for m in [*others, updated]
                  if m.subscribed_topic_regex}
        for pattern in sorted(in_use):
            resolved = regexes.get(pattern)
            if resolved is not None and resolved.version == image.offset:
                continue
            if resolved is None:
                # A pattern new to the group is resolved after the heartbeat
                # that brought it, as Kafka resolves regexes asynchronously: this
                # epoch's target has the literal topics only; the next
                # heartbeat resolves it (UNRESOLVED never matches an image
                # offset) and bumps the epoch. librdkafka's 0045 test expects
                # that order. (validate_heartbeat has checked the pattern.)
                regexes[pattern] = ResolvedRegex(frozenset(), UNRESOLVED, now)
                records.append(rec.encode(
                    rec.ConsumerGroupRegularExpressionKey(group_id, pattern),
                    rec.ConsumerGroupRegularExpressionValue((), UNRESOLVED, now)))
                continue
            topics = resolve_regex(pattern, image)
            if describable is not None:
                # Resolved with the ACLs of the member refreshing it (Kafka 4.x).
                topics = describable(topics)
            if resolved is None or resolved.topics != topics:
                bump = True
            regexes[pattern] = ResolvedRegex(topics, image.offset, now)
            records.append(rec.encode(
                rec.ConsumerGroupRegularExpressionKey(group_id, pattern),
                rec.ConsumerGroupRegularExpressionValue(tuple(sorted(topics)), image.offset,
                                                        now)))
        members_after = {m.member_id: m for m in others}
        members_after[member_id] = updated
        subscribed = group.subscribed_topic_names(members_after.values(), regexes)
        new_hash = metadata_hash(subscribed, image)
        if new_hash != group.metadata_hash:
            bump = True
        group_epoch = group.group_epoch
        if bump:
            group_epoch += 1
            records.append(rec.encode(rec.ConsumerGroupMetadataKey(group_id),
                                      rec.ConsumerGroupMetadataValue(group_epoch, new_hash)))

        # 2. The target assignment of this epoch.
        target = dict(group.target)
        if replaced is not None:
            target[member_id] = target.pop(replaced.member_id, {})
        assignment_epoch = group.assignment_epoch
        if group_epoch > assignment_epoch:
            new_target = self._compute_target(group, members_after, regexes, image, target)
            for mid, assignment in sorted(new_target.items()):
                if _normalized(assignment) != _normalized(target.get(mid, {})) or (
                        mid not in target):
                    records.append(rec.encode(
                        rec.ConsumerGroupTargetAssignmentMemberKey(group_id, mid),
                        rec.ConsumerGroupTargetAssignmentMemberValue(assignment)))
            records.append(rec.encode(
                rec.ConsumerGroupTargetAssignmentMetadataKey(group_id),
                rec.ConsumerGroupTargetAssignmentMetadataValue(group_epoch)))
            target = new_target
            assignment_epoch = group_epoch

        # 3. One step of the member towards its target.
        subscribed_ids = topic_ids(_member_topics(updated, regexes), image)
        reconciled = reconcile(updated, assignment_epoch, target.get(member_id, {}),
                               subscribed_ids, group, owned)
        if reconciled.assignment_value() != member.assignment_value() or is_new:
            records.append(rec.encode(
                rec.ConsumerGroupCurrentMemberAssignmentKey(group_id, member_id),
                reconciled.assignment_value()))
            if reconciled.state is MemberState.UNREVOKED_PARTITIONS:
                self.timers.schedule_rebalance_timeout(group_id, member_id,
                                                       reconciled.member_epoch,
                                                       reconciled.rebalance_timeout_ms)
            else:
                self.timers.cancel_rebalance_timeout(group_id, member_id)
        return reconciled

    def _member(self, group: ConsumerGroup, request: HeartbeatRequest, member_id: str,
                records: list[RecordPair]
                ) -> tuple[ConsumerGroupMember, ConsumerGroupMember | None]:
        """The member the heartbeat is from (new ones are created), and the static member
        it replaces, if any (its replacement records go to `records`)."""
        epoch = request.member_epoch
        instance = request.instance_id
        if instance is None:
            member = group.members.get(member_id)
            if member is None:
                if epoch != 0:
                    raise UnknownMemberIdError(
                        f"member {member_id} is not in group {group.group_id}")
                member = ConsumerGroupMember(member_id)
            _check_epoch(member, request)
            return member, None
        static_id = group.static_members.get(instance)
        static = group.members.get(static_id) if static_id is not None else None
        if epoch == 0:
            if static is None:
                return group.members.get(member_id) or ConsumerGroupMember(member_id), None
            if static.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                raise UnreleasedInstanceIdError(
                    f"Static member {static.member_id} with instance id {instance} is not "
                    "released yet.")
            # KIP-345 for KIP-848: the restarted instance takes over the old assignment.
            member = replace(static, member_id=member_id, member_epoch=0,
                             previous_member_epoch=0)
            gid = group.group_id
            records.extend(_member_tombstones(gid, static.member_id))
            records.append(rec.encode(rec.ConsumerGroupMemberMetadataKey(gid, member_id),
                                      member.metadata_value()))
            records.append(rec.encode(
                rec.ConsumerGroupTargetAssignmentMemberKey(gid, member_id),
                rec.ConsumerGroupTargetAssignmentMemberValue(
                    group.target.get(static.member_id, {}))))
            records.append(rec.encode(
                rec.ConsumerGroupCurrentMemberAssignmentKey(gid, member_id),
                member.assignment_value()))
            self.timers.cancel_timers(gid, static.member_id)
            return member, static
        if static is None:
            raise UnknownMemberIdError(f"Instance id {instance} is unknown.")
        if static.member_id != member_id:
            raise FencedInstanceIdError(
                f"Static member {member_id} with instance id {instance} was fenced by "
                f"member {static.member_id}.")
        _check_epoch(static, request)
        return static, None

    def _compute_target(self, group: ConsumerGroup, members: dict[str, ConsumerGroupMember],
                        regexes: dict[str, ResolvedRegex], image: MetadataImage,
                        previous: dict[str, Assignment]) -> dict[str, Assignment]:
        default = self.ctx.config.consumer_assignors[0]
        counts: dict[str, int] = {}
        for m in members.values():
            if m.server_assignor:
                counts[m.server_assignor] = counts.get(m.server_assignor, 0) + 1
        name = max(sorted(counts), key=lambda n: counts[n]) if counts else default
        specs = [MemberSpec(mid, topic_ids(_member_topics(m, regexes), image),
                            previous.get(mid, {})) for mid, m in members.items()]
        partition_counts = {image.topics[n].topic_id: len(image.topics[n].partitions)
                            for n in group.subscribed_topic_names(members.values(), regexes)
                            if n in image.topics}
        return ASSIGNORS.get(name, ASSIGNORS["uniform"])(specs, partition_counts)

    # -- leaving and fencing ---------------------------------------------------------------

    def _leave(self, request: HeartbeatRequest) -> Result[dict[str, Any]]:
        group = self.find(request.group_id)
        if group is None:
            raise GroupIdNotFoundError(f"Consumer group {request.group_id} not found.")
        response: dict[str, Any] = {
            "throttle_time": 0, "error_code": ErrorCode.none, "member_id": request.member_id,
            "member_epoch": request.member_epoch, "heartbeat_interval": 0, "assignment": None}
        if request.instance_id is None:
            member = group.members.get(request.member_id)
            if member is None:
                raise UnknownMemberIdError(
                    f"member {request.member_id} is not in group {group.group_id}")
            return self.fence(group, member, response)
        static_id = group.static_members.get(request.instance_id)
        member = group.members.get(static_id) if static_id is not None else None
        if member is None:
            raise UnknownMemberIdError(f"Instance id {request.instance_id} is unknown.")
        if member.member_id != request.member_id:
            raise FencedInstanceIdError(
                f"Static member {request.member_id} with instance id {request.instance_id} "
                f"was fenced by member {member.member_id}.")
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # Leaving for a restart: it keeps its partitions until its session times out,
            # their assignment epochs reset to 0 (Kafka 4.4), so that the instance
            # rejoining under a new member id may commit for them at any epoch.
            leaving = replace(member, member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH,
                              pending_revocation={},
                              assignment_epochs=partitions_at(member.assigned, 0))
            return Result(response, [rec.encode(
                rec.ConsumerGroupCurrentMemberAssignmentKey(group.group_id, member.member_id),
                leaving.assignment_value())])
        return self.fence(group, member, response)

    def fence(self, group: ConsumerGroup, member: ConsumerGroupMember,
              response: Any = None) -> Result[Any]:
        return self.fence_members(group, [member], response)

    def fence_members(self, group: ConsumerGroup, members: list[ConsumerGroupMember],
                      response: Any = None) -> Result[Any]:
        """Remove members; the group epoch moves so the others get their partitions. When
        only classic members remain, the group goes back to being a classic group
        (KIP-848 online downgrade) if the migration policy allows it."""
        gid = group.group_id
        gone = {m.member_id for m in members}
        for member in members:
            self.timers.cancel_timers(gid, member.member_id)
        remaining = [m for m in group.members.values() if m.member_id not in gone]
        if migration.can_downgrade(group, remaining, self.ctx.config):
            for member in remaining:
                self.timers.cancel_timers(gid, member.member_id)
            downgraded = self.on_downgraded

            def on_durable(exc: BaseException | None) -> Result[Any] | None:
                # The classic group is replayed; its members must rejoin.
                return downgraded(gid) if downgraded is not None else None

            return Result(response, migration.downgrade(group, remaining, self.ctx.image(),
                                                        self.ctx.now_ms()),
                          on_durable=on_durable)
        records: list[RecordPair] = []
        for member in members:
            records.extend(_member_tombstones(gid, member.member_id))
        regexes = dict(group.regexes)
        for pattern in sorted({m.subscribed_topic_regex for m in members
                               if m.subscribed_topic_regex}):
            if pattern in regexes and not any(m.subscribed_topic_regex == pattern
                                              for m in remaining):
                records.append(rec.encode(rec.ConsumerGroupRegularExpressionKey(gid, pattern),
                                          None))
                del regexes[pattern]
        subscribed = group.subscribed_topic_names(remaining, regexes)
        records.append(rec.encode(
            rec.ConsumerGroupMetadataKey(gid),
            rec.ConsumerGroupMetadataValue(group.group_epoch + 1,
                                           metadata_hash(subscribed, self.ctx.image()))))
        return Result(response, records)


def _normalized(assignment: Any) -> dict[uuid.UUID, frozenset[int]]:
    return {t: frozenset(ps) for t, ps in assignment.items() if ps}


def _check_epoch(member: ConsumerGroupMember, request: HeartbeatRequest) -> None:
    received = request.member_epoch
    if received > member.member_epoch:
        raise FencedMemberEpochError(
            f"The consumer group member has a greater member epoch ({received}) than the one "
            f"known by the group coordinator ({member.member_epoch}). The member must abandon "
            "all its partitions and rejoin.")
    if received < member.member_epoch and (
            received != member.previous_member_epoch
            or not _is_subset(request.owned, member.assigned)):
        raise FencedMemberEpochError(
            f"The consumer group member has a smaller member epoch ({received}) than the one "
            f"known by the group coordinator ({member.member_epoch}). The member must abandon "
            "all its partitions and rejoin.")
