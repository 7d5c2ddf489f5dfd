"""KIP-848 consumer groups: epochs, server-side assignment, revocation before reassignment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from strom.cluster.image import PartitionRecord, TopicRecord
from strom.coordinator.group.consumer import ConsumerGroup, MemberState
from strom.coordinator.group.context import GroupConfig
from strom.coordinator.group.requests import CommitRequest, HeartbeatRequest, PartitionCommit
from strom.errors import ErrorCode, KafkaError

from .harness import Harness, image_with

E = ErrorCode
SESSION_MS = 3000


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(config=GroupConfig(consumer_session_timeout_ms=SESSION_MS,
                                         consumer_heartbeat_interval_ms=500),
                      image=image_with(("t", 6), ("t2", 2), ("other", 1)))
    yield harness
    harness.close()


class Member:
    """A KIP-848 client: heartbeats, and owns what the coordinator assigned it."""

    def __init__(self, h: Harness, member_id: str | None = None, *,
                 topics: tuple[str, ...] | None = ("t",), regex: str | None = None,
                 instance: str | None = None, assignor: str | None = None) -> None:
        self.h = h
        self.member_id = member_id or str(uuid.uuid4())
        self.topics = topics
        self.regex = regex
        self.instance = instance
        self.assignor = assignor
        self.epoch = 0
        self.owned: dict[uuid.UUID, frozenset[int]] = {}

    def heartbeat(self, *, epoch: int | None = None, full: bool = False) -> dict[str, Any]:
        joining = self.epoch == 0 if epoch is None else epoch == 0
        request = HeartbeatRequest(
            "g", self.member_id, self.epoch if epoch is None else epoch, self.instance, None,
            30_000 if joining or full else -1,
            self.topics if joining or full else None, self.regex if joining or full else None,
            self.assignor, () if joining else tuple(
                (t, tuple(sorted(ps))) for t, ps in self.owned.items()),
            "client", "/127.0.0.1")
        try:
            response: dict[str, Any] = self.h.write(lambda s: s.consumer.heartbeat(request))
        except KafkaError as exc:
            return {"error_code": exc.code}
        self.epoch = response["member_epoch"]
        if response["assignment"] is not None:
            # Revoke first, as a client does: it owns exactly what it was given.
            self.owned = {tp["topic_id"]: frozenset(tp["partitions"])
                          for tp in response["assignment"]["topic_partitions"]}
        return response

    def count(self) -> int:
        return sum(len(ps) for ps in self.owned.values())

    def leave(self, epoch: int = -1) -> dict[str, Any]:
        request = HeartbeatRequest("g", self.member_id, epoch, self.instance, None, -1, None,
                                   None, None, None, "client", "/127.0.0.1")
        response: dict[str, Any] = self.h.write(lambda s: s.consumer.heartbeat(request))
        return response


def group(h: Harness) -> ConsumerGroup:
    g = h.shard.groups["g"]
    assert isinstance(g, ConsumerGroup)
    return g


def settle(*members: Member, rounds: int = 6) -> None:
    for _ in range(rounds):
        for m in members:
            m.heartbeat()


def no_partition_owned_twice(*members: Member) -> None:
    seen: set[tuple[uuid.UUID, int]] = set()
    for m in members:
        for t, ps in m.owned.items():
            for p in ps:
                assert (t, p) not in seen
                seen.add((t, p))


def test_first_member_gets_everything(h: Harness) -> None:
    a = Member(h)
    response = a.heartbeat()
    assert response["error_code"] == E.none
    assert response["member_epoch"] == 1
    assert response["heartbeat_interval"] == 500
    assert a.count() == 6
    assert group(h).state_name == "Stable"


def test_revocation_before_reassignment(h: Harness) -> None:
    a, b = Member(h), Member(h)
    a.heartbeat()
    b.heartbeat()  # epoch 2; its target partitions are still a's: it waits
    assert b.epoch == 2 and b.count() == 0
    assert group(h).members[b.member_id].state is MemberState.UNRELEASED_PARTITIONS
    response = a.heartbeat()  # a must revoke 3 first and stays at epoch 1
    assert response["member_epoch"] == 1 and a.count() == 3
    assert group(h).members[a.member_id].state is MemberState.UNREVOKED_PARTITIONS
    no_partition_owned_twice(a, b)
    b.heartbeat()
    assert b.count() == 0  # still owned by a until a acknowledges
    a.heartbeat()  # a no longer reports them: revoked; a moves to epoch 2
    assert a.epoch == 2
    b.heartbeat()
    assert b.count() == 3 and a.count() == 3
    no_partition_owned_twice(a, b)
    assert group(h).state_name == "Stable"


def test_leave_and_session_timeout_hand_partitions_over(h: Harness) -> None:
    a, b, c = Member(h), Member(h), Member(h)
    settle(a, b, c)
    assert sorted(m.count() for m in (a, b, c)) == [2, 2, 2]
    assert c.leave()["member_epoch"] == -1
    settle(a, b)
    assert a.count() + b.count() == 6
    no_partition_owned_twice(a, b)
    for _ in range(3):  # b stops heartbeating
        h.advance(SESSION_MS // 2)
        a.heartbeat()
    assert b.member_id not in group(h).members
    settle(a)
    assert a.count() == 6


def test_epochs_are_checked(h: Harness) -> None:
    a = Member(h)
    a.heartbeat()
    assert a.heartbeat(epoch=a.epoch + 1)["error_code"] == E.fenced_member_epoch
    assert Member(h).heartbeat(epoch=3)["error_code"] == E.unknown_member_id
    missing = HeartbeatRequest("nope", "m", 2, None, None, -1, None, None, None, None, "c", "h")
    with pytest.raises(KafkaError) as exc:
        h.write(lambda s: s.consumer.heartbeat(missing))
    assert exc.value.code == E.group_id_not_found


def test_invalid_requests(h: Harness) -> None:
    bad = [
        HeartbeatRequest("g", "m", 0, None, None, -1, ("t",), None, None, (), "c", "h"),
        HeartbeatRequest("g", "m", 0, None, None, 1000, None, None, None, (), "c", "h"),
        HeartbeatRequest("g", "", 0, None, None, 1000, ("t",), None, None, (), "c", "h"),
        HeartbeatRequest("g", "m", -3, None, None, 1000, ("t",), None, None, (), "c", "h"),
    ]
    for request in bad:
        with pytest.raises(KafkaError) as exc:
            h.write(lambda s: s.consumer.heartbeat(request))  # noqa: B023
        assert exc.value.code == E.invalid_request
    with pytest.raises(KafkaError) as exc:
        h.write(lambda s: s.consumer.heartbeat(HeartbeatRequest(
            "g", "m", 0, None, None, 1000, None, "(", None, (), "c", "h")))
    assert exc.value.code == E.invalid_regular_expression
    with pytest.raises(KafkaError) as exc:
        h.write(lambda s: s.consumer.heartbeat(HeartbeatRequest(
            "g", "m", 0, None, None, 1000, ("t",), None, "sticky", (), "c", "h")))
    assert exc.value.code == E.unsupported_assignor


def test_regex_subscription_follows_new_topics(h: Harness) -> None:
    a = Member(h, topics=None, regex="t.*")
    a.heartbeat()
    # Resolved after the heartbeat that brought it (Kafka resolves regexes
    # asynchronously): nothing yet, then its topics at the next heartbeat.
    assert a.owned == {} and group(h).regexes["t.*"].topics == frozenset()
    a.heartbeat()
    names = {t.topic_id: t.name for t in h.image.topics.values()}
    assert {names[t]: len(ps) for t, ps in a.owned.items()} == {"t": 6, "t2": 2}
    topic_id = uuid.uuid4()
    h.image = h.image.apply([TopicRecord("t3", topic_id),
                             PartitionRecord(topic_id, 0, (1,), (1,), 1, 0)])
    a.heartbeat()
    assert a.owned.get(topic_id) == frozenset({0})
    assert group(h).regexes["t.*"].topics == {"t", "t2", "t3"}


def test_range_assignor_co_partitions(h: Harness) -> None:
    a = Member(h, "a", topics=("t", "t2"), assignor="range")
    b = Member(h, "b", topics=("t", "t2"), assignor="range")
    settle(a, b)
    ids = {t.name: t.topic_id for t in h.image.topics.values()}
    assert a.owned == {ids["t"]: frozenset({0, 1, 2}), ids["t2"]: frozenset({0})}
    assert b.owned == {ids["t"]: frozenset({3, 4, 5}), ids["t2"]: frozenset({1})}


def test_static_member_restart_keeps_its_partitions(h: Harness) -> None:
    a, b = Member(h, instance="i-a"), Member(h, instance="i-b")
    settle(a, b)
    before = dict(a.owned)
    epoch = group(h).group_epoch
    assert a.leave(-2)["member_epoch"] == -2
    # A new incarnation while the old one has not left: refused.
    assert Member(h, instance="i-b").heartbeat()["error_code"] == E.unreleased_instance_id
    restarted = Member(h, instance="i-a")
    restarted.heartbeat()
    assert restarted.owned == before
    assert group(h).group_epoch == epoch  # no rebalance
    assert a.member_id not in group(h).members


def test_state_is_rebuilt_by_replay(h: Harness) -> None:
    a, b = Member(h), Member(h, topics=("t", "t2"))
    settle(a, b)
    g = group(h)
    snapshot = (g.group_epoch, g.assignment_epoch, dict(g.members), dict(g.target),
                dict(g.partition_epochs))
    h.restart()
    g = group(h)
    assert (g.group_epoch, g.assignment_epoch, dict(g.members), dict(g.target),
            dict(g.partition_epochs)) == snapshot
    settle(a, b)
    assert a.count() + b.count() == 8


def test_offset_commits_check_member_epochs(h: Harness) -> None:
    a = Member(h)
    a.heartbeat()

    def commit(epoch: int, member: str) -> Any:
        request = CommitRequest("g", epoch, member, None, -1,
                                (("t", (PartitionCommit(0, 5, -1, ""),)),))
        try:
            return h.write(lambda s: s.offsets.commit(request))[0]["partitions"][0]["error_code"]
        except KafkaError as exc:
            return exc.code

    assert commit(a.epoch, a.member_id) == E.none
    assert commit(a.epoch - 1, a.member_id) == E.stale_member_epoch
    assert commit(a.epoch + 1, a.member_id) == E.stale_member_epoch  # Kafka 4.4
    assert commit(a.epoch, "x") == E.unknown_member_id
    assert group(h).validate_delete_group is not None
    with pytest.raises(KafkaError) as exc:
        group(h).validate_delete_group()
    assert exc.value.code == E.non_empty_group


def _commit(h: Harness, member: str, epoch: int, partitions: Any, *,
            transactional: bool = False) -> Any:
    """OffsetCommit v9 (or TxnOffsetCommit) of t's partitions: the code of each
    partition, or the one code that refused the whole commit."""
    request = CommitRequest("g", epoch, member, None, -1, (("t", tuple(
        PartitionCommit(p, 5, -1, "") for p in sorted(partitions))),),
        transactional=transactional)
    try:
        return [p["error_code"] for p in
                h.write(lambda s: s.offsets.commit(request))[0]["partitions"]]
    except KafkaError as exc:
        return exc.code


def test_commits_of_an_older_epoch_are_checked_against_assignment_epochs(h: Harness
                                                                         ) -> None:
    """Kafka 4.4 (KIP-1251): a commit of an epoch older than the member's is good for
    the partitions it has held since that epoch, and refused as a whole
    (STALE_MEMBER_EPOCH, nothing written) if one partition moved or was assigned later."""
    a = Member(h)
    a.heartbeat()
    first = a.epoch
    b = Member(h)
    settle(a, b)
    assert a.epoch == b.epoch > first
    kept = sorted(p for ps in a.owned.values() for p in ps)
    moved = sorted(p for ps in b.owned.values() for p in ps)
    tid = h.image.topics["t"].topic_id
    g = group(h)
    assert {p: g.members[a.member_id].assignment_epoch(tid, p) for p in kept} == {
        p: first for p in kept}
    assert {p: g.members[b.member_id].assignment_epoch(tid, p) for p in moved} == {
        p: b.epoch for p in moved}

    assert _commit(h, a.member_id, first, kept) == [E.none] * len(kept)
    assert _commit(h, a.member_id, first, moved[:1]) == E.stale_member_epoch
    before = dict(h.shard.offsets.store.group("g"))
    assert _commit(h, a.member_id, first, [*kept, moved[0]]) == E.stale_member_epoch
    assert dict(h.shard.offsets.store.group("g")) == before  # nothing half-written
    assert _commit(h, b.member_id, b.epoch - 1, moved) == E.stale_member_epoch
    assert _commit(h, a.member_id, a.epoch + 1, kept) == E.stale_member_epoch
    assert _commit(h, a.member_id, -1, kept) == E.stale_member_epoch
    # The epochs are recorded: the same answers after the group is rebuilt by replay.
    h.restart()
    assert _commit(h, a.member_id, first, kept) == [E.none] * len(kept)
    assert _commit(h, a.member_id, first, moved[:1]) == E.stale_member_epoch
    # TxnOffsetCommit: the same rule, and a producer naming no member may commit.
    assert _commit(h, a.member_id, first, kept, transactional=True) == [E.none] * len(kept)
    assert _commit(h, "", -1, kept, transactional=True) == [E.none] * len(kept)
    assert _commit(h, "", -1, kept) == E.unknown_member_id
    assert _commit(h, "ghost", a.epoch, kept, transactional=True) == E.unknown_member_id


def test_offset_fetch_needs_the_member_epoch(h: Harness) -> None:
    a = Member(h)
    a.heartbeat()
    g = group(h)
    g.validate_offset_fetch(a.member_id, a.epoch)
    g.validate_offset_fetch(None, -1)
    for epoch in (a.epoch - 1, a.epoch + 1):  # Kafka 4.4: either way STALE_MEMBER_EPOCH
        with pytest.raises(KafkaError) as exc:
            g.validate_offset_fetch(a.member_id, epoch)
        assert exc.value.code == E.stale_member_epoch


def test_static_member_restart_may_commit_at_any_epoch(h: Harness) -> None:
    """A static member leaving with epoch -2 keeps its partitions with their assignment
    epochs reset to 0 (Kafka 4.4): its next incarnation may commit for them with an
    older epoch."""
    a, b = Member(h, instance="i-a"), Member(h, instance="i-b")
    settle(a, b)
    a.leave(-2)
    restarted = Member(h, instance="i-a")
    restarted.heartbeat()
    restarted.heartbeat()
    held = sorted(p for ps in restarted.owned.values() for p in ps)
    assert held and restarted.epoch > 0
    assert _commit(h, restarted.member_id, 0, held) == [E.none] * len(held)


def test_transactional_offset_commits_accept_any_version(h: Harness) -> None:
    """TxnOffsetCommit (v0-5, written as OffsetCommit v8) is open to KIP-848 members;
    a plain OffsetCommit below v9 is not (Kafka's ConsumerGroup.validateOffsetCommit)."""
    a = Member(h)
    a.heartbeat()

    def commit(transactional: bool) -> Any:
        request = CommitRequest("g", a.epoch, a.member_id, None, -1,
                                (("t", (PartitionCommit(0, 5, -1, ""),)),),
                                api_version=8, transactional=transactional)
        try:
            return h.write(lambda s: s.offsets.commit(request))[0]["partitions"][0]["error_code"]
        except KafkaError as exc:
            return exc.code

    assert commit(False) == E.unsupported_version
    assert commit(True) == E.none


def test_describe(h: Harness) -> None:
    a = Member(h, "a")
    a.heartbeat()
    described = h.shard.consumer_group_describe("g", False)
    assert described["error_code"] == E.none
    assert described["group_state"] == "Stable"
    assert described["assignor_name"] == "uniform"
    member = described["members"][0]
    assert member["member_id"] == "a" and member["member_epoch"] == 1
    assert member["assignment"]["topic_partitions"][0]["topic_name"] == "t"
    assert h.shard.consumer_group_describe("nope", False)["error_code"] == E.group_id_not_found
    listed = h.shard.list_groups([], ["consumer"])
    assert listed == [{"group_id": "g", "protocol_type": "consumer", "group_state": "Stable",
                       "group_type": "consumer"}]
