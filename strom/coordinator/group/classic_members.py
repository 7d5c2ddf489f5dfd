"""Classic members of a consumer group: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

A consumer group (KIP-848) may hold members that speak the classic protocol:
the members of a classic group that was upgraded (`migration.py`), and classic
clients that join a consumer group while the migration policy allows it. The
coordinator assigns for them too; they take part as Kafka lets them:

- JoinGroup is answered at once (no join phase): the member is recorded with
  its subscription (from its JoinGroup metadata) and the partitions it says
  it owns, and reconciled one step towards its target assignment like any
  member (`ConsumerGroupManager.update_member`). The generation it gets is
  its member epoch; it is never the leader, so it sends an empty SyncGroup.
- SyncGroup returns the member's current assignment as ConsumerProtocolAssignment
  bytes, or REBALANCE_IN_PROGRESS when the group epoch has moved past it.
- Heartbeat answers REBALANCE_IN_PROGRESS when the member must rejoin: the group
  epoch moved past its epoch, it has partitions to revoke, or partitions it
  waits for were released. Revoking means rejoining without them, so a
  partition is never handed to another member before its classic owner has
  rejoined without it.
- LeaveGroup fences the members, as a consumer member's leave does.

Timers: `consumer-join-<group>-<member>` fences a member told to rejoin that
does not within its rebalance timeout; `consumer-sync-<group>-<member>` one
that joined and does not sync within it. Session timeouts are the member's own.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any

from strom.coordinator.group import migration
from strom.coordinator.group import records as rec
from strom.coordinator.group.classic import (
    CONSUMER_PROTOCOL_TYPE,
    Responder,
    append_error_code,
    join_response,
    sync_response,
)
from strom.coordinator.group.consumer import (
    ConsumerGroup,
    ConsumerGroupMember,
    MemberState,
    _member_tombstones,
)
from strom.coordinator.group.consumer_protocol import ConsumerGroupManager
from strom.coordinator.group.consumer_timers import join_key, sync_key
from strom.coordinator.group.context import ShardContext
from strom.coordinator.group.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from strom.coordinator.group.records import RecordPair
from strom.coordinator.group.requests import JoinRequest, LeavingMember, SyncRequest
from strom.coordinator.runtime import Result
from strom.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)


class ClassicMemberManager:
    def __init__(self, ctx: ShardContext, consumer: ConsumerGroupManager) -> None:
        self.ctx = ctx
        self.consumer = consumer

    # -- JoinGroup ----------------------------------------------------------------------

    def join(self, group: ConsumerGroup, request: JoinRequest,
             respond: Responder) -> Result[None]:
        try:
            return self._join(group, request, respond)
        except KafkaError as exc:
            respond(join_response(request.member_id, exc.code))
            return Result(None)

    def _join(self, group: ConsumerGroup, request: JoinRequest,
              respond: Responder) -> Result[None]:
        config = self.ctx.config
        gid = group.group_id
        instance = request.group_instance_id
        is_unknown = request.member_id == ""
        member_id = request.member_id or str(uuid.uuid4())
        static_id = group.static_members.get(instance) if instance is not None else None
        known = member_id in group.members or static_id is not None
        if not known and config.migration_policy == "disabled":
            # No migration either way: a group stays of one protocol (KAFKA-20640).
            raise InconsistentGroupProtocolError(
                f"Group {gid} is a consumer group and migration is disabled.")
        if len(group.members) >= config.consumer_max_size and not known:
            respond(join_response("", ErrorCode.group_max_size_reached))
            return Result(None)
        if not group.supports_classic_protocols(request.protocol_type,
                                                (n for n, _ in request.protocols)):
            raise InconsistentGroupProtocolError(f"Member {member_id}'s protocols are not "
                                                 "supported.")
        if is_unknown and request.requires_known_member_id and instance is None:
            # KIP-394: hand out the id and have the member join again with it.
            respond(join_response(member_id, ErrorCode.member_id_required))
            return Result(None)
        try:
            subscription = migration.parse_subscription(request.protocols[0][1])
        except migration.MalformedProtocolError:
            raise InconsistentGroupProtocolError(
                f"Member {member_id}'s subscription is malformed.") from None

        records: list[RecordPair] = []
        member, replaced = self._member(group, member_id, instance, is_unknown, records)
        image = self.ctx.image()
        owned = migration.to_topic_ids(
            ((tp.topic, tp.partitions) for tp in getattr(subscription, "owned_partitions", ())),
            image)
        updated = replace(
            member, instance_id=instance if instance is not None else member.instance_id,
            rack_id=getattr(subscription, "rack_id", None) or member.rack_id,
            rebalance_timeout_ms=request.rebalance_timeout_ms, server_assignor=None,
            subscribed_topic_names=tuple(sorted(set(subscription.topics))),
            subscribed_topic_regex=None, client_id=request.client_id,
            client_host=request.client_host,
            classic=rec.ClassicMemberMetadata(request.session_timeout_ms, request.protocols))
        reconciled = self.consumer.update_member(
            group, member, updated, replaced,
            tuple((t, tuple(sorted(ps))) for t, ps in owned.items()), records)

        timer = self.ctx.timer
        timer.cancel(join_key(gid, member_id))
        self.consumer.timers.schedule_session_timeout(gid, reconciled)
        timer.schedule(sync_key(gid, member_id), request.rebalance_timeout_ms,
                       lambda: self._expire(gid, member_id, "did not sync"))
        response = join_response(member_id, generation_id=reconciled.member_epoch,
                                 protocol_type=CONSUMER_PROTOCOL_TYPE,
                                 protocol_name=request.protocols[0][0])

        def on_durable(exc: BaseException | None) -> None:
            respond(response if exc is None
                    else join_response(member_id, append_error_code(exc)))

        return Result(None, records, on_durable=on_durable)

    def _member(self, group: ConsumerGroup, member_id: str, instance: str | None,
                is_unknown: bool, records: list[RecordPair]
                ) -> tuple[ConsumerGroupMember, ConsumerGroupMember | None]:
        """The joining member (new ones are created), and the static member it replaces."""
        if instance is None:
            return group.members.get(member_id) or ConsumerGroupMember(member_id), None
        static_id = group.static_members.get(instance)
        static = group.members.get(static_id) if static_id is not None else None
        if static is None:
            return group.members.get(member_id) or ConsumerGroupMember(member_id), None
        if not is_unknown:
            if static.member_id != member_id:
                raise FencedInstanceIdError(
                    f"Static member {member_id} with instance id {instance} was fenced by "
                    f"member {static.member_id}.")
            return static, None
        # A restarted static member takes over its instance's assignment.
        gid = group.group_id
        member = replace(static, member_id=member_id, member_epoch=0, previous_member_epoch=0)
        records.extend(_member_tombstones(gid, static.member_id))
        records.append(rec.encode(
            rec.ConsumerGroupTargetAssignmentMemberKey(gid, member_id),
            rec.ConsumerGroupTargetAssignmentMemberValue(group.target.get(static.member_id,
                                                                          {}))))
        self.consumer.timers.cancel_timers(gid, static.member_id)
        return member, static

    # -- SyncGroup ----------------------------------------------------------------------

    def sync(self, group: ConsumerGroup, request: SyncRequest,
             respond: Responder) -> Result[None]:
        try:
            member = self._validate(group, request.member_id, request.group_instance_id)
            _check_generation(member, request.generation_id)
            assert member.classic is not None
            protocol_name = member.classic.supported_protocols[0][0]
            if ((request.protocol_type is not None
                 and request.protocol_type != CONSUMER_PROTOCOL_TYPE)
                    or (request.protocol_name is not None
                        and request.protocol_name != protocol_name)):
                raise InconsistentGroupProtocolError(
                    f"SyncGroup of {member.member_id} does not match its JoinGroup protocol.")
            if (group.group_epoch > member.member_epoch
                    and member.state is not MemberState.UNREVOKED_PARTITIONS):
                self._rejoin_within_rebalance_timeout(group, member)
                raise RebalanceInProgressError(
                    f"A new rebalance is triggered in group {group.group_id} and member "
                    f"{member.member_id} should rejoin to catch up.")
        except KafkaError as exc:
            respond(sync_response(exc.code))
            return Result(None)
        gid = group.group_id
        self.ctx.timer.cancel(sync_key(gid, member.member_id))
        self.consumer.timers.schedule_session_timeout(gid, member)
        version = migration.subscription_version(member.classic.supported_protocols[0][1])
        respond(sync_response(
            protocol_type=CONSUMER_PROTOCOL_TYPE, protocol_name=protocol_name,
            assignment=migration.encode_assignment(member.assigned, self.ctx.image(),
                                                   version)))
        return Result(None)

    # -- Heartbeat ----------------------------------------------------------------------

    def heartbeat(self, group: ConsumerGroup, member_id: str, instance: str | None,
                  generation_id: int) -> Result[ErrorCode]:
        member = self._validate(group, member_id, instance)
        _check_generation(member, generation_id)
        self.consumer.timers.schedule_session_timeout(group.group_id, member)
        if (member.member_epoch < group.group_epoch
                or member.state is MemberState.UNREVOKED_PARTITIONS
                or (member.state is MemberState.UNRELEASED_PARTITIONS
                    and not group.waiting_on_unreleased_partition(member))):
            self._rejoin_within_rebalance_timeout(group, member)
            return Result(ErrorCode.rebalance_in_progress)
        return Result(ErrorCode.none)

    # -- LeaveGroup ---------------------------------------------------------------------

    def leave(self, group: ConsumerGroup, members: list[LeavingMember]
              ) -> Result[dict[str, Any]]:
        responses: list[dict[str, Any]] = []
        fenced: dict[str, ConsumerGroupMember] = {}
        for leaving in members:
            code = ErrorCode.none
            try:
                if leaving.member_id == "" and leaving.group_instance_id is not None:
                    static_id = group.static_members.get(leaving.group_instance_id)
                    member = self._validate(group, static_id or "", leaving.group_instance_id)
                else:
                    member = self._validate(group, leaving.member_id,
                                            leaving.group_instance_id)
                fenced[member.member_id] = member
            except KafkaError as exc:
                code = exc.code
            responses.append({"member_id": leaving.member_id,
                              "group_instance_id": leaving.group_instance_id,
                              "error_code": code})
        response = {"error_code": ErrorCode.none, "members": responses}
        if not fenced:
            return Result(response)
        log.info("consumer group %s: classic members %s left", group.group_id, sorted(fenced))
        return self.consumer.fence_members(group, list(fenced.values()), response)

    # -- helpers ------------------------------------------------------------------------

    def _validate(self, group: ConsumerGroup, member_id: str,
                  instance: str | None) -> ConsumerGroupMember:
        if instance is None:
            member = group.members.get(member_id)
            if member is None:
                raise UnknownMemberIdError(
                    f"Member {member_id} is not a member of group {group.group_id}.")
        else:
            static_id = group.static_members.get(instance)
            member = group.members.get(static_id) if static_id is not None else None
            if member is None:
                raise UnknownMemberIdError(f"Member with instance id {instance} is not a "
                                           f"member of group {group.group_id}.")
            if member.member_id != member_id:
                raise FencedInstanceIdError(
                    f"Static member {member_id} with instance id {instance} was fenced by "
                    f"member {member.member_id}.")
        if member.classic is None:
            raise UnknownMemberIdError(
                f"Member {member.member_id} does not use the classic protocol.")
        return member

    def _rejoin_within_rebalance_timeout(self, group: ConsumerGroup,
                                         member: ConsumerGroupMember) -> None:
        key = join_key(group.group_id, member.member_id)
        if not self.ctx.timer.is_scheduled(key):
            gid, mid = group.group_id, member.member_id
            self.ctx.timer.schedule(key, member.rebalance_timeout_ms,
                                    lambda: self._expire(gid, mid, "did not rejoin"))

    def _expire(self, group_id: str, member_id: str, why: str) -> Result[Any]:
        group = self.consumer.find(group_id)
        member = group.members.get(member_id) if group is not None else None
        if group is None or member is None or member.classic is None:
            return Result(None)
        log.info("consumer group %s: classic member %s %s in time", group_id, member_id, why)
        return self.consumer.fence(group, member)


def _check_generation(member: ConsumerGroupMember, generation_id: int) -> None:
    if generation_id != member.member_epoch:
        raise IllegalGenerationError(
            f"The request generation id {generation_id} is not equal to the member epoch "
            f"{member.member_epoch} of member {member.member_id}.")
