"""Streams groups (KIP-1071): the group, its members and their tasks.

A streams group is to Kafka Streams what a KIP-848 consumer group is to the
consumer: the coordinator owns the assignment. What is assigned are tasks
(subtopology id, partition), as active, standby and warm-up tasks; members
are consumers of Kafka Streams instances, several per process (process id),
each with its client tags and interactive-query endpoint. The epochs and
the reconciliation are KIP-848's: a member gives up the tasks it must
revoke before it gets new ones (UNREVOKED_TASKS), and a task another member
still holds is only handed over once released (UNRELEASED_TASKS). An active
task is released when no member holds it; a standby or warm-up task when
no other member of the same process holds the task in any role.

State changes only by replaying records (streams_protocol.py); everything
here is values computed from the group.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from strom.coordinator.group import streams_records as srec
from strom.coordinator.group.errors import (
    IllegalGenerationError,
    StaleMemberEpochError,
    UnsupportedVersionError,
)
from strom.coordinator.group.modern import (
    PartitionCheck,
    check_empty,
    find_member,
    members_tombstones,
    reconciliation_state,
)
from strom.coordinator.group.records import RecordPair
from strom.coordinator.group.streams_topology import ConfiguredTopology

Tasks = Mapping[str, frozenset[int]]
EMPTY: Tasks = {}


class MemberState(enum.IntEnum):
    """Kafka's streams MemberState, as recorded."""

    STABLE = 0
    UNREVOKED_TASKS = 1
    UNRELEASED_TASKS = 2
    UNKNOWN = 127


class StreamsGroupState(enum.Enum):
    EMPTY = "Empty"
    """No members."""
    NOT_READY = "NotReady"
    """Members, but no topology yet or one not configured (topics missing or wrong):
    members get no tasks and a status saying why."""
    ASSIGNING = "Assigning"
    """The group epoch is ahead of the target assignment's."""
    RECONCILING = "Reconciling"
    """Some member has not reached its target assignment yet."""
    STABLE = "Stable"
    """Every member holds its target assignment."""
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class TasksTuple:
    active: Tasks = field(default_factory=dict)
    standby: Tasks = field(default_factory=dict)
    warmup: Tasks = field(default_factory=dict)

    def kinds(self) -> tuple[Tasks, Tasks, Tasks]:
        return self.active, self.standby, self.warmup

    def is_empty(self) -> bool:
        return not any(ps for kind in self.kinds() for ps in kind.values())

    def contains_any(self, other: TasksTuple) -> bool:
        for mine, theirs in zip(self.kinds(), other.kinds(), strict=True):
            for sub, ps in theirs.items():
                if mine.get(sub, frozenset()) & ps:
                    return True
        return False

    def normalized(self) -> TasksTuple:
        return TasksTuple(*(normalize(kind) for kind in self.kinds()))


def normalize(tasks: Mapping[str, Iterable[int]]) -> dict[str, frozenset[int]]:
    return {sub: frozenset(ps) for sub, ps in tasks.items() if ps}


def tasks_out(tasks: Tasks, epochs: Mapping[tuple[str, int], int] | None = None
              ) -> list[dict[str, Any]]:
    """TaskIds entries, sorted as Kafka writes them; with their assignment epochs."""
    out = []
    for sub in sorted(tasks):
        partitions = sorted(tasks[sub])
        if not partitions:
            continue
        entry: dict[str, Any] = {"subtopology_id": sub, "partitions": partitions}
        if epochs is not None:
            entry["assignment_epochs"] = [epochs.get((sub, p), 0) for p in partitions]
        out.append(entry)
    return out


def tasks_in(items: Iterable[Any] | None) -> dict[str, frozenset[int]]:
    """TaskIds from records (dicts) or requests (kio entities)."""
    out: dict[str, set[int]] = {}
    for item in items or ():
        sub = item["subtopology_id"] if isinstance(item, Mapping) else item.subtopology_id
        ps = item["partitions"] if isinstance(item, Mapping) else item.partitions
        out.setdefault(sub, set()).update(int(p) for p in ps)
    return {sub: frozenset(ps) for sub, ps in out.items() if ps}


@dataclass(frozen=True, slots=True)
class StreamsGroupMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = -1
    topology_epoch: int = -1
    process_id: str = ""
    user_endpoint: tuple[str, int] | None = None
    client_tags: tuple[tuple[str, str], ...] = ()
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: TasksTuple = field(default_factory=TasksTuple)
    pending_revocation: TasksTuple = field(default_factory=TasksTuple)
    # (subtopology, partition) -> the member epoch the active task was assigned at
    # (Kafka 4.4: commits of an older epoch are accepted for tasks held since then).
    active_epochs: Mapping[tuple[str, int], int] = field(default_factory=dict)

    def metadata_value(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id, "rack_id": self.rack_id,
            "client_id": self.client_id, "client_host": self.client_host,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
            "topology_epoch": self.topology_epoch, "process_id": self.process_id,
            "user_endpoint": None if self.user_endpoint is None else {
                "host": self.user_endpoint[0], "port": self.user_endpoint[1]},
            "client_tags": [{"key": k, "value": v} for k, v in self.client_tags],
        }

    def assignment_value(self) -> dict[str, Any]:
        return {
            "member_epoch": self.member_epoch,
            "previous_member_epoch": self.previous_member_epoch,
            "state": int(self.state),
            "active_tasks": tasks_out(self.assigned.active, self.active_epochs),
            "standby_tasks": tasks_out(self.assigned.standby),
            "warmup_tasks": tasks_out(self.assigned.warmup),
            "active_tasks_pending_revocation":
                tasks_out(self.pending_revocation.active, self.active_epochs),
            "standby_tasks_pending_revocation": tasks_out(self.pending_revocation.standby),
            "warmup_tasks_pending_revocation": tasks_out(self.pending_revocation.warmup),
        }

    def with_assignment_value(self, value: Mapping[str, Any]) -> StreamsGroupMember:
        epochs: dict[tuple[str, int], int] = {}
        for key in ("active_tasks", "active_tasks_pending_revocation"):
            for item in value[key]:
                for p, e in zip(item["partitions"], item["assignment_epochs"] or (),
                                strict=False):
                    epochs[(item["subtopology_id"], p)] = e
        state = value["state"]
        return replace(
            self, member_epoch=value["member_epoch"],
            previous_member_epoch=value["previous_member_epoch"],
            state=MemberState(state) if state in MemberState._value2member_map_
            else MemberState.UNKNOWN,
            assigned=TasksTuple(tasks_in(value["active_tasks"]),
                                tasks_in(value["standby_tasks"]),
                                tasks_in(value["warmup_tasks"])),
            pending_revocation=TasksTuple(
                tasks_in(value["active_tasks_pending_revocation"]),
                tasks_in(value["standby_tasks_pending_revocation"]),
                tasks_in(value["warmup_tasks_pending_revocation"])),
            active_epochs=epochs)


def target_value(target: TasksTuple) -> dict[str, Any]:
    return {"active_tasks": tasks_out(target.active),
            "standby_tasks": tasks_out(target.standby),
            "warmup_tasks": tasks_out(target.warmup)}


@dataclass(eq=False)
class StreamsGroup:
    group_id: str
    group_epoch: int = 0
    metadata_hash: int = 0
    validated_topology_epoch: int = -1
    last_assignment_configs: tuple[tuple[str, str], ...] | None = None
    assignment_epoch: int = 0
    topology: dict[str, Any] | None = None
    members: dict[str, StreamsGroupMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member
    target: dict[str, TasksTuple] = field(default_factory=dict)
    # Not recorded: recomputed from the topology and the image when needed.
    configured: ConfiguredTopology | None = None
    configured_for: tuple[int, int] | None = None
    endpoint_information_epoch: int = 0
    shutdown_requested_by: str | None = None
    # The changelog offsets members last reported, by member: (subtopology, partition)
    # -> offset, for StreamsGroupDescribe; kept in memory only, as Kafka keeps them.
    task_offsets: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)
    task_end_offsets: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)

    type_name = "streams"
    protocol_type = "streams"

    @property
    def state(self) -> StreamsGroupState:
        if not self.members:
            return StreamsGroupState.EMPTY
        if self.topology is None or self.configured is None or not self.configured.is_ready:
            return StreamsGroupState.NOT_READY
        return StreamsGroupState(reconciliation_state(
            self.group_epoch, self.assignment_epoch, self.members.values()))

    @property
    def state_name(self) -> str:
        return self.state.value

    @property
    def is_empty(self) -> bool:
        return not self.members

    @property
    def topology_epoch(self) -> int:
        return int(self.topology["epoch"]) if self.topology is not None else -1

    # -- who holds a task now --------------------------------------------------------

    def active_owner(self, sub: str, partition: int, *, excluding: str = "") -> str | None:
        """The process holding an active task (assigned or being revoked)."""
        for member in self.members.values():
            if member.member_id == excluding:
                continue
            for tasks in (member.assigned.active, member.pending_revocation.active):
                if partition in tasks.get(sub, ()):
                    return member.process_id
        return None

    def other_role_processes(self, sub: str, partition: int, *, excluding: str = ""
                             ) -> set[str]:
        """Processes holding the task as a standby or warm-up task."""
        out = set()
        for member in self.members.values():
            if member.member_id == excluding:
                continue
            for tuple_ in (member.assigned, member.pending_revocation):
                if (partition in tuple_.standby.get(sub, ())
                        or partition in tuple_.warmup.get(sub, ())):
                    out.add(member.process_id)
        return out

    def is_subscribed_to_topic(self, topic: str) -> bool:
        if self.topology is None:
            return False
        for sub in self.topology["subtopologies"]:
            if topic in sub["source_topics"] or any(
                    t["name"] == topic for t in sub["repartition_source_topics"]):
                return True
        return False

    # -- validation (offsets, deletion) ------------------------------------------------

    def validate_offset_commit(self, member_id: str, group_instance_id: str | None,
                               generation_id: int, *, transactional: bool = False,
                               api_version: int = 9) -> PartitionCheck | None:
        """Kafka 4.4's checks; for a commit of an older member epoch, a check of each
        partition: its task must still be the member's and assigned at that epoch or
        before (a zombie's commit of a task that moved is refused)."""
        if generation_id < 0 and not self.members:
            return None  # an admin tool's commit to an empty group
        if (transactional and generation_id == -1 and member_id == ""
                and group_instance_id is None):
            return None  # a transactional producer that names no member (Kafka 4.4)
        member = find_member(self.members, member_id, self.group_id)
        if not transactional and api_version < 9:
            raise UnsupportedVersionError(
                "OffsetCommit version 9 or above must be used by members using the "
                "streams group protocol")
        if generation_id == member.member_epoch:
            return None
        if generation_id > member.member_epoch:
            raise StaleMemberEpochError(
                f"Received member epoch {generation_id} is newer than current member epoch "
                f"{member.member_epoch}.")
        subtopologies: dict[str, list[str]] = {}
        for sub in (self.topology or {}).get("subtopologies", ()):
            for name in list(sub["source_topics"]) + [
                    t["name"] for t in sub["repartition_source_topics"]]:
                subtopologies.setdefault(name, []).append(sub["subtopology_id"])

        def check(topic: str, topic_id: uuid.UUID | None, partition: int) -> None:
            del topic_id
            subs = subtopologies.get(topic)
            if not subs:
                raise StaleMemberEpochError(
                    f"Topic {topic} is not consumed by the topology of the group.")
            for sub in subs:
                epoch = member.active_epochs.get((sub, partition))
                if epoch is None:
                    raise StaleMemberEpochError(
                        f"Task {sub}-{partition} is not assigned or pending revocation for "
                        "member.")
                if generation_id < epoch:
                    raise StaleMemberEpochError(
                        f"Received member epoch {generation_id} is older than assignment "
                        f"epoch {epoch} for task {sub}-{partition}.")

        return check

    def validate_offset_fetch(self, member_id: str | None = None, member_epoch: int = -1
                              ) -> None:
        if member_id is None and member_epoch < 0:
            return
        member = find_member(self.members, member_id or "", self.group_id)
        if member_epoch != member.member_epoch:
            raise StaleMemberEpochError(
                f"The received member epoch {member_epoch} does not match the expected "
                f"member epoch {member.member_epoch}.")

    def validate_offset_delete(self) -> None:
        pass

    def validate_delete_group(self) -> None:
        check_empty(self.group_id, self.members)

    def validate_classic_generation(self, generation_id: int) -> None:
        raise IllegalGenerationError(f"generation {generation_id}: {self.group_id} is a "
                                     "streams group")

    def tombstones(self) -> list[RecordPair]:
        """Records deleting the whole group, in Kafka's order."""
        gid = self.group_id
        out = members_tombstones(gid, self.members, self.target, member_tombstones,
                                 _target_member_tombstone)
        out.append(srec.encode(srec.StreamsKey(srec.TARGET_METADATA, gid), None))
        out.append(srec.encode(srec.StreamsKey(srec.TOPOLOGY, gid), None))
        out.append(srec.encode(srec.StreamsKey(srec.METADATA, gid), None))
        return out


def _target_member_tombstone(group_id: str, member_id: str) -> RecordPair:
    return srec.encode(srec.StreamsKey(srec.TARGET_MEMBER, group_id, member_id), None)


def member_tombstones(group_id: str, member_id: str) -> list[RecordPair]:
    return [srec.encode(srec.StreamsKey(t, group_id, member_id), None)
            for t in (srec.CURRENT_ASSIGNMENT, srec.TARGET_MEMBER, srec.MEMBER_METADATA)]
