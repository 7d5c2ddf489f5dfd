"""Leader election (cluster/elections.py) against a model: over generated
clusters (brokers registered, gone or fenced; partitions with any replicas,
ISR and leader), the records bring every partition to the leader and ISR the
rules name, with KRaft's epoch bumps, in bounded batches, and running the
election on its own result changes nothing."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.cluster.elections import (
    PREFERRED,
    UNCLEAN_ELECTION,
    elect_leader,
    election_records,
    live_brokers,
    preferred_records,
)
from strom.cluster.image import (
    BrokerConfigRecord,
    BrokerInfo,
    MetadataImage,
    PartitionInfo,
    PartitionRecord,
    TopicConfigRecord,
    TopicRecord,
)
from strom.errors import (
    ElectionNotNeededError,
    EligibleLeadersNotAvailableError,
    InvalidRequestError,
    PreferredLeaderNotAvailableError,
    UnknownTopicOrPartitionError,
)

NODES = range(1, 6)


@st.composite
def images(draw: st.DrawFn) -> MetadataImage:
    state = {n: draw(st.sampled_from(["live", "gone", "fenced"])) for n in NODES}
    brokers = {n: BrokerInfo(n, "h", 9000 + n, None, 10 + n, s == "fenced")
               for n, s in state.items() if s != "gone"}
    image = MetadataImage("c", 1, brokers)
    records: list[object] = []
    for t in range(draw(st.integers(1, 3))):
        topic_id = uuid.UUID(int=t + 1)
        records.append(TopicRecord(f"t{t}", topic_id))
        if draw(st.booleans()):
            records.append(TopicConfigRecord(topic_id, "unclean.leader.election.enable",
                                             draw(st.sampled_from(["true", "false"]))))
        for p in range(draw(st.integers(1, 6))):
            replicas = tuple(draw(st.permutations(list(NODES)))[:draw(st.integers(1, 4))])
            isr = tuple(r for r in replicas if draw(st.booleans())) or replicas[:1]
            leader = draw(st.sampled_from([*isr, -1]))
            records.append(PartitionRecord(topic_id, p, replicas, isr, leader,
                                           draw(st.integers(0, 5)), draw(st.integers(0, 5))))
    return image.apply(records)  # type: ignore[arg-type]


def _unclean(image: MetadataImage, name: str, default: bool) -> bool:
    value = image.topics[name].configs.get("unclean.leader.election.enable")
    if value is None:
        value = image.broker_configs.get("unclean.leader.election.enable")
    return default if value is None else value == "true"


def _expected(p: PartitionInfo, live: frozenset[int], unclean: bool
              ) -> tuple[int, tuple[int, ...]]:
    """The rules, written out plainly."""
    live_isr = tuple(r for r in p.isr if r in live)
    if p.leader in live and p.leader in p.isr:
        return p.leader, live_isr
    leaders = [r for r in p.replicas if r in live_isr]
    if leaders:
        return leaders[0], live_isr
    if unclean and any(r in live for r in p.replicas):
        first = next(r for r in p.replicas if r in live)
        return first, (first,)
    return -1, p.isr


def _converge(image: MetadataImage, default: bool, limit: int) -> tuple[MetadataImage, int]:
    for batches in range(1000):
        records = election_records(image, default, limit)
        assert len(records) <= limit
        if not records:
            return image, batches
        image = image.apply(records)
    raise AssertionError("elections did not converge")


@settings(max_examples=400, deadline=None)
@given(image=images(), default=st.booleans(), limit=st.sampled_from([1, 3, 2000]),
       cluster_default=st.sampled_from([None, "true", "false"]))
def test_elections_follow_the_rules(image: MetadataImage, default: bool, limit: int,
                                    cluster_default: str | None) -> None:
    if cluster_default is not None:
        image = image.apply([BrokerConfigRecord("unclean.leader.election.enable",
                                                cluster_default)])
    live = live_brokers(image)
    after, batches = _converge(image, default, limit)
    changed = 0
    for name, topic in image.topics.items():
        unclean = _unclean(image, name, default)
        for before, now in zip(topic.partitions, after.topics[name].partitions, strict=True):
            leader, isr = _expected(before, live, unclean)
            assert (now.leader, now.isr) == (leader, tuple(r for r in before.replicas
                                                           if r in isr)), (before, live)
            assert now.replicas == before.replicas
            assert now.leader == -1 or (now.leader in live and now.leader in now.isr)
            assert now.isr and set(now.isr) <= set(now.replicas)
            # KRaft's epochs: leader_epoch with the leader, partition_epoch with any change.
            assert now.leader_epoch == before.leader_epoch + (now.leader != before.leader)
            moved = (now.leader, now.isr) != (before.leader, before.isr)
            assert now.partition_epoch == before.partition_epoch + moved
            changed += moved
    assert batches == -(-changed // limit)  # ceil: full batches, then the rest


@settings(max_examples=200, deadline=None)
@given(image=images())
def test_preferred_leaders_lead_when_they_can(image: MetadataImage) -> None:
    image, _ = _converge(image, False, 2000)
    live = live_brokers(image)
    after = image.apply(preferred_records(image))
    for name, topic in image.topics.items():
        for before, now in zip(topic.partitions, after.topics[name].partitions, strict=True):
            first = before.replicas[0]
            if first in live and first in before.isr:
                assert now.leader == first
            else:
                assert now == before
            assert now.isr == before.isr
    assert preferred_records(after) == []


def test_a_registering_broker_leads_partitions_whose_isr_names_it() -> None:
    topic_id = uuid.uuid4()
    down = MetadataImage("c", 1, {2: BrokerInfo(2, "h", 2, None, 5)}).apply([
        TopicRecord("t", topic_id),
        PartitionRecord(topic_id, 0, (1, 2), (1, 2), 1, 3, 4),
        PartitionRecord(topic_id, 1, (1,), (1,), 1, 0, 0)])
    after = down.apply(election_records(down))
    p0, p1 = after.topics["t"].partitions
    assert (p0.leader, p0.isr, p0.leader_epoch, p0.partition_epoch) == (2, (2,), 4, 5)
    assert (p1.leader, p1.isr, p1.leader_epoch, p1.partition_epoch) == (-1, (1,), 1, 1)
    back = after.apply([]).__class__(after.cluster_id, 1, {
        **after.brokers, 1: BrokerInfo(1, "h", 1, None, 9)}, after.topics)
    again = back.apply(election_records(back))
    p0, p1 = again.topics["t"].partitions
    assert (p0.leader, p0.isr) == (2, (2,))  # 1 catches up before it rejoins the ISR
    assert (p1.leader, p1.isr, p1.leader_epoch) == (1, (1,), 2)


def test_elect_leaders_answers_as_kafka() -> None:
    topic_id = uuid.uuid4()
    image = MetadataImage("c", 1, {2: BrokerInfo(2, "h", 2, None, 5),
                                   3: BrokerInfo(3, "h", 3, None, 6, True)}).apply([
        TopicRecord("t", topic_id),
        PartitionRecord(topic_id, 0, (1, 2), (1,), -1, 3, 4),  # leaderless, 2 out of ISR
        PartitionRecord(topic_id, 1, (1, 2), (1, 2), 2, 3, 4),  # 1 preferred but dead
        PartitionRecord(topic_id, 2, (1, 3), (1,), -1, 3, 4),  # nobody live
        PartitionRecord(topic_id, 3, (2, 1), (2, 1), 1, 0, 0)])  # 2 preferred, live, in ISR
    unclean = elect_leader(image, "t", 0, UNCLEAN_ELECTION)
    assert (unclean.leader, unclean.isr, unclean.leader_epoch) == (2, (2,), 4)
    preferred = elect_leader(image, "t", 3, PREFERRED)
    assert (preferred.leader, preferred.isr, preferred.leader_epoch,
            preferred.partition_epoch) == (2, (2, 1), 1, 1)
    for partition, kind, error in (
            (1, UNCLEAN_ELECTION, ElectionNotNeededError),
            (1, PREFERRED, PreferredLeaderNotAvailableError),
            (2, UNCLEAN_ELECTION, EligibleLeadersNotAvailableError),
            (9, PREFERRED, UnknownTopicOrPartitionError),
            (0, 7, InvalidRequestError)):
        with pytest.raises(error):
            elect_leader(image, "t", partition, kind)
    with pytest.raises(ElectionNotNeededError):
        elect_leader(image.apply([preferred]), "t", 3, PREFERRED)
    with pytest.raises(UnknownTopicOrPartitionError):
        elect_leader(image, "nope", 0, PREFERRED)
