"""Leader election: which broker leads each partition, decided by the
controller alone, from the image (sans-I/O; the etcd store runs it).

A broker is live while it is registered and not fenced (in controlled
shutdown). `election_records` brings every partition in line with the live
brokers, KRaft's rules without eligible leader replicas (ELR):

- a partition whose leader is live keeps it; dead brokers leave its ISR;
- a partition whose leader is not live (or that has none) gets the first
  replica, in `replicas` order, that is in the ISR and live; dead brokers
  leave the ISR;
- when no ISR member is live, the ISR keeps its members (the last ones that
  had every committed record) and the leader is -1: the partition is offline
  until one of them registers again, and then that broker leads it;
- unless `unclean.leader.election.enable` (the topic's, else the cluster's
  dynamic default, else the broker's static setting): then the first live
  replica leads, with an ISR of itself alone (records it lacks are lost, as
  in Kafka).

The same function answers every trigger (a registration lost, a broker
fenced, a broker registered, a new controller taking over, the unclean
setting changed), since it looks at the whole image and changes only what is
out of line; running it again on its own result changes nothing. Its output
is bounded (`limit` records), so that one trigger touching many thousands of
partitions becomes several metadata batches and the controller's loop (and
every broker applying the batches) never blocks on one huge batch.

`preferred_records` moves leadership back to each partition's first replica
where it can lead (ElectLeaders PREFERRED; auto.leader.rebalance.enable runs
it every leader.imbalance.check.interval.seconds, as KRaft's controller does
for every imbalanced partition: `leader.imbalance.per.broker.percentage` is
not read, as in KRaft).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from strom.cluster.image import MetadataImage, PartitionInfo, PartitionRecord, TopicInfo
from strom.cluster.partition_changes import NO_LEADER, change
from strom.config import BrokerConfig, Value
from strom.errors import (
    ElectionNotNeededError,
    EligibleLeadersNotAvailableError,
    InvalidRequestError,
    PreferredLeaderNotAvailableError,
    UnknownTopicOrPartitionError,
)

UNCLEAN = "unclean.leader.election.enable"
#: Partition changes per metadata batch one election trigger writes (about
#: 150 bytes of JSON each; a batch of 2,000 applies in milliseconds).
MAX_ELECTIONS_PER_BATCH = 2000


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    """The broker's static settings the controller's elections read (Kafka's
    names and defaults)."""

    unclean_leader_election_enable: bool = False
    auto_leader_rebalance_enable: bool = True
    leader_imbalance_check_interval_seconds: int = 300

    @classmethod
    def from_config(cls, config: BrokerConfig) -> ControllerSettings:
        unclean = config.get(UNCLEAN)
        rebalance = config.get("auto.leader.rebalance.enable")
        interval = config.get("leader.imbalance.check.interval.seconds")
        assert isinstance(unclean, bool) and isinstance(rebalance, bool)
        assert isinstance(interval, int)
        return cls(unclean, rebalance, interval)


def live_brokers(image: MetadataImage) -> frozenset[int]:
    return frozenset(b.node_id for b in image.brokers.values() if not b.fenced)


def _flag(value: Value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return None


def unclean_allowed(image: MetadataImage, topic: TopicInfo, default: bool) -> bool:
    for configs in (topic.configs, image.broker_configs):
        flag = _flag(configs.get(UNCLEAN))
        if flag is not None:
            return flag
    return default


def elect(partition: PartitionInfo, live: frozenset[int], unclean: bool
          ) -> tuple[int, tuple[int, ...]]:
    """(leader, ISR) for `partition` given the live brokers."""
    live_isr = tuple(r for r in partition.isr if r in live)
    if partition.leader in live_isr:
        return partition.leader, live_isr
    for replica in partition.replicas:
        if replica in live_isr:
            return replica, live_isr
    if unclean:
        for replica in partition.replicas:
            if replica in live:
                return replica, (replica,)
    # Nobody to lead; the ISR keeps who had every committed record.
    return NO_LEADER, partition.isr


def election_records(image: MetadataImage, default_unclean: bool = False,
                     limit: int = MAX_ELECTIONS_PER_BATCH) -> list[PartitionRecord]:
    """At most `limit` records bringing partitions in line with the live brokers."""
    live = live_brokers(image)
    records: list[PartitionRecord] = []
    for topic in image.topics.values():
        unclean: bool | None = None
        for partition in topic.partitions:
            if partition.leader in live and all(r in live for r in partition.isr):
                continue  # the common case, decided without allocating
            if unclean is None:
                unclean = unclean_allowed(image, topic, default_unclean)
            leader, isr = elect(partition, live, unclean)
            record = change(topic.topic_id, partition, leader, isr)
            if record is not None:
                records.append(record)
                if len(records) >= limit:
                    return records
    return records


def preferred_leader(partition: PartitionInfo, live: frozenset[int]) -> int | None:
    """The preferred replica when it could lead now (live, in the ISR) and
    does not; else None."""
    preferred = partition.replicas[0] if partition.replicas else NO_LEADER
    if preferred == partition.leader or preferred not in live or preferred not in partition.isr:
        return None
    return preferred


def preferred_records(image: MetadataImage,
                      partitions: Iterable[tuple[TopicInfo, PartitionInfo]] | None = None,
                      limit: int = MAX_ELECTIONS_PER_BATCH) -> list[PartitionRecord]:
    """Records moving leadership to the preferred replica, for `partitions`
    (default: all) where it can lead and does not."""
    live = live_brokers(image)
    if partitions is None:
        partitions = ((t, p) for t in image.topics.values() for p in t.partitions)
    records: list[PartitionRecord] = []
    for topic, partition in partitions:
        leader = preferred_leader(partition, live)
        if leader is None:
            continue
        record = change(topic.topic_id, partition, leader, partition.isr)
        if record is not None:
            records.append(record)
            if len(records) >= limit:
                break
    return records


PREFERRED = 0
UNCLEAN_ELECTION = 1


def elect_leader(image: MetadataImage, topic_name: str, partition: int, election_type: int
                 ) -> PartitionRecord:
    """ElectLeaders for one partition (Kafka's ReplicationControlManager.electLeader):
    PREFERRED makes the first replica leader when it is live and in the ISR;
    UNCLEAN elects a leaderless partition's leader, out of the ISR if it must.
    The record, or the KafkaError Kafka answers with."""
    topic = image.topics.get(topic_name)
    if topic is None:
        raise UnknownTopicOrPartitionError(f"No such topic as {topic_name}")
    if not 0 <= partition < len(topic.partitions):
        raise UnknownTopicOrPartitionError(f"No such partition as {topic_name}-{partition}")
    current = topic.partitions[partition]
    live = live_brokers(image)
    if election_type == PREFERRED:
        if current.replicas and current.leader == current.replicas[0]:
            raise ElectionNotNeededError()
        leader = preferred_leader(current, live)
        if leader is None:
            raise PreferredLeaderNotAvailableError()
        record = change(topic.topic_id, current, leader, current.isr)
    elif election_type == UNCLEAN_ELECTION:
        if current.leader in live:
            raise ElectionNotNeededError()
        leader, isr = elect(current, live, True)
        record = None if leader == NO_LEADER else change(topic.topic_id, current, leader, isr)
        if record is None:
            raise EligibleLeadersNotAvailableError()
    else:
        raise InvalidRequestError(f"Unknown election type {election_type}")
    assert record is not None  # the leader changed
    return record
