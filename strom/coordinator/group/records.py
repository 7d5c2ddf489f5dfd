"""The records of `__consumer_offsets`, in Kafka's own formats.

A record's key is ``int16 type`` followed by the key struct (version 0); the
type is the key spec's "apiKey" (Kafka's CoordinatorRecordType): 0 and 1 an
offset commit (0 was written by ZooKeeper-era brokers), 2 classic group
metadata, 3-8 and 16 the consumer (KIP-848) group records. A value is
``int16 version`` followed by the value struct in that version; a null value
is a tombstone (the key was deleted). Kafka 4.x writes OffsetCommitValue v3
(v1 when the commit carries an explicit expire timestamp), GroupMetadataValue
v3 and every consumer-group value at v0; so does strom, so Kafka's tools
(`kafka-dump-log --offsets-decoder`) read our log and we read theirs.

Records are immutable values: `encode` turns (key, value) into the bytes of
a log record, `decode` back.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from strom.coordinator.group.schema import FieldSpec as F
from strom.coordinator.group.schema import Message, MessageSpec
from strom.coordinator.group.share_records import (
    SHARE_KEY_TYPE,
    SHARE_KEYS,
    SHARE_VALUE_CODECS,
    SHARE_VALUE_TYPES,
    ShareKey,
    ShareValue,
    share_value_in,
    share_value_out,
)
from strom.errors import CorruptRecordError

#: A record of __consumer_offsets as the runtime writes it: (key, value or None).
RecordPair = tuple[bytes, bytes | None]

_INT16 = struct.Struct(">h")

# -- specs (Kafka's JSON, restated) ---------------------------------------------------

_OFFSET_COMMIT_KEY = Message(MessageSpec("OffsetCommitKey", "0", "none", (
    F("group", "string", "0"), F("topic", "string", "0"), F("partition", "int32", "0"))))
_OFFSET_COMMIT_VALUE = Message(MessageSpec("OffsetCommitValue", "0-4", "4+", (
    F("offset", "int64", "0+"),
    F("leader_epoch", "int32", "3+", default=-1),
    F("metadata", "string", "0+"),
    F("commit_timestamp", "int64", "0+"),
    F("expire_timestamp", "int64", "1", default=-1),
)))
_GROUP_METADATA_KEY = Message(MessageSpec("GroupMetadataKey", "0", "none", (
    F("group", "string", "0"),)))
_MEMBER_METADATA = (
    F("member_id", "string", "0+"),
    F("group_instance_id", "string", "3+", nullable="3+", default=None),
    F("client_id", "string", "0+"),
    F("client_host", "string", "0+"),
    F("rebalance_timeout", "int32", "1+", default=-1),
    F("session_timeout", "int32", "0+"),
    F("subscription", "bytes", "0+"),
    F("assignment", "bytes", "0+"),
)
_GROUP_METADATA_VALUE = Message(MessageSpec("GroupMetadataValue", "0-4", "4+", (
    F("protocol_type", "string", "0+"),
    F("generation", "int32", "0+"),
    F("protocol", "string", "0+", nullable="0+"),
    F("leader", "string", "0+", nullable="0+"),
    F("current_state_timestamp", "int64", "2+", default=-1),
    F("members", "[]MemberMetadata", "0+", fields=_MEMBER_METADATA),
)))

_GROUP_ID_KEY = (F("group_id", "string", "0"),)
_MEMBER_KEY = (F("group_id", "string", "0"), F("member_id", "string", "0"))
_TOPIC_PARTITIONS = (
    F("topic_id", "uuid", "0+"),
    F("partitions", "[]int32", "0+"),
)
_CONSUMER_GROUP_METADATA_VALUE = Message(MessageSpec(
    "ConsumerGroupMetadataValue", "0", "0+", (
        F("epoch", "int32", "0+"),
        F("metadata_hash", "int64", "0+", default=0, tag=0),
        F("creation_time_ms", "int64", "0+", default=-1, tag=1),
    )))
_CLASSIC_PROTOCOL = (F("name", "string", "0+"), F("metadata", "bytes", "0+"))
_CONSUMER_GROUP_MEMBER_METADATA_VALUE = Message(MessageSpec(
    "ConsumerGroupMemberMetadataValue", "0", "0+", (
        F("instance_id", "string", "0+", nullable="0+"),
        F("rack_id", "string", "0+", nullable="0+"),
        F("client_id", "string", "0+"),
        F("client_host", "string", "0+"),
        F("subscribed_topic_names", "[]string", "0+"),
        F("subscribed_topic_regex", "string", "0+", nullable="0+"),
        F("rebalance_timeout_ms", "int32", "0+", default=-1),
        F("server_assignor", "string", "0+", nullable="0+"),
        # Kafka's spec makes this tagged struct nullable: a present one is written
        # after an int8 marker 1. kio's writer omits that marker for a nullable
        # struct while its reader expects it, so the marker is stated as a field.
        F("classic_member_metadata", "ClassicMemberMetadata", "0+",
          default=None, tag=0, fields=(
              F("present", "int8", "0+", default=1),
              F("session_timeout_ms", "int32", "0+"),
              F("supported_protocols", "[]ClassicProtocol", "0+", fields=_CLASSIC_PROTOCOL))),
    )))
_CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_VALUE = Message(MessageSpec(
    "ConsumerGroupTargetAssignmentMetadataValue", "0", "0+", (
        F("assignment_epoch", "int32", "0+"),
        F("assignment_timestamp", "int64", "0+", default=0, tag=0),
    )))
_CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_VALUE = Message(MessageSpec(
    "ConsumerGroupTargetAssignmentMemberValue", "0", "0+", (
        F("topic_partitions", "[]TopicPartition", "0+", fields=_TOPIC_PARTITIONS),)))
# Kafka 4.4 (KIP-1251): each partition's assignment epoch, tagged; absent in older
# records, which replay with the member epoch (at least 0) for every partition.
_TOPIC_PARTITIONS_WITH_EPOCHS = (
    *_TOPIC_PARTITIONS,
    F("assignment_epochs", "[]int32", "0+", nullable="0+", default=None, tag=0),
)
_CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_VALUE = Message(MessageSpec(
    "ConsumerGroupCurrentMemberAssignmentValue", "0", "0+", (
        F("member_epoch", "int32", "0+"),
        F("previous_member_epoch", "int32", "0+"),
        F("state", "int8", "0+"),
        F("assigned_partitions", "[]TopicPartitions", "0+",
          fields=_TOPIC_PARTITIONS_WITH_EPOCHS),
        F("partitions_pending_revocation", "[]TopicPartitions", "0+",
          fields=_TOPIC_PARTITIONS_WITH_EPOCHS),
    )))
_CONSUMER_GROUP_REGULAR_EXPRESSION_KEY = (
    F("group_id", "string", "0"), F("regular_expression", "string", "0"))
_CONSUMER_GROUP_REGULAR_EXPRESSION_VALUE = Message(MessageSpec(
    "ConsumerGroupRegularExpressionValue", "0", "0+", (
        F("topics", "[]string", "0+"),
        F("version", "int64", "0+"),
        F("timestamp", "int64", "0+"),
    )))


# -- typed records ----------------------------------------------------------------------

TopicPartitions = Mapping[uuid.UUID, frozenset[int]]
AssignmentEpochs = Mapping[tuple[uuid.UUID, int], int]


@dataclass(frozen=True, slots=True)
class OffsetCommitKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class OffsetCommitValue:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int = -1


@dataclass(frozen=True, slots=True)
class GroupMetadataKey:
    group: str


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout: int
    session_timeout: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupMetadataValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int
    members: tuple[MemberMetadata, ...]


@dataclass(frozen=True, slots=True)
class ConsumerGroupMetadataKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class ConsumerGroupMetadataValue:
    epoch: int
    metadata_hash: int = 0


@dataclass(frozen=True, slots=True)
class ConsumerGroupMemberMetadataKey:
    group_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class ClassicMemberMetadata:
    """A member of a consumer group that speaks the classic protocol (KIP-848
    migration): its JoinGroup session timeout and protocols, in its order."""

    session_timeout_ms: int
    supported_protocols: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class ConsumerGroupMemberMetadataValue:
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None
    classic_member_metadata: ClassicMemberMetadata | None = None


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMetadataKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMetadataValue:
    assignment_epoch: int


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMemberKey:
    group_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMemberValue:
    partitions: TopicPartitions


@dataclass(frozen=True, slots=True)
class ConsumerGroupCurrentMemberAssignmentKey:
    group_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class ConsumerGroupCurrentMemberAssignmentValue:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned_partitions: TopicPartitions
    partitions_pending_revocation: TopicPartitions
    #: (topic id, partition) -> the epoch the partition was assigned to the member at,
    #: for the partitions above (Kafka 4.4's AssignmentEpochs).
    assignment_epochs: AssignmentEpochs = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConsumerGroupRegularExpressionKey:
    group_id: str
    regular_expression: str


@dataclass(frozen=True, slots=True)
class ConsumerGroupRegularExpressionValue:
    topics: tuple[str, ...]
    version: int
    timestamp: int


Key = (OffsetCommitKey | GroupMetadataKey | ConsumerGroupMetadataKey
       | ConsumerGroupMemberMetadataKey | ConsumerGroupTargetAssignmentMetadataKey
       | ConsumerGroupTargetAssignmentMemberKey | ConsumerGroupCurrentMemberAssignmentKey
       | ConsumerGroupRegularExpressionKey | ShareKey)
Value = (OffsetCommitValue | GroupMetadataValue | ConsumerGroupMetadataValue
         | ConsumerGroupMemberMetadataValue | ConsumerGroupTargetAssignmentMetadataValue
         | ConsumerGroupTargetAssignmentMemberValue | ConsumerGroupCurrentMemberAssignmentValue
         | ConsumerGroupRegularExpressionValue | ShareValue)


# -- codec --------------------------------------------------------------------------------

def _topic_partitions_out(tps: TopicPartitions) -> list[dict[str, Any]]:
    return [{"topic_id": t, "partitions": sorted(ps)} for t, ps in sorted(tps.items())]


def _topic_partitions_in(items: Any) -> dict[uuid.UUID, frozenset[int]]:
    return {item["topic_id"]: frozenset(item["partitions"]) for item in items}


def _with_epochs_out(tps: TopicPartitions, epochs: AssignmentEpochs,
                     default: int) -> list[dict[str, Any]]:
    out = []
    for t, ps in sorted(tps.items()):
        partitions = sorted(ps)
        out.append({"topic_id": t, "partitions": partitions,
                    "assignment_epochs": [epochs.get((t, p), default) for p in partitions]})
    return out


def _epochs_in(items: Any, default: int, into: dict[tuple[uuid.UUID, int], int]) -> None:
    """As Kafka reads them: epochs missing or not one per partition are the default."""
    for item in items:
        partitions = item["partitions"]
        epochs = item.get("assignment_epochs")
        if epochs is None or len(epochs) != len(partitions):
            epochs = [default] * len(partitions)
        for p, e in zip(partitions, epochs, strict=True):
            into[(item["topic_id"], p)] = e


# (key type, key class, key fields) and (value class -> spec, version, to dict, from dict)
_KEYS: dict[int, tuple[type, tuple[F, ...]]] = {
    0: (OffsetCommitKey, _OFFSET_COMMIT_KEY.spec.fields),
    1: (OffsetCommitKey, _OFFSET_COMMIT_KEY.spec.fields),
    2: (GroupMetadataKey, _GROUP_METADATA_KEY.spec.fields),
    3: (ConsumerGroupMetadataKey, _GROUP_ID_KEY),
    5: (ConsumerGroupMemberMetadataKey, _MEMBER_KEY),
    6: (ConsumerGroupTargetAssignmentMetadataKey, _GROUP_ID_KEY),
    7: (ConsumerGroupTargetAssignmentMemberKey, _MEMBER_KEY),
    8: (ConsumerGroupCurrentMemberAssignmentKey, _MEMBER_KEY),
    16: (ConsumerGroupRegularExpressionKey, _CONSUMER_GROUP_REGULAR_EXPRESSION_KEY),
}
_KEY_TYPE: dict[type, int] = {
    OffsetCommitKey: 1, GroupMetadataKey: 2, ConsumerGroupMetadataKey: 3,
    ConsumerGroupMemberMetadataKey: 5, ConsumerGroupTargetAssignmentMetadataKey: 6,
    ConsumerGroupTargetAssignmentMemberKey: 7, ConsumerGroupCurrentMemberAssignmentKey: 8,
    ConsumerGroupRegularExpressionKey: 16,
}
_KEY_CODECS: dict[int, Message] = {
    t: Message(MessageSpec(cls.__name__, "0", "none", fields))
    for t, (cls, fields) in _KEYS.items()
}
_VALUE_CODECS: dict[int, Message] = {
    0: _OFFSET_COMMIT_VALUE, 1: _OFFSET_COMMIT_VALUE, 2: _GROUP_METADATA_VALUE,
    3: _CONSUMER_GROUP_METADATA_VALUE, 5: _CONSUMER_GROUP_MEMBER_METADATA_VALUE,
    6: _CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_VALUE,
    7: _CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_VALUE,
    8: _CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_VALUE,
    16: _CONSUMER_GROUP_REGULAR_EXPRESSION_VALUE,
}
# Share groups (KIP-932): share_records.py.
_KEYS.update(SHARE_KEYS)
_KEY_TYPE.update(SHARE_KEY_TYPE)
_KEY_CODECS.update({t: Message(MessageSpec(cls.__name__, "0", "none", fields))
                    for t, (cls, fields) in SHARE_KEYS.items()})
_VALUE_CODECS.update(SHARE_VALUE_CODECS)


def _value_out(value: Value) -> tuple[int, dict[str, Any]]:
    """(version Kafka 4.x writes, fields) of a value."""
    if isinstance(value, SHARE_VALUE_TYPES):
        return share_value_out(value)
    if isinstance(value, OffsetCommitValue):
        version = 1 if value.expire_timestamp != -1 else 3
        return version, {"offset": value.offset, "leader_epoch": value.leader_epoch,
                         "metadata": value.metadata,
                         "commit_timestamp": value.commit_timestamp,
                         "expire_timestamp": value.expire_timestamp}
    if isinstance(value, GroupMetadataValue):
        return 3, {
            "protocol_type": value.protocol_type, "generation": value.generation,
            "protocol": value.protocol, "leader": value.leader,
            "current_state_timestamp": value.current_state_timestamp,
            "members": [{
                "member_id": m.member_id, "group_instance_id": m.group_instance_id,
                "client_id": m.client_id, "client_host": m.client_host,
                "rebalance_timeout": m.rebalance_timeout,
                "session_timeout": m.session_timeout,
                "subscription": m.subscription, "assignment": m.assignment,
            } for m in value.members],
        }
    if isinstance(value, ConsumerGroupMetadataValue):
        return 0, {"epoch": value.epoch, "metadata_hash": value.metadata_hash}
    if isinstance(value, ConsumerGroupMemberMetadataValue):
        classic = value.classic_member_metadata
        return 0, {
            "instance_id": value.instance_id, "rack_id": value.rack_id,
            "client_id": value.client_id, "client_host": value.client_host,
            "subscribed_topic_names": sorted(value.subscribed_topic_names),
            "subscribed_topic_regex": value.subscribed_topic_regex,
            "rebalance_timeout_ms": value.rebalance_timeout_ms,
            "server_assignor": value.server_assignor,
            "classic_member_metadata": None if classic is None else {
                "session_timeout_ms": classic.session_timeout_ms,
                "supported_protocols": [{"name": n, "metadata": m}
                                        for n, m in classic.supported_protocols]},
        }
    if isinstance(value, ConsumerGroupTargetAssignmentMetadataValue):
        return 0, {"assignment_epoch": value.assignment_epoch}
    if isinstance(value, ConsumerGroupTargetAssignmentMemberValue):
        return 0, {"topic_partitions": _topic_partitions_out(value.partitions)}
    if isinstance(value, ConsumerGroupCurrentMemberAssignmentValue):
        default = max(value.member_epoch, 0)
        return 0, {
            "member_epoch": value.member_epoch,
            "previous_member_epoch": value.previous_member_epoch, "state": value.state,
            "assigned_partitions": _with_epochs_out(value.assigned_partitions,
                                                    value.assignment_epochs, default),
            "partitions_pending_revocation": _with_epochs_out(
                value.partitions_pending_revocation, value.assignment_epochs, default),
        }
    assert isinstance(value, ConsumerGroupRegularExpressionValue)
    return 0, {"topics": sorted(value.topics), "version": value.version,
               "timestamp": value.timestamp}


def _classic_in(d: dict[str, Any] | None) -> ClassicMemberMetadata | None:
    if d is None:
        return None
    return ClassicMemberMetadata(d["session_timeout_ms"], tuple(
        (p["name"], bytes(p["metadata"])) for p in d["supported_protocols"]))


def _value_in(key_type: int, d: dict[str, Any]) -> Value:
    if key_type in SHARE_KEYS:
        return share_value_in(key_type, d)
    if key_type in (0, 1):
        return OffsetCommitValue(d["offset"], d["leader_epoch"], d["metadata"],
                                 d["commit_timestamp"], d["expire_timestamp"])
    if key_type == 2:
        members = tuple(MemberMetadata(
            m["member_id"], m["group_instance_id"], m["client_id"], m["client_host"],
            m["rebalance_timeout"], m["session_timeout"], bytes(m["subscription"]),
            bytes(m["assignment"])) for m in d["members"])
        return GroupMetadataValue(d["protocol_type"], d["generation"], d["protocol"],
                                  d["leader"], d["current_state_timestamp"], members)
    if key_type == 3:
        return ConsumerGroupMetadataValue(d["epoch"], d["metadata_hash"])
    if key_type == 5:
        return ConsumerGroupMemberMetadataValue(
            d["instance_id"], d["rack_id"], d["client_id"], d["client_host"],
            tuple(d["subscribed_topic_names"]), d["subscribed_topic_regex"],
            d["rebalance_timeout_ms"], d["server_assignor"],
            _classic_in(d.get("classic_member_metadata")))
    if key_type == 6:
        return ConsumerGroupTargetAssignmentMetadataValue(d["assignment_epoch"])
    if key_type == 7:
        return ConsumerGroupTargetAssignmentMemberValue(
            _topic_partitions_in(d["topic_partitions"]))
    if key_type == 8:
        epochs: dict[tuple[uuid.UUID, int], int] = {}
        default = max(d["member_epoch"], 0)
        _epochs_in(d["assigned_partitions"], default, epochs)
        _epochs_in(d["partitions_pending_revocation"], default, epochs)
        return ConsumerGroupCurrentMemberAssignmentValue(
            d["member_epoch"], d["previous_member_epoch"], d["state"],
            _topic_partitions_in(d["assigned_partitions"]),
            _topic_partitions_in(d["partitions_pending_revocation"]), epochs)
    return ConsumerGroupRegularExpressionValue(tuple(d["topics"]), d["version"], d["timestamp"])


def encode_key(key: Key) -> bytes:
    key_type = _KEY_TYPE[type(key)]
    fields = {f.name: getattr(key, f.name) for f in _KEYS[key_type][1]}
    return _INT16.pack(key_type) + _KEY_CODECS[key_type].encode(0, fields)


def encode_value(key: Key, value: Value) -> bytes:
    version, fields = _value_out(value)
    return _INT16.pack(version) + _VALUE_CODECS[_KEY_TYPE[type(key)]].encode(version, fields)


def encode(key: Key, value: Value | None) -> tuple[bytes, bytes | None]:
    """The log record of (key, value); a None value is a tombstone."""
    return encode_key(key), None if value is None else encode_value(key, value)


def decode_key(data: bytes) -> Key | None:
    """The key, or None for a record type this coordinator does not keep (streams
    groups): replay skips those, as a Kafka without them would fail."""
    if len(data) < 2:
        raise CorruptRecordError("coordinator record key shorter than its type")
    (key_type,) = _INT16.unpack_from(data)
    entry = _KEYS.get(key_type)
    if entry is None:
        return None
    fields = _KEY_CODECS[key_type].decode(0, memoryview(data)[2:])
    key: Key = entry[0](**fields)
    return key


def decode_value(key: Key, data: bytes) -> Value:
    if len(data) < 2:
        raise CorruptRecordError("coordinator record value shorter than its version")
    (version,) = _INT16.unpack_from(data)
    key_type = _KEY_TYPE[type(key)]
    return _value_in(key_type, _VALUE_CODECS[key_type].decode(version, memoryview(data)[2:]))


def decode(key: bytes, value: bytes | None) -> tuple[Key, Value | None] | None:
    decoded = decode_key(key)
    if decoded is None:
        return None
    return decoded, None if value is None else decode_value(decoded, value)
