"""Transactions with real clients (confluent-kafka, aiokafka) against a live strom.

Records of committed transactions are visible to read_committed consumers,
those of aborted ones never; read_uncommitted sees both. Reads stop at the
end of the partition as the client reports it (partition EOF: the LSO for
read_committed), never after a sleep.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from strom.testing import EmbeddedBroker

from .clients import wait_until

pytestmark = pytest.mark.interop

OVERRIDES = {
    "num.partitions": "1",
    "auto.create.topics.enable": "true",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.num.partitions": "4",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "100",
    "group.initial.rebalance.delay.ms": "0",
}


@pytest.fixture(scope="module")
def txn_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("txn"), overrides=OVERRIDES) as b:
        yield b


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(bootstrap: str, topic: str, partitions: int = 2) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # -1: default.replication.factor, so that transactional (acks=all) producing
    # meets min.insync.replicas in a cluster too
    admin.create_topics([NewTopic(topic, partitions, -1)])[topic].result(30)
    return topic


def producer(bootstrap: str, transactional_id: str, **extra: Any) -> Any:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                  "linger.ms": 1, **extra})
    p.init_transactions(30)
    return p


def read_all(bootstrap: str, topic: str, partitions: int, committed: bool) -> list[str]:
    """Every value up to the end (LSO for read_committed) of each partition."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": _name("reader"),
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_committed" if committed else "read_uncommitted"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[str] = []
    at_end: set[int] = set()
    try:
        while len(at_end) < partitions:
            msg = c.poll(10)
            assert msg is not None, "no partition EOF within 10 s"
            if msg.error():
                assert msg.error().code() == msg.error()._PARTITION_EOF, msg.error()
                at_end.add(msg.partition())
                continue
            values.append(msg.value().decode())
    finally:
        c.close()
    return sorted(values)


def test_commit_visible_abort_never(txn_broker: EmbeddedBroker) -> None:
    bootstrap = txn_broker.bootstrap
    topic = create(bootstrap, _name("txn"))
    p = producer(bootstrap, _name("tid"))
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"c1-{i}".encode(), partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"a-{i}".encode(), partition=i % 2)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(topic, value=b"c2-0", partition=0)
    p.commit_transaction(30)

    committed = read_all(bootstrap, topic, 2, committed=True)
    assert committed == sorted([f"c1-{i}" for i in range(10)] + ["c2-0"])
    uncommitted = read_all(bootstrap, topic, 2, committed=False)
    assert len(uncommitted) == 21 and "a-3" in uncommitted


def test_open_transaction_holds_back_read_committed(txn_broker: EmbeddedBroker) -> None:
    bootstrap = txn_broker.bootstrap
    topic = create(bootstrap, _name("lso"), 1)
    plain = producer(bootstrap, _name("tid"))
    plain.begin_transaction()
    plain.produce(topic, value=b"before", partition=0)
    plain.commit_transaction(30)
    p = producer(bootstrap, _name("tid"))
    p.begin_transaction()
    p.produce(topic, value=b"open", partition=0)
    p.flush(30)
    plain.begin_transaction()
    plain.produce(topic, value=b"after", partition=0)
    plain.commit_transaction(30)
    # The open transaction bounds the LSO: "after" (committed later) is held back too.
    assert read_all(bootstrap, topic, 1, committed=True) == ["before"]
    p.commit_transaction(30)
    assert read_all(bootstrap, topic, 1, committed=True) == ["after", "before", "open"]


def test_second_producer_fences_the_first(txn_broker: EmbeddedBroker) -> None:
    from confluent_kafka import KafkaException

    bootstrap = txn_broker.bootstrap
    topic = create(bootstrap, _name("fence"), 1)
    tid = _name("tid")
    first = producer(bootstrap, tid)
    first.begin_transaction()
    first.produce(topic, value=b"zombie", partition=0)
    first.flush(30)
    second = producer(bootstrap, tid)  # aborts the first one's transaction
    second.begin_transaction()
    second.produce(topic, value=b"live", partition=0)
    second.commit_transaction(30)
    with pytest.raises(KafkaException) as info:
        first.produce(topic, value=b"late", partition=0)
        first.commit_transaction(10)
    assert info.value.args[0].fatal() or info.value.args[0].txn_requires_abort()
    assert read_all(bootstrap, topic, 1, committed=True) == ["live"]


def test_transaction_timeout_aborts(txn_broker: EmbeddedBroker) -> None:
    bootstrap = txn_broker.bootstrap
    topic = create(bootstrap, _name("timeout"), 1)
    tid = _name("tid")
    p = producer(bootstrap, tid, **{"transaction.timeout.ms": 1000})
    p.begin_transaction()
    p.produce(topic, value=b"expired", partition=0)
    p.flush(30)
    transactions = txn_broker.services.transactions

    def aborted() -> bool:
        code, m = transactions.describe(tid)
        return m is not None and m.state.display == "CompleteAbort"

    wait_until(aborted, 15, what="the timed-out transaction to be aborted")
    assert read_all(bootstrap, topic, 1, committed=True) == []
    assert read_all(bootstrap, topic, 1, committed=False) == ["expired"]


def test_consume_transform_produce(txn_broker: EmbeddedBroker) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    bootstrap = txn_broker.bootstrap
    source = create(bootstrap, _name("src"), 1)
    sink = create(bootstrap, _name("sink"), 1)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(6):
        plain.produce(source, value=f"m{i}".encode(), partition=0)
    assert plain.flush(30) == 0
    group = _name("ctp")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(source, 0, 0)])
    p = producer(bootstrap, _name("tid"))
    seen: list[str] = []
    while len(seen) < 6:
        msg = consumer.poll(10)
        assert msg is not None and not msg.error()
        seen.append(msg.value().decode())
    # First three: committed with their offsets; last three: aborted, offsets too.
    for chunk, commit in ((seen[:3], True), (seen[3:], False)):
        p.begin_transaction()
        for v in chunk:
            p.produce(sink, value=v.upper().encode(), partition=0)
        upto = int(chunk[-1][1:]) + 1
        p.send_offsets_to_transaction([TopicPartition(source, 0, upto)],
                                      consumer.consumer_group_metadata(), 30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    committed = consumer.committed([TopicPartition(source, 0)], 30)
    assert committed[0].offset == 3
    consumer.close()
    assert read_all(bootstrap, sink, 1, committed=True) == ["M0", "M1", "M2"]


def test_restart_mid_transaction_recovers(tmp_path: Any) -> None:
    with EmbeddedBroker(tmp_path, overrides=OVERRIDES) as b:
        topic = create(b.bootstrap, _name("restart"), 1)
        tid = _name("tid")
        p = producer(b.bootstrap, tid)
        p.begin_transaction()
        p.produce(topic, value=b"committed", partition=0)
        p.commit_transaction(30)
        p.begin_transaction()
        p.produce(topic, value=b"in-flight", partition=0)
        p.flush(30)
        b.restart()
        transactions = b.services.transactions
        b.run(transactions.runtime.wait_loaded())
        code, m = transactions.describe(tid)
        assert m is not None and m.state.display == "Ongoing"
        assert (topic, 0) in m.partitions
        assert read_all(b.bootstrap, topic, 1, committed=True) == ["committed"]
        # A new producer with the id aborts the open transaction after the restart.
        q = producer(b.bootstrap, tid)
        q.begin_transaction()
        q.produce(topic, value=b"after", partition=0)
        q.commit_transaction(30)
        assert read_all(b.bootstrap, topic, 1, committed=True) == ["after", "committed"]
        assert read_all(b.bootstrap, topic, 1, committed=False) == [
            "after", "committed", "in-flight"]


def test_aiokafka_transactions(txn_broker: EmbeddedBroker) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    bootstrap = txn_broker.bootstrap
    topic = create(bootstrap, _name("aio"), 1)

    async def run() -> list[str]:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=_name("tid"))
        await p.start()
        try:
            async with p.transaction():
                await p.send_and_wait(topic, b"kept", partition=0)
            await p.begin_transaction()
            await p.send_and_wait(topic, b"dropped", partition=0)
            await p.abort_transaction()
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                             enable_auto_commit=False)
        await c.start()
        try:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, 0)
            end = (await c.end_offsets([tp]))[tp]
            values = []
            while await c.position(tp) < end:
                batch = await c.getmany(tp, timeout_ms=5000)
                values += [m.value.decode() for m in batch.get(tp, [])]
            return values
        finally:
            await c.stop()

    assert asyncio.run(run()) == ["kept"]
