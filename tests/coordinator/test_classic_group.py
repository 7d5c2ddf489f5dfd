"""The classic group state machine on the real runtime, time and log in memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from strom.coordinator.group.classic import (
    LEGAL_PREVIOUS,
    ClassicGroup,
    ClassicGroupState,
    IllegalStateTransition,
)
from strom.coordinator.group.context import GroupConfig
from strom.coordinator.group.requests import SyncRequest
from strom.errors import ErrorCode, KafkaError, KafkaStorageError

from .harness import Harness

S = ClassicGroupState
E = ErrorCode


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def group(h: Harness, group_id: str = "g") -> ClassicGroup:
    g = h.shard.groups[group_id]
    assert isinstance(g, ClassicGroup)
    return g


def stable_group(h: Harness, n: int, group_id: str = "g", **kw: Any
                 ) -> tuple[list[str], int, str]:
    """n members joined and synced: (member ids, generation, leader)."""
    boxes = [h.join_new(group_id, **kw) for _ in range(n)]
    h.advance(0)  # the initial rebalance delay (0 here) elapses
    if n > 1 and not all(boxes):
        # Later joiners arrive after the first generation: it rebalances again.
        assert all(b[-1]["error_code"] == E.none for b in boxes if b)
    members = [b[-1]["member_id"] for b in boxes]
    g = group(h, group_id)
    while g.state is S.PREPARING_REBALANCE or any(not b for b in boxes):
        h.advance(100)
    leader = g.leader_id
    assert leader is not None
    generation = g.generation_id
    assignments = {m: f"a-{m}".encode() for m in members}
    syncs = [h.sync(group_id, m, generation, assignments if m == leader else None)
             for m in members]
    assert all(s and s[0]["error_code"] == E.none for s in syncs), syncs
    assert g.state is S.STABLE
    return members, generation, leader


def test_transitions_are_checked_against_the_table() -> None:
    g = ClassicGroup("g")
    with pytest.raises(IllegalStateTransition):
        g.transition_to(S.STABLE, 0)
    g.transition_to(S.PREPARING_REBALANCE, 1)
    assert (g.state, g.previous_state, g.current_state_timestamp) == (
        S.PREPARING_REBALANCE, S.EMPTY, 1)
    for target, sources in LEGAL_PREVIOUS.items():
        for source in S:
            g = ClassicGroup("g", state=source)
            if source in sources:
                g.transition_to(target, 0)
            else:
                with pytest.raises(IllegalStateTransition):
                    g.transition_to(target, 0)


def test_new_member_must_rejoin_with_its_member_id(h: Harness) -> None:
    first = h.join("g", client="app")
    assert first[0]["error_code"] == E.member_id_required
    member_id = first[0]["member_id"]
    assert member_id.startswith("app-")
    second = h.join("g", member_id)
    assert second == []  # parked until the initial rebalance delay passes
    h.advance(0)
    response = second[0]
    assert response["error_code"] == E.none
    assert response["generation_id"] == 1
    assert response["leader"] == member_id
    assert [m["member_id"] for m in response["members"]] == [member_id]
    assert response["protocol_name"] == "range"
    assert group(h).state is S.COMPLETING_REBALANCE


def test_join_before_v4_needs_no_member_id_round_trip(h: Harness) -> None:
    box = h.join("g", version=3)
    h.advance(0)
    assert box[0]["error_code"] == E.none and box[0]["member_id"]


def test_leader_assigns_and_every_member_gets_its_own(h: Harness) -> None:
    members, generation, leader = stable_group(h, 3)
    for m in members:
        assert group(h).members[m].assignment == f"a-{m}".encode()
        assert h.heartbeat("g", m, generation) == E.none
    assert h.heartbeat("g", members[0], generation - 1) == E.illegal_generation
    # A follower's SyncGroup in Stable returns its assignment again.
    follower = next(m for m in members if m != leader)
    again = h.sync("g", follower, generation)
    assert again[0]["assignment"] == f"a-{follower}".encode()


def test_followers_wait_for_the_leader_and_the_record(h: Harness) -> None:
    a = h.join_new("g")
    h.advance(0)
    b = h.join_new("g")
    a2 = h.join("g", a[-1]["member_id"])  # rejoin for the rebalance b triggered
    m_a, m_b = a[-1]["member_id"], b[-1]["member_id"]
    assert a2 and b[-1]["error_code"] == E.none
    generation = b[-1]["generation_id"]
    leader = b[-1]["leader"]
    follower = m_b if leader == m_a else m_a
    parked = h.sync("g", follower, generation)
    assert parked == []
    batches_before = len(h.log.batches)
    done = h.sync("g", leader, generation, {m_a: b"A", m_b: b"B"})
    assert len(h.log.batches) == batches_before + 1  # one GroupMetadata record
    assert parked[0]["assignment"] == (b"A" if follower == m_a else b"B")
    assert done[0]["error_code"] == E.none


def test_failed_assignment_write_sends_everyone_back_to_join(h: Harness) -> None:
    a = h.join_new("g")
    h.advance(0)
    m = a[-1]["member_id"]
    h.log.fail_next = KafkaStorageError("disk gone")
    answered: list[dict[str, Any]] = []
    sync = SyncRequest("g", 1, m, None, None, None, ((m, b"x"),))
    with pytest.raises(KafkaStorageError):
        h.write(lambda s: s.classic.sync(sync, answered.append))
    # The parked SyncGroup was answered with the error (NOT_COORDINATOR: the client
    # looks the coordinator up again) and the group starts over.
    assert answered[0]["error_code"] == E.not_coordinator
    g = group(h)
    assert g.state is S.PREPARING_REBALANCE
    assert g.members[m].assignment == b""


def test_session_timeout_removes_member_and_survivors_rebalance(h: Harness) -> None:
    members, generation, _ = stable_group(h, 2, session_ms=1000)
    alive, dead = members
    for _ in range(2):
        h.advance(400)
        assert h.heartbeat("g", alive, generation) == E.none
        assert dead in group(h).members
    h.advance(400)  # 1200 ms without a heartbeat from `dead`
    assert dead not in group(h).members
    assert group(h).state is S.PREPARING_REBALANCE
    assert h.heartbeat("g", alive, generation) == E.rebalance_in_progress
    rejoin = h.join("g", alive, session_ms=1000)
    assert rejoin[0]["error_code"] == E.none
    assert rejoin[0]["generation_id"] == generation + 1
    assert [m["member_id"] for m in rejoin[0]["members"]] == [alive]


def test_rebalance_timeout_drops_members_that_do_not_rejoin(h: Harness) -> None:
    members, generation, _ = stable_group(h, 3, rebalance_ms=5000)
    h.leave("g", (members[2], None))
    assert group(h).state is S.PREPARING_REBALANCE
    rejoined = h.join("g", members[0], rebalance_ms=5000)
    assert rejoined == []
    h.advance(5000)  # members[1] never rejoins
    assert rejoined[0]["error_code"] == E.none
    assert set(group(h).members) == {members[0]}
    assert rejoined[0]["generation_id"] == generation + 1


def test_concurrent_joins_and_leaves_never_lose_a_rejoining_member(h: Harness) -> None:
    """Members leaving while others rejoin: the join phase completes as soon as every
    remaining member is back, and no rejoining member gets UNKNOWN_MEMBER_ID."""
    members, generation, _ = stable_group(h, 4)
    responses = {}
    newcomer = h.join("g")[0]["member_id"]
    responses[newcomer] = h.join("g", newcomer)
    for m in members[:2]:
        responses[m] = h.join("g", m)
    h.leave("g", (members[2], None))
    assert all(not r for r in responses.values())
    h.leave("g", (members[3], None))  # the last one missing: the phase completes
    for m, box in responses.items():
        assert box and box[0]["error_code"] == E.none, (m, box)
        assert box[0]["generation_id"] == generation + 1
    assert set(group(h).members) == {newcomer, *members[:2]}


def test_protocol_is_chosen_by_vote_among_common_ones(h: Harness) -> None:
    prefs = [(("cooperative-sticky", b""), ("range", b"")),
             (("range", b""), ("cooperative-sticky", b"")),
             (("roundrobin", b""), ("range", b""), ("cooperative-sticky", b""))]
    boxes = [h.join_new("g", protocols=p) for p in prefs]
    h.advance(0)
    while any(not b for b in boxes):
        h.advance(100)
    g = group(h)
    # Common: range, cooperative-sticky; votes: cooperative-sticky 1, range 2.
    assert g.protocol_name == "range"
    assert all(b[-1]["protocol_name"] == "range" for b in boxes)
    incompatible = h.join("g", protocols=(("roundrobin", b""),))
    assert incompatible[0]["error_code"] == E.inconsistent_group_protocol


def test_static_member_restart_gets_its_assignment_without_rebalance(h: Harness) -> None:
    members, generation, leader = stable_group(h, 2, instance=None)
    static = h.join("g", instance="i-1")
    h.advance(0)
    while not static:
        h.advance(100)
    g = group(h)
    ids = [*g.members]
    generation = g.generation_id
    assignments = {m: f"a-{m}".encode() for m in ids}
    for m in ids:
        h.sync("g", m, generation, assignments if m == g.leader_id else None,
               instance="i-1" if g.members[m].group_instance_id else None)
    assert g.state is S.STABLE
    old_id = static[0]["member_id"]
    # The instance restarts: unknown member id, same instance id.
    restarted = h.join("g", instance="i-1")
    new_id = restarted[0]["member_id"]
    assert restarted[0]["error_code"] == E.none and new_id != old_id
    assert restarted[0]["generation_id"] == generation  # no new generation
    assert g.state is S.STABLE
    assert g.members[new_id].assignment == assignments[old_id]
    sync = h.sync("g", new_id, generation, instance="i-1")
    assert sync[0]["assignment"] == assignments[old_id]
    # The old incarnation is fenced.
    with pytest.raises(KafkaError) as fenced:
        h.heartbeat("g", old_id, generation, instance="i-1")
    assert fenced.value.code == E.fenced_instance_id


def test_leave_by_instance_id_and_unknown_members(h: Harness) -> None:
    static = h.join("g", instance="i-1")
    h.advance(0)
    member = static[0]["member_id"]
    response = h.leave("g", ("", "i-1"), ("nobody", None), ("", "i-9"))
    assert [m["error_code"] for m in response["members"]] == [
        E.none, E.unknown_member_id, E.unknown_member_id]
    assert member not in group(h).members
    assert group(h).state is S.EMPTY


def test_group_max_size(h: Harness) -> None:
    h.config = GroupConfig(initial_rebalance_delay_ms=0, max_size=2)
    h.restart()
    stable_group(h, 2)
    third = h.join("g", "", version=9)
    third = h.join("g", third[0]["member_id"])
    assert third[0]["error_code"] == E.group_max_size_reached


def test_sync_and_heartbeat_errors(h: Harness) -> None:
    box = h.sync("none", "m", 1)
    assert box[0]["error_code"] == E.unknown_member_id
    members, generation, _ = stable_group(h, 1)
    assert h.sync("g", members[0], generation + 5)[0]["error_code"] == E.illegal_generation
    with pytest.raises(KafkaError) as unknown:
        h.heartbeat("g", "stranger", generation)
    assert unknown.value.code == E.unknown_member_id


def test_group_metadata_is_recovered_by_replay(h: Harness) -> None:
    members, generation, leader = stable_group(h, 2)
    h.restart()
    g = group(h)
    assert g.state is S.STABLE
    assert g.generation_id == generation
    assert g.leader_id == leader
    assert set(g.members) == set(members)
    assert g.members[members[0]].assignment == f"a-{members[0]}".encode()
    # Members that do not come back time out, and the group ends up empty.
    h.advance(10_000)
    assert group(h).state is S.PREPARING_REBALANCE or group(h).state is S.EMPTY
    h.advance(30_000)
    assert group(h).state is S.EMPTY
    h.restart()
    assert group(h).state is S.EMPTY
    assert group(h).generation_id == generation + 1


def test_members_joining_within_the_initial_delay_share_one_generation() -> None:
    """Issue 19: N members started at once. Every JoinGroup parked while the initial
    rebalance delay runs is answered by the same generation 1, each delay extension
    waiting for more (Kafka's InitialDelayedJoin), with no second rebalance."""
    h = Harness(config=GroupConfig(initial_rebalance_delay_ms=300, min_session_timeout_ms=10))
    try:
        boxes = []
        for _ in range(8):
            boxes.append(h.join_new("g"))
            h.advance(100)  # each arrives before the running delay ends
        assert not any(boxes)
        # The delay running when the last one came ends, then one with no newcomer:
        # the join phase completes.
        h.advance(600)
        responses = [b[0] for b in boxes]
        assert {r["error_code"] for r in responses} == {E.none}
        assert {r["generation_id"] for r in responses} == {1}
        leaders = [r for r in responses if r["members"]]
        assert len(leaders) == 1 and len(leaders[0]["members"]) == 8
        assert group(h).state is S.COMPLETING_REBALANCE
    finally:
        h.close()


def test_member_joining_while_completing_rebalance_costs_one_more_generation(
        h: Harness) -> None:
    """Issue 19 with group.initial.rebalance.delay.ms=0, as in Kafka: a member that
    joins after generation 1 formed sends the others back (SyncGroup answers
    REBALANCE_IN_PROGRESS) and generation 2 completes the moment the last of them
    has rejoined, not at the rebalance timeout; no third generation follows."""
    first = [h.join_new("g", rebalance_ms=60_000) for _ in range(3)]
    h.advance(0)
    assert {b[0]["generation_id"] for b in first} == {1}
    late = h.join_new("g", rebalance_ms=60_000)
    assert late == [] and group(h).state is S.PREPARING_REBALANCE
    ids = [b[0]["member_id"] for b in first]
    leader = next(b[0] for b in first if b[0]["members"])["member_id"]
    for m in ids:
        sync = h.sync("g", m, 1, {x: b"x" for x in ids} if m == leader else None)
        assert sync[0]["error_code"] == E.rebalance_in_progress
    rejoins = [h.join("g", m, rebalance_ms=60_000) for m in ids]
    # No time passed: the last rejoin completed the join phase.
    responses = [b[0] for b in [*rejoins, late]]
    assert {r["error_code"] for r in responses} == {E.none}
    assert {r["generation_id"] for r in responses} == {2}
    g = group(h)
    assert g.state is S.COMPLETING_REBALANCE and len(g.members) == 4
    members = [r["member_id"] for r in responses]
    new_leader = g.leader_id
    syncs = [h.sync("g", m, 2, {x: b"y" for x in members} if m == new_leader else None)
             for m in members]
    assert all(s and s[0]["error_code"] == E.none for s in syncs)
    assert group(h).state is S.STABLE and group(h).generation_id == 2
