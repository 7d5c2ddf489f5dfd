"""Group APIs at the protocol level, version by version, against an in-process broker
(exact requests a client library would not send, and Kafka's error codes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, call, metadata_request

E = 0
INVALID_REQUEST = 42


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("wire-groups"), overrides={
            "offsets.topic.num.partitions": "4", "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true"}) as b:
        b.run(b.services.groups.runtime.wait_loaded())
        yield b


@pytest.fixture
def client(broker: EmbeddedBroker) -> Iterator[WireClient]:
    with WireClient(broker.bootstrap) as c:
        yield c


def test_find_coordinator_single_and_batched(client: WireClient, broker: EmbeddedBroker
                                             ) -> None:
    v0 = call(client, ApiKey.FIND_COORDINATOR, 0, {"key": "g"})
    assert (v0.error_code, v0.node_id, v0.port) == (E, 1, broker.port)
    batched = call(client, ApiKey.FIND_COORDINATOR, 4,
                   {"key_type": 0, "coordinator_keys": ["a", "b"]})
    assert [(c.key, c.error_code, c.node_id) for c in batched.coordinators] == [
        ("a", E, 1), ("b", E, 1)]
    txn = call(client, ApiKey.FIND_COORDINATOR, 4, {"key_type": 1, "coordinator_keys": ["t"]})
    # The transaction coordinator answers for transactional ids (docs/transactions.md).
    assert (txn.coordinators[0].error_code, txn.coordinators[0].node_id) == (E, 1)
    share = call(client, ApiKey.FIND_COORDINATOR, 6, {"key_type": 2, "coordinator_keys": ["s"]})
    assert share.coordinators[0].error_code == INVALID_REQUEST


def join(client: WireClient, version: int, **fields: Any) -> Any:
    body = {"group_id": "wg", "session_timeout": 10_000, "rebalance_timeout": 10_000,
            "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}], "reason": None, **fields}
    return call(client, ApiKey.JOIN_GROUP, version, body)


def test_join_validation(client: WireClient) -> None:
    assert join(client, 5, group_id="").error_code == 24  # INVALID_GROUP_ID
    assert join(client, 5, session_timeout=1).error_code == 26  # INVALID_SESSION_TIMEOUT
    assert join(client, 5, member_id="ghost").error_code == 25  # UNKNOWN_MEMBER_ID
    first = join(client, 5)
    assert first.error_code == 79 and first.member_id  # MEMBER_ID_REQUIRED
    assert join(client, 5, protocol_type="").error_code == 23  # INCONSISTENT_GROUP_PROTOCOL


def test_full_classic_round_on_old_versions(client: WireClient) -> None:
    """JoinGroup v0 (no member id round trip, protocol name not nullable), SyncGroup v0,
    Heartbeat v0, OffsetCommit v2 with a retention time, OffsetFetch v1, LeaveGroup v0."""
    joined = call(client, ApiKey.JOIN_GROUP, 0, {
        "group_id": "old", "session_timeout": 10_000, "member_id": "",
        "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b"m"}]})
    assert joined.error_code == E and joined.leader == joined.member_id
    member, generation = joined.member_id, joined.generation_id
    synced = call(client, ApiKey.SYNC_GROUP, 0, {
        "group_id": "old", "generation_id": generation, "member_id": member,
        "assignments": [{"member_id": member, "assignment": b"mine"}]})
    assert (synced.error_code, synced.assignment) == (E, b"mine")
    beat = call(client, ApiKey.HEARTBEAT, 0, {"group_id": "old", "generation_id": generation,
                                              "member_id": member})
    assert beat.error_code == E
    client.request(ApiKey.METADATA, 12, metadata_request("wire-topic"))
    commit = call(client, ApiKey.OFFSET_COMMIT, 2, {
        "group_id": "old", "generation_id_or_member_epoch": generation, "member_id": member,
        "retention_time": 60_000, "topics": [
            {"name": "wire-topic", "partitions": [
                {"partition_index": 0, "committed_offset": 7, "committed_metadata": "x"},
                {"partition_index": 9, "committed_offset": 7, "committed_metadata": "x"}]},
            {"name": "no-such-topic", "partitions": [
                {"partition_index": 0, "committed_offset": 1, "committed_metadata": None}]}]})
    codes = {(t.name, p.partition_index): p.error_code
             for t in commit.topics for p in t.partitions}
    assert codes == {("wire-topic", 0): E, ("wire-topic", 9): 3, ("no-such-topic", 0): 3}
    fetched = call(client, ApiKey.OFFSET_FETCH, 1, {
        "group_id": "old", "topics": [{"name": "wire-topic", "partition_indexes": [0, 1]}]})
    partitions = {p.partition_index: (p.committed_offset, p.metadata, p.error_code)
                  for t in fetched.topics for p in t.partitions}
    assert partitions == {0: (7, "x", E), 1: (-1, "", E)}
    left = call(client, ApiKey.LEAVE_GROUP, 0, {"group_id": "old", "member_id": member})
    assert left.error_code == E
    again = call(client, ApiKey.LEAVE_GROUP, 0, {"group_id": "old", "member_id": member})
    assert again.error_code == 25


def test_describe_unknown_group_by_version(client: WireClient) -> None:
    v5 = call(client, ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["nope"],
                                                   "include_authorized_operations": False})
    assert (v5.groups[0].error_code, v5.groups[0].group_state) == (E, "Dead")
    v6 = call(client, ApiKey.DESCRIBE_GROUPS, 6, {"groups": ["nope"],
                                                   "include_authorized_operations": False})
    assert v6.groups[0].error_code == 69  # GROUP_ID_NOT_FOUND
    assert v6.groups[0].error_message == "Group nope not found."


def test_batched_offset_fetch_and_list_filters(client: WireClient) -> None:
    client.request(ApiKey.METADATA, 12, metadata_request("wire-topic"))
    for group in ("batch-a", "batch-b"):
        call(client, ApiKey.OFFSET_COMMIT, 8, {
            "group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
            "topics": [{"name": "wire-topic", "partitions": [
                {"partition_index": 0, "committed_offset": 3, "committed_leader_epoch": 0,
                 "committed_metadata": group}]}]})
    fetched = call(client, ApiKey.OFFSET_FETCH, 8, {"require_stable": True, "groups": [
        {"group_id": "batch-a", "topics": None},
        {"group_id": "batch-b", "topics": [{"name": "wire-topic", "partition_indexes": [0]}]},
        {"group_id": "batch-none", "topics": None}]})
    found = {g.group_id: [(t.name, p.committed_offset, p.committed_leader_epoch, p.metadata)
                          for t in g.topics for p in t.partitions] for g in fetched.groups}
    assert found == {"batch-a": [("wire-topic", 3, 0, "batch-a")],
                     "batch-b": [("wire-topic", 3, 0, "batch-b")], "batch-none": []}
    empty = call(client, ApiKey.LIST_GROUPS, 4, {"states_filter": ["Empty"]})
    assert {"batch-a", "batch-b"} <= {g.group_id for g in empty.groups}
    stable = call(client, ApiKey.LIST_GROUPS, 4, {"states_filter": ["Stable"]})
    assert not {"batch-a", "batch-b"} & {g.group_id for g in stable.groups}
    deleted = call(client, ApiKey.DELETE_GROUPS, 2, {"groups_names": ["batch-a", "nope"]})
    assert [(r.group_id, r.error_code) for r in deleted.results] == [
        ("batch-a", E), ("nope", 69)]
