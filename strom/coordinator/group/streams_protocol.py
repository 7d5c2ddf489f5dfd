"""StreamsGroupHeartbeat and StreamsGroupDescribe: the KIP-1071 protocol.

A heartbeat runs Kafka's steps on a snapshot of the group, producing records
only: (1) create or update the member; (2) initialize the group's topology
from the first joining member (a later member with another topology of the
same epoch is refused: Kafka 4.4 has no topology updates); (3) configure the
topology against the metadata image (streams_topology.py), bumping the group
epoch when the topics' metadata, the validated topology or the assignment
configs changed; (4) when the group epoch is ahead of the target assignment's,
run the sticky assignor (streams_assignor.py) and record the new target;
(5) move the member one step towards its target. Replay is the only code that
changes a StreamsGroup.

Internal topics (repartition, changelog) missing from the cluster are named
in the heartbeat's result; the service creates them, as Kafka's broker does
after the coordinator answered, and members see MISSING_INTERNAL_TOPICS until
they exist.

Timers: `streams-session-<group>-<member>` fences a member that stopped
heartbeating; `streams-rebalance-<group>-<member>` one that did not revoke its
tasks within its rebalance timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from strom.coordinator.group import records as rec
from strom.coordinator.group import streams_assignor
from strom.coordinator.group import streams_records as srec
from strom.coordinator.group.classic import ClassicGroup
from strom.coordinator.group.consumer import metadata_hash
from strom.coordinator.group.context import ShardContext
from strom.coordinator.group.errors import (
    FencedInstanceIdError,
    GroupIdNotFoundError,
    GroupMaxSizeReachedError,
    InvalidRequestError,
    UnknownMemberIdError,
    UnreleasedInstanceIdError,
)
from strom.coordinator.group.records import RecordPair
from strom.coordinator.group.streams import (
    MemberState,
    StreamsGroup,
    StreamsGroupMember,
    Tasks,
    TasksTuple,
    member_tombstones,
    normalize,
    target_value,
    tasks_out,
)
from strom.coordinator.group.streams_describe import describe_group, endpoints
from strom.coordinator.group.streams_reconcile import check_epoch, reconcile
from strom.coordinator.group.streams_topology import (
    ASSIGNMENT_DELAYED,
    SHUTDOWN_APPLICATION,
    STALE_TOPOLOGY,
    ConfiguredTopology,
    InternalTopic,
    configure,
    topic_names,
)
from strom.coordinator.group.streams_validation import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    StreamsHeartbeat,
)
from strom.coordinator.runtime import Result
from strom.errors import ErrorCode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HeartbeatOutcome:
    response: dict[str, Any]
    to_create: tuple[InternalTopic, ...] = ()


def _tasks_response(tasks: Tasks) -> list[dict[str, Any]]:
    return tasks_out(tasks)


class StreamsGroupManager:
    def __init__(self, ctx: ShardContext) -> None:
        self.ctx = ctx

    def find(self, group_id: str) -> StreamsGroup | None:
        group = self.ctx.groups.get(group_id)
        return group if isinstance(group, StreamsGroup) else None

    # -- replay ---------------------------------------------------------------------------

    def replay(self, key_bytes: bytes, value_bytes: bytes | None) -> None:
        key, value = srec.decode(key_bytes, value_bytes)
        gid = key.group_id
        group = self.find(gid)
        if value is None:
            if group is None:
                return
            if key.type == srec.METADATA:
                del self.ctx.groups[gid]
                self.ctx.timer.cancel(self._delay_key(gid))
                for member_id in group.members:
                    self.cancel_timers(gid, member_id)
            elif key.type == srec.MEMBER_METADATA:
                gone = group.members.pop(key.member_id, None)
                if gone is not None and gone.instance_id is not None \
                        and group.static_members.get(gone.instance_id) == key.member_id:
                    del group.static_members[gone.instance_id]
                group.task_offsets.pop(key.member_id, None)
                group.task_end_offsets.pop(key.member_id, None)
                if not group.members:
                    group.shutdown_requested_by = None  # the application is down
            elif key.type == srec.TARGET_METADATA:
                group.assignment_epoch = 0
            elif key.type == srec.TARGET_MEMBER:
                group.target.pop(key.member_id, None)
            elif key.type == srec.CURRENT_ASSIGNMENT:
                member = group.members.get(key.member_id)
                if member is not None:
                    group.members[key.member_id] = replace(
                        member, member_epoch=0, previous_member_epoch=0,
                        state=MemberState.STABLE, assigned=TasksTuple(),
                        pending_revocation=TasksTuple(), active_epochs={})
            elif key.type == srec.TOPOLOGY:
                group.topology = None
                group.configured = None
            return
        if group is None:
            group = StreamsGroup(gid)
            self.ctx.groups[gid] = group
        if key.type == srec.METADATA:
            group.group_epoch = value["epoch"]
            group.metadata_hash = value["metadata_hash"]
            group.validated_topology_epoch = value["validated_topology_epoch"]
            configs = value["last_assignment_configs"]
            group.last_assignment_configs = None if configs is None else tuple(
                (c["key"], c["value"]) for c in configs)
        elif key.type == srec.MEMBER_METADATA:
            old = group.members.get(key.member_id) or StreamsGroupMember(key.member_id)
            endpoint = value["user_endpoint"]
            if value["instance_id"] is not None:
                group.static_members[value["instance_id"]] = key.member_id
            group.members[key.member_id] = replace(
                old, instance_id=value["instance_id"], rack_id=value["rack_id"],
                client_id=value["client_id"], client_host=value["client_host"],
                rebalance_timeout_ms=value["rebalance_timeout_ms"],
                topology_epoch=value["topology_epoch"], process_id=value["process_id"],
                user_endpoint=None if endpoint is None else (endpoint["host"],
                                                             int(endpoint["port"])),
                client_tags=tuple((t["key"], t["value"]) for t in value["client_tags"]))
        elif key.type == srec.TARGET_METADATA:
            group.assignment_epoch = value["assignment_epoch"]
        elif key.type == srec.TARGET_MEMBER:
            group.target[key.member_id] = TasksTuple(
                *(normalize({t["subtopology_id"]: t["partitions"] for t in value[k]})
                  for k in ("active_tasks", "standby_tasks", "warmup_tasks")))
        elif key.type == srec.CURRENT_ASSIGNMENT:
            old = group.members.get(key.member_id) or StreamsGroupMember(key.member_id)
            group.members[key.member_id] = old.with_assignment_value(value)
        elif key.type == srec.TOPOLOGY:
            group.topology = dict(value)
            group.configured = None
            group.configured_for = None

    # -- heartbeat --------------------------------------------------------------------

    def heartbeat(self, request: StreamsHeartbeat) -> Result[HeartbeatOutcome]:
        if request.member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
            return self._leave(request)
        ctx = self.ctx
        config = ctx.config.streams
        gid = request.group_id
        records: list[RecordPair] = []
        statuses: list[dict[str, Any]] = []
        joining = request.member_epoch == 0

        existing = ctx.groups.get(gid)
        if isinstance(existing, StreamsGroup):
            group = existing
        elif existing is None or (isinstance(existing, ClassicGroup) and existing.is_empty
                                  and not existing.members):
            if not joining:
                raise GroupIdNotFoundError(f"Streams group {gid} not found.")
            if existing is not None:
                # An empty classic group (offsets only) becomes a streams group, as in Kafka.
                records.append(rec.encode(rec.GroupMetadataKey(gid), None))
            group = StreamsGroup(gid)
        else:
            raise GroupIdNotFoundError(f"Group {gid} is not a streams group.")

        replaced: StreamsGroupMember | None = None
        if request.instance_id is not None:
            member, replaced = self._static_member(group, request, records)
            is_new = member.member_id not in group.members
        else:
            found = group.members.get(request.member_id)
            is_new = found is None
            if found is None and not joining:
                raise UnknownMemberIdError(
                    f"Member {request.member_id} is not a member of group {gid}.")
            if found is not None and not joining:
                check_epoch(found, request.member_epoch, request.owned)
            member = found or StreamsGroupMember(request.member_id)
        if is_new and replaced is None and len(group.members) >= config.max_size:
            raise GroupMaxSizeReachedError(
                f"The streams group has reached its maximum capacity of "
                f"{config.max_size} members.")

        # 1. The member.
        updated = replace(
            member,
            instance_id=(request.instance_id if request.instance_id is not None
                         else member.instance_id),
            rack_id=request.rack_id if request.rack_id is not None else member.rack_id,
            rebalance_timeout_ms=(request.rebalance_timeout_ms
                                  if request.rebalance_timeout_ms != -1
                                  else member.rebalance_timeout_ms),
            topology_epoch=(request.topology["epoch"] if request.topology is not None
                            else member.topology_epoch),
            client_id=request.client_id, client_host=request.client_host,
            process_id=request.process_id if request.process_id is not None
            else member.process_id,
            client_tags=request.client_tags if request.client_tags is not None
            else member.client_tags,
            user_endpoint=request.user_endpoint if request.user_endpoint is not None
            else member.user_endpoint)
        bump = False
        if replaced is not None:
            # A static member back under a new member id: its tasks, no rebalance
            # unless something else about it changed.
            records.append(srec.encode(srec.StreamsKey(srec.MEMBER_METADATA, gid,
                                                       updated.member_id),
                                       updated.metadata_value()))
            bump = updated.metadata_value() != replace(
                replaced, member_id=updated.member_id).metadata_value()
        elif is_new or updated.metadata_value() != member.metadata_value():
            records.append(srec.encode(srec.StreamsKey(srec.MEMBER_METADATA, gid,
                                                       updated.member_id),
                                       updated.metadata_value()))
            bump = True

        # 2. The topology.
        topology = group.topology
        if request.topology is not None:
            if topology is None:
                topology = request.topology
                records.append(srec.encode(srec.StreamsKey(srec.TOPOLOGY, gid), topology))
                log.info("streams group %s: member %s initialized the topology, epoch %d",
                         gid, request.member_id, topology["epoch"])
            elif topology["epoch"] > request.topology["epoch"]:
                pass  # a stale member: it gets STALE_TOPOLOGY below
            elif _canonical(topology) != _canonical(request.topology):
                raise InvalidRequestError("Topology updates are not supported yet.")
        assert topology is not None or not joining
        if topology is not None and updated.topology_epoch < topology["epoch"]:
            statuses.append({"status_code": STALE_TOPOLOGY, "status_detail":
                             f"The member's topology epoch {updated.topology_epoch} is behind "
                             f"the group's topology epoch {topology['epoch']}."})

        # 3. The topology against the topics there are.
        image = ctx.image()
        configured: ConfiguredTopology | None = None
        new_hash = group.metadata_hash
        if topology is not None:
            new_hash = metadata_hash(topic_names(topology), image)
            key = (int(topology["epoch"]), new_hash)
            if group.configured is not None and group.configured_for == key:
                configured = group.configured
            else:
                configured = configure(topology, image)
                # Derived from the topology and the image only; not state of its own.
                group.configured, group.configured_for = configured, key
        if new_hash != group.metadata_hash:
            bump = True
        validated = (int(topology["epoch"]) if topology is not None and configured is not None
                     and configured.is_ready else -1)
        if validated != group.validated_topology_epoch:
            bump = True
        if validated != -1 and configured is not None and request.owned is not None:
            _check_owned(request.owned, configured)
        group_configs = ctx.image().group_configs.get(gid, {})
        standbys = config.num_standby_replicas_for(group_configs)
        assignment_configs = (("num.standby.replicas", str(standbys)),)
        if assignment_configs != group.last_assignment_configs:
            bump = True
        group_epoch = group.group_epoch
        if bump:
            group_epoch += 1
            records.append(srec.encode(srec.StreamsKey(srec.METADATA, gid), {
                "epoch": group_epoch, "metadata_hash": new_hash,
                "validated_topology_epoch": validated,
                "last_assignment_configs": [{"key": k, "value": v}
                                            for k, v in assignment_configs]}))
            delay = config.initial_rebalance_delay_ms_for(group_configs)
            if not group.members and delay > 0 and not ctx.timer.is_scheduled(
                    self._delay_key(gid)):
                # Kafka 4.4: the first assignment of a group that was empty waits for
                # more members (group.streams.initial.rebalance.delay.ms).
                ctx.timer.schedule(self._delay_key(gid), delay,
                                   lambda: self._assign_after_delay(gid))

        # 4. The target assignment of this epoch.
        members_after = dict(group.members)
        target = dict(group.target)
        if replaced is not None:
            del members_after[replaced.member_id]
            target[updated.member_id] = target.pop(replaced.member_id, TasksTuple())
            if group_epoch <= group.assignment_epoch:
                records.append(srec.encode(
                    srec.StreamsKey(srec.TARGET_MEMBER, gid, updated.member_id),
                    target_value(target[updated.member_id])))
        members_after[updated.member_id] = updated
        assignment_epoch = group.assignment_epoch
        if group_epoch > assignment_epoch and ctx.timer.is_scheduled(self._delay_key(gid)):
            statuses.append({"status_code": ASSIGNMENT_DELAYED, "status_detail":
                             "Assignment delayed due to the configured initial rebalance "
                             "delay."})
            target = {**target, updated.member_id: TasksTuple()}
            # At least epoch 1: a member told epoch 0 would have to join again.
            assignment_epoch = max(1, assignment_epoch)
        elif group_epoch > assignment_epoch:
            target = self._target_records(gid, group_epoch, members_after, target,
                                          configured, standbys, records)
            assignment_epoch = group_epoch

        # 5. One step of the member towards its target.
        reconciled = reconcile(updated, assignment_epoch,
                               target.get(updated.member_id, TasksTuple()), group,
                               request.owned)
        if is_new or reconciled.assignment_value() != member.assignment_value():
            records.append(srec.encode(
                srec.StreamsKey(srec.CURRENT_ASSIGNMENT, gid, updated.member_id),
                reconciled.assignment_value()))
            if reconciled.state is MemberState.UNREVOKED_TASKS:
                self._schedule_rebalance_timeout(gid, reconciled)
            else:
                ctx.timer.cancel(self._rebalance_key(gid, updated.member_id))
        self.schedule_session_timeout(gid, updated.member_id)
        if request.shutdown_application:
            group.shutdown_requested_by = request.member_id
        # Reports, not state: kept in memory for StreamsGroupDescribe, as Kafka does.
        for reported, store in ((request.task_offsets, group.task_offsets),
                                (request.task_end_offsets, group.task_end_offsets)):
            if reported is not None:
                store[updated.member_id] = {(s, p): o for s, p, o in reported}

        response: dict[str, Any] = {
            "throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
            "member_id": reconciled.member_id, "member_epoch": reconciled.member_epoch,
            "heartbeat_interval": config.heartbeat_interval_ms_for(group_configs),
            "acceptable_recovery_lag": config.acceptable_recovery_lag,
            "task_offset_interval": config.task_offset_interval_ms_for(group_configs),
            "status": None, "active_tasks": None, "standby_tasks": None,
            "warmup_tasks": None, "endpoint_information_epoch": 0,
            "partitions_by_user_endpoint": None,
        }
        if joining or reconciled.assigned != member.assigned:
            response["active_tasks"] = _tasks_response(reconciled.assigned.active)
            response["standby_tasks"] = _tasks_response(reconciled.assigned.standby)
            response["warmup_tasks"] = _tasks_response(reconciled.assigned.warmup)
            if reconciled.user_endpoint is not None:
                # Where the tasks live changed: interactive queries must learn it.
                group.endpoint_information_epoch += 1
        if group.endpoint_information_epoch != request.endpoint_information_epoch:
            response["partitions_by_user_endpoint"] = endpoints(
                members_after | {reconciled.member_id: reconciled}, configured)
        if gid in ctx.groups:
            response["endpoint_information_epoch"] = group.endpoint_information_epoch
        to_create: tuple[InternalTopic, ...] = ()
        if configured is not None and configured.status_code is not None:
            to_create = configured.to_create
            statuses.append({"status_code": configured.status_code,
                             "status_detail": configured.status_detail})
        if group.shutdown_requested_by is not None:
            statuses.append({"status_code": SHUTDOWN_APPLICATION, "status_detail":
                             f"Streams group member {group.shutdown_requested_by} encountered "
                             "a fatal error and requested a shutdown for the entire "
                             "application."})
        if statuses:
            response["status"] = statuses
        return Result(HeartbeatOutcome(response, to_create), records)

    def _static_member(self, group: StreamsGroup, request: StreamsHeartbeat,
                       records: list[RecordPair]
                       ) -> tuple[StreamsGroupMember, StreamsGroupMember | None]:
        """The member a heartbeat with an instance id is from, and the static member it
        replaces (KIP-345 for streams groups: a restarted instance takes over the tasks of
        its previous member id once that one left with epoch -2)."""
        instance = request.instance_id
        assert instance is not None
        static_id = group.static_members.get(instance)
        static = group.members.get(static_id) if static_id is not None else None
        if request.member_epoch == 0:
            if static is None or static.member_id == request.member_id:
                return (group.members.get(request.member_id)
                        or StreamsGroupMember(request.member_id)), None
            if static.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                raise UnreleasedInstanceIdError(
                    f"Static member {static.member_id} with instance id {instance} is not "
                    "released yet.")
            records.extend(member_tombstones(group.group_id, static.member_id))
            self.cancel_timers(group.group_id, static.member_id)
            return replace(static, member_id=request.member_id, member_epoch=0,
                           previous_member_epoch=0), static
        if static is None:
            raise UnknownMemberIdError(f"Instance id {instance} is unknown.")
        if static.member_id != request.member_id:
            raise FencedInstanceIdError(
                f"Static member {request.member_id} with instance id {instance} was fenced "
                f"by member {static.member_id}.")
        check_epoch(static, request.member_epoch, request.owned)
        return static, None

    def _target_records(self, gid: str, group_epoch: int,
                        members: dict[str, StreamsGroupMember], target: dict[str, TasksTuple],
                        configured: ConfiguredTopology | None, standbys: int,
                        records: list[RecordPair]) -> dict[str, TasksTuple]:
        """The new target assignment of `group_epoch`; its records go to `records`."""
        new_target = self._compute_target(members, target, configured, standbys)
        for mid, tasks in sorted(new_target.items()):
            if mid not in target or tasks.normalized() != target[mid].normalized():
                records.append(srec.encode(srec.StreamsKey(srec.TARGET_MEMBER, gid, mid),
                                           target_value(tasks)))
        records.append(srec.encode(srec.StreamsKey(srec.TARGET_METADATA, gid), {
            "assignment_epoch": group_epoch, "assignment_timestamp": self.ctx.now_ms()}))
        return new_target

    def _assign_after_delay(self, gid: str) -> Result[Any]:
        """The initial rebalance delay is over: the target of the group's epoch, for the
        members there are now (they reconcile on their next heartbeats)."""
        group = self.find(gid)
        if group is None or group.topology is None or group.group_epoch <= group.assignment_epoch:
            return Result(None)
        configured = group.configured or configure(group.topology, self.ctx.image())
        standbys = self.ctx.config.streams.num_standby_replicas_for(
            self.ctx.image().group_configs.get(gid, {}))
        records: list[RecordPair] = []
        self._target_records(gid, group.group_epoch, dict(group.members), dict(group.target),
                             configured, standbys, records)
        return Result(None, records)

    def _compute_target(self, members: dict[str, StreamsGroupMember],
                        previous: dict[str, TasksTuple], configured: ConfiguredTopology | None,
                        standbys: int) -> dict[str, TasksTuple]:
        if configured is None or not configured.is_ready or configured.subtopologies is None:
            return {mid: TasksTuple() for mid in members}
        specs = [streams_assignor.AssignmentMember(mid, m.process_id or mid,
                                                   previous.get(mid, m.assigned),
                                                   dict(m.client_tags))
                 for mid, m in members.items()]
        counts = {sub: s.number_of_tasks for sub, s in configured.subtopologies.items()}
        stateful = frozenset(sub for sub, s in configured.subtopologies.items()
                             if s.state_changelog_topics)
        return streams_assignor.assign(specs, counts, standbys,
                                       self.ctx.config.streams.rack_aware_assignment_tags,
                                       stateful)

    def describe(self, group_id: str) -> dict[str, Any]:
        """A StreamsGroupDescribe entry (without authorized operations)."""
        group = self.ctx.groups.get(group_id)
        if not isinstance(group, StreamsGroup):
            raise GroupIdNotFoundError(f"Group {group_id} not found." if group is None
                                       else f"Group {group_id} is not a streams group.")
        return describe_group(group, self.ctx.image())

    # -- leaving and fencing ----------------------------------------------------------

    def _leave(self, request: StreamsHeartbeat) -> Result[HeartbeatOutcome]:
        group = self.find(request.group_id)
        if group is None:
            raise GroupIdNotFoundError(f"Streams group {request.group_id} not found.")
        member = group.members.get(request.member_id)
        if member is None:
            raise UnknownMemberIdError(
                f"Member {request.member_id} is not a member of group {group.group_id}.")
        if request.instance_id is not None and member.instance_id != request.instance_id:
            raise FencedInstanceIdError(
                f"Static member {request.member_id} with instance id {request.instance_id} "
                "was fenced by another member.")
        response = {"throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
                    "member_id": request.member_id, "member_epoch": request.member_epoch,
                    "heartbeat_interval": 0, "acceptable_recovery_lag": 0,
                    "task_offset_interval": 0, "status": None, "active_tasks": None,
                    "standby_tasks": None, "warmup_tasks": None,
                    "endpoint_information_epoch": 0, "partitions_by_user_endpoint": None}
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # Leaving for a restart: it keeps its tasks until its session times out.
            leaving = replace(member, member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH)
            return Result(HeartbeatOutcome(response), [srec.encode(
                srec.StreamsKey(srec.CURRENT_ASSIGNMENT, group.group_id, member.member_id),
                leaving.assignment_value())])
        result = self.fence(group, member)
        return Result(HeartbeatOutcome(response), result.records)

    def fence(self, group: StreamsGroup, member: StreamsGroupMember) -> Result[None]:
        """Remove a member; the group epoch moves so the others get its tasks."""
        gid = group.group_id
        self.cancel_timers(gid, member.member_id)
        records = member_tombstones(gid, member.member_id)
        records.append(srec.encode(srec.StreamsKey(srec.METADATA, gid), {
            "epoch": group.group_epoch + 1, "metadata_hash": group.metadata_hash,
            "validated_topology_epoch": group.validated_topology_epoch,
            "last_assignment_configs": None if group.last_assignment_configs is None else [
                {"key": k, "value": v} for k, v in group.last_assignment_configs]}))
        return Result(None, records)

    # -- timers -----------------------------------------------------------------------

    @staticmethod
    def _session_key(group_id: str, member_id: str) -> str:
        return f"streams-session-{group_id}-{member_id}"

    @staticmethod
    def _rebalance_key(group_id: str, member_id: str) -> str:
        return f"streams-rebalance-{group_id}-{member_id}"

    @staticmethod
    def _delay_key(group_id: str) -> str:
        return f"streams-initial-rebalance-{group_id}"

    def cancel_timers(self, group_id: str, member_id: str) -> None:
        self.ctx.timer.cancel(self._session_key(group_id, member_id))
        self.ctx.timer.cancel(self._rebalance_key(group_id, member_id))

    def schedule_session_timeout(self, group_id: str, member_id: str) -> None:
        timeout = self.ctx.config.streams.session_timeout_ms_for(
            self.ctx.image().group_configs.get(group_id, {}))

        def expire() -> Result[Any]:
            group = self.find(group_id)
            member = group.members.get(member_id) if group is not None else None
            if group is None or member is None:
                return Result(None)
            log.info("streams group %s: member %s session expired", group_id, member_id)
            return self.fence(group, member)

        self.ctx.timer.schedule(self._session_key(group_id, member_id), timeout, expire)

    def _schedule_rebalance_timeout(self, group_id: str, member: StreamsGroupMember) -> None:
        member_id, epoch = member.member_id, member.member_epoch

        def expire() -> Result[Any]:
            group = self.find(group_id)
            current = group.members.get(member_id) if group is not None else None
            if (group is None or current is None or current.member_epoch != epoch
                    or current.state is not MemberState.UNREVOKED_TASKS):
                return Result(None)
            log.info("streams group %s: member %s did not revoke its tasks in time",
                     group_id, member_id)
            return self.fence(group, current)

        self.ctx.timer.schedule(self._rebalance_key(group_id, member_id),
                                max(member.rebalance_timeout_ms, 0), expire)

    def on_loaded(self, group: StreamsGroup) -> None:
        for member in group.members.values():
            self.schedule_session_timeout(group.group_id, member.member_id)
            if member.state is MemberState.UNREVOKED_TASKS:
                self._schedule_rebalance_timeout(group.group_id, member)


def _check_owned(owned: TasksTuple, configured: ConfiguredTopology) -> None:
    """Kafka's throwIfRequestContainsInvalidTasks: the tasks a member reports must be
    tasks of the configured topology."""
    subtopologies = configured.subtopologies or {}
    for kind in owned.kinds():
        for sub_id, partitions in kind.items():
            sub = subtopologies.get(sub_id)
            if sub is None:
                raise InvalidRequestError(f"Subtopology {sub_id} does not exist in the "
                                          "topology.")
            for p in sorted(partitions):
                if not 0 <= p < sub.number_of_tasks:
                    raise InvalidRequestError(
                        f"Task {p} for subtopology {sub_id} is invalid. Number of tasks for "
                        f"this subtopology: {sub.number_of_tasks}")


def _canonical(topology: Mapping[str, Any]) -> Any:
    """A topology compared as Kafka compares them: subtopologies by id."""
    def freeze(value: Any) -> Any:
        if isinstance(value, Mapping):
            return tuple(sorted((k, freeze(v)) for k, v in value.items()))
        if isinstance(value, (list, tuple)):
            return tuple(freeze(v) for v in value)
        return value

    return (topology["epoch"], tuple(sorted(freeze(s) for s in topology["subtopologies"])))
