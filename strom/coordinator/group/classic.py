"""A classic consumer group: its state machine, members and protocol selection.

The rebalance protocol that drives it (JoinGroup, SyncGroup, Heartbeat,
LeaveGroup and their timers) is in `classic_protocol.py`; this module is the
data it works on, as Kafka's ClassicGroup and ClassicGroupMember are.

States are data (CONVENTIONS 6): `ClassicGroupState` and `LEGAL_PREVIOUS`,
checked in `ClassicGroup.transition_to` only. What each state answers is in
its docstring.

Parked JoinGroup and SyncGroup requests are `Responder`s: a callback taking
the response dict. The handler that parked the request turns it into an
asyncio future; the state machine itself never awaits.
"""

from __future__ import annotations

import enum
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kio.schema.consumer_protocol_subscription.v0.data import ConsumerProtocolSubscription
from kio.serial import entity_reader

from strom.coordinator.group.errors import (
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    GroupIdNotFoundError,
    IllegalGenerationError,
    NonEmptyGroupError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from strom.coordinator.group.records import GroupMetadataValue, MemberMetadata
from strom.coordinator.group.requests import Protocols
from strom.errors import ErrorCode, error_code_for
from strom.protocol.request_check import check_entity

Responder = Callable[[dict[str, Any]], None]

CONSUMER_PROTOCOL_TYPE = "consumer"
NO_LEADER = ""
UNKNOWN_MEMBER_ID = ""


class ClassicGroupState(enum.Enum):
    EMPTY = "Empty"
    """No members. JoinGroup starts the first rebalance; offsets may be committed by
    anyone with generation -1 (admin tools, manual assignment); Heartbeat and
    SyncGroup get UNKNOWN_MEMBER_ID. Offsets expire once the group has been empty
    for offsets.retention.minutes; the group is then deleted."""

    PREPARING_REBALANCE = "PreparingRebalance"
    """Waiting for every member to (re)join: JoinGroup is parked until all have or
    the rebalance timeout passes; Heartbeat and SyncGroup get REBALANCE_IN_PROGRESS;
    commits from the previous generation are still accepted."""

    COMPLETING_REBALANCE = "CompletingRebalance"
    """The new generation is chosen; waiting for the leader's SyncGroup with the
    assignment. SyncGroup is parked; Heartbeat succeeds; OffsetCommit gets
    REBALANCE_IN_PROGRESS; a JoinGroup with changed metadata starts over."""

    STABLE = "Stable"
    """Every member has its assignment. Heartbeat succeeds; SyncGroup returns the
    member's assignment; a JoinGroup from the leader or with changed metadata, a
    leave or a session timeout starts a rebalance."""

    DEAD = "Dead"
    """Deleted or unloaded: the group is about to disappear. Requests get
    COORDINATOR_NOT_AVAILABLE (so clients look the coordinator up again)."""

    @property
    def lower(self) -> str:
        return self.value.lower()


S = ClassicGroupState
LEGAL_PREVIOUS: dict[ClassicGroupState, frozenset[ClassicGroupState]] = {
    S.PREPARING_REBALANCE: frozenset({S.STABLE, S.COMPLETING_REBALANCE, S.EMPTY}),
    S.COMPLETING_REBALANCE: frozenset({S.PREPARING_REBALANCE}),
    S.STABLE: frozenset({S.COMPLETING_REBALANCE}),
    S.EMPTY: frozenset({S.PREPARING_REBALANCE}),
    S.DEAD: frozenset({S.STABLE, S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE, S.EMPTY,
                       S.DEAD}),
}


class IllegalStateTransition(RuntimeError):
    """A bug: the protocol asked for a transition the table forbids."""


def append_error_code(exc: BaseException) -> ErrorCode:
    """The error a client gets when writing group metadata failed (Kafka's
    appendGroupMetadataErrorToResponseError)."""
    code = error_code_for(exc)
    if code in (ErrorCode.unknown_topic_or_partition, ErrorCode.not_enough_replicas,
                ErrorCode.request_timed_out):
        return ErrorCode.coordinator_not_available
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    if code in (ErrorCode.message_too_large, ErrorCode.record_list_too_large,
                ErrorCode.invalid_fetch_size):
        return ErrorCode.unknown_server_error
    return code


@dataclass(eq=False, slots=True)
class ClassicGroupMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    awaiting_join: Responder | None = None
    awaiting_sync: Responder | None = None
    # Joined but not yet through a rebalance: its session timer is the new-member one.
    is_new: bool = False

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def matches(self, protocols: Protocols) -> bool:
        return self.protocols == protocols

    def vote(self, candidates: set[str]) -> str:
        """The first of its protocols, in its order of preference, that all support."""
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def has_satisfied_heartbeat(self) -> bool:
        """Members parked in a rebalance need no heartbeat; new ones always do."""
        if self.is_new:
            return False
        return self.awaiting_join is not None or self.awaiting_sync is not None


def join_response(member_id: str, error: ErrorCode = ErrorCode.none, *,
                  generation_id: int = -1, protocol_type: str | None = None,
                  protocol_name: str | None = None, leader: str = NO_LEADER,
                  skip_assignment: bool = False,
                  members: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": error, "generation_id": generation_id,
            "protocol_type": protocol_type, "protocol_name": protocol_name,
            "leader": leader, "skip_assignment": skip_assignment, "member_id": member_id,
            "members": list(members)}


def sync_response(error: ErrorCode = ErrorCode.none, *, protocol_type: str | None = None,
                  protocol_name: str | None = None, assignment: bytes = b"") -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": error, "protocol_type": protocol_type,
            "protocol_name": protocol_name, "assignment": assignment}


@dataclass(eq=False)
class ClassicGroup:
    group_id: str
    state: ClassicGroupState = ClassicGroupState.EMPTY
    previous_state: ClassicGroupState = ClassicGroupState.DEAD
    current_state_timestamp: int | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None
    generation_id: int = 0
    leader_id: str | None = None
    members: dict[str, ClassicGroupMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    pending_join_members: set[str] = field(default_factory=set)
    pending_sync_members: set[str] = field(default_factory=set)
    supported_protocols: Counter[str] = field(default_factory=Counter)
    subscribed_topics: frozenset[str] | None = None
    # An initial rebalance is extended while new members keep arriving.
    new_member_added: bool = False

    type_name = "classic"

    # -- state ------------------------------------------------------------------------

    def transition_to(self, target: ClassicGroupState, now_ms: int) -> None:
        if self.state not in LEGAL_PREVIOUS[target]:
            raise IllegalStateTransition(
                f"group {self.group_id}: {self.state.value} -> {target.value} is illegal")
        self.previous_state = self.state
        self.state = target
        self.current_state_timestamp = now_ms

    def is_in(self, *states: ClassicGroupState) -> bool:
        return self.state in states

    @property
    def can_rebalance(self) -> bool:
        return self.state in LEGAL_PREVIOUS[S.PREPARING_REBALANCE]

    @property
    def is_empty(self) -> bool:
        return self.state is S.EMPTY

    @property
    def state_name(self) -> str:
        return self.state.value

    @property
    def uses_consumer_protocol(self) -> bool:
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    # -- members ----------------------------------------------------------------------

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def is_pending_member(self, member_id: str) -> bool:
        return member_id in self.pending_join_members

    def add_pending_member(self, member_id: str) -> None:
        self.pending_join_members.add(member_id)

    def static_member_id(self, group_instance_id: str) -> str | None:
        return self.static_members.get(group_instance_id)

    @property
    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.awaiting_join is not None)

    def add(self, member: ClassicGroupMember, responder: Responder | None = None) -> None:
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self.supported_protocols.update(member.protocol_names)
        member.awaiting_join = responder
        self.pending_join_members.discard(member.member_id)

    def remove(self, member_id: str) -> None:
        member = self.members.pop(member_id, None)
        if member is not None:
            self.supported_protocols.subtract(member.protocol_names)
            if member.group_instance_id is not None:
                self.static_members.pop(member.group_instance_id, None)
        if self.is_leader(member_id):
            self.leader_id = next(iter(self.members), None)
        self.pending_join_members.discard(member_id)
        self.pending_sync_members.discard(member_id)

    def update_member(self, member: ClassicGroupMember, protocols: Protocols,
                      rebalance_timeout_ms: int, session_timeout_ms: int,
                      responder: Responder | None) -> None:
        self.supported_protocols.subtract(member.protocol_names)
        member.protocols = protocols
        self.supported_protocols.update(member.protocol_names)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        member.awaiting_join = responder

    def replace_static_member(self, group_instance_id: str, old_member_id: str,
                              new_member_id: str) -> ClassicGroupMember:
        """A restarted static member takes over its old identity; the old one is fenced."""
        old = self.members.pop(old_member_id)
        self.complete_join(old, join_response(old_member_id, ErrorCode.fenced_instance_id))
        self.complete_sync(old, sync_response(ErrorCode.fenced_instance_id))
        new = ClassicGroupMember(
            new_member_id, old.group_instance_id, old.client_id, old.client_host,
            old.rebalance_timeout_ms, old.session_timeout_ms, old.protocol_type,
            old.protocols, old.assignment)
        self.members[new_member_id] = new
        if self.is_leader(old_member_id):
            self.leader_id = new_member_id
        self.static_members[group_instance_id] = new_member_id
        self.pending_sync_members.discard(old_member_id)
        return new

    def maybe_elect_new_joined_leader(self) -> bool:
        """Keep the leader if it rejoined, else pick one that did; False if none did."""
        if self.leader_id is None:
            return False
        leader = self.members.get(self.leader_id)
        if leader is not None and leader.awaiting_join is not None:
            return True
        for member in self.members.values():
            if member.awaiting_join is not None:
                self.leader_id = member.member_id
                return True
        return False

    def not_yet_rejoined(self) -> list[ClassicGroupMember]:
        return [m for m in self.members.values() if m.awaiting_join is None]

    def has_all_members_joined(self) -> bool:
        return (len(self.members) == self.num_awaiting_join
                and not self.pending_join_members)

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    @staticmethod
    def generate_member_id(client_id: str, group_instance_id: str | None) -> str:
        return f"{group_instance_id if group_instance_id is not None else client_id}-{uuid.uuid4()}"

    # -- protocols --------------------------------------------------------------------

    def candidate_protocols(self) -> set[str]:
        n = len(self.members)
        return {name for name, count in self.supported_protocols.items() if count == n and n}

    def select_protocol(self) -> str:
        """The protocol all members support that most members prefer (Kafka's vote);
        ties go to the one the earliest member prefers."""
        if not self.members:
            raise ValueError(f"cannot select a protocol for empty group {self.group_id}")
        candidates = self.candidate_protocols()
        votes: Counter[str] = Counter(m.vote(candidates) for m in self.members.values())
        best = max(votes.values())
        for member in self.members.values():
            choice = member.vote(candidates)
            if votes[choice] == best:
                return choice
        raise AssertionError("unreachable")

    def supports_protocols(self, protocol_type: str, names: Iterable[str]) -> bool:
        names = set(names)
        if self.is_empty:
            return bool(protocol_type) and bool(names)
        n = len(self.members)
        return (self.protocol_type == protocol_type
                and any(self.supported_protocols.get(name, 0) == n for name in names))

    def compute_subscribed_topics(self) -> frozenset[str] | None:
        """The topics of every member's subscription, when the group uses the consumer
        protocol and all subscriptions parse; None when unknown."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            parsed = parse_subscription_topics(member.metadata(self.protocol_name))
            if parsed is None:
                return None
            topics.update(parsed)
        return frozenset(topics)

    def is_subscribed_to_topic(self, topic: str) -> bool:
        if self.subscribed_topics is None:
            return self.uses_consumer_protocol
        return topic in self.subscribed_topics

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(S.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(S.EMPTY, now_ms)
        self.pending_sync_members.clear()

    # -- parked requests ------------------------------------------------------------------

    def complete_join(self, member: ClassicGroupMember, response: dict[str, Any]) -> bool:
        responder, member.awaiting_join = member.awaiting_join, None
        if responder is None:
            return False
        responder(response)
        return True

    def complete_sync(self, member: ClassicGroupMember, response: dict[str, Any]) -> bool:
        responder, member.awaiting_sync = member.awaiting_sync, None
        if responder is None:
            return False
        responder(response)
        return True

    def current_members_for_join(self) -> list[dict[str, Any]]:
        return [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                 "metadata": m.metadata(self.protocol_name)} for m in self.members.values()]

    # -- validation -------------------------------------------------------------------------

    def validate_member(self, member_id: str, group_instance_id: str | None) -> None:
        if group_instance_id is not None:
            existing = self.static_member_id(group_instance_id)
            if existing is None:
                raise UnknownMemberIdError(
                    f"static member {group_instance_id} is not in group {self.group_id}")
            if existing != member_id:
                raise FencedInstanceIdError(
                    f"member {member_id} of instance {group_instance_id} is fenced by "
                    f"{existing}")
        if member_id not in self.members:
            raise UnknownMemberIdError(f"member {member_id} is not in group {self.group_id}")

    def validate_offset_commit(self, member_id: str, group_instance_id: str | None,
                               generation_id: int, *, transactional: bool = False,
                               api_version: int = 9) -> None:
        if self.is_in(S.DEAD):
            raise CoordinatorNotAvailableError(f"group {self.group_id} is dead")
        if generation_id < 0 and self.is_in(S.EMPTY):
            return  # admin tools and consumers that assign partitions themselves
        if generation_id >= 0 or member_id or group_instance_id is not None:
            self.validate_member(member_id, group_instance_id)
            if generation_id != self.generation_id:
                raise IllegalGenerationError(
                    f"generation {generation_id} is not the group's {self.generation_id}")
        elif not transactional and not self.is_in(S.EMPTY):
            raise UnknownMemberIdError(
                f"group {self.group_id} has members; a commit must name one")
        if not transactional and self.is_in(S.COMPLETING_REBALANCE):
            raise RebalanceInProgressError(f"group {self.group_id} is rebalancing")

    def validate_offset_fetch(self) -> None:
        if self.is_in(S.DEAD):
            raise GroupIdNotFoundError(f"Group {self.group_id} is in dead state.")

    def validate_offset_delete(self) -> None:
        if self.is_in(S.DEAD):
            raise GroupIdNotFoundError(f"Group {self.group_id} is in dead state.")
        if (self.is_in(S.STABLE, S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE)
                and not self.uses_consumer_protocol):
            raise NonEmptyGroupError(f"group {self.group_id} is not empty")

    def validate_delete_group(self) -> None:
        if self.is_in(S.DEAD):
            raise GroupIdNotFoundError(f"Group {self.group_id} is in dead state.")
        if self.is_in(S.STABLE, S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE):
            raise NonEmptyGroupError(f"group {self.group_id} is not empty")

    # -- records ----------------------------------------------------------------------------

    def metadata_value(self, assignment: dict[str, bytes] | None = None) -> GroupMetadataValue:
        """The GroupMetadataValue of the group as it stands, with `assignment` for the
        members it names (the others keep theirs); an empty group records no members."""
        timestamp = self.current_state_timestamp if self.current_state_timestamp is not None \
            else -1
        if self.is_in(S.EMPTY) or not self.members:
            return GroupMetadataValue(self.protocol_type or "", self.generation_id, None, None,
                                      timestamp, ())
        assigned = assignment or {}
        members = tuple(
            MemberMetadata(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                           m.rebalance_timeout_ms, m.session_timeout_ms,
                           m.metadata(self.protocol_name),
                           assigned.get(m.member_id, m.assignment))
            for m in self.members.values())
        return GroupMetadataValue(self.protocol_type or "", self.generation_id,
                                  self.protocol_name, self.leader_id, timestamp, members)

    @classmethod
    def from_record(cls, group_id: str, value: GroupMetadataValue) -> ClassicGroup:
        """A group as loaded from its latest GroupMetadata record (Kafka's replay):
        Stable with its members, or Empty."""
        protocol_type = value.protocol_type or None
        group = cls(
            group_id,
            state=S.STABLE if value.members else S.EMPTY,
            current_state_timestamp=(value.current_state_timestamp
                                     if value.current_state_timestamp != -1 else None),
            protocol_type=protocol_type, protocol_name=value.protocol,
            generation_id=value.generation, leader_id=value.leader,
        )
        for m in value.members:
            rebalance_timeout = m.rebalance_timeout if m.rebalance_timeout != -1 \
                else m.session_timeout
            group.add(ClassicGroupMember(
                m.member_id, m.group_instance_id, m.client_id, m.client_host,
                rebalance_timeout, m.session_timeout, value.protocol_type,
                ((value.protocol or "", m.subscription),), m.assignment))
        group.leader_id = value.leader if value.members else None
        group.subscribed_topics = group.compute_subscribed_topics()
        return group


def parse_subscription_topics(metadata: bytes) -> list[str] | None:
    """The topics of a ConsumerProtocolSubscription (any version: v0 is the prefix
    of every later one), or None if it does not parse."""
    if len(metadata) < 2:
        return None
    try:
        # The bytes are the client's: bound their counts before kio allocates.
        check_entity(ConsumerProtocolSubscription, memoryview(metadata)[2:], 0)
        subscription, _ = entity_reader(ConsumerProtocolSubscription)(
            memoryview(metadata)[2:], 0)
    except Exception:
        return None
    return list(subscription.topics)
