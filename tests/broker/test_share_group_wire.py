"""ShareGroupHeartbeat and ShareGroupDescribe on the wire against an in-process broker:
joining, assignment, leaving, Kafka's error codes for bad input and for group ids of
another type, and ListGroups / DescribeGroups / DeleteGroups on share groups."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, call, metadata_request

NONE = 0
INVALID_REQUEST = 42
GROUP_ID_NOT_FOUND = 69
UNKNOWN_MEMBER_ID = 25
FENCED_MEMBER_EPOCH = 110
NON_EMPTY_GROUP = 68
GROUP_MAX_SIZE_REACHED = 81
UNKNOWN_SERVER_ERROR = -1


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("share-wire"), overrides={
            "offsets.topic.num.partitions": "2", "auto.create.topics.enable": "true",
            "num.partitions": "3", "group.share.max.size": "3"}) as b:
        with WireClient(b.bootstrap) as c:
            for topic in ("st", "other"):
                c.request(ApiKey.METADATA, 12, metadata_request(topic))
            c.request(ApiKey.FIND_COORDINATOR, 4, build(request_class(
                ApiKey.FIND_COORDINATOR, 4), {"key_type": 0, "coordinator_keys": ["x"]}))
        b.run(b.services.groups.runtime.wait_loaded())
        yield b


@pytest.fixture
def client(broker: EmbeddedBroker) -> Iterator[WireClient]:
    with WireClient(broker.bootstrap) as c:
        yield c


def beat(client: WireClient, group: str, member: str, epoch: int,
         topics: list[str] | None = None, rack: str | None = None) -> Any:
    return call(client, ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
        "group_id": group, "member_id": member, "member_epoch": epoch, "rack_id": rack,
        "subscribed_topic_names": topics})


def partitions(response: Any) -> set[tuple[uuid.UUID, int]]:
    if response.assignment is None:
        return set()
    return {(tp.topic_id, p) for tp in response.assignment.topic_partitions
            for p in tp.partitions}


def until_assigned(client: WireClient, group: str, member: str, first: Any) -> Any:
    """Heartbeat from `first` on until the member has partitions (their share state is
    initialized in the background when a share coordinator runs); bounded in time. A
    response without an assignment means it did not change."""
    deadline = time.monotonic() + 10
    response = first
    while not partitions(response) and time.monotonic() < deadline:
        time.sleep(0.05)
        response = beat(client, group, member, response.member_epoch)
    return response


def state_summary(client: WireClient, group: str, topic_id: uuid.UUID, count: int) -> Any:
    """ReadShareGroupStateSummary (the share coordinator's API): per partition."""
    return call(client, ApiKey.READ_SHARE_GROUP_STATE_SUMMARY, 1, {
        "group_id": group, "topics": [{"topic_id": topic_id, "partitions": [
            {"partition": p, "leader_epoch": -1} for p in range(count)]}]}
                ).results[0].partitions


def test_join_assign_describe_and_leave(client: WireClient) -> None:
    a_id, b_id = str(uuid.uuid4()), str(uuid.uuid4())
    a = beat(client, "sg", a_id, 0, ["st"])
    assert (a.error_code, a.member_id, a.member_epoch) == (NONE, a_id, 1)
    assert a.heartbeat_interval.total_seconds() == 5
    a = until_assigned(client, "sg", a_id, a)
    assert len(partitions(a)) == 3
    # Assigned once the share coordinator holds their state (start offset -1: not
    # resolved until a share partition loads it).
    topic = next(iter(partitions(a)))[0]
    for result in state_summary(client, "sg", topic, 3):
        assert (result.error_code, result.start_offset) == (NONE, -1)
        assert result.state_epoch >= 1
    b = until_assigned(client, "sg", b_id, beat(client, "sg", b_id, 0, ["st"]))
    a = beat(client, "sg", a_id, a.member_epoch)  # a gives up what b now has
    assert a.assignment is not None
    assert partitions(a) | partitions(b) == partitions(a) ^ partitions(b)  # disjoint
    assert len(partitions(a) | partitions(b)) == 3

    described = call(client, ApiKey.SHARE_GROUP_DESCRIBE, 1, {
        "group_ids": ["sg", "nope"], "include_authorized_operations": True}).groups
    sg, nope = described
    assert (sg.error_code, sg.group_state, sg.assignor_name) == (NONE, "Stable", "simple")
    assert {m.member_id for m in sg.members} == {a_id, b_id}
    assert all(tp.topic_name == "st" for m in sg.members
               for tp in m.assignment.topic_partitions)
    assert sg.authorized_operations > 0
    assert (nope.error_code, nope.error_message) == (GROUP_ID_NOT_FOUND,
                                                     "Share group nope not found.")

    listed = call(client, ApiKey.LIST_GROUPS, 5, {"states_filter": [],
                                                  "types_filter": ["share"]}).groups
    assert [(g.group_id, g.group_type, g.protocol_type) for g in listed] == [
        ("sg", "share", "share")]
    classic = call(client, ApiKey.DESCRIBE_GROUPS, 6, {
        "groups": ["sg"], "include_authorized_operations": False}).groups[0]
    assert (classic.error_code, classic.error_message) == (
        GROUP_ID_NOT_FOUND, "Group sg is not a classic group.")
    assert call(client, ApiKey.DELETE_GROUPS, 2, {"groups_names": ["sg"]}
                ).results[0].error_code == NON_EMPTY_GROUP

    for member in (a_id, b_id):
        left = beat(client, "sg", member, -1)
        assert (left.error_code, left.member_epoch) == (NONE, -1)
    empty = call(client, ApiKey.SHARE_GROUP_DESCRIBE, 1, {
        "group_ids": ["sg"], "include_authorized_operations": False}).groups[0]
    assert (empty.group_state, empty.members) == ("Empty", ())
    assert call(client, ApiKey.DELETE_GROUPS, 2, {"groups_names": ["sg"]}
                ).results[0].error_code == NONE
    # Deleting the group deleted its share state.
    assert all(r.state_epoch == 0 and r.error_code == NONE
               for r in state_summary(client, "sg", topic, 3))
    gone = call(client, ApiKey.SHARE_GROUP_DESCRIBE, 1, {
        "group_ids": ["sg"], "include_authorized_operations": False}).groups[0]
    assert gone.error_code == GROUP_ID_NOT_FOUND


def test_bad_input_gets_kafka_errors(client: WireClient) -> None:
    m = str(uuid.uuid4())
    cases = [
        (beat(client, "", m, 0, ["st"]), INVALID_REQUEST, "GroupId can't be empty."),
        (beat(client, "bad", "", 0, ["st"]), INVALID_REQUEST, "MemberId can't be empty."),
        (beat(client, "bad", m, 0, None), INVALID_REQUEST,
         "SubscribedTopicNames must be set in first request."),
        (beat(client, "bad", m, 0, ["st"], rack=""), INVALID_REQUEST,
         "RackId can't be empty."),
        (beat(client, "bad", m, -2), INVALID_REQUEST, "MemberEpoch is invalid."),
        (beat(client, "bad", m, 4), GROUP_ID_NOT_FOUND, "Share group bad not found."),
    ]
    for response, code, message in cases:
        assert (response.error_code, response.error_message) == (code, message)
    joined = beat(client, "bad", m, 0, ["st", "no-such-topic-yet"])
    assert joined.error_code == NONE
    assert beat(client, "bad", m, joined.member_epoch + 3).error_code == FENCED_MEMBER_EPOCH
    assert beat(client, "bad", str(uuid.uuid4()), 1).error_code == UNKNOWN_MEMBER_ID
    for _ in range(2):
        assert beat(client, "bad", str(uuid.uuid4()), 0, ["st"]).error_code == NONE
    full = beat(client, "bad", str(uuid.uuid4()), 0, ["st"])
    assert full.error_code == GROUP_MAX_SIZE_REACHED
    # A subscription far larger than any real one is answered, not fatal.
    many = beat(client, "big", str(uuid.uuid4()), 0, [f"t{i}" for i in range(20_000)])
    assert many.error_code == NONE and partitions(many) == set()
    # One whose member record cannot be written (over the topic's max.message.bytes) is
    # refused as Kafka refuses it; the group and the broker go on.
    huge = beat(client, "huge", str(uuid.uuid4()), 0, [f"topic-{i:07d}" for i in range(120_000)])
    assert (huge.error_code, huge.error_message) == (UNKNOWN_SERVER_ERROR, None)
    assert beat(client, "huge", str(uuid.uuid4()), 0, ["st"]).error_code == NONE


def test_group_ids_of_another_type(client: WireClient) -> None:
    consumer = call(client, ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, {
        "group_id": "cg", "member_id": str(uuid.uuid4()), "member_epoch": 0,
        "instance_id": None, "rack_id": None, "rebalance_timeout": 30_000,
        "subscribed_topic_names": ["st"], "subscribed_topic_regex": None,
        "server_assignor": None, "topic_partitions": []})
    assert consumer.error_code == NONE
    refused = beat(client, "cg", str(uuid.uuid4()), 0, ["st"])
    assert (refused.error_code, refused.error_message) == (
        GROUP_ID_NOT_FOUND, "Group cg is not a share group.")
    described = call(client, ApiKey.SHARE_GROUP_DESCRIBE, 1, {
        "group_ids": ["cg"], "include_authorized_operations": False}).groups[0]
    assert (described.error_code, described.error_message) == (
        GROUP_ID_NOT_FOUND, "Group cg is not a share group.")

    assert beat(client, "sg2", str(uuid.uuid4()), 0, ["st"]).error_code == NONE
    other = call(client, ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, {
        "group_id": "sg2", "member_id": str(uuid.uuid4()), "member_epoch": 0,
        "instance_id": None, "rack_id": None, "rebalance_timeout": 30_000,
        "subscribed_topic_names": ["st"], "subscribed_topic_regex": None,
        "server_assignor": None, "topic_partitions": []})
    assert (other.error_code, other.error_message) == (
        GROUP_ID_NOT_FOUND, "Group sg2 is not a consumer group.")
    joined = call(client, ApiKey.JOIN_GROUP, 9, {
        "group_id": "sg2", "session_timeout": 10_000, "rebalance_timeout": 10_000,
        "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b""}], "reason": None})
    assert joined.error_code == UNKNOWN_MEMBER_ID
    fetched = call(client, ApiKey.OFFSET_FETCH, 9, {"groups": [
        {"group_id": "sg2", "member_id": None, "member_epoch": -1, "topics": None}],
        "require_stable": False})
    assert fetched.groups[0].error_code == GROUP_ID_NOT_FOUND


def test_deleting_a_topic_deletes_its_share_state(client: WireClient) -> None:
    made = call(client, ApiKey.CREATE_TOPICS, 5, {"topics": [
        {"name": "doomed", "num_partitions": 2, "replication_factor": 1, "assignments": [],
         "configs": []}], "timeout": 5000, "validate_only": False})
    assert made.topics[0].error_code == NONE
    member = str(uuid.uuid4())
    joined = until_assigned(client, "dg", member, beat(client, "dg", member, 0, ["doomed"]))
    topic = next(iter(partitions(joined)))[0]
    assert all(r.state_epoch >= 1 for r in state_summary(client, "dg", topic, 2))
    deleted = call(client, ApiKey.DELETE_TOPICS, 6, {
        "topics": [{"name": "doomed", "topic_id": None}], "timeout": 5000})
    assert deleted.responses[0].error_code == NONE
    deadline = time.monotonic() + 10
    while any(r.state_epoch != 0 for r in state_summary(client, "dg", topic, 2)):
        assert time.monotonic() < deadline, "the deleted topic's share state stayed"
        time.sleep(0.05)
    after = beat(client, "dg", member, joined.member_epoch)
    assert after.error_code == NONE and not partitions(after)
