"""Share groups (KIP-932) in the group coordinator: the simple assignor, the member
lifecycle, share-state initialization bookkeeping, records and group-type conflicts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.coordinator.group import records as rec
from strom.coordinator.group import share_records as srec
from strom.coordinator.group.context import GroupConfig
from strom.coordinator.group.requests import HeartbeatRequest, ShareHeartbeatRequest
from strom.coordinator.group.share_group import ShareGroup, simple_assign
from strom.errors import ErrorCode, KafkaError

from .harness import Harness, image_with

E = ErrorCode
SESSION_MS = 45_000


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(config=GroupConfig(share_max_size=3),
                      image=image_with(("t", 4), ("u", 1)))
    yield harness
    harness.close()


def beat(h: Harness, member: str, epoch: int, topics: tuple[str, ...] | None = ("t",),
         group: str = "g", rack: str | None = None) -> dict[str, Any]:
    request = ShareHeartbeatRequest(group, member, epoch, rack, topics, "client", "/127.0.0.1")
    try:
        outcome = h.write(lambda s: s.share.heartbeat(request))
    except KafkaError as exc:
        return {"error_code": exc.code, "error_message": exc.message}
    response: dict[str, Any] = outcome.response
    response["initialize"] = outcome.initialize
    return response


def assigned(response: dict[str, Any]) -> set[tuple[uuid.UUID, int]]:
    return {(tp["topic_id"], p) for tp in response["assignment"]["topic_partitions"]
            for p in tp["partitions"]}


def topic_id(h: Harness, name: str) -> uuid.UUID:
    return h.image.topics[name].topic_id


# -- the simple assignor ------------------------------------------------------------------

T1, T2 = uuid.UUID(int=1), uuid.UUID(int=2)


def test_assignor_spreads_partitions_and_shares_them_when_members_outnumber_them() -> None:
    subs = {m: frozenset({T1}) for m in ("a", "b")}
    out = simple_assign(subs, {T1: frozenset(range(4))}, {})
    assert out["a"][T1] | out["b"][T1] == frozenset(range(4))
    assert not out["a"][T1] & out["b"][T1]
    assert len(out["a"][T1]) == len(out["b"][T1]) == 2
    three = simple_assign({m: frozenset({T1}) for m in "abc"}, {T1: frozenset({0})}, {})
    assert all(three[m][T1] == frozenset({0}) for m in "abc")  # one partition, shared


def test_assignor_is_sticky_and_only_assigns_subscribed_topics() -> None:
    subs = {"a": frozenset({T1}), "b": frozenset({T1, T2})}
    first = simple_assign(subs, {T1: frozenset(range(4)), T2: frozenset({0})}, {})
    assert T2 not in first["a"] and first["b"][T2] == frozenset({0})
    subs["c"] = frozenset({T1})
    second = simple_assign(subs, {T1: frozenset(range(4)), T2: frozenset({0})}, first)
    for m in ("a", "b"):  # every old member keeps some of what it had
        assert second[m].get(T1, frozenset()) <= first[m][T1]


@settings(max_examples=60, deadline=None)
@given(members=st.integers(1, 7), partitions=st.integers(1, 9))
def test_assignor_covers_every_partition_and_every_member(members: int, partitions: int
                                                          ) -> None:
    names = [f"m{i}" for i in range(members)]
    out = simple_assign({m: frozenset({T1}) for m in names},
                        {T1: frozenset(range(partitions))}, {})
    covered = set().union(*(out[m].get(T1, frozenset()) for m in names))
    assert covered == set(range(partitions))
    counts = [len(out[m].get(T1, frozenset())) for m in names]
    assert min(counts) >= 1 and max(counts) - min(counts) <= max(1, -(-members // partitions))


# -- member lifecycle ----------------------------------------------------------------------

def test_join_heartbeat_and_rebalance_on_a_second_member(h: Harness) -> None:
    a = beat(h, "a", 0)
    assert a["error_code"] == E.none and a["member_epoch"] == 1
    t = topic_id(h, "t")
    assert assigned(a) == {(t, p) for p in range(4)}  # no Persister: assigned at once
    assert a["heartbeat_interval"] == 5000
    b = beat(h, "b", 0)
    assert b["member_epoch"] == 2 and len(assigned(b)) == 2
    a2 = beat(h, "a", 1, topics=None)
    assert a2["member_epoch"] == 2 and len(assigned(a2)) == 2
    assert not assigned(a2) & assigned(b)
    group = h.shard.groups["g"]
    assert isinstance(group, ShareGroup) and group.state_name == "Stable"
    described = h.shard.share.describe("g")
    assert described["assignor_name"] == "simple" and described["group_epoch"] == 2
    assert {m["member_id"] for m in described["members"]} == {"a", "b"}


def test_epochs_unknown_members_and_bad_requests(h: Harness) -> None:
    beat(h, "a", 0)
    beat(h, "b", 0)  # a is now at epoch 1, group at 2
    assert beat(h, "a", 5, topics=None)["error_code"] == E.fenced_member_epoch
    assert beat(h, "a", 1, topics=None)["error_code"] == E.none  # its current epoch
    a = beat(h, "a", 1, topics=None)
    assert a["member_epoch"] == 2
    assert beat(h, "a", 1, topics=None)["error_code"] == E.none  # previous epoch tolerated
    assert beat(h, "a", 0 - 0, topics=None)["error_code"] == E.invalid_request  # no topics
    assert beat(h, "zz", 3, topics=None)["error_code"] == E.unknown_member_id
    assert beat(h, "a", 1, group="nope", topics=None)["error_code"] == E.group_id_not_found
    bad = beat(h, "a", -2, topics=None)
    assert (bad["error_code"], bad["error_message"]) == (E.invalid_request,
                                                         "MemberEpoch is invalid.")
    assert beat(h, "", 0)["error_message"] == "MemberId can't be empty."
    assert beat(h, "a", 0, group="")["error_message"] == "GroupId can't be empty."
    assert beat(h, "c", 0, rack="")["error_message"] == "RackId can't be empty."


def test_max_size_leave_and_session_timeout(h: Harness) -> None:
    for m in ("a", "b", "c"):
        assert beat(h, m, 0)["error_code"] == E.none
    full = beat(h, "d", 0)
    assert full["error_code"] == E.group_max_size_reached
    assert full["error_message"] == ("The share group has reached its maximum capacity of 3 "
                                     "members.")
    left = beat(h, "c", -1, topics=None)
    assert (left["error_code"], left["member_epoch"]) == (E.none, -1)
    assert beat(h, "c", -1, topics=None)["error_code"] == E.unknown_member_id
    epoch = h.shard.groups["g"].group_epoch  # type: ignore[union-attr]
    h.advance(SESSION_MS - 1000)
    beat(h, "a", h.shard.groups["g"].members["a"].member_epoch, topics=None)  # type: ignore[union-attr]
    h.advance(2000)  # b's session ran out, a's did not
    group = h.shard.groups["g"]
    assert isinstance(group, ShareGroup) and set(group.members) == {"a"}
    assert group.group_epoch > epoch
    h.advance(SESSION_MS)
    assert h.shard.groups["g"].state_name == "Empty"  # the group stays, without members


def test_state_survives_a_restart(h: Harness) -> None:
    beat(h, "a", 0)
    beat(h, "b", 0, topics=("t", "u"))
    before = h.shard.share.describe("g")
    h.restart()
    assert h.shard.share.describe("g") == before
    group = h.shard.groups["g"]
    assert isinstance(group, ShareGroup)
    assert set(group.initialized) == {topic_id(h, "t"), topic_id(h, "u")}
    assert beat(h, "a", 1, topics=None)["error_code"] == E.none


def test_partitions_are_assigned_once_their_share_state_is_initialized(h: Harness) -> None:
    h.shard.share.has_persister = True
    first = beat(h, "a", 0)
    t = topic_id(h, "t")
    assert first["member_epoch"] == 1 and assigned(first) == set()
    assert first["initialize"] == ((t, "t", frozenset(range(4))),)
    group = h.shard.groups["g"]
    assert isinstance(group, ShareGroup) and set(group.initializing) == {t}
    again = beat(h, "a", 1, topics=None)  # still initializing: not asked again
    assert again["initialize"] == ()
    h.write(lambda s: s.share.initialized("g", first["initialize"], True))
    assert set(group.initialized) == {t} and not group.initializing
    after = beat(h, "a", 1, topics=None)
    assert after["member_epoch"] == 2 and assigned(after) == {(t, p) for p in range(4)}


def test_failed_initialization_is_retried_by_a_later_heartbeat(h: Harness) -> None:
    h.shard.share.has_persister = True
    first = beat(h, "a", 0)
    h.write(lambda s: s.share.initialized("g", first["initialize"], False))
    retry = beat(h, "a", 1, topics=None)
    assert retry["initialize"] == first["initialize"] and retry["assignment"] is None


def test_a_deleted_topic_is_marked_deleting_until_its_state_is_gone(h: Harness) -> None:
    beat(h, "a", 0, topics=("t", "u"))
    t, u = topic_id(h, "t"), topic_id(h, "u")
    pending = h.write(lambda s: s.share.mark_deleting(frozenset({t})))
    assert pending == [("g", tuple(sorted(((t, p) for p in range(4)), key=str)))]
    group = h.shard.groups["g"]
    assert isinstance(group, ShareGroup)
    assert set(group.initialized) == {u} and group.deleting == {t: "t"}
    assert h.write(lambda s: s.share.mark_deleting(frozenset({t}))) == []  # once
    h.write(lambda s: s.share.deleted("g", frozenset({t})))
    assert group.deleting == {}
    h.restart()
    restored = h.shard.groups["g"]
    assert isinstance(restored, ShareGroup)
    assert set(restored.initialized) == {u} and restored.deleting == {}


def test_initializing_partitions_left_by_a_restart_or_too_long_are_initialized_again(
        h: Harness) -> None:
    h.shard.share.has_persister = True
    first = beat(h, "a", 0)
    assert first["initialize"]  # asked; the answer is never recorded (say the broker died)
    h.restart()
    h.shard.share.has_persister = True
    again = beat(h, "a", 1, topics=None)
    assert again["initialize"] == first["initialize"]
    # In flight here: not asked twice, until group.share.initialize.retry.interval.ms.
    assert beat(h, "a", 1, topics=None)["initialize"] == ()
    h.clock.advance(h.config.share_initialize_retry_interval_ms)
    assert beat(h, "a", 1, topics=None)["initialize"] == first["initialize"]


# -- group types --------------------------------------------------------------------------

def test_group_ids_of_other_types_are_refused_both_ways(h: Harness) -> None:
    beat(h, "a", 0, group="s")
    consumer = HeartbeatRequest("s", "m", 0, None, None, 30_000, ("t",), None, None, (),
                                "c", "/h")
    with pytest.raises(KafkaError) as exc:
        h.write(lambda s: s.consumer.heartbeat(consumer))
    assert exc.value.code == E.group_id_not_found
    assert exc.value.message == "Group s is not a consumer group."
    joined = h.join("s")
    assert joined and joined[0]["error_code"] == E.unknown_member_id
    h.write(lambda s: s.consumer.heartbeat(
        HeartbeatRequest("c", "m", 0, None, None, 30_000, ("t",), None, None, (), "c", "/h")))
    refused = beat(h, "a", 0, group="c")
    assert refused["error_code"] == E.group_id_not_found
    assert refused["error_message"] == "Group c is not a share group."
    assert h.shard.describe_group("s", False) is None
    assert h.shard.consumer_group_describe("s", False)["error_code"] == E.group_id_not_found
    assert [g["group_type"] for g in h.shard.list_groups([], ["share"])] == ["share"]


def test_delete_groups_needs_an_empty_share_group(h: Harness) -> None:
    beat(h, "a", 0)
    result = h.write(lambda s: s.delete_groups(["g"]))
    assert result[0]["error_code"] == E.non_empty_group
    beat(h, "a", -1, topics=None)
    result = h.write(lambda s: s.delete_groups(["g"]))
    assert result[0]["error_code"] == E.none and "g" not in h.shard.groups
    h.restart()
    assert "g" not in h.shard.groups


# -- records ------------------------------------------------------------------------------

def test_share_records_round_trip_with_kafka_key_types() -> None:
    tp = {T1: frozenset({0, 2})}
    pairs: list[tuple[Any, Any, int]] = [
        (srec.ShareGroupMemberMetadataKey("g", "m"),
         srec.ShareGroupMemberMetadataValue("r", "c", "/h", ("a", "b")), 10),
        (srec.ShareGroupMetadataKey("g"), srec.ShareGroupMetadataValue(3, -7), 11),
        (srec.ShareGroupTargetAssignmentMetadataKey("g"),
         srec.ShareGroupTargetAssignmentMetadataValue(3, 1234), 12),
        (srec.ShareGroupTargetAssignmentMemberKey("g", "m"),
         srec.ShareGroupTargetAssignmentMemberValue(tp), 13),
        (srec.ShareGroupCurrentMemberAssignmentKey("g", "m"),
         srec.ShareGroupCurrentMemberAssignmentValue(3, 2, 0, tp), 14),
        (srec.ShareGroupStatePartitionMetadataKey("g"),
         srec.ShareGroupStatePartitionMetadataValue(
             (srec.TopicStateInfo(T1, "t", frozenset({1})),),
             (srec.TopicStateInfo(T2, "u", frozenset({0})),),
             (srec.TopicStateInfo(T1, "t"),)), 15),
    ]
    for key, value, key_type in pairs:
        k, v = rec.encode(key, value)
        assert k[:2] == key_type.to_bytes(2, "big") and v is not None and v[:2] == b"\0\0"
        assert rec.decode(k, v) == (key, value)
        assert rec.decode(k, None) == (key, None)


# Written by Kafka 4.4's own serializers (MessageUtil.toVersionPrefixedByteBuffer and
# toCoordinatorTypePrefixedByteBuffer of the generated ShareGroup*Value/Key classes in
# kafka-group-coordinator-4.4.0.jar) for the same records.
KAFKA_BYTES = {
    10: ("000a00016700016d", "000002720263032f68030261026200"),
    11: (None, "000000000003fffffffffffffff900"),
    12: (None, "00000000000301000800000000000004d2"),
    13: (None, "000002000000000000000000000000000000010300000000000000020000"),
    14: (None, "000000000003000000020002000000000000000000000000000000010300000000000000020000"),
    15: ("000f000167", "000002000000000000000000000000000000010274020000000100020000000000000000"
                       "00000000000000020275020000000000020000000000000000000000000000000102740000"),
}


def test_share_records_are_byte_for_byte_kafkas() -> None:
    tp = {T1: frozenset({0, 2})}
    records: dict[int, tuple[Any, Any]] = {
        10: (srec.ShareGroupMemberMetadataKey("g", "m"),
             srec.ShareGroupMemberMetadataValue("r", "c", "/h", ("a", "b"))),
        11: (srec.ShareGroupMetadataKey("g"), srec.ShareGroupMetadataValue(3, -7)),
        12: (srec.ShareGroupTargetAssignmentMetadataKey("g"),
             srec.ShareGroupTargetAssignmentMetadataValue(3, 1234)),
        13: (srec.ShareGroupTargetAssignmentMemberKey("g", "m"),
             srec.ShareGroupTargetAssignmentMemberValue(tp)),
        14: (srec.ShareGroupCurrentMemberAssignmentKey("g", "m"),
             srec.ShareGroupCurrentMemberAssignmentValue(3, 2, 0, tp)),
        15: (srec.ShareGroupStatePartitionMetadataKey("g"),
             srec.ShareGroupStatePartitionMetadataValue(
                 (srec.TopicStateInfo(T1, "t", frozenset({1})),),
                 (srec.TopicStateInfo(T2, "u", frozenset({0})),),
                 (srec.TopicStateInfo(T1, "t"),))),
    }
    for key_type, (key, value) in records.items():
        key_hex, value_hex = KAFKA_BYTES[key_type]
        k, v = rec.encode(key, value)
        assert v is not None and v.hex() == value_hex, key_type
        if key_hex is not None:
            assert k.hex() == key_hex
        assert rec.decode(k, bytes.fromhex(value_hex)) == (key, value)
