"""Replica placement (cluster/placement.py): the invariants Kafka's striped
placer keeps, checked over generated clusters, and the operations that use it
(CreateTopics, CreatePartitions with the topic's replication factor)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.cluster.image import BrokerInfo, MetadataImage
from strom.cluster.operations import MetadataOperations
from strom.cluster.placement import place, rack_alternating
from strom.errors import InvalidReplicationFactorError


@st.composite
def clusters(draw: st.DrawFn) -> list[BrokerInfo]:
    ids = draw(st.lists(st.integers(0, 50), min_size=1, max_size=12, unique=True))
    racks = draw(st.sampled_from([[None], ["a", "b"], ["a", "b", "c"], ["a", None]]))
    return [BrokerInfo(i, "h", 9000 + i, draw(st.sampled_from(racks)), i,
                       draw(st.booleans()) if draw(st.integers(0, 4)) == 0 else False)
            for i in ids]


@settings(max_examples=300, deadline=None)
@given(brokers=clusters(), rf=st.integers(1, 5), partitions=st.integers(1, 40),
       seed=st.integers(0, 2**32))
def test_placement_invariants(brokers: list[BrokerInfo], rf: int, partitions: int,
                              seed: int) -> None:
    usable = {b.node_id: b for b in brokers if not b.fenced}
    if rf > len(usable):
        with pytest.raises(InvalidReplicationFactorError):
            place(brokers, partitions, rf, random.Random(seed))
        return
    placed = place(brokers, partitions, rf, random.Random(seed))
    assert len(placed) == partitions
    racks = {b.rack for b in usable.values()}
    for replicas in placed:
        assert len(replicas) == rf == len(set(replicas))
        assert all(r in usable for r in replicas)  # never a fenced or unknown broker
        # Racks first: as many racks as the replicas can span.
        assert len({usable[r].rack for r in replicas}) == min(rf, len(racks))
    leaders = Counter(replicas[0] for replicas in placed)
    counts = [leaders.get(b, 0) for b in usable]
    assert max(counts) - min(counts) <= 1  # leaders spread evenly


def test_rack_alternating_layout() -> None:
    brokers = [BrokerInfo(i, "h", 1, rack) for i, rack in
               ((1, "b"), (2, "a"), (3, "b"), (4, "a"), (5, "c"))]
    assert [b.node_id for b in rack_alternating(brokers)] == [2, 1, 5, 4, 3]


def test_without_racks_replicas_follow_the_leader_round_robin() -> None:
    brokers = [BrokerInfo(i, "h", 1) for i in (1, 2, 3)]
    placed = place(brokers, 3, 3, random.Random(0))
    assert sorted(placed) == [(1, 2, 3), (2, 3, 1), (3, 1, 2)]


def test_operations_place_replication_factor_and_keep_it_for_new_partitions() -> None:
    image = MetadataImage("c", 1, {i: BrokerInfo(i, "h", 9000 + i) for i in (1, 2, 3)})
    ops = MetadataOperations(lambda: image, 1)
    records = ops.create_topic_records("t", 6, 3, {})
    image = image.apply(records)
    topic = image.topics["t"]
    assert topic.replication_factor == 3
    assert all(p.isr == p.replicas and p.leader == p.replicas[0] for p in topic.partitions)
    assert sorted(Counter(p.leader for p in topic.partitions).values()) == [2, 2, 2]
    image = image.apply(ops.create_partitions_records("t", 8))
    assert [len(p.replicas) for p in image.topics["t"].partitions] == [3] * 8
    with pytest.raises(InvalidReplicationFactorError, match="only 3 broker"):
        ops.create_topic_records("u", 1, 4, {})
