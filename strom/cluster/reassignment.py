"""Partition reassignment (KIP-455), as Kafka's controller does it: pure
functions over the image, returning the record a request makes.

A reassignment of a partition from replicas C to target T:
1. AlterPartitionReassignments writes the partition with replicas
   T + (C - T) (the target first, then the replicas being removed),
   `adding_replicas` T - C and `removing_replicas` C - T; the ISR and the
   leader stay. The brokers gaining a replica create its log and follow the
   leader (broker/replica_manager.py).
2. Each added replica catches up and its leader brings it into the ISR with
   AlterPartition, as any follower.
3. The AlterPartition that makes every target replica an ISR member
   completes it in the same record (partition_changes.complete_if_caught_up):
   replicas T, the removed replicas leave the ISR, adding/removing cleared,
   and if the leader was removed the first live target replica in the ISR
   leads. The leader epoch is bumped when replicas are removed, fencing
   them; the brokers that lost their replica stop it and delete its log.

A target already within the ISR (a reorder, fewer replicas) completes at
once. Reassigning a partition during a reassignment replaces the target:
replicas not in the new one are removed (the partly copied ones too), the
new target's replicas that were not there before the first move are being
added. A null target cancels (Kafka's
PartitionReassignmentRevert): the replicas being added go, the original
replicas stay. `partition_changes.reassign` elects and bumps the epochs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from strom.cluster.image import MetadataImage, PartitionInfo, PartitionRecord, TopicInfo
from strom.cluster.partition_changes import complete_if_caught_up, reassign
from strom.errors import (
    InvalidReplicationFactorError,
    NoReassignmentInProgressError,
    UnknownTopicOrPartitionError,
)


def _partition(image: MetadataImage, topic_name: str, partition: int
               ) -> tuple[TopicInfo, PartitionInfo]:
    topic = image.topics.get(topic_name)
    if topic is None or not 0 <= partition < len(topic.partitions):
        raise UnknownTopicOrPartitionError(
            f"Unable to find partition {topic_name}:{partition}.")
    return topic, topic.partitions[partition]


def alter_reassignment(image: MetadataImage, topic_name: str, partition: int,
                       target: Sequence[int] | None, allow_replication_factor_change: bool = True
                       ) -> PartitionRecord | None:
    """The record starting (or at once completing) the reassignment of one
    partition to `target`, or cancelling its reassignment (`target` None);
    None when nothing changes. `target` is validated by the caller
    (registered brokers, no duplicates: INVALID_REPLICA_ASSIGNMENT)."""
    topic, current = _partition(image, topic_name, partition)
    if target is None:
        return _cancel(image, topic, current)
    target = tuple(target)
    replication_factor = len(current.replicas) - len(current.removing_replicas)
    if not allow_replication_factor_change and len(target) != replication_factor:
        # KIP-860's check, with its message.
        raise InvalidReplicationFactorError(
            f"The replication factor is changed from {replication_factor} to {len(target)}")
    # Replicas still being added stay "adding" when the target keeps them (a
    # request repeated, or changing only the throttle, must not mark them
    # done); those it drops join the ones being removed.
    original = [r for r in current.replicas if r not in current.adding_replicas]
    adding = tuple(r for r in target if r not in original)
    removing = tuple(r for r in current.replicas if r not in target)
    record = reassign(image, topic.topic_id, current, target + removing, current.isr, adding,
                      removing)
    if record is None:
        return None
    return complete_if_caught_up(image, current, record)


def _cancel(image: MetadataImage, topic: TopicInfo, current: PartitionInfo
            ) -> PartitionRecord | None:
    if not current.reassigning:
        raise NoReassignmentInProgressError(
            f"No ongoing reassignment for partition {topic.name}-{current.partition}.")
    original = tuple(r for r in current.replicas if r not in current.adding_replicas)
    isr = tuple(r for r in current.isr if r in original)
    if not isr:
        # Only replicas being added were in sync: the original replicas can
        # only be brought back unclean (Kafka's revert does the same).
        isr = original
    return reassign(image, topic.topic_id, current, original, isr)


def ongoing(image: MetadataImage, asked: Iterable[tuple[str, Sequence[int]]] | None
            ) -> Mapping[str, list[PartitionInfo]]:
    """ListPartitionReassignments: the partitions being reassigned, by topic,
    of `asked` (topic, partitions) or of every topic (None). Unknown topics
    and partitions, and partitions not being reassigned, are left out."""
    found: dict[str, list[PartitionInfo]] = {}
    if asked is None:
        for topic in image.topics.values():
            moving = [p for p in topic.partitions if p.reassigning]
            if moving:
                found[topic.name] = moving
        return found
    for name, partitions in asked:
        named = image.topics.get(name)
        if named is None:
            continue
        for index in partitions:
            if 0 <= index < len(named.partitions) and named.partitions[index].reassigning:
                moving_in = found.setdefault(name, [])
                if named.partitions[index] not in moving_in:
                    moving_in.append(named.partitions[index])
    return found
