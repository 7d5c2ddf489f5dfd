"""Committed offsets: validation, recovery, expiry, deletion (shard on the real runtime)."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from kio.schema.consumer_protocol_subscription.v0.data import ConsumerProtocolSubscription
from kio.serial import entity_writer

from strom.coordinator.group.classic import ClassicGroup, ClassicGroupState
from strom.coordinator.group.context import GroupConfig
from strom.coordinator.group.requests import CommitRequest, PartitionCommit
from strom.errors import ErrorCode, KafkaError

from .harness import Harness
from .test_classic_group import stable_group

E = ErrorCode
S = ClassicGroupState
RETENTION_MS = 60_000


def subscription(*topics: str) -> bytes:
    out = io.BytesIO()
    out.write(struct.pack(">h", 0))
    entity_writer(ConsumerProtocolSubscription)(
        out, ConsumerProtocolSubscription(topics=topics, user_data=None))
    return out.getvalue()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(config=GroupConfig(initial_rebalance_delay_ms=0,
                                         offsets_retention_ms=RETENTION_MS,
                                         offsets_retention_check_interval_ms=1000))
    yield harness
    harness.close()


def commit(h: Harness, group: str, offsets: dict[tuple[str, int], int], *,
           generation: int = -1, member: str = "", instance: str | None = None,
           retention_ms: int = -1, metadata: str | None = "m", epoch: int = 3,
           version: int = 9) -> dict[tuple[str, int], ErrorCode]:
    by_topic: dict[str, list[PartitionCommit]] = {}
    for (topic, partition), offset in offsets.items():
        by_topic.setdefault(topic, []).append(PartitionCommit(partition, offset, epoch, metadata))
    request = CommitRequest(group, generation, member, instance, retention_ms,
                            tuple((t, tuple(ps)) for t, ps in by_topic.items()), version)
    try:
        topics = h.write(lambda s: s.offsets.commit(request))
    except KafkaError as exc:
        return {tp: exc.code for tp in offsets}
    return {(t["name"], p["partition_index"]): p["error_code"]
            for t in topics for p in t["partitions"]}


def fetch(h: Harness, group: str, topics: list[tuple[str, list[int]]] | None = None
          ) -> dict[tuple[str, int], tuple[int, int, str]]:
    found = h.shard.offsets.fetch(group, topics)
    return {(t, p): (c.offset, c.leader_epoch, c.metadata) if c else (-1, -1, "")
            for t, parts in found for p, c in parts}


def test_simple_group_commits_and_survives_restart(h: Harness) -> None:
    assert commit(h, "simple", {("t", 0): 10, ("t", 1): 20}) == {
        ("t", 0): E.none, ("t", 1): E.none}
    group = h.shard.groups["simple"]
    assert isinstance(group, ClassicGroup) and group.state is S.EMPTY
    assert group.protocol_type is None
    h.restart()
    assert fetch(h, "simple") == {("t", 0): (10, 3, "m"), ("t", 1): (20, 3, "m")}
    assert fetch(h, "simple", [("t", [0, 5])]) == {("t", 0): (10, 3, "m"), ("t", 5): (-1, -1, "")}
    assert fetch(h, "nobody", [("t", [0])]) == {("t", 0): (-1, -1, "")}


def test_commit_validation_follows_kafka(h: Harness) -> None:
    members, generation, _ = stable_group(h, 2)
    m = members[0]
    assert commit(h, "g", {("t", 0): 1}, generation=generation, member=m) == {("t", 0): E.none}
    assert commit(h, "g", {("t", 0): 1}, generation=generation + 1, member=m) == {
        ("t", 0): E.illegal_generation}
    assert commit(h, "g", {("t", 0): 1}, generation=generation, member="x") == {
        ("t", 0): E.unknown_member_id}
    assert commit(h, "g", {("t", 0): 1}) == {("t", 0): E.unknown_member_id}  # not empty
    assert commit(h, "missing", {("t", 0): 1}, generation=1, member="x") == {
        ("t", 0): E.group_id_not_found}
    assert commit(h, "missing", {("t", 0): 1}, generation=1, member="x", version=8) == {
        ("t", 0): E.illegal_generation}
    # Leader rejoins: the group is rebalancing; commits of the old generation still go.
    h.join("g", m)
    assert commit(h, "g", {("t", 0): 2}, generation=generation, member=m) == {("t", 0): E.none}
    h.join("g", members[1])
    assert h.shard.groups["g"].state is S.COMPLETING_REBALANCE  # type: ignore[union-attr]
    assert commit(h, "g", {("t", 0): 3}, generation=generation + 1, member=m) == {
        ("t", 0): E.rebalance_in_progress}


def test_metadata_size_is_limited_per_partition(h: Harness) -> None:
    big = "x" * 4097
    h.write(lambda s: s.offsets.commit(CommitRequest(
        "g", -1, "", None, -1, (("t", (PartitionCommit(0, 1, -1, big),
                                       PartitionCommit(1, 1, -1, None))),))))
    assert fetch(h, "g") == {("t", 1): (1, -1, "")}


def test_offsets_of_an_empty_group_expire_after_retention(h: Harness) -> None:
    commit(h, "g", {("t", 0): 5})
    h.advance(RETENTION_MS - 2000)
    assert fetch(h, "g") == {("t", 0): (5, 3, "m")}
    h.advance(3000)
    assert fetch(h, "g") == {}
    assert "g" not in h.shard.groups  # an empty group without offsets is deleted
    h.restart()
    assert "g" not in h.shard.groups and fetch(h, "g") == {}


def test_explicit_retention_time_wins(h: Harness) -> None:
    commit(h, "g", {("t", 0): 5}, retention_ms=2000)
    h.advance(3000)
    assert fetch(h, "g") == {}


def test_stable_consumer_group_keeps_offsets_of_subscribed_topics(h: Harness) -> None:
    sub = (("range", subscription("t")),)
    members, generation, _ = stable_group(h, 1, protocols=sub, session_ms=600_000)
    m = members[0]
    commit(h, "g", {("t", 0): 1, ("other", 0): 2}, generation=generation, member=m)
    for _ in range(RETENTION_MS // 10_000 + 1):
        h.advance(10_000)
        assert h.heartbeat("g", m, generation) == E.none
    assert fetch(h, "g") == {("t", 0): (1, 3, "m")}


def test_delete_groups(h: Harness) -> None:
    members, generation, _ = stable_group(h, 1)
    commit(h, "g", {("t", 0): 1}, generation=generation, member=members[0])
    commit(h, "empty", {("t", 0): 1})
    results = h.write(lambda s: s.delete_groups(["g", "empty", "nope"]))
    assert [r["error_code"] for r in results] == [
        E.non_empty_group, E.none, E.group_id_not_found]
    assert "empty" not in h.shard.groups and fetch(h, "empty") == {}
    h.restart()
    assert "empty" not in h.shard.groups and fetch(h, "empty") == {}
    assert fetch(h, "g") == {("t", 0): (1, 3, "m")}


def test_offset_delete(h: Harness) -> None:
    sub = (("range", subscription("t")),)
    members, generation, _ = stable_group(h, 1, protocols=sub)
    commit(h, "g", {("t", 0): 1, ("u", 0): 2}, generation=generation, member=members[0])

    def delete(group: str, topics: list[tuple[str, list[int]]]) -> Any:
        try:
            answered = h.write(lambda s: s.offsets.delete(group, topics))
        except KafkaError as exc:
            return exc.code
        return {(t["name"], p["partition_index"]): p["error_code"]
                for t in answered for p in t["partitions"]}

    assert delete("g", [("t", [0]), ("u", [0])]) == {
        ("t", 0): E.group_subscribed_to_topic, ("u", 0): E.none}
    assert fetch(h, "g") == {("t", 0): (1, 3, "m")}
    assert delete("nope", [("t", [0])]) == E.group_id_not_found
    other = (("custom", b"not a consumer subscription"),)
    stable_group(h, 1, group_id="raw", protocols=other)
    h.shard.groups["raw"].protocol_type = "connect"  # type: ignore[union-attr]
    assert delete("raw", [("t", [0])]) == E.non_empty_group


def test_list_and_describe(h: Harness) -> None:
    stable_group(h, 2)
    commit(h, "simple", {("t", 0): 1})
    listed = {g["group_id"]: g for g in h.shard.list_groups([], [])}
    assert listed["g"] == {"group_id": "g", "protocol_type": "consumer",
                           "group_state": "Stable", "group_type": "classic"}
    assert listed["simple"]["group_state"] == "Empty"
    assert [g["group_id"] for g in h.shard.list_groups(["stable"], [])] == ["g"]
    assert [g["group_id"] for g in h.shard.list_groups(["EMPTY"], ["Classic"])] == ["simple"]
    assert h.shard.list_groups([], ["consumer"]) == []
    described = h.shard.describe_group("g", True)
    assert described is not None
    assert described["group_state"] == "Stable" and described["protocol_data"] == "range"
    assert len(described["members"]) == 2
    assert all(m["member_metadata"] == b"r" for m in described["members"])
    assert h.shard.describe_group("nope", False) is None


def test_a_deleted_state_partition_is_never_served(h: Harness) -> None:
    """Its topic deleted (h.log.live = False) before the metadata change that
    unloads the shard arrives: reads, writes and timers answer NOT_COORDINATOR
    instead of serving the deleted log's state; the recreated topic loads afresh.
    At 0098471 the stale shard kept answering from the deleted log."""
    from strom.errors import NotCoordinatorError

    from .harness import MemoryLog

    assert commit(h, "g", {("t", 0): 10}) == {("t", 0): E.none}
    h.log.live = False
    with pytest.raises(NotCoordinatorError):
        h.runtime.read(0, lambda s: s)
    assert commit(h, "g", {("t", 0): 11}) == {("t", 0): E.not_coordinator}
    assert h.runtime.partitions == []
    recreated = MemoryLog()
    _follow(h, recreated)
    assert fetch(h, "g") == {}
    assert commit(h, "g", {("t", 0): 12}) == {("t", 0): E.none}
    assert fetch(h, "g") == {("t", 0): (12, 3, "m")}
    # A shard whose log went away between two images is replaced on the next one.
    recreated.live = False
    _follow(h, MemoryLog())
    assert fetch(h, "g") == {}


def _follow(h: Harness, log: Any) -> None:
    """A metadata image in which partition 0 (on `log`) is led here."""

    async def follow() -> None:
        h.runtime.follow_leadership([0], lambda partition: log)
        await h.runtime.wait_loaded()

    h.run(follow())


def test_a_write_waiting_when_its_partition_is_deleted_fails_not_coordinator(
        h: Harness) -> None:
    from strom.errors import NotCoordinatorError, UnknownTopicOrPartitionError

    async def deleted_while_waiting(end_offset: int) -> None:
        h.log.live = False
        raise UnknownTopicOrPartitionError("deleted")

    h.log.wait_durable = deleted_while_waiting  # type: ignore[method-assign]
    request = CommitRequest("g", -1, "", None, -1, (("t", (PartitionCommit(0, 1, 3, "m"),)),), 9)
    with pytest.raises(NotCoordinatorError):
        h.write(lambda s: s.offsets.commit(request))
