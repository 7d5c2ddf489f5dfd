"""The verification half of the transaction checkers (test_transactions_checker*.py).

Writers tag every record with ``"{writer}:{txn}:{partition}:{k}"`` and
report each transaction's outcome as ``committed``, ``aborted`` or
``unknown`` (the client failed before it knew). After the run a
read_committed consumer reads every partition to its end and
:func:`check_history` asserts:

  - no aborted read: no record of an aborted transaction is visible;
  - no lost write: every record of a committed transaction is visible;
  - no torn transaction: of any transaction, all its records or none;
  - per-producer order: within a partition, a writer's transactions
    appear in the order it wrote them, each record once.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence

COMMITTED = "committed"
ABORTED = "aborted"
UNKNOWN = "unknown"

TxnKey = tuple[int, int]  # (writer, transaction number)


def record_value(writer: int, txn: int, partition: int, k: int) -> str:
    return f"{writer}:{txn}:{partition}:{k}"


def read_committed(bootstrap: str, topic: str, partitions: int,
                   idle_timeout: float = 20) -> dict[int, list[str]]:
    """Every value of ``topic`` visible to a read_committed consumer, per partition,
    in offset order; fails when a partition's end is not reached (a hanging
    transaction holds the last stable offset back)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    by_partition: dict[int, list[str]] = defaultdict(list)
    at_end: set[int] = set()
    try:
        while len(at_end) < partitions:
            msg = consumer.poll(idle_timeout)
            assert msg is not None, (f"no partition EOF within {idle_timeout} s "
                                     "(a hanging transaction?)")
            partition, value = msg.partition(), msg.value()
            assert partition is not None
            if msg.error():
                at_end.add(partition)
                continue
            assert value is not None
            by_partition[partition].append(value.decode())
    finally:
        consumer.close()
    return by_partition


def check_history(seen: Mapping[int, Sequence[str]], outcomes: Mapping[TxnKey, str],
                  records_per_txn: int) -> None:
    """Assert the four properties of the module docstring over what a read_committed
    consumer ``seen`` and what the writers reported (``outcomes``)."""
    records: dict[TxnKey, set[str]] = defaultdict(set)
    for partition, values in seen.items():
        assert len(values) == len(set(values)), f"duplicates in partition {partition}"
        last: dict[int, int] = {}
        for value in values:
            writer, n, p, _ = (int(x) for x in value.split(":"))
            assert p == partition, f"{value} read from partition {partition}"
            assert n >= last.get(writer, -1), f"producer {writer} out of order: {values}"
            last[writer] = n
            records[(writer, n)].add(value)
    for key, outcome in outcomes.items():
        got = len(records.get(key, ()))
        if outcome == ABORTED:
            assert got == 0, f"aborted read of transaction {key}"
        elif outcome == COMMITTED:
            assert got == records_per_txn, (
                f"lost write: transaction {key} has {got}/{records_per_txn} records")
        else:
            assert outcome == UNKNOWN, outcome
            assert got in (0, records_per_txn), (
                f"torn transaction {key}: {got}/{records_per_txn} records")
    assert set(records) <= set(outcomes), (
        f"records of transactions never written: {sorted(set(records) - set(outcomes))}")
    assert COMMITTED in outcomes.values()
    assert ABORTED in outcomes.values()
