"""The share group (KIP-932) records of `__consumer_offsets`, as Kafka 4.4 writes them.

Key types (Kafka's CoordinatorRecordType, the specs' "apiKey") and the
value versions Kafka 4.4 writes (all 0, flexible):

- 10 ShareGroupMemberMetadata        (group, member) -> rack, client, subscription
- 11 ShareGroupMetadata              group -> group epoch, metadata hash
- 12 ShareGroupTargetAssignmentMetadata  group -> assignment epoch (+ tagged timestamp)
- 13 ShareGroupTargetAssignmentMember    (group, member) -> target partitions
- 14 ShareGroupCurrentMemberAssignment   (group, member) -> epochs, state, partitions
- 15 ShareGroupStatePartitionMetadata    group -> partitions whose share state is
  initializing / initialized, topics whose state is being deleted

The specs restate group-coordinator/src/main/resources/common/message/
ShareGroup*.json of Kafka 4.4 field for field; records.py encodes and decodes
them with the other coordinator records.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strom.coordinator.group.schema import FieldSpec as F
from strom.coordinator.group.schema import Message, MessageSpec

TopicPartitions = Mapping[uuid.UUID, frozenset[int]]

_GROUP_ID_KEY = (F("group_id", "string", "0"),)
_MEMBER_KEY = (F("group_id", "string", "0"), F("member_id", "string", "0"))
_TOPIC_PARTITIONS = (F("topic_id", "uuid", "0+"), F("partitions", "[]int32", "0+"))
_TOPIC_PARTITIONS_INFO = (F("topic_id", "uuid", "0+"), F("topic_name", "string", "0+"),
                          F("partitions", "[]int32", "0+"))
_TOPIC_INFO = (F("topic_id", "uuid", "0+"), F("topic_name", "string", "0+"))

_MEMBER_METADATA_VALUE = Message(MessageSpec("ShareGroupMemberMetadataValue", "0", "0+", (
    F("rack_id", "string", "0+", nullable="0+"),
    F("client_id", "string", "0+"),
    F("client_host", "string", "0+"),
    F("subscribed_topic_names", "[]string", "0+"),
)))
_METADATA_VALUE = Message(MessageSpec("ShareGroupMetadataValue", "0", "0+", (
    F("epoch", "int32", "0+"),
    F("metadata_hash", "int64", "0+"),
)))
_TARGET_METADATA_VALUE = Message(MessageSpec(
    "ShareGroupTargetAssignmentMetadataValue", "0", "0+", (
        F("assignment_epoch", "int32", "0+"),
        F("assignment_timestamp", "int64", "0+", default=0, tag=0),
    )))
_TARGET_MEMBER_VALUE = Message(MessageSpec("ShareGroupTargetAssignmentMemberValue", "0", "0+", (
    F("topic_partitions", "[]TopicPartition", "0+", fields=_TOPIC_PARTITIONS),)))
_CURRENT_ASSIGNMENT_VALUE = Message(MessageSpec(
    "ShareGroupCurrentMemberAssignmentValue", "0", "0+", (
        F("member_epoch", "int32", "0+"),
        F("previous_member_epoch", "int32", "0+"),
        F("state", "int8", "0+"),
        F("assigned_partitions", "[]TopicPartitions", "0+", fields=_TOPIC_PARTITIONS),
    )))
_STATE_PARTITION_METADATA_VALUE = Message(MessageSpec(
    "ShareGroupStatePartitionMetadataValue", "0", "0+", (
        F("initializing_topics", "[]TopicPartitionsInfo", "0+", fields=_TOPIC_PARTITIONS_INFO),
        F("initialized_topics", "[]TopicPartitionsInfo", "0+", fields=_TOPIC_PARTITIONS_INFO),
        F("deleting_topics", "[]TopicInfo", "0+", fields=_TOPIC_INFO),
    )))


@dataclass(frozen=True, slots=True)
class ShareGroupMemberMetadataKey:
    group_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class ShareGroupMemberMetadataValue:
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ShareGroupMetadataKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class ShareGroupMetadataValue:
    epoch: int
    metadata_hash: int


@dataclass(frozen=True, slots=True)
class ShareGroupTargetAssignmentMetadataKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class ShareGroupTargetAssignmentMetadataValue:
    assignment_epoch: int
    assignment_timestamp: int = 0


@dataclass(frozen=True, slots=True)
class ShareGroupTargetAssignmentMemberKey:
    group_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class ShareGroupTargetAssignmentMemberValue:
    partitions: TopicPartitions


@dataclass(frozen=True, slots=True)
class ShareGroupCurrentMemberAssignmentKey:
    group_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class ShareGroupCurrentMemberAssignmentValue:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned_partitions: TopicPartitions


@dataclass(frozen=True, slots=True)
class ShareGroupStatePartitionMetadataKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class TopicStateInfo:
    """A topic of ShareGroupStatePartitionMetadata: its name as it was, and partitions."""

    topic_id: uuid.UUID
    topic_name: str
    partitions: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class ShareGroupStatePartitionMetadataValue:
    initializing: tuple[TopicStateInfo, ...] = ()
    initialized: tuple[TopicStateInfo, ...] = ()
    deleting: tuple[TopicStateInfo, ...] = ()


ShareKey = (ShareGroupMemberMetadataKey | ShareGroupMetadataKey
            | ShareGroupTargetAssignmentMetadataKey | ShareGroupTargetAssignmentMemberKey
            | ShareGroupCurrentMemberAssignmentKey | ShareGroupStatePartitionMetadataKey)
ShareValue = (ShareGroupMemberMetadataValue | ShareGroupMetadataValue
              | ShareGroupTargetAssignmentMetadataValue | ShareGroupTargetAssignmentMemberValue
              | ShareGroupCurrentMemberAssignmentValue | ShareGroupStatePartitionMetadataValue)
SHARE_KEY_TYPES = (ShareGroupMemberMetadataKey, ShareGroupMetadataKey,
                   ShareGroupTargetAssignmentMetadataKey, ShareGroupTargetAssignmentMemberKey,
                   ShareGroupCurrentMemberAssignmentKey, ShareGroupStatePartitionMetadataKey)
SHARE_VALUE_TYPES = (ShareGroupMemberMetadataValue, ShareGroupMetadataValue,
                     ShareGroupTargetAssignmentMetadataValue,
                     ShareGroupTargetAssignmentMemberValue,
                     ShareGroupCurrentMemberAssignmentValue,
                     ShareGroupStatePartitionMetadataValue)

#: key type -> (key class, key fields)
SHARE_KEYS: dict[int, tuple[type, tuple[F, ...]]] = {
    10: (ShareGroupMemberMetadataKey, _MEMBER_KEY),
    11: (ShareGroupMetadataKey, _GROUP_ID_KEY),
    12: (ShareGroupTargetAssignmentMetadataKey, _GROUP_ID_KEY),
    13: (ShareGroupTargetAssignmentMemberKey, _MEMBER_KEY),
    14: (ShareGroupCurrentMemberAssignmentKey, _MEMBER_KEY),
    15: (ShareGroupStatePartitionMetadataKey, _GROUP_ID_KEY),
}
SHARE_KEY_TYPE: dict[type, int] = {cls: t for t, (cls, _) in SHARE_KEYS.items()}
SHARE_VALUE_CODECS: dict[int, Message] = {
    10: _MEMBER_METADATA_VALUE, 11: _METADATA_VALUE, 12: _TARGET_METADATA_VALUE,
    13: _TARGET_MEMBER_VALUE, 14: _CURRENT_ASSIGNMENT_VALUE,
    15: _STATE_PARTITION_METADATA_VALUE,
}


def _tps_out(tps: TopicPartitions) -> list[dict[str, Any]]:
    return [{"topic_id": t, "partitions": sorted(ps)} for t, ps in sorted(tps.items())]


def _tps_in(items: Any) -> dict[uuid.UUID, frozenset[int]]:
    return {item["topic_id"]: frozenset(item["partitions"]) for item in items}


def _infos_out(infos: tuple[TopicStateInfo, ...], partitions: bool) -> list[dict[str, Any]]:
    out = []
    for info in sorted(infos, key=lambda i: str(i.topic_id)):
        d: dict[str, Any] = {"topic_id": info.topic_id, "topic_name": info.topic_name}
        if partitions:
            d["partitions"] = sorted(info.partitions)
        out.append(d)
    return out


def _infos_in(items: Any) -> tuple[TopicStateInfo, ...]:
    return tuple(TopicStateInfo(i["topic_id"], i["topic_name"],
                                frozenset(i.get("partitions", ()))) for i in items)


def share_value_out(value: ShareValue) -> tuple[int, dict[str, Any]]:
    """(version Kafka 4.4 writes, fields) of a share group value."""
    if isinstance(value, ShareGroupMemberMetadataValue):
        return 0, {"rack_id": value.rack_id, "client_id": value.client_id,
                   "client_host": value.client_host,
                   "subscribed_topic_names": sorted(value.subscribed_topic_names)}
    if isinstance(value, ShareGroupMetadataValue):
        return 0, {"epoch": value.epoch, "metadata_hash": value.metadata_hash}
    if isinstance(value, ShareGroupTargetAssignmentMetadataValue):
        return 0, {"assignment_epoch": value.assignment_epoch,
                   "assignment_timestamp": value.assignment_timestamp}
    if isinstance(value, ShareGroupTargetAssignmentMemberValue):
        return 0, {"topic_partitions": _tps_out(value.partitions)}
    if isinstance(value, ShareGroupCurrentMemberAssignmentValue):
        return 0, {"member_epoch": value.member_epoch,
                   "previous_member_epoch": value.previous_member_epoch,
                   "state": value.state,
                   "assigned_partitions": _tps_out(value.assigned_partitions)}
    return 0, {"initializing_topics": _infos_out(value.initializing, True),
               "initialized_topics": _infos_out(value.initialized, True),
               "deleting_topics": _infos_out(value.deleting, False)}


def share_value_in(key_type: int, d: dict[str, Any]) -> ShareValue:
    if key_type == 10:
        return ShareGroupMemberMetadataValue(d["rack_id"], d["client_id"], d["client_host"],
                                             tuple(d["subscribed_topic_names"]))
    if key_type == 11:
        return ShareGroupMetadataValue(d["epoch"], d["metadata_hash"])
    if key_type == 12:
        return ShareGroupTargetAssignmentMetadataValue(d["assignment_epoch"],
                                                       d["assignment_timestamp"])
    if key_type == 13:
        return ShareGroupTargetAssignmentMemberValue(_tps_in(d["topic_partitions"]))
    if key_type == 14:
        return ShareGroupCurrentMemberAssignmentValue(
            d["member_epoch"], d["previous_member_epoch"], d["state"],
            _tps_in(d["assigned_partitions"]))
    return ShareGroupStatePartitionMetadataValue(
        _infos_in(d["initializing_topics"]), _infos_in(d["initialized_topics"]),
        _infos_in(d["deleting_topics"]))
