"""Streams groups on the coordinator shard with time under control: a member that stops
heartbeating is fenced after its session timeout and its tasks move; one that does not
revoke in time is fenced after its rebalance timeout; the group replays after a restart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from strom.coordinator.group.context import GroupConfig
from strom.coordinator.group.streams import MemberState, StreamsGroup, TasksTuple
from strom.coordinator.group.streams_config import StreamsGroupConfig
from strom.coordinator.group.streams_validation import StreamsHeartbeat
from strom.errors import KafkaError

from .harness import Harness, image_with

SESSION_MS = 45_000


def topology() -> dict[str, Any]:
    return {"epoch": 1, "subtopologies": [{
        "subtopology_id": "0", "source_topics": ["in"], "source_topic_regex": [],
        "state_changelog_topics": [], "repartition_sink_topics": [],
        "repartition_source_topics": [], "copartition_groups": []}]}


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(config=GroupConfig(streams=StreamsGroupConfig(
        initial_rebalance_delay_ms=0)), image=image_with(("in", 4)))
    yield harness
    harness.close()


class Member:
    def __init__(self, h: Harness, member_id: str) -> None:
        self.h, self.member_id, self.epoch = h, member_id, 0
        self.owned = TasksTuple()

    def heartbeat(self, owned: TasksTuple | None = None) -> Any:
        joining = self.epoch == 0
        request = StreamsHeartbeat(
            "g", self.member_id, self.epoch, rebalance_timeout_ms=10_000 if joining else -1,
            topology=topology() if joining else None,
            owned=None if joining else (self.owned if owned is None else owned),
            process_id=f"p-{self.member_id}" if joining else None)
        outcome = self.h.write(lambda s: s.streams.heartbeat(request))
        response = outcome.response
        self.epoch = response["member_epoch"]
        if response["active_tasks"] is not None:
            self.owned = TasksTuple({t["subtopology_id"]: frozenset(t["partitions"])
                                     for t in response["active_tasks"]})
        return response

    def tasks(self) -> int:
        return sum(len(ps) for ps in self.owned.active.values())


def group(h: Harness) -> StreamsGroup:
    g = h.shard.groups["g"]
    assert isinstance(g, StreamsGroup)
    return g


def settle(*members: Member) -> None:
    for _ in range(10):
        for m in members:
            m.heartbeat()
    assert group(members[0].h).state_name == "Stable"


def test_session_timeout_fences_and_moves_the_tasks(h: Harness) -> None:
    a, b = Member(h, "a"), Member(h, "b")
    settle(a, b)
    assert a.tasks() == b.tasks() == 2
    epoch = group(h).group_epoch
    h.advance(SESSION_MS - 1000)
    a.heartbeat()  # a keeps its session alive, b does not
    h.advance(2000)
    assert set(group(h).members) == {"a"} and group(h).group_epoch == epoch + 1
    settle(a)
    assert a.tasks() == 4


def test_a_member_that_does_not_revoke_is_fenced_after_its_rebalance_timeout(
        h: Harness) -> None:
    a = Member(h, "a")
    settle(a)
    b = Member(h, "b")
    b.heartbeat()
    a.heartbeat(owned=a.owned)  # a is asked to revoke two tasks and keeps them
    assert group(h).members["a"].state is MemberState.UNREVOKED_TASKS
    waited = 0
    while "a" in group(h).members:  # both keep their sessions alive; a never revokes
        assert waited <= 12_000, "a was not fenced"
        a.heartbeat(owned=TasksTuple({"0": frozenset(range(4))}))
        b.heartbeat()
        h.advance(3000)
        waited += 3000
    assert waited > 9000  # its rebalance timeout is 10 s
    settle(b)
    assert b.tasks() == 4


def test_the_group_replays_after_a_restart(h: Harness) -> None:
    a, b = Member(h, "a"), Member(h, "b")
    settle(a, b)
    before = group(h)
    state = (before.group_epoch, before.assignment_epoch, dict(before.target),
             {m: (x.member_epoch, x.assigned, x.process_id) for m, x in before.members.items()},
             before.topology)
    h.restart()
    after = group(h)
    assert (after.group_epoch, after.assignment_epoch, dict(after.target),
            {m: (x.member_epoch, x.assigned, x.process_id) for m, x in after.members.items()},
            after.topology) == state
    assert a.heartbeat()["error_code"] == 0 and b.heartbeat()["error_code"] == 0


def test_static_member_restarts_into_its_tasks_without_a_rebalance(h: Harness) -> None:
    def heartbeat(member_id: str, epoch: int, instance: str = "i1",
                  owned: TasksTuple | None = None) -> Any:
        request = StreamsHeartbeat(
            "g", member_id, epoch, instance_id=instance,
            rebalance_timeout_ms=10_000 if epoch == 0 else -1,
            topology=topology() if epoch == 0 else None, owned=owned,
            process_id="p-static" if epoch == 0 else None)
        try:
            return h.write(lambda s: s.streams.heartbeat(request)).response
        except KafkaError as exc:  # its code is the answer
            return {"error_code": exc.code}

    b = Member(h, "b")
    first = heartbeat("s1", 0)
    for _ in range(6):
        b.heartbeat()
        first = heartbeat("s1", first["member_epoch"], owned=group(h).members["s1"].assigned)
    assert group(h).state_name == "Stable"
    epoch = group(h).group_epoch
    tasks = group(h).members["s1"].assigned
    assert tasks.active  # s1 holds tasks
    # Another process with the same instance id while s1 is still there.
    assert heartbeat("s2", 0)["error_code"] == 111  # UNRELEASED_INSTANCE_ID
    assert heartbeat("s1", -2)["error_code"] == 0  # leaves for a restart, keeps its tasks
    assert group(h).members["s1"].assigned == tasks
    rejoined = heartbeat("s2", 0)
    assert rejoined["error_code"] == 0
    assert "s1" not in group(h).members and group(h).group_epoch == epoch  # no rebalance
    assert group(h).members["s2"].assigned == tasks
    assert {t["subtopology_id"]: frozenset(t["partitions"])
            for t in rejoined["active_tasks"]} == tasks.active
    # The old member id is fenced, an unknown instance id is unknown.
    assert heartbeat("s1", rejoined["member_epoch"])["error_code"] == 82  # FENCED_INSTANCE_ID
    assert heartbeat("x", 3, instance="i9")["error_code"] == 25  # UNKNOWN_MEMBER_ID


def test_offset_commits_are_checked_against_task_assignment_epochs(h: Harness) -> None:
    from strom.coordinator.group.requests import CommitRequest, PartitionCommit

    def commit(member: str, epoch: int, *partitions: int) -> Any:
        request = CommitRequest("g", epoch, member, None, -1, (("in", tuple(
            PartitionCommit(p, 10, -1, None) for p in partitions)),))
        try:
            topics = h.write(lambda s: s.offsets.commit(request))
        except KafkaError as exc:
            return exc.code
        return {p["partition_index"]: p["error_code"] for p in topics[0]["partitions"]}

    a = Member(h, "a")
    settle(a)
    old_epoch = a.epoch
    b = Member(h, "b")
    b.heartbeat()
    for _ in range(6):  # a gives up two tasks, b takes them: both move to a new epoch
        a.heartbeat()
        b.heartbeat()
    assert a.epoch > old_epoch and a.tasks() == b.tasks() == 2
    kept = sorted(a.owned.active["0"])
    moved = sorted(b.owned.active["0"])
    # a's commit of its previous epoch: fine for the tasks it kept since, stale for the
    # ones it gave away (a zombie's commit), as Kafka 4.4's assignment epochs decide;
    # one such partition refuses the whole commit.
    assert commit("a", old_epoch, *kept) == {kept[0]: 0, kept[1]: 0}
    assert commit("a", old_epoch, moved[0]) == 113  # STALE_MEMBER_EPOCH
    assert commit("a", old_epoch, kept[0], moved[0]) == 113
    # b's tasks were assigned at its current epoch: an older one is stale for them.
    assert commit("b", b.epoch - 1, moved[0]) == 113
    assert commit("b", b.epoch, *moved) == {moved[0]: 0, moved[1]: 0}
    assert commit("a", a.epoch + 1, kept[0]) == 113  # newer than the member's: stale
    assert commit("ghost", 1, 0) == 25  # UNKNOWN_MEMBER_ID
    # A transactional producer that names no member may commit (Kafka 4.4's StreamsGroup).
    txn = CommitRequest("g", -1, "", None, -1, (("in", (PartitionCommit(kept[0], 10, -1,
                                                                         None),)),),
                        transactional=True)
    assert h.write(lambda s: s.offsets.commit(txn))[0]["partitions"][0]["error_code"] == 0
