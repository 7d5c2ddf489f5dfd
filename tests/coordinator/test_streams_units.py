"""Streams groups without a broker: the records in Kafka's byte layout, the topology
configured against topics, the sticky assignor and one reconciliation step."""

from __future__ import annotations

from typing import Any

import pytest

from strom.coordinator.group import streams_records as srec
from strom.coordinator.group.streams import (
    MemberState,
    StreamsGroup,
    StreamsGroupMember,
    TasksTuple,
)
from strom.coordinator.group.streams_assignor import AssignmentMember, assign
from strom.coordinator.group.streams_reconcile import reconcile
from strom.coordinator.group.streams_topology import (
    INCORRECTLY_PARTITIONED_TOPICS,
    MISSING_INTERNAL_TOPICS,
    MISSING_SOURCE_TOPICS,
    configure,
)
from strom.errors import CorruptRecordError

from .harness import image_with

# Hand-assembled from Kafka 4.4's StreamsGroupMemberMetadata{Key,Value}.json: int16 type 19,
# key v0 (int16-length strings), then int16 version 0 and the flexible value: compact
# strings, a nullable struct's marker byte, tagged-field counts.
MEMBER_KEY = bytes.fromhex("0013" "0001" "67" "0001" "6d")
MEMBER_VALUE = bytes.fromhex(
    "0000" "00" "0272" "0263" "032f68" "00007530" "00000001" "0270"
    "01" "0268" "1f90" "00" "02" "026b" "0276" "00" "00")
# StreamsGroupCurrentMemberAssignmentValue: epochs, state, active task 0_1 with its
# assignment epoch 3 as tagged field 0, five empty task lists.
ASSIGNMENT_VALUE = bytes.fromhex(
    "0000" "00000003" "00000002" "00"
    "02" "0230" "0200000001" "01" "00" "05" "0200000003"
    "01" "01" "01" "01" "01" "00")


def test_member_metadata_in_kafka_layout() -> None:
    member = StreamsGroupMember("m", rack_id="r", client_id="c", client_host="/h",
                                rebalance_timeout_ms=30_000, topology_epoch=1,
                                process_id="p", user_endpoint=("h", 8080),
                                client_tags=(("k", "v"),))
    key, value = srec.encode(srec.StreamsKey(srec.MEMBER_METADATA, "g", "m"),
                             member.metadata_value())
    assert (key, value) == (MEMBER_KEY, MEMBER_VALUE)
    decoded_key, decoded = srec.decode(key, value)
    assert decoded_key == srec.StreamsKey(srec.MEMBER_METADATA, "g", "m")
    assert decoded is not None and decoded["user_endpoint"] == {"host": "h", "port": 8080}


def test_current_assignment_with_assignment_epochs() -> None:
    member = StreamsGroupMember("m", member_epoch=3, previous_member_epoch=2,
                                assigned=TasksTuple({"0": frozenset({1})}),
                                active_epochs={("0", 1): 3})
    _, value = srec.encode(srec.StreamsKey(srec.CURRENT_ASSIGNMENT, "g", "m"),
                           member.assignment_value())
    assert value == ASSIGNMENT_VALUE
    key = srec.encode(srec.StreamsKey(srec.CURRENT_ASSIGNMENT, "g", "m"), None)[0]
    assert value is not None
    _, decoded = srec.decode(key, value)
    assert decoded is not None
    back = StreamsGroupMember("m").with_assignment_value(decoded)
    assert back.assigned == member.assigned and back.active_epochs == {("0", 1): 3}


def test_corrupt_records_are_refused() -> None:
    with pytest.raises(CorruptRecordError):
        srec.decode(MEMBER_KEY, MEMBER_VALUE[:-3])
    with pytest.raises(CorruptRecordError):
        srec.decode(MEMBER_KEY, MEMBER_VALUE + b"\x00")


def info(name: str, partitions: int = 0) -> dict[str, Any]:
    return {"name": name, "partitions": partitions, "replication_factor": 0,
            "topic_configs": []}


def sub(sub_id: str, sources: list[str], *, sinks: tuple[str, ...] = (),
        repartition: tuple[dict[str, Any], ...] = (), changelogs: tuple[str, ...] = (),
        copartition: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {"subtopology_id": sub_id, "source_topics": sources, "source_topic_regex": [],
            "state_changelog_topics": [info(c) for c in changelogs],
            "repartition_sink_topics": list(sinks),
            "repartition_source_topics": list(repartition),
            "copartition_groups": list(copartition)}


def test_repartition_and_changelog_partitions_follow_the_inputs() -> None:
    topology = {"epoch": 1, "subtopologies": [
        sub("0", ["a", "b"], sinks=("rep",)),
        sub("1", [], repartition=(info("rep"),), changelogs=("store",)),
    ]}
    configured = configure(topology, image_with(("a", 3), ("b", 5)))
    assert configured.status_code == MISSING_INTERNAL_TOPICS
    assert {t.name: t.partitions for t in configured.to_create} == {"rep": 5, "store": 5}
    assert configured.subtopologies is not None
    assert configured.subtopologies["0"].number_of_tasks == 5
    ready = configure(topology, image_with(("a", 3), ("b", 5), ("rep", 5), ("store", 5)))
    assert ready.is_ready
    wrong = configure(topology, image_with(("a", 3), ("b", 5), ("rep", 5), ("store", 2)))
    assert wrong.status_code == INCORRECTLY_PARTITIONED_TOPICS
    missing = configure(topology, image_with(("a", 3)))
    assert (missing.status_code, missing.status_detail) == (MISSING_SOURCE_TOPICS,
                                                            "Source topics b are missing.")


def test_copartitioned_sources_must_agree() -> None:
    topology = {"epoch": 1, "subtopologies": [
        sub("0", ["a", "b"], copartition=({"source_topics": [0, 1], "source_topic_regex": [],
                                           "repartition_source_topics": []},)),
    ]}
    assert configure(topology, image_with(("a", 3), ("b", 3))).is_ready
    bad = configure(topology, image_with(("a", 3), ("b", 4)))
    assert bad.status_code == INCORRECTLY_PARTITIONED_TOPICS


def test_assignor_balances_and_sticks_and_places_standbys_elsewhere() -> None:
    members = [AssignmentMember("m1", "p1", TasksTuple()),
               AssignmentMember("m2", "p2", TasksTuple())]
    first = assign(members, {"0": 4, "1": 2}, 1)
    counts = [sum(len(ps) for ps in first[m].active.values()) for m in ("m1", "m2")]
    assert counts == [3, 3]
    for m, other in (("m1", "m2"), ("m2", "m1")):
        assert first[m].standby == first[other].active  # the other process keeps a copy
    # A third member: the first two keep what they can (sticky), the newcomer gets 2.
    members = [AssignmentMember("m1", "p1", first["m1"]),
               AssignmentMember("m2", "p2", first["m2"]),
               AssignmentMember("m3", "p3", TasksTuple())]
    second = assign(members, {"0": 4, "1": 2}, 0)
    for m in ("m1", "m2"):
        kept = {(s, p) for s, ps in second[m].active.items() for p in ps}
        had = {(s, p) for s, ps in first[m].active.items() for p in ps}
        assert len(kept) == 2 and kept <= had
    assert sum(len(ps) for ps in second["m3"].active.values()) == 2


def test_tasks_are_revoked_before_they_move() -> None:
    group = StreamsGroup("g", group_epoch=2, assignment_epoch=2)
    holder = StreamsGroupMember("a", process_id="p1", member_epoch=1,
                                assigned=TasksTuple({"0": frozenset({0, 1})}))
    newcomer = StreamsGroupMember("b", process_id="p2", member_epoch=1)
    group.members = {"a": holder, "b": newcomer}
    # a must give up 0_1 first: it stays at its epoch until it no longer reports it.
    step = reconcile(holder, 2, TasksTuple({"0": frozenset({0})}), group,
                     TasksTuple({"0": frozenset({0, 1})}))
    assert step.state is MemberState.UNREVOKED_TASKS and step.member_epoch == 1
    assert step.pending_revocation.active == {"0": frozenset({1})}
    group.members["a"] = step
    # b may not take 0_1 while a still holds it.
    waiting = reconcile(newcomer, 2, TasksTuple({"0": frozenset({1})}), group, TasksTuple())
    assert waiting.state is MemberState.UNRELEASED_TASKS and waiting.assigned.active == {}
    done = reconcile(step, 2, TasksTuple({"0": frozenset({0})}), group,
                     TasksTuple({"0": frozenset({0})}))
    assert done.state is MemberState.STABLE and done.member_epoch == 2
    group.members["a"] = done
    taken = reconcile(waiting, 2, TasksTuple({"0": frozenset({1})}), group, TasksTuple())
    assert taken.state is MemberState.STABLE and taken.assigned.active == {"0": frozenset({1})}


def test_standbys_spread_over_client_tag_values() -> None:
    zone = {"a1": "a", "a2": "a", "b1": "b"}
    members = [AssignmentMember(m, f"p-{m}", TasksTuple(), {"zone": z})
               for m, z in zone.items()]

    def same_zone_standby(result: dict[str, TasksTuple]) -> bool:
        return any(zone[other] == zone[mid]
                   for mid, tasks in result.items() for sub, ps in tasks.active.items()
                   for p in ps for other, r in result.items() if p in r.standby.get(sub, ()))

    plain = assign(members, {"0": 3}, 1)
    tagged = assign(members, {"0": 3}, 1, ("zone",))
    for result in (plain, tagged):
        assert sum(len(ps) for r in result.values() for ps in r.standby.values()) == 3
    # Without the tag some standby sits in its active's zone; with it none does.
    assert same_zone_standby(plain) and not same_zone_standby(tagged)


def test_assignor_properties_over_random_groups() -> None:
    """Every task active once, members within one task of each other, standbys on other
    processes, and a second run with the same members moves nothing (sticky)."""
    import random

    rng = random.Random(1071)
    for _ in range(50):
        count = rng.randint(1, 12)
        members = [AssignmentMember(f"m{i}", f"p{rng.randint(0, count)}", TasksTuple())
                   for i in range(count)]
        tasks = {str(s): rng.randint(0, 9) for s in range(rng.randint(1, 3))}
        standbys = rng.randint(0, 2)
        result = assign(members, tasks, standbys)
        actives = [(s, p) for r in result.values() for s, ps in r.active.items() for p in ps]
        assert sorted(actives) == sorted((s, p) for s, n in tasks.items() for p in range(n))
        loads = [sum(len(ps) for ps in r.active.values()) for r in result.values()]
        assert max(loads) - min(loads) <= 1
        process = {m.member_id: m.process_id for m in members}
        for mid, r in result.items():
            for s, ps in r.standby.items():
                for p in ps:
                    (holder,) = [h for h, x in result.items() if p in x.active.get(s, ())]
                    assert process[holder] != process[mid]
        again = assign([AssignmentMember(m.member_id, m.process_id, result[m.member_id])
                        for m in members], tasks, standbys)
        assert {m: r.active for m, r in again.items()} == {m: r.active for m, r in result.items()}


def test_a_standby_stays_where_the_state_is() -> None:
    """A task that moves keeps a standby on its previous owner (its state is there)."""
    first = assign([AssignmentMember("a", "pa", TasksTuple()),
                    AssignmentMember("b", "pb", TasksTuple())], {"0": 4}, 1)
    grown = [AssignmentMember(m, f"p{m}", first[m]) for m in ("a", "b")] + [
        AssignmentMember("c", "pc", TasksTuple())]
    second = assign(grown, {"0": 4}, 1)
    moved = {p for p in second["c"].active["0"]}
    assert moved
    for p in moved:
        (previous,) = [m for m in ("a", "b") if p in first[m].active["0"]]
        assert p in second[previous].standby.get("0", ())
