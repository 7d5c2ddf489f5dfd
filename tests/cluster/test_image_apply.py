"""MetadataImage.apply stays linear in the records it applies (hardening #4).

A CreateTopics of 8,000 partitions blocked the broker for 26 s because apply
rebuilt and re-sorted a topic's partition tuple once per PartitionRecord. The
work is counted, not timed: partition indexes that count their comparisons.
"""

from __future__ import annotations

import uuid

from strom.cluster.image import (
    MetadataImage,
    PartitionRecord,
    RemoveTopicRecord,
    TopicConfigRecord,
    TopicRecord,
)


class CountingIndex(int):
    """A partition index that counts every ordering comparison made on it."""

    comparisons = 0

    def __lt__(self, other: object) -> bool:
        CountingIndex.comparisons += 1
        return int(self) < int(other)  # type: ignore[call-overload]

    def __gt__(self, other: object) -> bool:
        CountingIndex.comparisons += 1
        return int(self) > int(other)  # type: ignore[call-overload]


def _empty() -> MetadataImage:
    return MetadataImage("cluster", 1, {})


def _partition(topic_id: uuid.UUID, index: int) -> PartitionRecord:
    return PartitionRecord(topic_id, CountingIndex(index), (1,), (1,), 1, 0)


def test_creating_a_topic_compares_partitions_a_linear_number_of_times() -> None:
    n = 2_000
    topic_id = uuid.uuid4()
    records = [TopicRecord("big", topic_id), *(_partition(topic_id, i) for i in range(n))]
    CountingIndex.comparisons = 0
    image = _empty().apply(records)
    # Re-sorting per record made ~n*n/2 (2,000,000) comparisons.
    assert CountingIndex.comparisons <= 4 * n
    assert [p.partition for p in image.topics["big"].partitions] == list(range(n))


def test_partitions_out_of_order_are_sorted_once() -> None:
    n = 2_000
    topic_id = uuid.uuid4()
    order = list(range(n))
    order[0], order[-1] = order[-1], order[0]
    records = [TopicRecord("t", topic_id), *(_partition(topic_id, i) for i in order)]
    CountingIndex.comparisons = 0
    image = _empty().apply(records)
    assert CountingIndex.comparisons <= 40 * n  # one sort: n log n
    assert [p.partition for p in image.topics["t"].partitions] == list(range(n))


def test_changes_to_an_existing_topic_keep_every_other_partition() -> None:
    topic_id = uuid.uuid4()
    image = _empty().apply([TopicRecord("t", topic_id),
                            *(PartitionRecord(topic_id, i, (1,), (1,), 1, 0) for i in range(4))])
    image = image.apply([
        PartitionRecord(topic_id, 2, (1,), (1,), 1, 5),
        PartitionRecord(topic_id, 4, (1,), (1,), 1, 0),
        TopicConfigRecord(topic_id, "retention.ms", 1000),
    ])
    topic = image.topics["t"]
    assert [(p.partition, p.leader_epoch) for p in topic.partitions] == [
        (0, 0), (1, 0), (2, 5), (3, 0), (4, 0)]
    assert topic.configs == {"retention.ms": 1000}


def test_a_topic_removed_and_recreated_in_one_batch_has_only_its_new_partitions() -> None:
    old_id, new_id = uuid.uuid4(), uuid.uuid4()
    image = _empty().apply([TopicRecord("t", old_id),
                            *(PartitionRecord(old_id, i, (1,), (1,), 1, 0) for i in range(3))])
    image = image.apply([RemoveTopicRecord(old_id), TopicRecord("t", new_id),
                         PartitionRecord(new_id, 0, (1,), (1,), 1, 0)])
    topic = image.topics["t"]
    assert topic.topic_id == new_id and [p.partition for p in topic.partitions] == [0]
