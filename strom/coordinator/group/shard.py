"""One `__consumer_offsets` partition's groups and offsets: the coordinator shard.

Kafka's GroupCoordinatorShard: the runtime calls `replay` for every record
(while loading, and after each write of a replayed result) and the service
calls the operations below through the runtime. The classic protocol lives
in `classic_protocol.py`, KIP-848 groups in `consumer.py`, classic members of
consumer groups in `classic_members.py`, offsets in `offsets.py`; this module
routes records and requests to them (a classic request goes to a classic
group, or to the classic members of a non-empty consumer group) and answers
the APIs that span them (ListGroups, Describe*, DeleteGroups, offset expiry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from strom.clock import Clock
from strom.cluster.image import MetadataImage
from strom.coordinator.group import records as rec
from strom.coordinator.group import streams_records
from strom.coordinator.group.assignors import Assignment
from strom.coordinator.group.classic import (
    ClassicGroup,
    ClassicGroupState,
    Responder,
    join_response,
    sync_response,
)
from strom.coordinator.group.classic_members import ClassicMemberManager
from strom.coordinator.group.classic_protocol import ClassicGroupManager
from strom.coordinator.group.consumer import ConsumerGroup
from strom.coordinator.group.consumer_protocol import ConsumerGroupManager
from strom.coordinator.group.context import GroupConfig, ShardContext
from strom.coordinator.group.errors import GroupIdNotFoundError
from strom.coordinator.group.offsets import OffsetAndMetadata, OffsetManager, OffsetStore
from strom.coordinator.group.records import RecordPair
from strom.coordinator.group.requests import JoinRequest, LeavingMember, SyncRequest
from strom.coordinator.group.share_group import ShareGroup
from strom.coordinator.group.share_protocol import ShareGroupManager
from strom.coordinator.group.share_records import SHARE_KEY_TYPES, SHARE_VALUE_TYPES
from strom.coordinator.group.streams import StreamsGroup
from strom.coordinator.group.streams_protocol import StreamsGroupManager
from strom.coordinator.runtime import Result, Timer
from strom.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

EXPIRE_OFFSETS_KEY = "expire-group-metadata"
# READ, DELETE and DESCRIBE: every group operation, with no authorizer.
ALL_GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)

Group = ClassicGroup | ConsumerGroup | ShareGroup | StreamsGroup


class GroupCoordinatorShard:
    def __init__(self, partition: int, timer: Timer, config: GroupConfig, clock: Clock,
                 image: Callable[[], MetadataImage]) -> None:
        self.ctx = ShardContext(partition, config, clock, timer, image)
        self.offset_store = OffsetStore()
        self.classic = ClassicGroupManager(self.ctx)
        self.offsets = OffsetManager(self.ctx, self.offset_store)
        self.consumer = ConsumerGroupManager(self.ctx)
        self.classic_members = ClassicMemberManager(self.ctx, self.consumer)
        self.consumer.on_downgraded = self.classic.on_downgraded
        self.streams = StreamsGroupManager(self.ctx)
        self.share = ShareGroupManager(self.ctx)
        # Transactional offset commits (TxnOffsetCommit) waiting for their marker:
        # producer id -> (group, topic, partition) -> (key, value) record bytes.
        self.pending_txn_offsets: dict[int, dict[tuple[str, str, int], RecordPair]] = {}

    @property
    def groups(self) -> dict[str, Group]:
        return self.ctx.groups

    # -- records ------------------------------------------------------------------------

    def replay(self, offset: int, key: bytes, value: bytes | None) -> None:
        if streams_records.is_streams_key(key):
            self.streams.replay(key, value)
            return
        decoded = rec.decode(key, value)
        if decoded is None:
            return
        k, v = decoded
        if isinstance(k, rec.OffsetCommitKey):
            assert v is None or isinstance(v, rec.OffsetCommitValue)
            self.offset_store.replay(k, v)
            if v is not None and k.group not in self.groups:
                # A commit without group membership: a "simple" group holds it.
                self.groups[k.group] = ClassicGroup(k.group,
                                                    current_state_timestamp=self.ctx.now_ms())
        elif isinstance(k, rec.GroupMetadataKey):
            assert v is None or isinstance(v, rec.GroupMetadataValue)
            if v is None:
                self._remove_group(k.group)
            else:
                existing = self.groups.get(k.group)
                if isinstance(existing, ClassicGroup):
                    self.classic.cancel_timers(existing)
                self.groups[k.group] = ClassicGroup.from_record(k.group, v)
        elif isinstance(k, SHARE_KEY_TYPES):
            assert v is None or isinstance(v, SHARE_VALUE_TYPES)
            self.share.replay(k, v)
        else:
            self.consumer.replay(k, v)

    def replay_transactional(self, producer_id: int, offset: int, key: bytes,
                             value: bytes | None) -> None:
        """A record of a producer's transaction: held until its COMMIT/ABORT marker."""
        del offset
        decoded = rec.decode(key, value)
        if decoded is not None and isinstance(decoded[0], rec.OffsetCommitKey):
            k = decoded[0]
            self.pending_txn_offsets.setdefault(producer_id, {})[
                (k.group, k.topic, k.partition)] = (key, value)

    def replay_end_transaction(self, producer_id: int, commit: bool) -> None:
        """A marker: the producer's pending offsets become committed, or are dropped."""
        pending = self.pending_txn_offsets.pop(producer_id, {})
        if commit:
            for key, value in pending.values():
                self.replay(-1, key, value)

    def has_pending_txn_offsets(self, group_id: str) -> bool:
        return any(g == group_id for offsets in self.pending_txn_offsets.values()
                   for g, _, _ in offsets)

    def _remove_group(self, group_id: str) -> None:
        group = self.groups.pop(group_id, None)
        if isinstance(group, ClassicGroup):
            self.classic.cancel_timers(group)
            if not group.is_in(ClassicGroupState.DEAD):
                group.transition_to(ClassicGroupState.DEAD, self.ctx.now_ms())

    def on_loaded(self) -> None:
        for group in self.groups.values():
            if isinstance(group, ClassicGroup):
                self.classic.on_loaded(group)
            elif isinstance(group, StreamsGroup):
                self.streams.on_loaded(group)
            elif isinstance(group, ShareGroup):
                self.share.on_loaded(group)
            else:
                self.consumer.on_loaded(group)
        self._schedule_expiry()

    def on_unloaded(self) -> None:
        for group in self.groups.values():
            if isinstance(group, ClassicGroup):
                self.classic.on_unloaded(group)
        self.groups.clear()

    # -- the classic protocol, to classic groups or consumer groups -------------------------

    def _mixed(self, group_id: str) -> ConsumerGroup | None:
        """The consumer group classic requests for this id go to, if any: a non-empty one
        (an empty consumer group becomes a classic group on JoinGroup, as in Kafka)."""
        group = self.groups.get(group_id)
        return group if isinstance(group, ConsumerGroup) and not group.is_empty else None

    def join_group(self, request: JoinRequest, respond: Responder) -> Result[None]:
        if isinstance(self.groups.get(request.group_id), StreamsGroup):
            # Kafka: a streams group's id is not for the classic protocol.
            respond(join_response(request.member_id, ErrorCode.inconsistent_group_protocol))
            return Result(None)
        if isinstance(self.groups.get(request.group_id), ShareGroup):
            # Kafka: the id is not a classic group's, so the joining member is unknown.
            respond(join_response(request.member_id, ErrorCode.unknown_member_id))
            return Result(None)
        group = self._mixed(request.group_id)
        if group is not None:
            return self.classic_members.join(group, request, respond)
        return self.classic.join(request, respond)

    def sync_group(self, request: SyncRequest, respond: Responder) -> Result[None]:
        group = self.groups.get(request.group_id)
        if isinstance(group, ConsumerGroup):
            if group.is_empty:
                respond(sync_response(ErrorCode.unknown_member_id))
                return Result(None)
            return self.classic_members.sync(group, request, respond)
        return self.classic.sync(request, respond)

    def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> Result[ErrorCode]:
        group = self.groups.get(group_id)
        if isinstance(group, ConsumerGroup):
            return self.classic_members.heartbeat(group, member_id, group_instance_id,
                                                  generation_id)
        return self.classic.heartbeat(group_id, member_id, group_instance_id, generation_id)

    def leave_group(self, group_id: str, members: list[LeavingMember]
                    ) -> Result[dict[str, Any]]:
        group = self.groups.get(group_id)
        if isinstance(group, ConsumerGroup):
            return self.classic_members.leave(group, members)
        return self.classic.leave(group_id, members)

    # -- ListGroups, DescribeGroups, ConsumerGroupDescribe, DeleteGroups ---------------------

    def list_groups(self, states: Iterable[str], types: Iterable[str]) -> list[dict[str, Any]]:
        wanted_states = {s.lower() for s in states}
        wanted_types = {t.lower() for t in types}
        listed = []
        for group_id, group in self.groups.items():
            state = group.state_name
            if wanted_states and state.lower() not in wanted_states:
                continue
            if wanted_types and group.type_name not in wanted_types:
                continue
            listed.append({"group_id": group_id, "protocol_type": group.protocol_type or "",
                           "group_state": state, "group_type": group.type_name})
        return listed

    def describe_group(self, group_id: str, include_operations: bool) -> dict[str, Any] | None:
        """The DescribeGroups entry of a classic group; None if there is none."""
        group = self.groups.get(group_id)
        if not isinstance(group, ClassicGroup) or group.is_in(ClassicGroupState.DEAD):
            return None
        stable = group.is_in(ClassicGroupState.STABLE)
        members = [{
            "member_id": m.member_id, "group_instance_id": m.group_instance_id,
            "client_id": m.client_id, "client_host": m.client_host,
            "member_metadata": m.metadata(group.protocol_name) if stable else b"",
            "member_assignment": m.assignment,
        } for m in group.members.values()]
        return {
            "error_code": ErrorCode.none, "error_message": None, "group_id": group_id,
            "group_state": group.state.value, "protocol_type": group.protocol_type or "",
            "protocol_data": (group.protocol_name or "") if stable else "",
            "members": members,
            "authorized_operations": (ALL_GROUP_OPERATIONS if include_operations
                                      else AUTHORIZED_OPERATIONS_OMITTED),
        }

    def consumer_group_describe(self, group_id: str, include_operations: bool
                                ) -> dict[str, Any]:
        """A ConsumerGroupDescribe entry; classic members are of member type 0 (v1+)."""
        group = self.groups.get(group_id)
        out: dict[str, Any] = {
            "error_code": ErrorCode.none, "error_message": None, "group_id": group_id,
            "group_state": "Dead", "group_epoch": 0, "assignment_epoch": 0,
            "assignor_name": "", "members": [],
            "authorized_operations": (ALL_GROUP_OPERATIONS if include_operations
                                      else AUTHORIZED_OPERATIONS_OMITTED),
        }
        if not isinstance(group, ConsumerGroup):
            out["error_code"] = ErrorCode.group_id_not_found
            out["error_message"] = (f"Group {group_id} not found." if group is None
                                    else f"Group {group_id} is not a consumer group.")
            return out
        names = {t.topic_id: t.name for t in self.ctx.image().topics.values()}

        def assignment(partitions: Assignment) -> dict[str, Any]:
            return {"topic_partitions": [
                {"topic_id": t, "topic_name": names[t], "partitions": sorted(ps)}
                for t, ps in sorted(partitions.items(), key=lambda i: str(i[0]))
                if t in names]}

        out.update(
            group_state=group.state_name, group_epoch=group.group_epoch,
            assignment_epoch=group.assignment_epoch,
            assignor_name=group.preferred_assignor(self.ctx.config.consumer_assignors[0]),
            members=[{
                "member_id": m.member_id, "instance_id": m.instance_id, "rack_id": m.rack_id,
                "member_epoch": m.member_epoch, "client_id": m.client_id,
                "client_host": m.client_host,
                "subscribed_topic_names": sorted(m.subscribed_topic_names),
                "subscribed_topic_regex": m.subscribed_topic_regex,
                "assignment": assignment(dict(m.assigned)),
                "target_assignment": assignment(group.target.get(m.member_id, {})),
                "member_type": 0 if m.uses_classic_protocol else 1,
            } for m in group.members.values()])
        return out

    def is_consumer_group(self, group_id: str) -> bool:
        return isinstance(self.groups.get(group_id), ConsumerGroup)

    def is_modern_group(self, group_id: str) -> bool:
        """A consumer, share or streams group: DescribeGroups answers "not a classic
        group"."""
        return isinstance(self.groups.get(group_id), (ConsumerGroup, ShareGroup, StreamsGroup))

    def delete_groups(self, group_ids: list[str]) -> Result[list[dict[str, Any]]]:
        records: list[RecordPair] = []
        results = []
        for group_id in group_ids:
            group = self.groups.get(group_id)
            try:
                if group is None:
                    raise GroupIdNotFoundError(f"Group {group_id} not found.")
                group.validate_delete_group()
            except KafkaError as exc:
                results.append({"group_id": group_id, "error_code": exc.code})
                continue
            records.extend(self.offsets.delete_all(group_id))
            records.extend(self._group_tombstones(group))
            results.append({"group_id": group_id, "error_code": ErrorCode.none})
        return Result(results, records)

    def _group_tombstones(self, group: Group) -> list[RecordPair]:
        if isinstance(group, ClassicGroup):
            return [rec.encode(rec.GroupMetadataKey(group.group_id), None)]
        return group.tombstones()

    # -- offset expiry -----------------------------------------------------------------

    def _schedule_expiry(self) -> None:
        self.ctx.timer.schedule(EXPIRE_OFFSETS_KEY,
                                self.ctx.config.offsets_retention_check_interval_ms,
                                self.cleanup_group_metadata)

    def cleanup_group_metadata(self) -> Result[None]:
        """Delete expired offsets, and empty groups left without any."""
        records: list[RecordPair] = []
        for group_id in list(self.groups):
            group = self.groups[group_id]
            expired, all_expired = self.offsets.expire(
                group_id, expiration_base(group), group.is_subscribed_to_topic)
            records.extend(expired)
            if all_expired and group.is_empty and not isinstance(group, ShareGroup):
                # A share group is never expired: its state is the share coordinator's.
                records.extend(self._group_tombstones(group))
        if records:
            log.info("partition %d: expiring %d offsets and groups", self.ctx.partition,
                     len(records))
        self._schedule_expiry()
        return Result(None, records)


def expiration_base(group: Group) -> Callable[[OffsetAndMetadata], int] | None:
    """Kafka's OffsetExpirationCondition: from when an offset's retention counts, or
    None while the group's offsets must not expire."""
    if isinstance(group, StreamsGroup):
        return lambda o: o.commit_timestamp
    if isinstance(group, ShareGroup):
        return None  # no offsets here: its state lives in the share coordinator
    if isinstance(group, ConsumerGroup):
        return lambda o: o.commit_timestamp
    if group.protocol_type:
        if group.is_in(ClassicGroupState.EMPTY):
            became_empty = group.current_state_timestamp
            return lambda o: became_empty if became_empty is not None else o.commit_timestamp
        if (group.uses_consumer_protocol and group.subscribed_topics is not None
                and group.is_in(ClassicGroupState.STABLE)):
            return lambda o: o.commit_timestamp
        return None
    return lambda o: o.commit_timestamp
