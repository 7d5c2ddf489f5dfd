"""The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

As Kafka's GroupMetadataManager runs it (KIP-394 member ids, KIP-345 static
members, the initial rebalance delay, rebalance and session timeouts, the
leader's assignment; the checks that change nothing are classic_answers.py).
Each method is an operation of the coordinator runtime: it validates, changes
the group's in-memory membership (state that Kafka too keeps only in
memory), and returns the GroupMetadata record to
write when the group's durable snapshot changes (`replay=False`: the record
is for recovery, the group already holds the change). A parked JoinGroup or
SyncGroup is answered through its `Responder` when the rebalance moves on.

Timers, one key each: `join-<group>` (rebalance timeout, or initial delay),
`sync-<group>` (waiting for every SyncGroup), `heartbeat-<group>-<member>`
(session timeout). Every parked request is answered by one of them at the
latest, so no wait is unbounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from strom.coordinator.group import records as rec
from strom.coordinator.group.classic import (
    ClassicGroup,
    ClassicGroupMember,
    ClassicGroupState,
    Responder,
    append_error_code,
    join_response,
    sync_response,
)
from strom.coordinator.group.classic_answers import (
    accepts_joining_member,
    answer_parked,
    current_generation,
    heartbeat_error,
    sync_error,
)
from strom.coordinator.group.context import ShardContext
from strom.coordinator.group.errors import UnknownMemberIdError
from strom.coordinator.group.requests import JoinRequest, LeavingMember, SyncRequest
from strom.coordinator.runtime import Result
from strom.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

S = ClassicGroupState


def _empty() -> Result[None]:
    return Result(None)


def _metadata_record(group: ClassicGroup, assignment: dict[str, bytes] | None = None
                     ) -> tuple[bytes, bytes | None]:
    return rec.encode(rec.GroupMetadataKey(group.group_id), group.metadata_value(assignment))


class ClassicGroupManager:
    def __init__(self, ctx: ShardContext) -> None:
        self.ctx = ctx

    # -- lookup -----------------------------------------------------------------------

    def find(self, group_id: str) -> ClassicGroup | None:
        group = self.ctx.groups.get(group_id)
        return group if isinstance(group, ClassicGroup) else None

    def _join_key(self, group_id: str) -> str:
        return f"join-{group_id}"

    def _sync_key(self, group_id: str) -> str:
        return f"sync-{group_id}"

    def _heartbeat_key(self, group_id: str, member_id: str) -> str:
        return f"heartbeat-{group_id}-{member_id}"

    # -- JoinGroup ----------------------------------------------------------------------

    def join(self, request: JoinRequest, respond: Responder) -> Result[None]:
        """The caller has checked the group id and the session timeout bounds."""
        ctx = self.ctx
        group_id = request.group_id
        existing = ctx.groups.get(group_id)
        records: list[tuple[bytes, bytes | None]] = []
        if existing is not None and not isinstance(existing, ClassicGroup):
            # An empty consumer group becomes a classic one, as in Kafka (the shard sends
            # JoinGroups to non-empty ones to their classic members).
            records.extend(existing.tombstones())
            del ctx.groups[group_id]
            existing = None
        is_unknown = request.member_id == ""
        is_new_group = existing is None
        if existing is None:
            if not is_unknown:
                respond(join_response(request.member_id, ErrorCode.unknown_member_id))
                return Result(None, records, replay=False)
            group = ClassicGroup(group_id, current_state_timestamp=ctx.now_ms())
            ctx.groups[group_id] = group
        else:
            group = existing
        if not accepts_joining_member(group, request.member_id, ctx.config.max_size):
            group.remove(request.member_id)
            respond(join_response("", ErrorCode.group_max_size_reached))
            result = _empty()
        elif is_unknown:
            result = self._join_new_member(request, group, respond)
        else:
            result = self._join_existing_member(request, group, respond)
        if is_new_group and not result.records:
            records.append(_metadata_record(group))

            def on_durable(exc: BaseException | None) -> None:
                if exc is not None:
                    respond(join_response("", append_error_code(exc)))

            return Result(None, records, replay=False, on_durable=on_durable)
        if records:
            return Result(None, records + result.records, replay=False,
                          on_durable=result.on_durable)
        return result

    def _join_new_member(self, request: JoinRequest, group: ClassicGroup,
                         respond: Responder) -> Result[None]:
        if group.is_in(S.DEAD):
            respond(join_response("", ErrorCode.coordinator_not_available))
            return _empty()
        if not group.supports_protocols(request.protocol_type,
                                        (n for n, _ in request.protocols)):
            respond(join_response("", ErrorCode.inconsistent_group_protocol))
            return _empty()
        new_member_id = group.generate_member_id(request.client_id, request.group_instance_id)
        if request.group_instance_id is not None:
            existing = group.static_member_id(request.group_instance_id)
            if existing is not None:
                return self._update_static_member(request, group, existing, new_member_id,
                                                  respond)
            return self._add_member_and_rebalance(request, group, new_member_id, respond)
        if request.requires_known_member_id:
            # KIP-394: hand out the id and have the member join again with it.
            group.add_pending_member(new_member_id)
            self._schedule_heartbeat_expiry(group.group_id, new_member_id,
                                            request.session_timeout_ms)
            respond(join_response(new_member_id, ErrorCode.member_id_required))
            return _empty()
        return self._add_member_and_rebalance(request, group, new_member_id, respond)

    def _join_existing_member(self, request: JoinRequest, group: ClassicGroup,
                              respond: Responder) -> Result[None]:
        member_id = request.member_id
        if group.is_in(S.DEAD):
            respond(join_response(member_id, ErrorCode.coordinator_not_available))
            return _empty()
        if not group.supports_protocols(request.protocol_type,
                                        (n for n, _ in request.protocols)):
            respond(join_response(member_id, ErrorCode.inconsistent_group_protocol))
            return _empty()
        if group.is_pending_member(member_id):
            if request.group_instance_id is not None:
                respond(join_response(member_id, ErrorCode.unknown_server_error))
                return _empty()
            return self._add_member_and_rebalance(request, group, member_id, respond)
        try:
            group.validate_member(member_id, request.group_instance_id)
        except KafkaError as exc:
            respond(join_response(member_id, exc.code))
            return _empty()
        member = group.members[member_id]
        if group.is_in(S.PREPARING_REBALANCE):
            return self._update_member_and_rebalance(request, group, member, respond)
        if group.is_in(S.COMPLETING_REBALANCE):
            if member.matches(request.protocols):
                # The member lost its JoinGroup response: give it this generation again.
                respond(current_generation(group, member_id,
                                                 with_members=group.is_leader(member_id)))
                return _empty()
            return self._update_member_and_rebalance(request, group, member, respond)
        if group.is_in(S.STABLE):
            if group.is_leader(member_id) or not member.matches(request.protocols):
                # The leader rejoining is how clients ask for a new assignment.
                return self._update_member_and_rebalance(request, group, member, respond)
            respond(current_generation(group, member_id, with_members=False))
            return _empty()
        respond(join_response(member_id, ErrorCode.unknown_member_id))
        return _empty()

    def _add_member_and_rebalance(self, request: JoinRequest, group: ClassicGroup,
                                  member_id: str, respond: Responder) -> Result[None]:
        member = ClassicGroupMember(
            member_id, request.group_instance_id, request.client_id, request.client_host,
            request.rebalance_timeout_ms, request.session_timeout_ms, request.protocol_type,
            request.protocols, is_new=True)
        if group.is_in(S.PREPARING_REBALANCE) and group.previous_state is S.EMPTY:
            group.new_member_added = True
        group.add(member, respond)
        # A parked new member cannot heartbeat: it gets the new-member join timeout.
        self._schedule_heartbeat_expiry(group.group_id, member_id,
                                        self.ctx.config.new_member_join_timeout_ms)
        return self._rebalance_or_complete_join(group)

    def _update_member_and_rebalance(self, request: JoinRequest, group: ClassicGroup,
                                     member: ClassicGroupMember,
                                     respond: Responder) -> Result[None]:
        group.update_member(member, request.protocols, request.rebalance_timeout_ms,
                            request.session_timeout_ms, respond)
        return self._rebalance_or_complete_join(group)

    def _update_static_member(self, request: JoinRequest, group: ClassicGroup,
                              old_member_id: str, new_member_id: str,
                              respond: Responder) -> Result[None]:
        """KIP-345: a static member restarted with an unknown member id takes over."""
        assert request.group_instance_id is not None
        instance_id = request.group_instance_id
        current_leader = group.leader_id or ""
        self.ctx.timer.cancel(self._heartbeat_key(group.group_id, old_member_id))
        member = group.replace_static_member(instance_id, old_member_id, new_member_id)
        self.reschedule_heartbeat(group, member)
        old = (member.protocols, member.rebalance_timeout_ms, member.session_timeout_ms)
        group.update_member(member, request.protocols, request.rebalance_timeout_ms,
                            request.session_timeout_ms, respond)
        if group.is_in(S.STABLE):
            if group.protocol_name != group.select_protocol():
                return self._rebalance_or_complete_join(group)
            # Same protocol: no rebalance; persist the new member id and hand the member
            # its generation (the leader is told to skip assigning, JoinGroup v9+).

            def on_durable(exc: BaseException | None) -> None:
                if exc is not None:
                    group.update_member(member, *old, None)
                    restored = group.replace_static_member(instance_id, new_member_id,
                                                           old_member_id)
                    self.reschedule_heartbeat(group, restored)
                    respond(join_response(
                        "", append_error_code(exc), generation_id=group.generation_id,
                        protocol_type=group.protocol_type, protocol_name=group.protocol_name,
                        leader=current_leader))
                    return
                if request.supports_skip_assignment:
                    is_leader = group.is_leader(new_member_id)
                    response = current_generation(group, new_member_id,
                                                        with_members=is_leader)
                    response["skip_assignment"] = is_leader
                else:
                    response = current_generation(group, new_member_id,
                                                        with_members=False)
                    response["leader"] = current_leader
                group.complete_join(member, response)

            return Result(None, [_metadata_record(group)], replay=False, on_durable=on_durable)
        if group.is_in(S.COMPLETING_REBALANCE):
            # The leader may have assigned to the old member id: start over.
            return self._prepare_rebalance(group, f"static member {instance_id} rejoined")
        return self._complete_join_if_ready(group)

    # -- rebalancing -----------------------------------------------------------------------

    def _rebalance_or_complete_join(self, group: ClassicGroup) -> Result[None]:
        if group.can_rebalance:
            return self._prepare_rebalance(group, "membership changed")
        return self._complete_join_if_ready(group)

    def _complete_join_if_ready(self, group: ClassicGroup) -> Result[None]:
        if not group.is_in(S.PREPARING_REBALANCE):
            return _empty()
        if group.previous_state is S.EMPTY:
            return _empty()  # the initial rebalance waits out its delay
        if not group.has_all_members_joined():
            return _empty()
        return self._complete_join(group)

    def _prepare_rebalance(self, group: ClassicGroup, reason: str) -> Result[None]:
        if group.is_in(S.COMPLETING_REBALANCE):
            self._reset_and_propagate_assignment(group, ErrorCode.rebalance_in_progress)
        self._remove_sync_expiration(group)
        initial = group.is_in(S.EMPTY)
        if initial:
            delay = self.ctx.config.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms() - delay, 0)
            self._schedule_initial(group.group_id, delay, remaining)
        group.transition_to(S.PREPARING_REBALANCE, self.ctx.now_ms())
        log.info("preparing to rebalance group %s with old generation %d (%s)",
                 group.group_id, group.generation_id, reason)
        if initial:
            return _empty()
        if group.has_all_members_joined():
            return self._complete_join(group)
        self._schedule(self._join_key(group.group_id), group.rebalance_timeout_ms(),
                       group.group_id, self._complete_join_by_id)
        return _empty()

    def _schedule_initial(self, group_id: str, delay: int, remaining: int) -> None:
        self.ctx.timer.schedule(
            self._join_key(group_id), delay,
            lambda: self._try_complete_initial_rebalance(group_id, delay, remaining))

    def _try_complete_initial_rebalance(self, group_id: str, delay: int,
                                        remaining: int) -> Result[Any]:
        group = self.find(group_id)
        if group is None:
            return _empty()
        if group.new_member_added and remaining != 0:
            group.new_member_added = False
            new_delay = min(self.ctx.config.initial_rebalance_delay_ms, remaining)
            self._schedule_initial(group_id, new_delay, max(remaining - delay, 0))
            return _empty()
        return self._complete_join(group)

    def _complete_join_by_id(self, group_id: str) -> Result[Any]:
        group = self.find(group_id)
        return _empty() if group is None else self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> Result[None]:
        """End the join phase: drop dynamic members that did not rejoin, start the next
        generation, answer every parked JoinGroup (the leader gets the members)."""
        ctx = self.ctx
        ctx.timer.cancel(self._join_key(group.group_id))
        for member in group.not_yet_rejoined():
            if not member.is_static:
                group.remove(member.member_id)
                ctx.timer.cancel(self._heartbeat_key(group.group_id, member.member_id))
        if group.is_in(S.DEAD):
            return _empty()
        if not group.maybe_elect_new_joined_leader() and group.members:
            # Nobody rejoined: wait for session timeouts to clear the members.
            self._schedule(self._join_key(group.group_id), group.rebalance_timeout_ms(),
                           group.group_id, self._complete_join_by_id)
            return _empty()
        group.init_next_generation(ctx.now_ms())
        if group.is_in(S.EMPTY):
            log.info("group %s with generation %d is now empty", group.group_id,
                     group.generation_id)
            return Result(None, [_metadata_record(group)], replay=False)
        log.info("group %s: generation %d with %d members, protocol %s", group.group_id,
                 group.generation_id, len(group.members), group.protocol_name)
        for member in list(group.members.values()):
            response = current_generation(
                group, member.member_id, with_members=group.is_leader(member.member_id))
            group.complete_join(member, response)
            self.reschedule_heartbeat(group, member)
            member.is_new = False
            group.pending_sync_members.add(member.member_id)
        generation = group.generation_id
        group_id = group.group_id
        ctx.timer.schedule(self._sync_key(group_id), group.rebalance_timeout_ms(),
                           lambda: self._expire_pending_sync(group_id, generation))
        return _empty()

    def _expire_pending_sync(self, group_id: str, generation: int) -> Result[Any]:
        group = self.find(group_id)
        if group is None or group.generation_id != generation:
            return _empty()
        if group.is_in(S.COMPLETING_REBALANCE, S.STABLE) and group.pending_sync_members:
            late = sorted(group.pending_sync_members)
            for member_id in late:
                group.remove(member_id)
                self.ctx.timer.cancel(self._heartbeat_key(group_id, member_id))
            return self._prepare_rebalance(group, f"members {late} did not sync in time")
        return _empty()

    def _remove_sync_expiration(self, group: ClassicGroup) -> None:
        group.pending_sync_members.clear()
        self.ctx.timer.cancel(self._sync_key(group.group_id))

    def _remove_pending_sync_member(self, group: ClassicGroup, member_id: str) -> None:
        group.pending_sync_members.discard(member_id)
        if (group.is_in(S.DEAD, S.EMPTY, S.PREPARING_REBALANCE)
                or not group.pending_sync_members):
            self.ctx.timer.cancel(self._sync_key(group.group_id))

    def _reset_and_propagate_assignment(self, group: ClassicGroup, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(group, error)

    def _propagate_assignment(self, group: ClassicGroup, error: ErrorCode) -> None:
        ok = error == ErrorCode.none
        for member in group.members.values():
            response = sync_response(
                error, protocol_type=group.protocol_type if ok else None,
                protocol_name=group.protocol_name if ok else None,
                assignment=member.assignment)
            if group.complete_sync(member, response):
                self.reschedule_heartbeat(group, member)

    # -- heartbeats and session timeouts -------------------------------------------------

    def _schedule(self, key: str, delay_ms: int, group_id: str,
                  operation: Callable[[str], Result[Any]]) -> None:
        self.ctx.timer.schedule(key, delay_ms, lambda: operation(group_id))

    def _schedule_heartbeat_expiry(self, group_id: str, member_id: str, timeout_ms: int) -> None:
        self.ctx.timer.schedule(self._heartbeat_key(group_id, member_id), timeout_ms,
                                lambda: self._expire_heartbeat(group_id, member_id))

    def reschedule_heartbeat(self, group: ClassicGroup, member: ClassicGroupMember) -> None:
        self._schedule_heartbeat_expiry(group.group_id, member.member_id,
                                        member.session_timeout_ms)

    def _expire_heartbeat(self, group_id: str, member_id: str) -> Result[Any]:
        group = self.find(group_id)
        if group is None or group.is_in(S.DEAD):
            return _empty()
        if group.is_pending_member(member_id):
            group.remove(member_id)
            if group.is_in(S.PREPARING_REBALANCE) and group.has_all_members_joined():
                return self._complete_join(group)
            return _empty()
        member = group.members.get(member_id)
        if member is None or member.has_satisfied_heartbeat():
            return _empty()
        log.info("group %s: member %s failed its session timeout", group_id, member_id)
        return self._remove_member_and_update(group, member)

    def _remove_member_and_update(self, group: ClassicGroup,
                                  member: ClassicGroupMember) -> Result[None]:
        group.complete_join(member, join_response("", ErrorCode.unknown_member_id))
        group.complete_sync(member, sync_response(ErrorCode.unknown_member_id))
        group.remove(member.member_id)
        if group.is_in(S.STABLE, S.COMPLETING_REBALANCE):
            return self._rebalance_or_complete_join(group)
        if group.is_in(S.PREPARING_REBALANCE) and group.has_all_members_joined():
            return self._complete_join(group)
        return _empty()

    def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> Result[ErrorCode]:
        group = self.find(group_id)
        if group is None:
            raise UnknownMemberIdError(f"Group {group_id} not found.")
        error = heartbeat_error(group, member_id, group_instance_id, generation_id)
        if error is not None:
            return Result(error)
        self.reschedule_heartbeat(group, group.members[member_id])
        if group.is_in(S.PREPARING_REBALANCE):
            return Result(ErrorCode.rebalance_in_progress)
        return Result(ErrorCode.none)

    # -- SyncGroup ------------------------------------------------------------------------

    def sync(self, request: SyncRequest, respond: Responder) -> Result[None]:
        group = self.find(request.group_id)
        if group is None or group.is_empty:
            respond(sync_response(ErrorCode.unknown_member_id))
            return _empty()
        error = sync_error(group, request)
        if error is not None:
            respond(sync_response(error))
            return _empty()
        if group.is_in(S.PREPARING_REBALANCE):
            respond(sync_response(ErrorCode.rebalance_in_progress))
            return _empty()
        member = group.members[request.member_id]
        if group.is_in(S.STABLE):
            self._remove_pending_sync_member(group, request.member_id)
            respond(sync_response(protocol_type=group.protocol_type,
                                  protocol_name=group.protocol_name,
                                  assignment=member.assignment))
            return _empty()
        # CompletingRebalance: park until the leader's assignment is durable.
        member.awaiting_sync = respond
        self._remove_pending_sync_member(group, request.member_id)
        if not group.is_leader(request.member_id):
            return _empty()
        assignment = dict(request.assignments)
        for member_id in group.members:
            assignment.setdefault(member_id, b"")
        generation = request.generation_id

        def on_durable(exc: BaseException | None) -> Result[None] | None:
            if not (self.find(group.group_id) is group
                    and group.is_in(S.COMPLETING_REBALANCE)
                    and group.generation_id == generation):
                return None  # the group moved on while the record was written
            if exc is not None:
                self._reset_and_propagate_assignment(group, append_error_code(exc))
                return self._rebalance_or_complete_join(group)
            for m in group.members.values():
                m.assignment = assignment.get(m.member_id, b"")
            self._propagate_assignment(group, ErrorCode.none)
            group.transition_to(S.STABLE, self.ctx.now_ms())
            return None

        return Result(None, [_metadata_record(group, assignment)], replay=False,
                      on_durable=on_durable)

    # -- LeaveGroup ---------------------------------------------------------------------

    def leave(self, group_id: str, members: list[LeavingMember]) -> Result[dict[str, Any]]:
        group = self.find(group_id)
        if group is None:
            raise UnknownMemberIdError(f"Group {group_id} not found.")
        if group.is_in(S.DEAD):
            return Result({"error_code": ErrorCode.coordinator_not_available, "members": []})
        responses: list[dict[str, Any]] = []
        left = 0
        for leaving in members:
            code = ErrorCode.none
            if leaving.member_id == "":
                # Admin removal of a static member by its instance id alone.
                instance = leaving.group_instance_id
                static_id = group.static_member_id(instance) if instance is not None else None
                if static_id is not None:
                    self._remove_current_member(group, static_id)
                else:
                    code = ErrorCode.unknown_member_id
            elif group.is_pending_member(leaving.member_id):
                group.remove(leaving.member_id)
                self.ctx.timer.cancel(self._heartbeat_key(group_id, leaving.member_id))
            else:
                try:
                    group.validate_member(leaving.member_id, leaving.group_instance_id)
                except KafkaError as exc:
                    code = exc.code
                else:
                    self._remove_current_member(group, leaving.member_id)
            left += code == ErrorCode.none
            responses.append({"member_id": leaving.member_id,
                              "group_instance_id": leaving.group_instance_id,
                              "error_code": code})
        follow: Result[None] = _empty()
        if left:
            if group.is_in(S.STABLE, S.COMPLETING_REBALANCE):
                follow = self._rebalance_or_complete_join(group)
            elif group.is_in(S.PREPARING_REBALANCE):
                follow = self._complete_join_if_ready(group)
        return Result({"error_code": ErrorCode.none, "members": responses}, follow.records,
                      replay=False, on_durable=follow.on_durable)

    def _remove_current_member(self, group: ClassicGroup, member_id: str) -> None:
        self.ctx.timer.cancel(self._heartbeat_key(group.group_id, member_id))
        member = group.members[member_id]
        # Parked requests of a member that is gone are answered, not left waiting.
        group.complete_join(member, join_response("", ErrorCode.unknown_member_id))
        group.complete_sync(member, sync_response(ErrorCode.unknown_member_id))
        group.remove(member_id)

    def on_downgraded(self, group_id: str) -> Result[None]:
        """A consumer group became this classic group: its members must rejoin."""
        group = self.find(group_id)
        if group is None or not group.is_in(S.STABLE):
            return _empty()
        for member in group.members.values():
            self.reschedule_heartbeat(group, member)
        return self._prepare_rebalance(group, "downgraded from a consumer group")

    # -- loading ----------------------------------------------------------------------

    def on_loaded(self, group: ClassicGroup) -> None:
        for member in group.members.values():
            self.reschedule_heartbeat(group, member)

    def on_unloaded(self, group: ClassicGroup) -> None:
        previous = group.state
        group.transition_to(S.DEAD, self.ctx.now_ms())
        answer_parked(group, previous)

    def cancel_timers(self, group: ClassicGroup) -> None:
        timer = self.ctx.timer
        timer.cancel(self._join_key(group.group_id))
        timer.cancel(self._sync_key(group.group_id))
        for member_id in [*group.members, *group.pending_join_members]:
            timer.cancel(self._heartbeat_key(group.group_id, member_id))

