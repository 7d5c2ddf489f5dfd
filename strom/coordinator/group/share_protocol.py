"""ShareGroupHeartbeat and ShareGroupDescribe: the share group protocol (KIP-932).

A heartbeat runs Kafka's three steps on a snapshot of the group and produces
records only: (1) create or update the member, bumping the group epoch when
subscriptions or the subscribed topics' metadata changed; (2) when the group
epoch is ahead of the target assignment's, run the simple assignor over the
partitions whose share state is initialized; (3) give the member its target
at once (there is nothing to revoke in a share group). Replay (`replay`) is
the only code that changes a ShareGroup.

Share-partition state: a heartbeat that finds partitions of subscribed topics
without share state records them as initializing
(ShareGroupStatePartitionMetadata) and returns them; the service initializes
them through the Persister (start offset -1: the share partition resolves it
with share.auto.offset.reset) and then calls `initialized`, which records
them as initialized and bumps the group epoch so that the next heartbeat
assigns them, as Kafka 4.x does. Without a Persister (no share coordinator)
there is no state to create and they count as initialized at once.

Timers: `share-session-<group>-<member>` fences a member that stopped
heartbeating within its session timeout (share.session.timeout.ms).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from strom.cluster.image import MetadataImage
from strom.coordinator.group import share_records as srec
from strom.coordinator.group.consumer import metadata_hash
from strom.coordinator.group.context import ShardContext
from strom.coordinator.group.errors import (
    FencedMemberEpochError,
    GroupIdNotFoundError,
    GroupMaxSizeReachedError,
    InvalidRequestError,
    UnknownMemberIdError,
)
from strom.coordinator.group.records import RecordPair, encode
from strom.coordinator.group.requests import ShareHeartbeatRequest
from strom.coordinator.group.share_group import (
    LEAVE_GROUP_MEMBER_EPOCH,
    SIMPLE_ASSIGNOR,
    Assignment,
    ShareGroup,
    ShareGroupMember,
    member_tombstones,
    simple_assign,
)
from strom.coordinator.runtime import Result
from strom.errors import ErrorCode

log = logging.getLogger(__name__)

#: (topic id, topic name, partitions) whose share state is to be initialized.
TopicInit = tuple[uuid.UUID, str, frozenset[int]]


@dataclass(frozen=True, slots=True)
class ShareHeartbeatOutcome:
    response: dict[str, Any]
    #: Partitions the service must initialize through the Persister, at this epoch.
    initialize: tuple[TopicInit, ...] = ()
    group_epoch: int = 0


def validate_heartbeat(request: ShareHeartbeatRequest) -> None:
    """Kafka 4.4's checks of a ShareGroupHeartbeat's fields (INVALID_REQUEST)."""
    if not request.group_id:
        raise InvalidRequestError("GroupId can't be empty.")
    if request.rack_id == "":
        raise InvalidRequestError("RackId can't be empty.")
    if not request.member_id:
        raise InvalidRequestError("MemberId can't be empty.")
    if request.member_epoch == 0:
        if not request.subscribed_topic_names:
            raise InvalidRequestError("SubscribedTopicNames must be set in first request.")
    elif request.member_epoch < LEAVE_GROUP_MEMBER_EPOCH:
        raise InvalidRequestError("MemberEpoch is invalid.")


class ShareGroupManager:
    def __init__(self, ctx: ShardContext) -> None:
        self.ctx = ctx
        #: Whether partitions need their state initialized through a Persister
        #: (set by the service when a share coordinator exists).
        self.has_persister = False
        #: (group, topic id) -> when this process asked the Persister to initialize its
        #: partitions. Partitions recorded as initializing without an entry here (the
        #: broker restarted, or the coordinator moved, before the answer was recorded),
        #: or asked longer than group.share.initialize.retry.interval.ms ago, are
        #: initialized again (Kafka's InitMapValue timestamps).
        self.initializing_since: dict[tuple[str, uuid.UUID], int] = {}

    def find(self, group_id: str) -> ShareGroup | None:
        group = self.ctx.groups.get(group_id)
        return group if isinstance(group, ShareGroup) else None

    def require(self, group_id: str) -> ShareGroup:
        group = self.ctx.groups.get(group_id)
        if group is None:
            raise GroupIdNotFoundError(f"Share group {group_id} not found.")
        if not isinstance(group, ShareGroup):
            raise GroupIdNotFoundError(f"Group {group_id} is not a share group.")
        return group

    # -- replay ---------------------------------------------------------------------------

    def replay(self, key: srec.ShareKey, value: srec.ShareValue | None) -> None:
        group_id = key.group_id
        if value is None:
            self._replay_tombstone(key)
            return
        group = self.find(group_id)
        if group is None:
            group = ShareGroup(group_id)
            self.ctx.groups[group_id] = group
        if isinstance(value, srec.ShareGroupMetadataValue):
            group.group_epoch = value.epoch
            group.metadata_hash = value.metadata_hash
        elif isinstance(value, srec.ShareGroupMemberMetadataValue):
            assert isinstance(key, srec.ShareGroupMemberMetadataKey)
            old = group.members.get(key.member_id) or ShareGroupMember(key.member_id)
            group.members[key.member_id] = replace(
                old, rack_id=value.rack_id, client_id=value.client_id,
                client_host=value.client_host,
                subscribed_topic_names=tuple(value.subscribed_topic_names))
        elif isinstance(value, srec.ShareGroupTargetAssignmentMetadataValue):
            group.assignment_epoch = value.assignment_epoch
        elif isinstance(value, srec.ShareGroupTargetAssignmentMemberValue):
            assert isinstance(key, srec.ShareGroupTargetAssignmentMemberKey)
            group.target[key.member_id] = dict(value.partitions)
        elif isinstance(value, srec.ShareGroupCurrentMemberAssignmentValue):
            assert isinstance(key, srec.ShareGroupCurrentMemberAssignmentKey)
            old = group.members.get(key.member_id) or ShareGroupMember(key.member_id)
            group.members[key.member_id] = replace(
                old, member_epoch=value.member_epoch,
                previous_member_epoch=value.previous_member_epoch,
                assigned=dict(value.assigned_partitions))
        elif isinstance(value, srec.ShareGroupStatePartitionMetadataValue):
            group.has_state_metadata = True
            group.initializing = {i.topic_id: (i.topic_name, i.partitions)
                                  for i in value.initializing}
            group.initialized = {i.topic_id: (i.topic_name, i.partitions)
                                 for i in value.initialized}
            group.deleting = {i.topic_id: i.topic_name for i in value.deleting}

    def _replay_tombstone(self, key: srec.ShareKey) -> None:
        group = self.find(key.group_id)
        if group is None:
            return
        if isinstance(key, srec.ShareGroupMetadataKey):
            del self.ctx.groups[key.group_id]
            for member_id in group.members:
                self.cancel_timers(key.group_id, member_id)
        elif isinstance(key, srec.ShareGroupMemberMetadataKey):
            group.members.pop(key.member_id, None)
        elif isinstance(key, srec.ShareGroupTargetAssignmentMetadataKey):
            group.assignment_epoch = 0
        elif isinstance(key, srec.ShareGroupTargetAssignmentMemberKey):
            group.target.pop(key.member_id, None)
        elif isinstance(key, srec.ShareGroupCurrentMemberAssignmentKey):
            member = group.members.get(key.member_id)
            if member is not None:
                group.members[key.member_id] = replace(
                    member, member_epoch=0, previous_member_epoch=0, assigned={})
        elif isinstance(key, srec.ShareGroupStatePartitionMetadataKey):
            group.has_state_metadata = False
            group.initializing, group.initialized, group.deleting = {}, {}, {}

    # -- heartbeat --------------------------------------------------------------------

    def heartbeat(self, request: ShareHeartbeatRequest) -> Result[ShareHeartbeatOutcome]:
        validate_heartbeat(request)
        if request.member_epoch == LEAVE_GROUP_MEMBER_EPOCH:
            return self._leave(request)
        ctx = self.ctx
        config = ctx.config
        image = ctx.image()
        group_id = request.group_id
        records: list[RecordPair] = []
        existing = ctx.groups.get(group_id)
        if existing is None:
            if request.member_epoch != 0:
                raise GroupIdNotFoundError(f"Share group {group_id} not found.")
            group = ShareGroup(group_id)
        elif not isinstance(existing, ShareGroup):
            # No migration between protocols: an id taken by another type is refused.
            raise GroupIdNotFoundError(f"Group {group_id} is not a share group.")
        else:
            group = existing
        member_id = request.member_id
        if len(group.members) >= config.share_max_size and member_id not in group.members:
            raise GroupMaxSizeReachedError(
                f"The share group has reached its maximum capacity of {config.share_max_size} "
                "members.")
        member = group.members.get(member_id)
        if member is None:
            if request.member_epoch != 0:
                raise UnknownMemberIdError(
                    f"Member {member_id} is not a member of group {group_id}.")
            member = ShareGroupMember(member_id)
            log.info("[GroupId %s] Member %s joins the share group using the share protocol.",
                     group_id, member_id)
        else:
            _check_epoch(member, request.member_epoch)
        is_new = member_id not in group.members
        updated = replace(
            member,
            rack_id=request.rack_id if request.rack_id is not None else member.rack_id,
            subscribed_topic_names=tuple(sorted(set(request.subscribed_topic_names)))
            if request.subscribed_topic_names is not None else member.subscribed_topic_names,
            client_id=request.client_id, client_host=request.client_host)

        # 1. The member, and the group epoch.
        if is_new or updated.metadata_value() != member.metadata_value():
            records.append(encode(srec.ShareGroupMemberMetadataKey(group_id, member_id),
                                  updated.metadata_value()))
        bump = group.group_epoch == 0 or (
            set(updated.subscribed_topic_names) != set(member.subscribed_topic_names))
        members_after = {m.member_id: m for m in group.members.values()}
        members_after[member_id] = updated
        subscribed = group.subscribed_topic_names(members_after.values())
        new_hash = metadata_hash(subscribed, image)
        if new_hash != group.metadata_hash:
            bump = True
        group_epoch = group.group_epoch
        if bump:
            group_epoch += 1
            records.append(encode(srec.ShareGroupMetadataKey(group_id),
                                  srec.ShareGroupMetadataValue(group_epoch, new_hash)))

        # Share state for partitions of subscribed topics that have none yet.
        now = ctx.now_ms()
        retry_ms = config.share_initialize_retry_interval_ms
        in_flight = {t for (g, t), since in self.initializing_since.items()
                     if g == group_id and now - since < retry_ms}
        to_initialize = _uninitialized(group, subscribed, image, in_flight)
        if self.has_persister:
            for topic_id, _, _ in to_initialize:
                self.initializing_since[(group_id, topic_id)] = now
        initialized = dict(group.initialized)
        initializing = dict(group.initializing)
        if to_initialize:
            target_map = initializing if self.has_persister else initialized
            for topic_id, name, partitions in to_initialize:
                _, old = target_map.get(topic_id, (name, frozenset()))
                target_map[topic_id] = (name, old | partitions)
            records.append(encode(srec.ShareGroupStatePartitionMetadataKey(group_id),
                                  _state_metadata(initializing, initialized, group.deleting)))

        # 2. The target assignment of this epoch.
        target = dict(group.target)
        assignment_epoch = group.assignment_epoch
        if group_epoch > assignment_epoch:
            new_target = _compute_target(members_after, initialized, image)
            for mid, assignment in sorted(new_target.items()):
                if mid not in target or _normalized(assignment) != _normalized(target[mid]):
                    records.append(encode(
                        srec.ShareGroupTargetAssignmentMemberKey(group_id, mid),
                        srec.ShareGroupTargetAssignmentMemberValue(assignment)))
            records.append(encode(
                srec.ShareGroupTargetAssignmentMetadataKey(group_id),
                srec.ShareGroupTargetAssignmentMetadataValue(group_epoch, ctx.now_ms())))
            target = new_target
            assignment_epoch = group_epoch

        # 3. The member takes its target at once.
        reconciled = updated
        wanted = _normalized(target.get(member_id, {}))
        if updated.member_epoch != assignment_epoch or _normalized(updated.assigned) != wanted:
            reconciled = updated.with_epoch(assignment_epoch, wanted)
        if is_new or reconciled.assignment_value() != member.assignment_value():
            records.append(encode(srec.ShareGroupCurrentMemberAssignmentKey(group_id, member_id),
                                  reconciled.assignment_value()))
        self.schedule_session_timeout(group_id, member_id)

        response: dict[str, Any] = {
            "throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
            "member_id": member_id, "member_epoch": reconciled.member_epoch,
            "heartbeat_interval": config.share_heartbeat_interval_ms(
                image.group_configs.get(group_id, {})),
            "assignment": None,
        }
        if (request.member_epoch == 0 or request.subscribed_topic_names is not None
                or _normalized(reconciled.assigned) != _normalized(member.assigned)):
            response["assignment"] = {"topic_partitions": [
                {"topic_id": t, "partitions": sorted(ps)}
                for t, ps in sorted(reconciled.assigned.items(), key=lambda i: str(i[0]))]}
        pending = tuple(to_initialize) if self.has_persister else ()
        return Result(ShareHeartbeatOutcome(response, pending, group_epoch), records)

    def _leave(self, request: ShareHeartbeatRequest) -> Result[ShareHeartbeatOutcome]:
        group = self.require(request.group_id)
        member = group.members.get(request.member_id)
        if member is None:
            raise UnknownMemberIdError(
                f"Member {request.member_id} is not a member of group {group.group_id}.")
        log.info("[GroupId %s] Member %s left the share group.", group.group_id,
                 member.member_id)
        response = {"throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
                    "member_id": request.member_id, "member_epoch": LEAVE_GROUP_MEMBER_EPOCH,
                    "heartbeat_interval": 0, "assignment": None}
        return Result(ShareHeartbeatOutcome(response), self.fence_records(group, member))

    def fence_records(self, group: ShareGroup, member: ShareGroupMember) -> list[RecordPair]:
        """Remove a member; the group epoch moves so the others are reassigned."""
        gid = group.group_id
        self.cancel_timers(gid, member.member_id)
        records = member_tombstones(gid, member.member_id)
        remaining = [m for m in group.members.values() if m.member_id != member.member_id]
        subscribed = group.subscribed_topic_names(remaining)
        records.append(encode(srec.ShareGroupMetadataKey(gid), srec.ShareGroupMetadataValue(
            group.group_epoch + 1, metadata_hash(subscribed, self.ctx.image()))))
        return records

    # -- share state initialization ------------------------------------------------------

    def initialized(self, group_id: str, topics: tuple[TopicInit, ...], ok: bool
                    ) -> Result[None]:
        """The Persister answered for `topics`: record them as initialized and bump the
        group epoch so the next heartbeat assigns them; on failure forget they were
        initializing, so a later heartbeat tries again."""
        for topic_id, _, _ in topics:
            self.initializing_since.pop((group_id, topic_id), None)
        group = self.find(group_id)
        if group is None:
            return Result(None)
        initializing = dict(group.initializing)
        initialized = dict(group.initialized)
        for topic_id, name, partitions in topics:
            entry = initializing.get(topic_id)
            if entry is not None:
                left = entry[1] - partitions
                if left:
                    initializing[topic_id] = (entry[0], left)
                else:
                    del initializing[topic_id]
            if ok:
                _, old = initialized.get(topic_id, (name, frozenset()))
                initialized[topic_id] = (name, old | partitions)
        records = [encode(srec.ShareGroupStatePartitionMetadataKey(group_id),
                          _state_metadata(initializing, initialized, group.deleting))]
        if ok:
            records.append(encode(srec.ShareGroupMetadataKey(group_id),
                                  srec.ShareGroupMetadataValue(group.group_epoch + 1,
                                                               group.metadata_hash)))
        return Result(None, records)

    # -- deleted topics -------------------------------------------------------------------

    def mark_deleting(self, topic_ids: frozenset[uuid.UUID]
                      ) -> Result[list[tuple[str, tuple[tuple[uuid.UUID, int], ...]]]]:
        """Topics deleted from the cluster: every share group with share state for them
        records them as deleting (Kafka's DeletingTopics) and forgets their partitions;
        the answer lists, per group, the partitions whose state the service deletes."""
        records: list[RecordPair] = []
        pending: list[tuple[str, tuple[tuple[uuid.UUID, int], ...]]] = []
        for group in list(self.ctx.groups.values()):
            if not isinstance(group, ShareGroup):
                continue
            gone = topic_ids & (set(group.initialized) | set(group.initializing))
            if not gone:
                continue
            partitions = tuple(sorted(
                ((t, p) for t in gone
                 for p in group.initialized.get(t, ("", frozenset()))[1]
                 | group.initializing.get(t, ("", frozenset()))[1]), key=str))
            deleting = dict(group.deleting)
            for t in gone:
                deleting[t] = (group.initialized.get(t) or group.initializing[t])[0]
            records.append(encode(srec.ShareGroupStatePartitionMetadataKey(group.group_id),
                                  _state_metadata(
                                      {t: v for t, v in group.initializing.items()
                                       if t not in gone},
                                      {t: v for t, v in group.initialized.items()
                                       if t not in gone}, deleting)))
            pending.append((group.group_id, partitions))
        return Result(pending, records)

    def deleted(self, group_id: str, topic_ids: frozenset[uuid.UUID]) -> Result[None]:
        """Their share state is deleted: they are no longer deleting."""
        group = self.find(group_id)
        if group is None or not topic_ids & set(group.deleting):
            return Result(None)
        return Result(None, [encode(
            srec.ShareGroupStatePartitionMetadataKey(group_id),
            _state_metadata(group.initializing, group.initialized,
                            {t: n for t, n in group.deleting.items() if t not in topic_ids}))])

    # -- describe ----------------------------------------------------------------------

    def describe(self, group_id: str) -> dict[str, Any]:
        """A ShareGroupDescribe entry (errors raised)."""
        group = self.require(group_id)
        names = {t.topic_id: t.name for t in self.ctx.image().topics.values()}

        def assignment(partitions: Mapping[uuid.UUID, frozenset[int]]) -> dict[str, Any]:
            return {"topic_partitions": [
                {"topic_id": t, "topic_name": names[t], "partitions": sorted(ps)}
                for t, ps in sorted(partitions.items(), key=lambda i: str(i[0]))
                if t in names and ps]}

        return {
            "error_code": ErrorCode.none, "error_message": None, "group_id": group_id,
            "group_state": group.state_name, "group_epoch": group.group_epoch,
            "assignment_epoch": group.assignment_epoch, "assignor_name": SIMPLE_ASSIGNOR,
            "members": [{
                "member_id": m.member_id, "rack_id": m.rack_id,
                "member_epoch": m.member_epoch, "client_id": m.client_id,
                "client_host": m.client_host,
                "subscribed_topic_names": sorted(m.subscribed_topic_names),
                "assignment": assignment(m.assigned),
            } for m in group.members.values()],
        }

    # -- timers -------------------------------------------------------------------------

    @staticmethod
    def _session_key(group_id: str, member_id: str) -> str:
        return f"share-session-{group_id}-{member_id}"

    def cancel_timers(self, group_id: str, member_id: str) -> None:
        self.ctx.timer.cancel(self._session_key(group_id, member_id))

    def schedule_session_timeout(self, group_id: str, member_id: str) -> None:
        timeout = self.ctx.config.share_session_timeout(
            self.ctx.image().group_configs.get(group_id, {}))
        self.ctx.timer.schedule(self._session_key(group_id, member_id), timeout,
                                lambda: self._expire_session(group_id, member_id))

    def _expire_session(self, group_id: str, member_id: str) -> Result[Any]:
        group = self.find(group_id)
        member = group.members.get(member_id) if group is not None else None
        if group is None or member is None:
            return Result(None)
        log.info("share group %s: member %s session expired", group_id, member_id)
        return Result(None, self.fence_records(group, member))

    def on_loaded(self, group: ShareGroup) -> None:
        for member_id in group.members:
            self.schedule_session_timeout(group.group_id, member_id)


def _check_epoch(member: ShareGroupMember, received: int) -> None:
    if received > member.member_epoch:
        raise FencedMemberEpochError(
            f"The share group member has a greater member epoch ({received}) than the one "
            f"known by the group coordinator ({member.member_epoch}). The member must abandon "
            "all its partitions and rejoin.")
    if received < member.member_epoch and received != member.previous_member_epoch:
        raise FencedMemberEpochError(
            f"The share group member has a smaller member epoch ({received}) than the one "
            f"known by the group coordinator ({member.member_epoch}), and it does not match "
            f"the previous member epoch ({member.previous_member_epoch}). The member must "
            "abandon all its partitions and rejoin.")


def _uninitialized(group: ShareGroup, subscribed: set[str], image: MetadataImage,
                   in_flight: set[uuid.UUID]) -> list[TopicInit]:
    """Partitions of subscribed topics without share state, and those recorded as
    initializing whose initialization is not in flight here."""
    out: list[TopicInit] = []
    for name in sorted(subscribed):
        topic = image.topics.get(name)
        if topic is None:
            continue
        known = group.initialized.get(topic.topic_id, (name, frozenset()))[1]
        if topic.topic_id in in_flight:
            known = known | group.initializing.get(topic.topic_id, (name, frozenset()))[1]
        missing = frozenset(range(len(topic.partitions))) - known
        if missing:
            out.append((topic.topic_id, name, missing))
    return out


def _state_metadata(initializing: Mapping[uuid.UUID, tuple[str, frozenset[int]]],
                    initialized: Mapping[uuid.UUID, tuple[str, frozenset[int]]],
                    deleting: Mapping[uuid.UUID, str]
                    ) -> srec.ShareGroupStatePartitionMetadataValue:
    return srec.ShareGroupStatePartitionMetadataValue(
        tuple(srec.TopicStateInfo(t, n, ps) for t, (n, ps) in initializing.items() if ps),
        tuple(srec.TopicStateInfo(t, n, ps) for t, (n, ps) in initialized.items() if ps),
        tuple(srec.TopicStateInfo(t, n) for t, n in deleting.items()))


def _compute_target(members: Mapping[str, ShareGroupMember],
                    initialized: Mapping[uuid.UUID, tuple[str, frozenset[int]]],
                    image: MetadataImage) -> dict[str, Assignment]:
    ids = {name: t.topic_id for name, t in image.topics.items()}
    subscriptions = {mid: frozenset(ids[n] for n in m.subscribed_topic_names if n in ids)
                     for mid, m in members.items()}
    counts = {t.topic_id: len(t.partitions) for t in image.topics.values()}
    assignable = {t: frozenset(p for p in ps if p < counts.get(t, 0))
                  for t, (_, ps) in initialized.items() if t in counts}
    previous = {mid: m.assigned for mid, m in members.items()}
    return simple_assign(subscriptions, assignable, previous)


def _normalized(assignment: Mapping[uuid.UUID, frozenset[int]]
                ) -> dict[uuid.UUID, frozenset[int]]:
    return {t: frozenset(ps) for t, ps in assignment.items() if ps}
