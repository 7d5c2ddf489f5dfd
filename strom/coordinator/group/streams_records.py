"""The streams group (KIP-1071) records of `__consumer_offsets`, in Kafka 4.4's formats.

Key types (Kafka's CoordinatorRecordType): 17 StreamsGroupMetadata, 19
StreamsGroupMemberMetadata, 20 StreamsGroupTargetAssignmentMetadata, 21
StreamsGroupTargetAssignmentMember, 22 StreamsGroupCurrentMemberAssignment, 23
StreamsGroupTopology (18 was never used). Keys are version 0; every value is
written at version 0, flexible, tagged fields only when they differ from their
default, as Kafka writes them, so `kafka-dump-log --offsets-decoder` reads ours.

Values cross this module as plain dicts keyed by the snake_case field names
(the codecs are generated from the specs by schema.py); streams.py turns them
into the group's typed state.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strom.coordinator.group.schema import FieldSpec as F
from strom.coordinator.group.schema import Message, MessageSpec
from strom.errors import CorruptRecordError

_INT16 = struct.Struct(">h")

METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT, TOPOLOGY = (
    17, 19, 20, 21, 22, 23)
TYPES = frozenset((METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER,
                   CURRENT_ASSIGNMENT, TOPOLOGY))
_WITH_MEMBER = frozenset((MEMBER_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT))

_KV = (F("key", "string", "0+"), F("value", "string", "0+"))
_TASK_IDS = (F("subtopology_id", "string", "0+"), F("partitions", "[]int32", "0+"))
_TASK_IDS_WITH_EPOCHS = _TASK_IDS + (
    F("assignment_epochs", "[]int32", "0+", nullable="0+", default=None, tag=0),)
_TOPIC_INFO = (
    F("name", "string", "0+"), F("partitions", "int32", "0+"),
    F("replication_factor", "int16", "0+"),
    F("topic_configs", "[]TopicConfig", "0+", fields=_KV))

_VALUES: dict[int, Message] = {
    METADATA: Message(MessageSpec("StreamsGroupMetadataValue", "0", "0+", (
        F("epoch", "int32", "0+"),
        F("metadata_hash", "int64", "0+"),
        F("validated_topology_epoch", "int32", "0+", default=-1, tag=0),
        F("last_assignment_configs", "[]LastAssignmentConfig", "0+", nullable="0+",
          default=None, tag=1, fields=_KV),
        F("stored_description_topology_epoch", "int32", "0+", default=-1, tag=2),
        F("failed_description_topology_epoch", "int32", "0+", default=-1, tag=3),
    ))),
    MEMBER_METADATA: Message(MessageSpec("StreamsGroupMemberMetadataValue", "0", "0+", (
        F("instance_id", "string", "0+", nullable="0+"),
        F("rack_id", "string", "0+", nullable="0+"),
        F("client_id", "string", "0+"),
        F("client_host", "string", "0+"),
        F("rebalance_timeout_ms", "int32", "0+", default=-1),
        F("topology_epoch", "int32", "0+"),
        F("process_id", "string", "0+"),
        F("user_endpoint", "Endpoint", "0+", nullable="0+", default=None, fields=(
            F("host", "string", "0+"), F("port", "uint16", "0+"))),
        F("client_tags", "[]KeyValue", "0+", fields=_KV),
    ))),
    TARGET_METADATA: Message(MessageSpec(
        "StreamsGroupTargetAssignmentMetadataValue", "0", "0+", (
            F("assignment_epoch", "int32", "0+"),
            F("assignment_timestamp", "int64", "0+", default=0, tag=0),
        ))),
    TARGET_MEMBER: Message(MessageSpec("StreamsGroupTargetAssignmentMemberValue", "0", "0+", (
        F("active_tasks", "[]TaskIds", "0+", fields=_TASK_IDS),
        F("standby_tasks", "[]TaskIds", "0+", fields=_TASK_IDS),
        F("warmup_tasks", "[]TaskIds", "0+", fields=_TASK_IDS),
    ))),
    CURRENT_ASSIGNMENT: Message(MessageSpec(
        "StreamsGroupCurrentMemberAssignmentValue", "0", "0+", (
            F("member_epoch", "int32", "0+"),
            F("previous_member_epoch", "int32", "0+"),
            F("state", "int8", "0+"),
            F("active_tasks", "[]TaskIds", "0+", fields=_TASK_IDS_WITH_EPOCHS),
            F("standby_tasks", "[]TaskIds", "0+", fields=_TASK_IDS_WITH_EPOCHS),
            F("warmup_tasks", "[]TaskIds", "0+", fields=_TASK_IDS_WITH_EPOCHS),
            F("active_tasks_pending_revocation", "[]TaskIds", "0+",
              fields=_TASK_IDS_WITH_EPOCHS),
            F("standby_tasks_pending_revocation", "[]TaskIds", "0+",
              fields=_TASK_IDS_WITH_EPOCHS),
            F("warmup_tasks_pending_revocation", "[]TaskIds", "0+",
              fields=_TASK_IDS_WITH_EPOCHS),
        ))),
    TOPOLOGY: Message(MessageSpec("StreamsGroupTopologyValue", "0", "0+", (
        F("epoch", "int32", "0+"),
        F("subtopologies", "[]Subtopology", "0+", fields=(
            F("subtopology_id", "string", "0+"),
            F("source_topics", "[]string", "0+"),
            F("source_topic_regex", "[]string", "0+"),
            F("state_changelog_topics", "[]TopicInfo", "0+", fields=_TOPIC_INFO),
            F("repartition_sink_topics", "[]string", "0+"),
            F("repartition_source_topics", "[]TopicInfo", "0+", fields=_TOPIC_INFO),
            F("copartition_groups", "[]CopartitionGroup", "0+", fields=(
                F("source_topics", "[]int16", "0+"),
                F("source_topic_regex", "[]int16", "0+"),
                F("repartition_source_topics", "[]int16", "0+"))),
        )),
    ))),
}
_GROUP_KEY = Message(MessageSpec("StreamsGroupKey", "0", "none", (
    F("group_id", "string", "0"),)))
_MEMBER_KEY = Message(MessageSpec("StreamsGroupMemberKey", "0", "none", (
    F("group_id", "string", "0"), F("member_id", "string", "0"))))


@dataclass(frozen=True, slots=True)
class StreamsKey:
    """Any streams group record's key: its type, the group and, for member records,
    the member."""

    type: int
    group_id: str
    member_id: str = ""


def is_streams_key(data: bytes) -> bool:
    return len(data) >= 2 and _INT16.unpack_from(data)[0] in TYPES


def encode(key: StreamsKey, value: Mapping[str, Any] | None) -> tuple[bytes, bytes | None]:
    """The log record of (key, value fields); None is a tombstone."""
    if key.type in _WITH_MEMBER:
        key_bytes = _MEMBER_KEY.encode(0, {"group_id": key.group_id,
                                           "member_id": key.member_id})
    else:
        key_bytes = _GROUP_KEY.encode(0, {"group_id": key.group_id})
    head = _INT16.pack(key.type) + key_bytes
    if value is None:
        return head, None
    return head, _INT16.pack(0) + _VALUES[key.type].encode(0, value)


def decode(key: bytes, value: bytes | None) -> tuple[StreamsKey, dict[str, Any] | None]:
    (key_type,) = _INT16.unpack_from(key)
    if key_type not in TYPES:
        raise CorruptRecordError(f"not a streams group record type: {key_type}")
    body = memoryview(key)[2:]
    if key_type in _WITH_MEMBER:
        fields = _MEMBER_KEY.decode(0, body)
        k = StreamsKey(key_type, fields["group_id"], fields["member_id"])
    else:
        k = StreamsKey(key_type, _GROUP_KEY.decode(0, body)["group_id"])
    if value is None:
        return k, None
    if len(value) < 2:
        raise CorruptRecordError("coordinator record value shorter than its version")
    (version,) = _INT16.unpack_from(value)
    return k, _VALUES[key_type].decode(version, memoryview(value)[2:])
