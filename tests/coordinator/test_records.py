"""The __consumer_offsets record codec: Kafka's byte layouts, round trips, bad input."""

from __future__ import annotations

import uuid

import pytest

from strom.coordinator.group import records as rec
from strom.coordinator.group.service import java_string_hash, partition_for
from strom.errors import CorruptRecordError

TS = 1_700_000_000_000  # 0x18BCFE56800

# Hand-assembled from Kafka's specs: int16 record type (OffsetCommit = 1), then
# OffsetCommitKey v0 (string group, string topic, int32 partition).
OFFSET_KEY = bytes.fromhex("0001" "0002" "6731" "0005" "746f706963" "00000003")
# int16 version 3, then offset int64, leaderEpoch int32, metadata string, commitTimestamp int64.
OFFSET_VALUE_V3 = bytes.fromhex(
    "0003" "000000000000002a" "00000005" "0004" "6d657461" "0000018bcfe56800")
# Version 1 (a commit with a retention time): offset, metadata, commitTimestamp, expireTimestamp.
OFFSET_VALUE_V1 = bytes.fromhex(
    "0001" "000000000000002a" "0000" "0000018bcfe56800" "0000018bcfe5a500")
GROUP_KEY = bytes.fromhex("0002" "0002" "6731")
# GroupMetadataValue v3: protocolType, generation, protocol (nullable), leader (nullable),
# currentStateTimestamp, members [memberId, groupInstanceId (nullable), clientId,
# clientHost, rebalanceTimeout, sessionTimeout, subscription bytes, assignment bytes].
GROUP_VALUE_V3 = bytes.fromhex(
    "0003" "0008" "636f6e73756d6572" "00000003" "0005" "72616e6765" "0002" "6d31"
    "0000018bcfe56800" "00000001"
    "0002" "6d31" "ffff" "0001" "63" "0008" "2f312e322e332e34" "0000012c" "0000000a"
    "00000003" "737562" "00000003" "617367")
MEMBER = rec.MemberMetadata("m1", None, "c", "/1.2.3.4", 300, 10, b"sub", b"asg")
GROUP_VALUE = rec.GroupMetadataValue("consumer", 3, "range", "m1", TS, (MEMBER,))


def test_offset_commit_in_kafka_layout() -> None:
    key, value = rec.encode(rec.OffsetCommitKey("g1", "topic", 3),
                            rec.OffsetCommitValue(42, 5, "meta", TS))
    assert key == OFFSET_KEY
    assert value == OFFSET_VALUE_V3
    assert rec.decode(OFFSET_KEY, OFFSET_VALUE_V3) == (
        rec.OffsetCommitKey("g1", "topic", 3), rec.OffsetCommitValue(42, 5, "meta", TS))


def test_offset_commit_with_expire_timestamp_is_version_1() -> None:
    value = rec.OffsetCommitValue(42, -1, "", TS, TS + 15_616)
    assert rec.encode_value(rec.OffsetCommitKey("g1", "topic", 3), value) == OFFSET_VALUE_V1
    assert rec.decode(OFFSET_KEY, OFFSET_VALUE_V1) == (
        rec.OffsetCommitKey("g1", "topic", 3), value)


def test_zookeeper_era_key_type_0_reads_as_offset_commit() -> None:
    old_key = b"\x00\x00" + OFFSET_KEY[2:]
    assert rec.decode_key(old_key) == rec.OffsetCommitKey("g1", "topic", 3)


def test_group_metadata_in_kafka_layout() -> None:
    key, value = rec.encode(rec.GroupMetadataKey("g1"), GROUP_VALUE)
    assert key == GROUP_KEY
    assert value == GROUP_VALUE_V3
    assert rec.decode(GROUP_KEY, GROUP_VALUE_V3) == (rec.GroupMetadataKey("g1"), GROUP_VALUE)


def test_older_group_metadata_versions_decode_with_defaults() -> None:
    # v0: no rebalance timeout, no state timestamp, no instance id.
    v0 = bytes.fromhex(
        "0000" "0008" "636f6e73756d6572" "00000001" "ffff" "ffff" "00000001"
        "0002" "6d31" "0001" "63" "0001" "68" "0000000a" "00000000" "00000000")
    _, value = rec.decode(GROUP_KEY, v0) or (None, None)
    assert value == rec.GroupMetadataValue(
        "consumer", 1, None, None, -1, (rec.MemberMetadata("m1", None, "c", "h", -1, 10,
                                                            b"", b""),))


def test_tombstones_have_no_value() -> None:
    assert rec.encode(rec.GroupMetadataKey("g1"), None) == (GROUP_KEY, None)
    assert rec.decode(GROUP_KEY, None) == (rec.GroupMetadataKey("g1"), None)


T1, T2 = uuid.UUID(int=1), uuid.UUID(int=2)
CONSUMER_RECORDS: list[tuple[rec.Key, rec.Value]] = [
    (rec.ConsumerGroupMetadataKey("g"), rec.ConsumerGroupMetadataValue(7, -12345)),
    (rec.ConsumerGroupMemberMetadataKey("g", "m"), rec.ConsumerGroupMemberMetadataValue(
        "i-1", None, "client", "/10.0.0.1", ("a", "b"), "x.*", 30_000, "uniform")),
    (rec.ConsumerGroupTargetAssignmentMetadataKey("g"),
     rec.ConsumerGroupTargetAssignmentMetadataValue(7)),
    (rec.ConsumerGroupTargetAssignmentMemberKey("g", "m"),
     rec.ConsumerGroupTargetAssignmentMemberValue({T1: frozenset({0, 2}), T2: frozenset({1})})),
    (rec.ConsumerGroupCurrentMemberAssignmentKey("g", "m"),
     rec.ConsumerGroupCurrentMemberAssignmentValue(
         7, 6, 1, {T1: frozenset({0})}, {T2: frozenset({1, 3})},
         {(T1, 0): 7, (T2, 1): 3, (T2, 3): 0})),
    (rec.ConsumerGroupRegularExpressionKey("g", "x.*"),
     rec.ConsumerGroupRegularExpressionValue(("xa", "xb"), 12, TS)),
]


@pytest.mark.parametrize("key,value", CONSUMER_RECORDS, ids=lambda r: type(r).__name__)
def test_consumer_group_records_round_trip(key: rec.Key, value: rec.Value) -> None:
    key_bytes, value_bytes = rec.encode(key, value)
    assert value_bytes is not None
    assert value_bytes[:2] == b"\x00\x00"  # every KIP-848 value is written at v0
    assert rec.decode(key_bytes, value_bytes) == (key, value)


def test_consumer_group_metadata_in_kafka_layout() -> None:
    # Key type 3, group id; value v0 (flexible): epoch int32, then tagged fields: the
    # metadata hash (tag 0) is written only when it is not its default 0.
    key, value = rec.encode(rec.ConsumerGroupMetadataKey("g"), rec.ConsumerGroupMetadataValue(5))
    assert key == bytes.fromhex("0003" "0001" "67")
    assert value == bytes.fromhex("0000" "00000005" "00")
    _, hashed = rec.encode(rec.ConsumerGroupMetadataKey("g"),
                           rec.ConsumerGroupMetadataValue(5, 77))
    assert hashed == bytes.fromhex("0000" "00000005" "01" "00" "08" "000000000000004d")


def test_current_member_assignment_in_kafka_layout() -> None:
    # Kafka 4.4 (KIP-1251): each TopicPartitions carries its partitions' assignment
    # epochs as tagged field 0, a compact array of int32 as long as Partitions.
    _, value = rec.encode(rec.ConsumerGroupCurrentMemberAssignmentKey("g", "m"),
                          rec.ConsumerGroupCurrentMemberAssignmentValue(
                              7, 6, 0, {T1: frozenset({0})}, {}, {(T1, 0): 5}))
    assert value == bytes.fromhex(
        "0000" "00000007" "00000006" "00"
        "02" f"{1:032x}" "02" "00000000" "01" "00" "05" "02" "00000005"  # assigned
        "01"  # nothing pending revocation
        "00")
    # A record without the epochs (Kafka before 4.4, strom before) replays with the
    # member epoch for every partition, as Kafka's Utils.assignmentFromTopicPartitions.
    old = bytes.fromhex("0000" "00000007" "00000006" "00"
                        "02" f"{1:032x}" "03" "00000000" "00000002" "00" "01" "00")
    decoded = rec.decode(rec.encode_key(rec.ConsumerGroupCurrentMemberAssignmentKey("g", "m")),
                         old)
    assert decoded is not None
    assert decoded[1] == rec.ConsumerGroupCurrentMemberAssignmentValue(
        7, 6, 0, {T1: frozenset({0, 2})}, {}, {(T1, 0): 7, (T1, 2): 7})


def test_unknown_record_types_are_skipped() -> None:
    unknown_key = bytes.fromhex("7f00" "0001" "67")  # a type no Kafka writes yet
    assert rec.decode(unknown_key, b"\x00\x00") is None


@pytest.mark.parametrize("key,value", [
    (OFFSET_KEY, OFFSET_VALUE_V3), (GROUP_KEY, GROUP_VALUE_V3)])
def test_truncated_or_padded_records_are_corrupt(key: bytes, value: bytes) -> None:
    for cut in range(len(value)):
        with pytest.raises(CorruptRecordError):
            rec.decode(key, value[:cut])
    with pytest.raises(CorruptRecordError):
        rec.decode(key, value + b"\x00")
    for cut in range(len(key)):
        with pytest.raises(CorruptRecordError):
            rec.decode(key[:cut], value)
    with pytest.raises(CorruptRecordError):
        rec.decode(key, b"\x00\x63" + value[2:])  # no such version


def test_java_string_hash_code() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("test") == 3556498
    assert java_string_hash("polygenelubricants") == -(2**31)
    assert java_string_hash("\N{GRINNING FACE}") == 0xD83D * 31 + 0xDE00  # UTF-16 units


def test_partition_for_uses_kafka_abs() -> None:
    assert partition_for("hello", 50) == 99162322 % 50
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(MIN_VALUE) == 0
    negative = "Aa" * 9  # a string whose hash code is negative
    assert java_string_hash(negative) < 0
    assert partition_for(negative, 50) == abs(java_string_hash(negative)) % 50
