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
        current.partition_epoch + 1)


def applied(record: PartitionRecord) -> PartitionInfo:
    """The partition as `record` leaves it."""
    return PartitionInfo(record.partition, record.leader, record.leader_epoch,
                         record.replicas, record.isr, record.partition_epoch)


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
    return AlterPartitionResult(applied(record), [record])
