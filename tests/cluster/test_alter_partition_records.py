"""MetadataOperations.alter_partition_records: a leader's ISR change validated
as Kafka's controller does (the error for each kind of stale or bad request),
and KRaft's epoch rules for what it commits."""

from __future__ import annotations

import uuid

import pytest

from strom.cluster.image import (
    BrokerInfo,
    MetadataImage,
    PartitionRecord,
    TopicRecord,
)
from strom.cluster.operations import MetadataOperations
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

TOPIC = uuid.uuid4()
EPOCHS = {1: 101, 2: 102, 3: 103}


def _image(fenced: frozenset[int] = frozenset(), leader_epoch: int = 4,
           partition_epoch: int = 7) -> MetadataImage:
    brokers = {b: BrokerInfo(b, "h", 9000 + b, None, e, b in fenced) for b, e in EPOCHS.items()}
    image = MetadataImage("c", 1, brokers)
    return image.apply([TopicRecord("t", TOPIC),
                        PartitionRecord(TOPIC, 0, (1, 2, 3), (1, 2, 3), 1, leader_epoch,
                                        partition_epoch)])


def _ops(image: MetadataImage) -> MetadataOperations:
    return MetadataOperations(lambda: image, 1)


def test_isr_shrink_bumps_only_the_partition_epoch() -> None:
    image = _image()
    records = _ops(image).alter_partition_records(1, 101, TOPIC, 0, 4, 7, [1, 3])
    assert records == [PartitionRecord(TOPIC, 0, (1, 2, 3), (1, 3), 1, 4, 8)]
    after = image.apply(records).topics["t"].partitions[0]
    assert (after.leader, after.leader_epoch, after.isr, after.partition_epoch) == (
        1, 4, (1, 3), 8)
    # Growing it back, in any order, keeps the replicas' order and bumps again.
    grown = _ops(image.apply(records)).alter_partition_records(1, 101, TOPIC, 0, 4, 8, [3, 2, 1])
    assert grown == [PartitionRecord(TOPIC, 0, (1, 2, 3), (1, 2, 3), 1, 4, 9)]


def test_the_current_isr_changes_nothing() -> None:
    ops = _ops(_image())
    assert ops.alter_partition_records(1, 101, TOPIC, 0, 4, 7, [1, 2, 3]) == []
    result = ops.alter_partition(1, 101, TOPIC, 0, 4, 7, [1, 2, 3])
    assert result.partition.partition_epoch == 7 and result.records == []


@pytest.mark.parametrize(("leader_epoch", "partition_epoch", "error"), [
    (3, 7, FencedLeaderEpochError),  # a newer leader was elected since
    (4, 6, InvalidUpdateVersionError),  # the ISR changed since
    (5, 7, NotControllerError),  # the asker knows newer metadata than this controller
    (4, 8, NotControllerError),
])
def test_stale_or_newer_epochs_are_refused(leader_epoch: int, partition_epoch: int,
                                           error: type[Exception]) -> None:
    with pytest.raises(error):
        _ops(_image()).alter_partition_records(1, 101, TOPIC, 0, leader_epoch,
                                               partition_epoch, [1, 2])


def test_only_the_leader_may_ask() -> None:
    # Kafka's controller answers INVALID_REQUEST: with the current leader
    # epoch, only the leader can ask.
    with pytest.raises(InvalidRequestError, match="current leader is 1"):
        _ops(_image()).alter_partition_records(2, 102, TOPIC, 0, 4, 7, [2, 3])


def test_broker_epoch_must_be_the_registrations() -> None:
    ops = _ops(_image())
    with pytest.raises(StaleBrokerEpochError):
        ops.alter_partition_records(1, 99, TOPIC, 0, 4, 7, [1, 2])
    with pytest.raises(StaleBrokerEpochError):
        ops.alter_partition_records(9, -1, TOPIC, 0, 4, 7, [1, 2])


@pytest.mark.parametrize("isr", [[1, 4], [1, 1, 2], [2, 3], []])
def test_isr_of_non_replicas_duplicates_or_without_the_leader_is_invalid(
        isr: list[int]) -> None:
    with pytest.raises(InvalidRequestError):
        _ops(_image()).alter_partition_records(1, 101, TOPIC, 0, 4, 7, isr)


def test_isr_naming_unregistered_or_fenced_brokers_is_ineligible() -> None:
    image = _image(fenced=frozenset({3}))
    with pytest.raises(IneligibleReplicaError):
        _ops(image).alter_partition_records(1, 101, TOPIC, 0, 4, 7, [1, 3])
    gone = MetadataImage("c", 1, {b: i for b, i in image.brokers.items() if b != 2})
    gone = gone.apply([TopicRecord("t", TOPIC),
                       PartitionRecord(TOPIC, 0, (1, 2, 3), (1, 3), 1, 4, 7)])
    with pytest.raises(IneligibleReplicaError):
        _ops(gone).alter_partition_records(1, 101, TOPIC, 0, 4, 7, [1, 2])
    # v3: a member registered anew since the leader saw it.
    with pytest.raises(IneligibleReplicaError):
        _ops(_image()).alter_partition(1, 101, TOPIC, 0, 4, 7, [1, 2], [101, 55])
    ok = _ops(_image()).alter_partition(1, 101, TOPIC, 0, 4, 7, [1, 2], [101, -1])
    assert ok.partition.isr == (1, 2)


def test_unknown_topic_id_or_partition() -> None:
    ops = _ops(_image())
    with pytest.raises(UnknownTopicIdError):
        ops.alter_partition_records(1, 101, uuid.uuid4(), 0, 4, 7, [1])
    with pytest.raises(UnknownTopicOrPartitionError):
        ops.alter_partition_records(1, 101, TOPIC, 1, 4, 7, [1])
