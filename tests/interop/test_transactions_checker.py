"""A checker in the style of a Jepsen audit of Kafka transactions.

Several transactional producers (confluent-kafka, each in its own thread)
write transactions spanning every partition of a topic and commit or abort
them at random, while the broker (a separate process) is killed with
SIGKILL and restarted. A producer whose transaction fails for any reason
records its outcome as unknown and starts again with the same
transactional id, which fences it and aborts whatever it left open.

Afterwards a read_committed consumer reads everything and checks:
  - no aborted read: no record of an aborted transaction is visible;
  - no lost write: every record of a committed transaction is visible;
  - no torn transaction: of any transaction, all its records or none;
  - per-producer order: within a partition, a producer's transactions
    appear in the order it wrote them, each record once.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.process import StromProcess

pytestmark = pytest.mark.interop

PRODUCERS = 3
TRANSACTIONS = 10
PARTITIONS = 3
RECORDS_PER_PARTITION = 2
KILLS = 2
OVERRIDES = {
    "offsets.topic.num.partitions": "2",
    "transaction.state.log.num.partitions": "2",
    "num.partitions": "1",
}


class Writer(threading.Thread):
    def __init__(self, index: int, bootstrap: str, topic: str, seed: int) -> None:
        super().__init__(daemon=True, name=f"txn-writer-{index}")
        self.index = index
        self.bootstrap = bootstrap
        self.topic = topic
        self.random = random.Random(seed)
        self.outcomes: dict[int, str] = {}  # txn number -> committed/aborted/unknown
        self.progress = threading.Condition()
        self.error: BaseException | None = None

    def _producer(self) -> Any:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 2,
                      "transactional.id": f"checker-{self.index}",
                      "message.timeout.ms": 20000, "socket.timeout.ms": 5000,
                      "reconnect.backoff.max.ms": 200})
        p.init_transactions(60)
        return p

    def run(self) -> None:
        try:
            producer = self._producer()
            for n in range(TRANSACTIONS):
                outcome = "unknown"
                try:
                    producer.begin_transaction()
                    for partition in range(PARTITIONS):
                        for k in range(RECORDS_PER_PARTITION):
                            producer.produce(self.topic, partition=partition,
                                             value=f"{self.index}:{n}:{partition}:{k}".encode())
                    if self.random.random() < 0.4:
                        producer.abort_transaction(20)
                        outcome = "aborted"
                    else:
                        producer.commit_transaction(20)
                        outcome = "committed"
                except Exception:
                    producer = self._producer()  # fences the old one, aborts its leftovers
                with self.progress:
                    self.outcomes[n] = outcome
                    self.progress.notify_all()
        except BaseException as exc:  # reported by the test
            self.error = exc
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, count: int, timeout: float) -> None:
        with self.progress:
            assert self.progress.wait_for(
                lambda: len(self.outcomes) >= count or self.error is not None, timeout)


def _read_committed(bootstrap: str, topic: str) -> dict[int, list[str]]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    by_partition: dict[int, list[str]] = defaultdict(list)
    at_end: set[int] = set()
    try:
        while len(at_end) < PARTITIONS:
            msg = consumer.poll(20)
            assert msg is not None, "no partition EOF within 20 s (a hanging transaction?)"
            if msg.error():
                at_end.add(msg.partition())
                continue
            by_partition[msg.partition()].append(msg.value().decode())
    finally:
        consumer.close()
    return by_partition


def test_no_aborted_read_no_lost_write_no_torn_transaction(tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    broker = StromProcess(tmp_path / "data", overrides=OVERRIDES)
    broker.start()
    try:
        topic = "checked"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
        writers = [Writer(i, broker.bootstrap, topic, seed=i) for i in range(PRODUCERS)]
        for w in writers:
            w.start()
        for kill in range(1, KILLS + 1):
            for w in writers:
                w.wait_for(kill * TRANSACTIONS // (KILLS + 1), 120)
            broker.kill()
            broker.start()
        for w in writers:
            w.join(300)
            assert not w.is_alive()
            assert w.error is None, w.error
        seen = _read_committed(broker.bootstrap, topic)
    finally:
        broker.stop()

    records: dict[tuple[int, int], set[str]] = defaultdict(set)
    for partition, values in seen.items():
        assert len(values) == len(set(values)), f"duplicates in partition {partition}"
        last: dict[int, int] = {}
        for value in values:
            writer, n, p, _ = (int(x) for x in value.split(":"))
            assert p == partition
            assert n >= last.get(writer, -1), f"producer {writer} out of order: {values}"
            last[writer] = n
            records[(writer, n)].add(value)
    full = PARTITIONS * RECORDS_PER_PARTITION
    outcomes = {(w.index, n): o for w in writers for n, o in w.outcomes.items()}
    for key, outcome in outcomes.items():
        got = len(records.get(key, ()))
        if outcome == "aborted":
            assert got == 0, f"aborted read of transaction {key}"
        elif outcome == "committed":
            assert got == full, f"lost write: transaction {key} has {got}/{full} records"
        else:
            assert got in (0, full), f"torn transaction {key}: {got}/{full} records"
    assert set(records) <= set(outcomes)
    assert any(o == "committed" for o in outcomes.values())
    assert any(o == "aborted" for o in outcomes.values())
