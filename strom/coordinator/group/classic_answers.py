"""What the classic protocol reads off a group without changing it (as
Kafka's GroupMetadataManager checks a request before acting on it): whether
a JoinGroup fits group.max.size, the error a SyncGroup or a Heartbeat gets,
a member's current generation as a JoinGroup answer, and the answers of
parked requests when the coordinator moves away. classic_protocol.py acts
on them; the group's membership changes only there.
"""

from __future__ import annotations

from typing import Any

from strom.coordinator.group.classic import (
    ClassicGroup,
    ClassicGroupState,
    join_response,
    sync_response,
)
from strom.coordinator.group.requests import SyncRequest
from strom.errors import ErrorCode, KafkaError

__all__ = ["accepts_joining_member", "answer_parked", "current_generation",
           "heartbeat_error", "sync_error"]

S = ClassicGroupState


def accepts_joining_member(group: ClassicGroup, member_id: str, max_size: int) -> bool:
    """Whether a JoinGroup of `member_id` fits group.max.size."""
    if group.is_in(S.EMPTY, S.DEAD):
        return True
    if group.is_in(S.PREPARING_REBALANCE):
        member = group.members.get(member_id)
        return ((member is not None and member.awaiting_join is not None)
                or group.num_awaiting_join < max_size)
    return group.has_member(member_id) or len(group.members) < max_size


def current_generation(group: ClassicGroup, member_id: str, *,
                       with_members: bool) -> dict[str, Any]:
    """The JoinGroup answer of the group's current generation (the leader's with
    the members' metadata)."""
    return join_response(
        member_id, generation_id=group.generation_id, protocol_type=group.protocol_type,
        protocol_name=group.protocol_name, leader=group.leader_id or "",
        members=group.current_members_for_join() if with_members else ())


def sync_error(group: ClassicGroup, request: SyncRequest) -> ErrorCode | None:
    """A SyncGroup's error before its group state is looked at; None if none."""
    if group.is_in(S.DEAD):
        return ErrorCode.coordinator_not_available
    try:
        group.validate_member(request.member_id, request.group_instance_id)
    except KafkaError as exc:
        return exc.code
    if request.generation_id != group.generation_id:
        return ErrorCode.illegal_generation
    if (_inconsistent(request.protocol_type, group.protocol_type)
            or _inconsistent(request.protocol_name, group.protocol_name)):
        return ErrorCode.inconsistent_group_protocol
    return None


def heartbeat_error(group: ClassicGroup, member_id: str, group_instance_id: str | None,
                    generation_id: int) -> ErrorCode | None:
    """A Heartbeat's error when it cannot reach the member's session (None:
    it does). An unknown or fenced member raises its KafkaError."""
    if group.is_in(S.DEAD):
        return ErrorCode.coordinator_not_available
    group.validate_member(member_id, group_instance_id)
    if generation_id != group.generation_id:
        return ErrorCode.illegal_generation
    if group.is_in(S.EMPTY):
        return ErrorCode.unknown_member_id
    return None


def answer_parked(group: ClassicGroup, previous: ClassicGroupState) -> None:
    """The group was unloaded in state `previous`: its parked JoinGroups
    (or SyncGroups) answer NOT_COORDINATOR, so the members find the new one."""
    for member in group.members.values():
        if previous is S.PREPARING_REBALANCE:
            group.complete_join(member, join_response(member.member_id,
                                                      ErrorCode.not_coordinator))
        elif previous in (S.COMPLETING_REBALANCE, S.STABLE):
            group.complete_sync(member, sync_response(ErrorCode.not_coordinator))


def _inconsistent(requested: str | None, current: str | None) -> bool:
    return requested is not None and current is not None and requested != current
