"""A checker in the style of a Jepsen audit of Kafka transactions.

Several transactional producers (confluent-kafka, each in its own thread)
write transactions spanning every partition of a topic and commit or abort
them at random, while the broker (a separate process) is killed with
SIGKILL and restarted. A producer whose transaction fails for any reason
records its outcome as unknown and starts again with the same
transactional id, which fences it and aborts whatever it left open.

Afterwards a read_committed consumer reads everything and checks
(txn_checker.py): no aborted read, no lost write, no torn transaction,
per-producer order. librdkafka speaks transaction version 1; the Java
variant (version 2) is test_transactions_checker_tv2.py.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.process import StromProcess

from .txn_checker import ABORTED, COMMITTED, UNKNOWN, check_history, read_committed

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
                outcome = UNKNOWN
                try:
                    producer.begin_transaction()
                    for partition in range(PARTITIONS):
                        for k in range(RECORDS_PER_PARTITION):
                            producer.produce(self.topic, partition=partition,
                                             value=f"{self.index}:{n}:{partition}:{k}".encode())
                    if self.random.random() < 0.4:
                        producer.abort_transaction(20)
                        outcome = ABORTED
                    else:
                        producer.commit_transaction(20)
                        outcome = COMMITTED
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
        seen = read_committed(broker.bootstrap, topic, PARTITIONS)
    finally:
        broker.stop()

    outcomes = {(w.index, n): o for w in writers for n, o in w.outcomes.items()}
    check_history(seen, outcomes, PARTITIONS * RECORDS_PER_PARTITION)
