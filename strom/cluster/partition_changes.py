"""Changes of one partition's leader and ISR, as the controller makes them.

KRaft's rules for the two epochs a partition carries: every change of leader
bumps `leader_epoch` and `partition_epoch`; a change of the ISR (or of the
replicas) alone bumps `partition_epoch` only. A leader asks for ISR changes
with AlterPartition, naming the epochs it saw; the controller refuses a stale
request (Kafka's ReplicationControlManager.validateAlterPartitionData, in the
same order, so a leader sees the error Kafka's would send):

- a leader epoch above the controller's, or a partition epoch above it: the
  asker knows newer metadata than this controller: NOT_CONTROLLER;
- a leader epoch below it: FENCED_LEADER_EPOCH (a newer leader exists);
- the asker is not the leader: INVALID_REQUEST (Kafka's code: with equal
  leader epochs this only happens through a bug);
- a partition epoch below it: INVALID_UPDATE_VERSION (the ISR changed since);
- an ISR naming a non-replica, a broker twice, or leaving out the leader:
  INVALID_REQUEST;
- an ISR naming a broker that is not registered or is shutting down (fenced):
  INELIGIBLE_REPLICA.

Pure functions over an image; nothing here changes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from strom.cluster.image import MetadataImage, PartitionInfo, PartitionRecord
from strom.errors import (
    FencedLeaderEpochError,
    IneligibleReplicaError,
    InvalidRequestError,
    InvalidUpdateVersionError,
    NotControllerError,
    StaleBrokerEpochError,
    UnknownTopicIdError,
    UnknownTopicOrPartitionError,
)

NO_LEADER = -1


def change(topic_id: uuid.UUID, current: PartitionInfo, leader: int,
           isr: Sequence[int]) -> PartitionRecord | None:
    """The record moving `current` to `leader` and `isr` with KRaft's epoch
    rules; None when nothing changes. The ISR is kept in replica order."""
    ordered = tuple(r for r in current.replicas if r in isr)
    leader_changed = leader != current.leader
    if not leader_changed and ordered == current.isr:
        return None
    return PartitionRecord(
        topic_id, current.partition, current.replicas, ordered, leader,
        current.leader_epoch + 1 if leader_changed else current.leader_epoch,
        current.partition_epoch + 1, current.adding_replicas, current.removing_replicas)


def applied(record: PartitionRecord) -> PartitionInfo:
    """The partition as `record` leaves it."""
    return PartitionInfo(record.partition, record.leader, record.leader_epoch,
                         record.replicas, record.isr, record.partition_epoch,
                         record.adding_replicas, record.removing_replicas)


def reassign(image: MetadataImage, topic_id: uuid.UUID, current: PartitionInfo,
             replicas: Sequence[int], isr: Sequence[int], adding: Sequence[int] = (),
             removing: Sequence[int] = ()) -> PartitionRecord | None:
    """The record giving `current` a new replica set (a reassignment started,
    completed or cancelled); None when nothing changes. The leader stays
    while it is live and in the ISR, else the first replica that is both
    leads (none: -1). As Kafka's controller, the leader epoch is bumped when
    the leader changes or replicas are removed (fencing the removed ones'
    fetches); the partition epoch on every change."""
    replicas = tuple(replicas)
    ordered = tuple(r for r in replicas if r in isr)
    live = {b.node_id for b in image.brokers.values() if not b.fenced}
    leader = current.leader
    if leader not in ordered or leader not in live:
        leader = next((r for r in replicas if r in ordered and r in live), NO_LEADER)
    adding, removing = tuple(adding), tuple(removing)
    if (replicas, ordered, leader, adding, removing) == (
            current.replicas, current.isr, current.leader, current.adding_replicas,
            current.removing_replicas):
        return None
    fence = leader != current.leader or any(r not in replicas for r in current.replicas)
    return PartitionRecord(topic_id, current.partition, replicas, ordered, leader,
                           current.leader_epoch + 1 if fence else current.leader_epoch,
                           current.partition_epoch + 1, adding, removing)


def complete_if_caught_up(image: MetadataImage, current: PartitionInfo,
                          record: PartitionRecord) -> PartitionRecord:
    """`record` (a change of `current`), completing its reassignment when
    every target replica is in its ISR (Kafka's
    PartitionReassignmentReplicas.maybeCompleteReassignment): the replicas
    become the target, the removed ones leave the ISR, and a leader among
    the target replicas is elected if the leader was removed. Unchanged while
    a target replica is missing, or no live target replica could lead."""
    removing = record.removing_replicas
    if not (record.adding_replicas or removing):
        return record
    replicas = tuple(r for r in record.replicas if r not in removing)
    isr = tuple(r for r in record.isr if r not in removing)
    if not isr or any(r not in isr for r in replicas):
        return record
    completed = reassign(image, record.topic_id, current, replicas, isr)
    if completed is None or completed.leader == NO_LEADER:
        return record
    return completed


@dataclass(frozen=True, slots=True)
class AlterPartitionResult:
    """The partition after the change, and the records that make it (none
    when the requested ISR is the current one)."""

    partition: PartitionInfo
    records: list[PartitionRecord]


def check_broker_epoch(image: MetadataImage, broker_id: int, broker_epoch: int) -> None:
    """Kafka's ClusterControlManager.checkBrokerEpoch: a broker-to-controller
    request must come from the broker's current registration."""
    broker = image.brokers.get(broker_id)
    if broker is None:
        raise StaleBrokerEpochError(f"No broker registration found for broker id {broker_id}")
    if broker.epoch != broker_epoch:
        raise StaleBrokerEpochError(
            f"Expected broker epoch {broker.epoch}, but got broker epoch {broker_epoch}")


def alter_partition(image: MetadataImage, broker_id: int, topic_id: uuid.UUID,
                    partition: int, leader_epoch: int, partition_epoch: int,
                    new_isr: Sequence[int], isr_broker_epochs: Sequence[int] | None = None
                    ) -> AlterPartitionResult:
    """Validate one partition of an AlterPartition from `broker_id` (its
    broker epoch checked by the caller, once per request). `isr_broker_epochs`
    (AlterPartition v3): the epoch the leader saw for each new ISR member, -1
    for unchecked; a member registered anew since then is ineligible."""
    topic = image.topic_by_id(topic_id)
    if topic is None:
        raise UnknownTopicIdError(f"Unknown topic id {topic_id}")
    if not 0 <= partition < len(topic.partitions):
        raise UnknownTopicOrPartitionError(f"Unknown partition {topic.name}-{partition}")
    current = topic.partitions[partition]
    where = f"{topic.name}-{partition}"
    if leader_epoch > current.leader_epoch or partition_epoch > current.partition_epoch:
        raise NotControllerError(
            f"{where}: the request's epochs ({leader_epoch}, {partition_epoch}) are newer than "
            f"the controller's ({current.leader_epoch}, {current.partition_epoch})")
    if leader_epoch < current.leader_epoch:
        raise FencedLeaderEpochError(
            f"{where}: the current leader epoch is {current.leader_epoch}, not {leader_epoch}")
    if broker_id != current.leader:
        raise InvalidRequestError(f"{where}: the current leader is {current.leader}")
    if partition_epoch < current.partition_epoch:
        raise InvalidUpdateVersionError(
            f"{where}: the current partition epoch is {current.partition_epoch}, not "
            f"{partition_epoch}")
    if len(set(new_isr)) != len(new_isr) or any(r not in current.replicas for r in new_isr):
        raise InvalidRequestError(f"{where}: invalid ISR {list(new_isr)} for replicas "
                                  f"{list(current.replicas)}")
    if current.leader not in new_isr:
        raise InvalidRequestError(f"{where}: the ISR {list(new_isr)} leaves out its leader")
    epochs = list(isr_broker_epochs) if isr_broker_epochs is not None else [-1] * len(new_isr)
    ineligible = [r for r, epoch in zip(new_isr, epochs, strict=True)
                  if (b := image.brokers.get(r)) is None or b.fenced
                  or (epoch != -1 and epoch != b.epoch)]
    if ineligible:
        raise IneligibleReplicaError(
            f"{where}: the ISR {list(new_isr)} names brokers not registered or shutting down: "
            f"{ineligible}")
    record = change(topic_id, current, current.leader, new_isr)
    if record is None:
        return AlterPartitionResult(current, [])
    if current.reassigning:
        # The ISR change that brings in the last target replica completes the
        # reassignment in the same record (Kafka's PartitionChangeBuilder).
        record = complete_if_caught_up(image, current, record)
    return AlterPartitionResult(applied(record), [record])
