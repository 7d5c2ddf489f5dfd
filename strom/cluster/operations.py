"""The operations of the controller: each validates a request against the
current image and returns the metadata records that carry it out, changing
nothing (the store's `commit` does). Each store holds one
`MetadataOperations` over its image: the single-node store and the etcd
store differ only in where the records go.

Replica placement: a partition without a manual assignment gets its
replicas from cluster/placement.py (Kafka's striped placement over the
registered brokers not shutting down, racks first); the first replica leads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence

from strom.cluster.image import (
    BrokerConfigRecord,
    MetadataImage,
    MetadataRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RemoveTopicRecord,
    TopicConfigRecord,
    TopicRecord,
)
from strom.cluster.partition_changes import (
    AlterPartitionResult,
    alter_partition,
    check_broker_epoch,
)
from strom.cluster.placement import place
from strom.cluster.reassignment import alter_reassignment
from strom.cluster.validation import MAX_PARTITIONS, validate_topic_name
from strom.config import Value
from strom.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicaAssignmentError,
    InvalidReplicationFactorError,
    InvalidRequestError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)


def _collision_key(name: str) -> str:
    # '.' and '_' collide in metric names, so Kafka refuses topics differing only there.
    return name.replace(".", "_")


class MetadataOperations:
    """The controller's operations over the image `image()` returns (the
    store's newest), on behalf of broker `node_id`."""

    def __init__(self, image: Callable[[], MetadataImage], node_id: int) -> None:
        self._image = image
        self.node_id = node_id
        # Collision key -> topic name, for the image it was built from (a dict
        # look-up per new topic instead of a scan of every topic).
        self._collisions: tuple[MetadataImage, dict[str, str]] | None = None

    @property
    def image(self) -> MetadataImage:
        return self._image()

    def _placement(self, count: int, replication_factor: int) -> list[tuple[int, ...]]:
        """Replicas for `count` new partitions (placement.py)."""
        if not self.image.brokers and replication_factor == 1:
            return [(self.node_id,)] * count  # an image before its broker registered
        return place(self.image.brokers.values(), count, replication_factor)

    def create_topic_records(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: Mapping[str, Value],
        assignments: Mapping[int, Sequence[int]] | None = None,
        pending: dict[str, str] | None = None,
    ) -> list[MetadataRecord]:
        """`pending`: collision key -> name of the topics created earlier in
        the same request (not yet in the image); this one is added to it."""
        validate_topic_name(name)
        if name in self.image.topics:
            raise TopicAlreadyExistsError(f"Topic '{name}' already exists.")
        key = _collision_key(name)
        existing = self._collision_index().get(key)
        if existing is None and pending is not None:
            existing = pending.get(key)
        if existing is not None:
            raise InvalidTopicError(
                f"Topic '{name}' collides with existing topic: {existing}"
            )
        if assignments:
            num_partitions = len(assignments)
            if sorted(assignments) != list(range(num_partitions)):
                raise InvalidRequestError("Partition assignments must be numbered 0..n-1")
            replicas_of = {p: tuple(r) for p, r in assignments.items()}
            for replicas in replicas_of.values():
                if not replicas or any(r not in self.image.brokers for r in replicas):
                    raise InvalidReplicationFactorError(
                        "Replica assignment names a broker that is not registered"
                    )
                if len(set(replicas)) != len(replicas):
                    raise InvalidRequestError("Duplicate brokers in a replica assignment")
        else:
            if num_partitions <= 0:
                raise InvalidPartitionsError("Number of partitions must be larger than 0.")
            if num_partitions > MAX_PARTITIONS:
                raise InvalidPartitionsError(f"Number of partitions is above {MAX_PARTITIONS}.")
            if replication_factor <= 0:
                raise InvalidReplicationFactorError(
                    "Replication factor must be larger than 0."
                )
            replicas_of = dict(enumerate(self._placement(num_partitions, replication_factor)))
        topic_id = uuid.uuid4()
        records: list[MetadataRecord] = [TopicRecord(name, topic_id)]
        for partition, replicas in sorted(replicas_of.items()):
            records.append(
                PartitionRecord(topic_id, partition, replicas, replicas, replicas[0], 0)
            )
        for config_name, value in sorted(configs.items()):
            records.append(TopicConfigRecord(topic_id, config_name, value))
        if pending is not None:
            pending[key] = name
        return records

    def _collision_index(self) -> dict[str, str]:
        cached = self._collisions
        if cached is None or cached[0] is not self.image:
            index = {_collision_key(name): name for name in self.image.topics}
            cached = self._collisions = (self.image, index)
        return cached[1]

    def delete_topic_records(self, name: str) -> list[MetadataRecord]:
        topic = self.image.topics.get(name)
        if topic is None:
            raise UnknownTopicOrPartitionError(f"Topic {name} does not exist")
        return [RemoveTopicRecord(topic.topic_id)]

    def create_partitions_records(self, name: str, count: int,
                                  assignments: Sequence[Sequence[int]] | None = None
                                  ) -> list[MetadataRecord]:
        """Kafka's ReplicationControlManager.createPartitions checks and messages."""
        topic = self.image.topics.get(name)
        if topic is None:
            raise UnknownTopicOrPartitionError()
        current = len(topic.partitions)
        if count == current:
            raise InvalidPartitionsError(f"Topic already has {current} partition(s).")
        if count < current:
            raise InvalidPartitionsError(
                f"The topic {name} currently has {current} partition(s); {count} would not "
                "be an increase."
            )
        if count > MAX_PARTITIONS:
            raise InvalidPartitionsError(f"Number of partitions is above {MAX_PARTITIONS}.")
        added = count - current
        if assignments is not None and len(assignments) != added:
            raise InvalidReplicaAssignmentError(
                f"Attempted to add {added} additional partition(s), but only "
                f"{len(assignments)} assignment(s) were specified."
            )
        replication_factor = topic.replication_factor
        records: list[MetadataRecord] = []
        placed = self._placement(added, replication_factor) if assignments is None else []
        for i in range(added):
            if assignments is None:
                replicas: tuple[int, ...] = placed[i]
            else:
                replicas = tuple(assignments[i])
                self._validate_manual_assignment(replicas, replication_factor)
            records.append(
                PartitionRecord(topic.topic_id, current + i, replicas, replicas, replicas[0], 0)
            )
        return records

    def _validate_manual_assignment(self, replicas: Sequence[int],
                                    replication_factor: int | None) -> None:
        if not replicas:
            raise InvalidReplicaAssignmentError(
                "The manual partition assignment includes an empty replica list."
            )
        previous: int | None = None
        for broker_id in sorted(replicas):
            if broker_id not in self.image.brokers:
                raise InvalidReplicaAssignmentError(
                    f"The manual partition assignment includes broker {broker_id}, but no "
                    "such broker is registered."
                )
            if broker_id == previous:
                raise InvalidReplicaAssignmentError(
                    f"The manual partition assignment includes the broker {broker_id} more "
                    "than once."
                )
            previous = broker_id
        if replication_factor is not None and len(replicas) != replication_factor:
            raise InvalidReplicaAssignmentError(
                f"The manual partition assignment includes a partition with {len(replicas)} "
                "replica(s), but this is not consistent with previous partitions, which have "
                f"{replication_factor} replica(s)."
            )

    def topic_config_records(self, name: str, changes: Mapping[str, Value]
                             ) -> list[MetadataRecord]:
        """Set (value) or delete (None) topic config overrides."""
        topic = self.image.topics.get(name)
        if topic is None:
            raise UnknownTopicOrPartitionError(f"Topic {name} does not exist")
        return [TopicConfigRecord(topic.topic_id, k, v) for k, v in sorted(changes.items())]

    def broker_config_records(self, changes: Mapping[str, Value],
                              node_id: int | None = None) -> list[MetadataRecord]:
        """Dynamic broker config changes: the cluster-wide default (node_id
        None) or one broker's own."""
        for name in changes:
            if not name:
                raise InvalidConfigError("empty config name")
        return [BrokerConfigRecord(k, v, node_id) for k, v in sorted(changes.items())]

    def alter_partition(self, broker_id: int, broker_epoch: int, topic_id: uuid.UUID,
                        partition: int, leader_epoch: int, partition_epoch: int,
                        new_isr: Sequence[int], isr_broker_epochs: Sequence[int] | None = None
                        ) -> AlterPartitionResult:
        """A leader's AlterPartition for one partition (partition_changes.py):
        the partition as it will be, and the records that make it so."""
        check_broker_epoch(self.image, broker_id, broker_epoch)
        return alter_partition(self.image, broker_id, topic_id, partition, leader_epoch,
                               partition_epoch, new_isr, isr_broker_epochs)

    def alter_partition_records(self, broker_id: int, broker_epoch: int,
                                topic_id: uuid.UUID, partition: int, leader_epoch: int,
                                partition_epoch: int, new_isr: Sequence[int]
                                ) -> list[MetadataRecord]:
        return list(self.alter_partition(broker_id, broker_epoch, topic_id, partition,
                                         leader_epoch, partition_epoch, new_isr).records)

    def reassignment_record(self, topic: str, partition: int, target: Sequence[int] | None,
                            allow_replication_factor_change: bool = True
                            ) -> PartitionRecord | None:
        """AlterPartitionReassignments for one partition (cluster/reassignment.py):
        start, complete or cancel (`target` None) its reassignment."""
        if target is not None:
            self._validate_manual_assignment(target, None)
        return alter_reassignment(self.image, topic, partition, target,
                                  allow_replication_factor_change)

    def producer_id_block_records(self, block_size: int, broker_id: int | None = None
                                  ) -> tuple[int, list[MetadataRecord]]:
        """The start of a fresh block of producer ids for `broker_id` (default
        this broker), and the record that reserves it."""
        start = self.image.next_producer_id
        owner = self.node_id if broker_id is None else broker_id
        return start, [ProducerIdsRecord(owner, start + block_size)]
