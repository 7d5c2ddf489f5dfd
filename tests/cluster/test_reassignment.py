"""Partition reassignment on the controller, sans I/O (cluster/reassignment.py):
the records AlterPartitionReassignments writes, the AlterPartition that
completes a move, cancellation, Kafka's errors, ListPartitionReassignments,
and the record format (old records without the new fields still read)."""

from __future__ import annotations

import uuid

import pytest

from strom.cluster.elections import election_records
from strom.cluster.image import (
    BrokerInfo,
    MetadataImage,
    PartitionRecord,
    TopicRecord,
    record_from_json,
    record_to_json,
)
from strom.cluster.operations import MetadataOperations
from strom.cluster.reassignment import ongoing
from strom.errors import (
    InvalidReplicaAssignmentError,
    InvalidReplicationFactorError,
    NoReassignmentInProgressError,
    UnknownTopicOrPartitionError,
)

TOPIC = uuid.uuid4()


def _image(brokers: tuple[int, ...] = (1, 2, 3, 4), replicas: tuple[int, ...] = (1, 2, 3),
           isr: tuple[int, ...] | None = None) -> MetadataImage:
    image = MetadataImage("c", 1, {b: BrokerInfo(b, "h", 9000 + b, None, 100 + b)
                                   for b in brokers})
    return image.apply([TopicRecord("t", TOPIC),
                        PartitionRecord(TOPIC, 0, replicas, replicas if isr is None else isr,
                                        replicas[0], 5, 9)])


def _ops(image: MetadataImage) -> MetadataOperations:
    return MetadataOperations(lambda: image, 1)


def _apply(image: MetadataImage, record: PartitionRecord | None) -> MetadataImage:
    assert record is not None
    return image.apply([record])


def _alter_isr(image: MetadataImage, isr: list[int]) -> MetadataImage:
    p = image.topics["t"].partitions[0]
    leader = image.brokers[p.leader]
    return image.apply(_ops(image).alter_partition_records(
        p.leader, leader.epoch, TOPIC, 0, p.leader_epoch, p.partition_epoch, isr))


def test_a_move_adds_first_and_completes_when_the_target_is_in_sync() -> None:
    image = _image()
    started = _ops(image).reassignment_record("t", 0, [4, 2, 3])
    # Replicas: the target, then the ones being removed; the ISR and leader stay.
    assert started == PartitionRecord(TOPIC, 0, (4, 2, 3, 1), (2, 3, 1), 1, 5, 10, (4,), (1,))
    image = _apply(image, started)
    assert ongoing(image, None)["t"][0].adding_replicas == (4,)
    # The leader brings broker 4 into the ISR: that completes the move, and
    # the removed leader gives way to the first target replica in sync.
    image = _alter_isr(image, [1, 2, 3, 4])
    done = image.topics["t"].partitions[0]
    assert (done.replicas, done.isr, done.adding_replicas, done.removing_replicas) == (
        (4, 2, 3), (4, 2, 3), (), ())
    assert done.leader == 4  # broker 4 caught up, so it may lead
    assert (done.leader_epoch, done.partition_epoch) == (6, 11)
    assert ongoing(image, None) == {}


def test_a_reassignment_survives_elections() -> None:
    image = _apply(_image(), _ops(_image()).reassignment_record("t", 0, [4, 2, 3]))
    # Broker 3 dies: the election drops it from the ISR but keeps the move.
    brokers = dict(image.brokers)
    del brokers[3]
    image = MetadataImage(image.cluster_id, 1, brokers, image.topics)
    (record,) = election_records(image)
    assert (record.isr, record.adding_replicas, record.removing_replicas) == ((2, 1), (4,), (1,))


def test_a_target_already_in_sync_completes_at_once() -> None:
    image = _image()
    shrink = _ops(image).reassignment_record("t", 0, [2, 3])
    assert shrink == PartitionRecord(TOPIC, 0, (2, 3), (2, 3), 2, 6, 10)
    reorder = _ops(image).reassignment_record("t", 0, [3, 1, 2])
    # Same replicas, same leader: nothing to fence.
    assert reorder == PartitionRecord(TOPIC, 0, (3, 1, 2), (3, 1, 2), 1, 5, 10)
    assert _ops(image).reassignment_record("t", 0, [1, 2, 3]) is None


def test_the_move_waits_for_every_added_replica() -> None:
    image = _apply(_image(brokers=(1, 2, 3, 4, 5)),
                   _ops(_image(brokers=(1, 2, 3, 4, 5))).reassignment_record("t", 0, [4, 5, 3]))
    image = _alter_isr(image, [1, 2, 3, 4])
    p = image.topics["t"].partitions[0]
    assert p.reassigning and p.isr == (4, 3, 1, 2)
    image = _alter_isr(image, [1, 2, 3, 4, 5])
    assert image.topics["t"].partitions[0].replicas == (4, 5, 3)


def test_a_new_target_replaces_the_one_in_progress() -> None:
    image = _apply(_image(brokers=(1, 2, 3, 4, 5)),
                   _ops(_image(brokers=(1, 2, 3, 4, 5))).reassignment_record("t", 0, [4, 2, 3]))
    again = _ops(image).reassignment_record("t", 0, [4, 2, 3])
    assert again is None  # the same request again changes nothing
    other = _ops(image).reassignment_record("t", 0, [5, 2, 3])
    assert other is not None
    assert (other.replicas, other.adding_replicas, other.removing_replicas) == (
        (5, 2, 3, 4, 1), (5,), (4, 1))


def test_cancel_drops_the_added_replicas() -> None:
    image = _apply(_image(), _ops(_image()).reassignment_record("t", 0, [4, 2, 3]))
    cancel = _ops(image).reassignment_record("t", 0, None)
    assert cancel is not None
    # The original replicas, in the order the move had them (as Kafka's revert).
    assert (cancel.replicas, cancel.isr, cancel.leader, cancel.adding_replicas,
            cancel.removing_replicas) == ((2, 3, 1), (2, 3, 1), 1, (), ())
    image = _apply(image, cancel)
    with pytest.raises(NoReassignmentInProgressError):
        _ops(image).reassignment_record("t", 0, None)


def test_kafkas_errors() -> None:
    ops = _ops(_image())
    with pytest.raises(UnknownTopicOrPartitionError):
        ops.reassignment_record("nope", 0, [1, 2, 3])
    with pytest.raises(UnknownTopicOrPartitionError):
        ops.reassignment_record("t", 1, [1, 2, 3])
    for bad in ([], [1, 1, 2], [1, 2, 9]):
        with pytest.raises(InvalidReplicaAssignmentError):
            ops.reassignment_record("t", 0, bad)
    with pytest.raises(InvalidReplicationFactorError):
        ops.reassignment_record("t", 0, [1, 2], allow_replication_factor_change=False)
    assert ops.reassignment_record("t", 0, [2, 3, 4], allow_replication_factor_change=False)


def test_list_names_only_partitions_being_moved() -> None:
    image = _apply(_image(), _ops(_image()).reassignment_record("t", 0, [4, 2, 3]))
    assert list(ongoing(image, [("t", [0, 0, 7]), ("nope", [0])])["t"]) == [
        image.topics["t"].partitions[0]]
    assert ongoing(_image(), [("t", [0])]) == {}


def test_records_keep_reading_both_ways() -> None:
    plain = PartitionRecord(TOPIC, 0, (1, 2), (1, 2), 1, 0, 0)
    written = record_to_json(plain)
    assert "adding_replicas" not in written  # as written before reassignment existed
    assert record_from_json(written) == plain
    moving = PartitionRecord(TOPIC, 0, (3, 1), (1,), 1, 0, 1, (3,), (1,))
    assert record_from_json(record_to_json(moving)) == moving
