"""KIP-848 online migration: classic groups upgraded to consumer groups and back."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kio.schema.consumer_protocol_subscription.v1.data import (
    ConsumerProtocolSubscription,
    TopicPartition,
)
from kio.schema.types import TopicName
from kio.serial import entity_writer
from kio.static.primitive import i32

from strom.coordinator.group import records as rec
from strom.coordinator.group.classic import ClassicGroup, ClassicGroupState
from strom.coordinator.group.consumer import ConsumerGroup
from strom.coordinator.group.context import GroupConfig
from strom.coordinator.group.migration import encode_assignment, parse_assignment
from strom.coordinator.group.requests import CommitRequest, JoinRequest, PartitionCommit
from strom.errors import ErrorCode, KafkaError

from .harness import Harness, image_with
from .test_consumer_group import Member

E = ErrorCode
S = ClassicGroupState
CONSUMER_SESSION_MS = 3000


def harness(policy: str = "bidirectional") -> Harness:
    return Harness(config=GroupConfig(
        initial_rebalance_delay_ms=0, min_session_timeout_ms=10,
        consumer_session_timeout_ms=CONSUMER_SESSION_MS, consumer_heartbeat_interval_ms=500,
        migration_policy=policy), image=image_with(("t", 6)))


@pytest.fixture
def h() -> Iterator[Harness]:
    harness_ = harness()
    yield harness_
    harness_.close()


def subscription(topics: tuple[str, ...], owned: set[int] | frozenset[int] = frozenset()
                 ) -> bytes:
    out = io.BytesIO()
    out.write((1).to_bytes(2, "big"))
    entity_writer(ConsumerProtocolSubscription)(out, ConsumerProtocolSubscription(
        topics=topics, user_data=None,
        owned_partitions=(TopicPartition(topic=TopicName("t"), partitions=tuple(
            i32(p) for p in sorted(owned))),) if owned else ()))
    return out.getvalue()


class Classic:
    """A classic consumer (eager or cooperative) of topic t, as Kafka's client behaves."""

    def __init__(self, h: Harness, *, cooperative: bool = False) -> None:
        self.h = h
        self.cooperative = cooperative
        self.member_id = ""
        self.generation = -1
        self.owned: frozenset[int] = frozenset()

    def protocols(self) -> tuple[tuple[str, bytes], ...]:
        owned = self.owned if self.cooperative else frozenset()
        return (("cooperative-sticky" if self.cooperative else "range",
                 subscription(("t",), owned)),)

    def join(self) -> dict[str, Any]:
        if not self.cooperative:
            self.owned = frozenset()  # eager: everything is revoked before rejoining
        box = self.h.join("g", self.member_id, protocols=self.protocols())
        if box and box[0]["error_code"] == E.member_id_required:
            self.member_id = box[0]["member_id"]
            box = self.h.join("g", self.member_id, protocols=self.protocols())
        assert box, "JoinGroup to a consumer group is answered at once"
        if box[0]["error_code"] == E.none:
            self.member_id = box[0]["member_id"]
            self.generation = box[0]["generation_id"]
        return box[0]

    def sync(self) -> dict[str, Any]:
        box = self.h.sync("g", self.member_id, self.generation)
        response = box[0]
        if response["error_code"] == E.none:
            assigned, _ = parse_assignment(response["assignment"])
            self.owned = assigned.get("t", frozenset())
        return response

    def rebalance(self) -> None:
        """Rejoin and sync until the member is told nothing more (a client's loop)."""
        for _ in range(4):
            assert self.join()["error_code"] == E.none
            assert self.sync()["error_code"] == E.none
            if self.heartbeat() == E.none:
                return
        raise AssertionError("the member never settled")

    def heartbeat(self) -> Any:
        try:
            return self.h.heartbeat("g", self.member_id, self.generation)
        except KafkaError as exc:
            return exc.code


def classic_group(h: Harness, *members: Classic) -> int:
    """A Stable classic group of these members, t's partitions split between them by the
    leader: the generation."""
    for m in members:
        first = h.join("g", protocols=m.protocols())
        m.member_id = first[0]["member_id"]
    boxes = [h.join("g", m.member_id, protocols=m.protocols()) for m in members]
    h.advance(0)
    g = h.shard.groups["g"]
    assert isinstance(g, ClassicGroup)
    while g.state is S.PREPARING_REBALANCE:
        h.advance(100)
    generation = g.generation_id
    image = h.image
    tid = image.topics["t"].topic_id
    split = {m.member_id: frozenset(range(i * 6 // len(members), (i + 1) * 6 // len(members)))
             for i, m in enumerate(members)}
    assignments = {mid: encode_assignment({tid: ps}, image, 1) for mid, ps in split.items()}
    for m, box in zip(members, boxes, strict=True):
        assert box[-1]["error_code"] == E.none
        m.generation = generation
    for m in members:
        leader = g.leader_id == m.member_id
        box = h.sync("g", m.member_id, generation, assignments if leader else None)
        assert box and box[0]["error_code"] == E.none, box
        m.owned = split[m.member_id]
    assert g.state is S.STABLE
    return generation


def consumer_owned(member: Member) -> frozenset[int]:
    return frozenset(p for ps in member.owned.values() for p in ps)


def no_partition_owned_twice(classic: list[Classic], consumers: list[Member]) -> None:
    seen: list[int] = []
    for c in classic:
        seen.extend(c.owned)
    for m in consumers:
        seen.extend(consumer_owned(m))
    assert len(seen) == len(set(seen)), seen


def group(h: Harness) -> Any:
    return h.shard.groups["g"]


# -- upgrade ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cooperative", [False, True])
def test_upgrade_then_revocation_before_reassignment(h: Harness, cooperative: bool) -> None:
    a, b = Classic(h, cooperative=cooperative), Classic(h, cooperative=cooperative)
    generation = classic_group(h, a, b)
    c = Member(h)
    response = c.heartbeat()
    assert response["error_code"] == E.none
    g = group(h)
    assert isinstance(g, ConsumerGroup)
    tid = h.image.topics["t"].topic_id
    assert {mid: m.assigned.get(tid) for mid, m in g.members.items() if mid != c.member_id} \
        == {a.member_id: a.owned, b.member_id: b.owned}
    assert g.members[a.member_id].member_epoch == generation
    assert g.group_epoch == generation + 1
    # Everything is owned by the classic members: the new member waits.
    assert consumer_owned(c) == frozenset()

    clients = [a, b]
    for _ in range(6):
        for classic in clients:
            if classic.heartbeat() == E.rebalance_in_progress:
                assert classic.join()["error_code"] == E.none
                no_partition_owned_twice(clients, [c])
                assert classic.sync()["error_code"] == E.none
            no_partition_owned_twice(clients, [c])
        c.heartbeat()
        no_partition_owned_twice(clients, [c])
    assert sorted([len(a.owned), len(b.owned), len(consumer_owned(c))]) == [2, 2, 2]
    assert a.owned | b.owned | consumer_owned(c) == frozenset(range(6))
    assert group(h).state_name == "Stable"
    described = h.shard.consumer_group_describe("g", False)
    assert sorted(m["member_type"] for m in described["members"]) == [0, 0, 1]
    listed = h.shard.list_groups([], [])
    assert [(x["group_type"], x["protocol_type"]) for x in listed] == [("consumer", "consumer")]


def test_upgrade_is_persisted_and_replayed(h: Harness) -> None:
    a, b = Classic(h), Classic(h)
    classic_group(h, a, b)
    c = Member(h)
    c.heartbeat()
    before = group(h)
    decoded = [rec.decode(k, v) for batch in h.log.batches for k, v in _records(batch)]
    tombstones = [d[0] for d in decoded if d is not None
                  and isinstance(d[0], rec.GroupMetadataKey) and d[1] is None]
    assert tombstones, "the classic group's record is deleted"
    h.restart()
    after = group(h)
    assert isinstance(after, ConsumerGroup)
    assert (after.group_epoch, after.assignment_epoch) == (before.group_epoch,
                                                           before.assignment_epoch)
    assert {mid: (m.member_epoch, dict(m.assigned), m.classic)
            for mid, m in after.members.items()} == {
        mid: (m.member_epoch, dict(m.assigned), m.classic) for mid, m in before.members.items()}
    classic = after.members[a.member_id].classic
    assert classic is not None and classic.session_timeout_ms == 10_000
    # The classic members still work after the restart.
    assert a.heartbeat() == E.rebalance_in_progress
    a.rebalance()


def test_parked_classic_requests_are_answered_on_upgrade(h: Harness) -> None:
    a, b = Classic(h), Classic(h)
    generation = classic_group(h, a, b)
    box = h.join("g", a.member_id, protocols=(("range", subscription(("t", "u"))),))
    assert box == []  # a rebalance started: the JoinGroup is parked
    Member(h).heartbeat()
    assert box[0]["error_code"] == E.rebalance_in_progress
    assert isinstance(group(h), ConsumerGroup)
    assert group(h).group_epoch == generation + 1


# -- downgrade --------------------------------------------------------------------------------

def test_downgrade_when_the_last_consumer_member_leaves(h: Harness) -> None:
    a, b = Classic(h), Classic(h)
    classic_group(h, a, b)
    c = Member(h)
    c.heartbeat()
    for classic in (a, b):
        classic.rebalance()
    epoch = group(h).group_epoch
    c.leave()
    g = group(h)
    assert isinstance(g, ClassicGroup)
    assert g.state is S.PREPARING_REBALANCE
    assert g.generation_id == epoch
    assert set(g.members) == {a.member_id, b.member_id}
    # The members rejoin as in any classic rebalance; the leader assigns.
    assert a.heartbeat() in (E.rebalance_in_progress, E.illegal_generation)
    boxes = [h.join("g", m.member_id, protocols=m.protocols()) for m in (a, b)]
    assert all(box and box[0]["error_code"] == E.none for box in boxes)
    assert group(h).state is S.COMPLETING_REBALANCE
    h.restart()
    assert isinstance(group(h), ClassicGroup)


def test_downgrade_when_the_consumer_member_times_out(h: Harness) -> None:
    a, b = Classic(h), Classic(h)
    classic_group(h, a, b)
    c = Member(h)
    c.heartbeat()
    a.rebalance()
    b.rebalance()
    for _ in range(4):
        h.advance(CONSUMER_SESSION_MS // 3)
        for classic in (a, b):
            if isinstance(group(h), ConsumerGroup):
                classic.heartbeat()
    assert isinstance(group(h), ClassicGroup)
    assert set(group(h).members) == {a.member_id, b.member_id}


def test_records_of_a_downgrade_replay_to_a_classic_group(h: Harness) -> None:
    a = Classic(h)
    classic_group(h, a)
    c = Member(h)
    c.heartbeat()
    c.leave()
    h.restart()
    g = group(h)
    assert isinstance(g, ClassicGroup) and set(g.members) == {a.member_id}
    assert g.state is S.STABLE and g.protocol_type == "consumer"
    assigned, _ = parse_assignment(g.members[a.member_id].assignment)
    assert assigned == {"t": frozenset(range(6))}


# -- classic members joining consumer groups -------------------------------------------------

def test_classic_member_joins_a_consumer_group(h: Harness) -> None:
    c = Member(h)
    c.heartbeat()
    a = Classic(h)
    assert a.join()["error_code"] == E.none
    assert a.sync()["error_code"] == E.none
    for _ in range(4):
        c.heartbeat()
        if a.heartbeat() == E.rebalance_in_progress:
            a.rebalance()
        no_partition_owned_twice([a], [c])
    assert (len(a.owned), len(consumer_owned(c))) == (3, 3)
    # A classic member commits with its generation, the member epoch.
    commit = CommitRequest("g", a.generation, a.member_id, None, -1, (
        ("t", (PartitionCommit(0, 5, -1, ""),)),), api_version=8)
    result = h.write(lambda s: s.offsets.commit(commit))
    assert result[0]["partitions"][0]["error_code"] == E.none
    stale = CommitRequest("g", a.generation - 1, a.member_id, None, -1, (
        ("t", (PartitionCommit(0, 5, -1, ""),)),), api_version=8)
    with pytest.raises(KafkaError) as exc:
        h.write(lambda s: s.offsets.commit(stale))
    assert exc.value.code == E.illegal_generation
    assert h.sync("g", a.member_id, a.generation + 7)[0]["error_code"] == E.illegal_generation
    left = h.leave("g", (a.member_id, None))
    assert left["members"][0]["error_code"] == E.none
    assert a.member_id not in group(h).members


def test_classic_member_commits_of_an_older_generation(h: Harness) -> None:
    """Kafka 4.4: a classic member's generation is its member epoch, and an older one is
    checked per partition like a consumer member's older epoch (assignment epochs),
    refused as ILLEGAL_GENERATION. An upgraded group's members hold their partitions
    since the classic generation; OffsetCommit below v9 is fine for classic members."""
    a, b = Classic(h), Classic(h)
    generation = classic_group(h, a, b)
    c = Member(h)
    c.heartbeat()
    tid = h.image.topics["t"].topic_id
    member = group(h).members[a.member_id]
    assert {member.assignment_epoch(tid, p) for p in a.owned} == {generation}
    held = a.owned

    def commit(gen: int, partitions: frozenset[int], version: int = 9) -> Any:
        request = CommitRequest("g", gen, a.member_id, None, -1, (("t", tuple(
            PartitionCommit(p, 5, -1, "") for p in sorted(partitions))),),
            api_version=version)
        try:
            return {p["error_code"] for p in
                    h.write(lambda s: s.offsets.commit(request))[0]["partitions"]}
        except KafkaError as exc:
            return exc.code

    # Told to rebalance, it commits what it holds with its generation, then rejoins.
    assert a.heartbeat() == E.rebalance_in_progress
    assert commit(generation, held) == {E.none}
    for _ in range(6):
        for classic in (a, b):
            if classic.heartbeat() == E.rebalance_in_progress:
                classic.rebalance()
        c.heartbeat()
    kept, gone = held & a.owned, held - a.owned
    assert kept and gone and a.generation > generation
    assert commit(a.generation, kept) == {E.none}
    assert commit(generation, kept) == {E.none}
    assert commit(generation, kept, version=7) == {E.none}
    assert commit(generation, frozenset({min(gone)})) == E.illegal_generation
    assert commit(generation, kept | {min(gone)}) == E.illegal_generation
    assert commit(a.generation + 1, kept) == E.illegal_generation
    with pytest.raises(KafkaError) as exc:
        group(h).validate_offset_fetch(a.member_id, generation)
    assert exc.value.code == E.illegal_generation


def test_classic_member_errors(h: Harness) -> None:
    c = Member(h)
    c.heartbeat()
    with pytest.raises(KafkaError) as exc:
        h.heartbeat("g", "nobody", 1)
    assert exc.value.code == E.unknown_member_id
    with pytest.raises(KafkaError) as exc:
        h.heartbeat("g", c.member_id, c.epoch)  # not a classic member
    assert exc.value.code == E.unknown_member_id
    box: list[dict[str, Any]] = []
    other = JoinRequest("g", "", None, 10_000, 20_000, "connect", (("x", b""),), "c", "h")
    h.write(lambda s: s.join_group(other, box.append))
    assert box[0]["error_code"] == E.inconsistent_group_protocol
    left = h.leave("g", ("nobody", None))
    assert left["members"][0]["error_code"] == E.unknown_member_id


# -- policies ----------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["downgrade", "disabled"])
def test_upgrade_refused_by_policy(policy: str) -> None:
    h = harness(policy)
    try:
        a = Classic(h)
        classic_group(h, a)
        response = Member(h).heartbeat()
        assert response["error_code"] == E.group_id_not_found
        assert isinstance(group(h), ClassicGroup)
    finally:
        h.close()


def test_upgrade_refused_for_other_protocol_types(h: Harness) -> None:
    box: list[dict[str, Any]] = []
    first = JoinRequest("g", "", None, 10_000, 20_000, "connect", (("x", b""),), "c", "h",
                        requires_known_member_id=False)
    h.write(lambda s: s.join_group(first, box.append))
    h.advance(100)
    assert box and box[0]["error_code"] == E.none
    response = Member(h).heartbeat()
    assert response["error_code"] == E.group_id_not_found


@pytest.mark.parametrize("policy", ["upgrade", "disabled"])
def test_downgrade_refused_by_policy(policy: str) -> None:
    h = harness(policy)
    try:
        c = Member(h)
        c.heartbeat()
        a = Classic(h)
        result = a.join()
        if policy == "disabled":
            assert result["error_code"] == E.inconsistent_group_protocol
            return
        assert result["error_code"] == E.none
        c.leave()
        g = group(h)
        assert isinstance(g, ConsumerGroup) and set(g.members) == {a.member_id}
    finally:
        h.close()


def _records(batch: bytes) -> list[tuple[bytes, bytes | None]]:
    from strom.protocol.records import decode_records, scan_batches

    return [(r.key, r.value) for header in scan_batches(batch)
            for r in decode_records(batch, header) if r.key is not None]


def test_assignment_codec_round_trip() -> None:
    image = image_with(("t", 6), ("u", 2))
    t, u = image.topics["t"].topic_id, image.topics["u"].topic_id
    for version in range(4):
        data = encode_assignment({t: frozenset({1, 0}), u: frozenset({1}),
                                  uuid.uuid4(): frozenset({3})}, image, version)
        assert parse_assignment(data) == ({"t": frozenset({0, 1}), "u": frozenset({1})}, None)
