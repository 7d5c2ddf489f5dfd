"""Describe/Alter/DeleteShareGroupOffsets over the wire (KIP-932) with Kafka 4.4's
rules: alter creates an empty group and sets start offsets (lag from the
high watermark), a group with members is NON_EMPTY_GROUP, delete forgets a
topic's state, unknown topics and partitions answer their errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from strom.protocol.records import RecordSpec, build_batch
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, metadata_request, produce_request


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("share-offsets"), overrides={
            "auto.create.topics.enable": "true", "num.partitions": "2"}) as b:
        yield b


@pytest.fixture
def client(broker: EmbeddedBroker) -> Iterator[WireClient]:
    with WireClient(broker.bootstrap) as c:
        yield c


def call(client: WireClient, api: ApiKey, version: int, body: dict[str, Any]) -> Any:
    deadline = time.monotonic() + 30
    while True:
        response = client.request(api, version, build(request_class(api, version), body))
        code = getattr(response, "error_code", None)
        if code is None and api == ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS:
            code = response.groups[0].error_code
        # The group coordinator's partition loads after FindCoordinator creates it.
        if code not in (ErrorCode.coordinator_load_in_progress, ErrorCode.not_coordinator,
                        ErrorCode.coordinator_not_available) or time.monotonic() > deadline:
            return response
        time.sleep(0.02)  # a coordinator loading: no event to wait on


def describe(client: WireClient, group: str, topics: dict[str, list[int]] | None) -> Any:
    return call(client, ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS, 1, {"groups": [{
        "group_id": group,
        "topics": None if topics is None else [
            {"topic_name": t, "partitions": ps} for t, ps in topics.items()]}]}).groups[0]


def alter(client: WireClient, group: str, offsets: dict[str, dict[int, int]]) -> Any:
    return call(client, ApiKey.ALTER_SHARE_GROUP_OFFSETS, 0, {"group_id": group, "topics": [
        {"topic_name": t, "partitions": [{"partition_index": p, "start_offset": o}
                                         for p, o in ps.items()]}
        for t, ps in offsets.items()]})


def delete(client: WireClient, group: str, topics: list[str]) -> Any:
    return call(client, ApiKey.DELETE_SHARE_GROUP_OFFSETS, 0, {
        "group_id": group, "topics": [{"topic_name": t} for t in topics]})


def offsets(described: Any) -> dict[tuple[str, int], tuple[int, int, int]]:
    return {(t.topic_name, p.partition_index): (p.start_offset, p.lag, p.error_code)
            for t in described.topics for p in t.partitions}


def _setup(client: WireClient, topic: str, records: int) -> None:
    assert client.request(ApiKey.METADATA, 12, metadata_request(topic)).topics[0].error_code \
        == ErrorCode.none
    batch = build_batch([RecordSpec(value=b"v%d" % i) for i in range(records)])
    response = client.request(ApiKey.PRODUCE, 9, produce_request(topic, batch))
    assert response.responses[0].partition_responses[0].error_code == ErrorCode.none
    find = build(request_class(ApiKey.FIND_COORDINATOR, 4),
                 {"key_type": 0, "coordinator_keys": ["any"]})
    client.request(ApiKey.FIND_COORDINATOR, 4, find)


def test_alter_describe_delete(client: WireClient, topic_name: str) -> None:
    _setup(client, topic_name, 10)  # partition 0 has 10 records, partition 1 none
    group = f"g-{topic_name}"
    # No such group: no topics, no error (Kafka 4.4's answer).
    missing = describe(client, group, None)
    assert (missing.error_code, missing.topics) == (ErrorCode.none, ())
    altered = alter(client, group, {topic_name: {0: 4, 1: 0, 5: 0}, "no-such-topic": {0: 1}})
    assert altered.error_code == ErrorCode.none
    codes = {(r.topic_name, p.partition_index): p.error_code
             for r in altered.responses for p in r.partitions}
    assert codes == {(topic_name, 0): ErrorCode.none, (topic_name, 1): ErrorCode.none,
                     (topic_name, 5): ErrorCode.unknown_topic_or_partition,
                     ("no-such-topic", 0): ErrorCode.unknown_topic_or_partition}
    # Every partition the group initialized, with lag = high watermark - start offset.
    everything = describe(client, group, None)
    assert everything.error_code == ErrorCode.none
    assert offsets(everything) == {(topic_name, 0): (4, 6, 0), (topic_name, 1): (0, 0, 0)}
    # Named topics: an unknown one answers start offset -1 and a zero topic id.
    named = describe(client, group, {topic_name: [0], "no-such-topic": [3]})
    assert offsets(named) == {(topic_name, 0): (4, 6, 0), ("no-such-topic", 3): (-1, -1, 0)}
    # Kafka's Uuid.ZERO_UUID (kio reads it as None).
    assert {t.topic_name: t.topic_id for t in named.topics}["no-such-topic"] in (
        None, uuid.UUID(int=0))
    # Altering again moves the start offset (a new state epoch).
    assert alter(client, group, {topic_name: {0: 9}}).error_code == ErrorCode.none
    assert offsets(describe(client, group, {topic_name: [0]})) == {(topic_name, 0): (9, 1, 0)}

    deleted = delete(client, group, [topic_name, "no-such-topic"])
    assert deleted.error_code == ErrorCode.none
    assert {r.topic_name: r.error_code for r in deleted.responses} == {
        topic_name: ErrorCode.none, "no-such-topic": ErrorCode.unknown_topic_or_partition}
    assert describe(client, group, None).topics == ()
    assert offsets(describe(client, group, {topic_name: [0]})) == {
        (topic_name, 0): (-1, -1, 0)}
    # Nothing left to delete for that topic now.
    again = delete(client, group, [topic_name])
    assert [(r.error_code, r.error_message) for r in again.responses] == [
        (ErrorCode.unknown_topic_or_partition, "There is no offset information to delete.")]


def test_group_with_members_is_not_altered(client: WireClient, topic_name: str) -> None:
    _setup(client, topic_name, 1)
    group = f"busy-{topic_name}"
    member = str(uuid.uuid4())
    joined = call(client, ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
        "group_id": group, "member_id": member, "member_epoch": 0, "rack_id": None,
        "subscribed_topic_names": [topic_name]})
    assert joined.error_code == ErrorCode.none
    assert alter(client, group, {topic_name: {0: 0}}).error_code == ErrorCode.non_empty_group
    assert delete(client, group, [topic_name]).error_code == ErrorCode.non_empty_group
    assert delete(client, f"none-{topic_name}", [topic_name]).error_code == \
        ErrorCode.group_id_not_found
    # A consumer group's id is not a share group's.
    commit = build(request_class(ApiKey.OFFSET_COMMIT, 8), {
        "group_id": f"cg-{topic_name}", "generation_id_or_member_epoch": -1, "member_id": "",
        "group_instance_id": None, "retention_time_ms": -1, "topics": [
            {"name": topic_name, "partitions": [{"partition_index": 0, "committed_offset": 0,
                                                 "committed_leader_epoch": -1,
                                                 "committed_metadata": ""}]}]})
    assert client.request(ApiKey.OFFSET_COMMIT, 8, commit).topics[0].partitions[0] \
        .error_code == ErrorCode.none
    assert alter(client, f"cg-{topic_name}", {topic_name: {0: 0}}).error_code == \
        ErrorCode.group_id_not_found
