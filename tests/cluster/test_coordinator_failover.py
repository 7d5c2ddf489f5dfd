"""The group and transaction coordinators move with the leadership of their
state partitions (etcd and three brokers through scripts/local-cluster.sh,
librdkafka clients). The broker coordinating a transactional producer is
killed with SIGKILL between transactions, several times: the producer finds
the new coordinator (the new leader of its `__transaction_state` partition,
which loads the replicated state) and carries on with the same producer id;
every committed transaction is read exactly once, in order, by a
read_committed consumer, and no aborted record is. The broker coordinating a
consumer group is killed the same way: the offsets the group committed
before are served by the new coordinator. Every wait has a deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.static.primitive import i8

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.cluster.local_cluster import LocalCluster
from tests.interop.clients import wait_until
from tests.wire import WireClient

WAIT = 60.0
TOPIC = "ledger"
PARTITIONS = 3
TRANSACTIONS = 24
PER_TRANSACTION = 6
KILLS = 3  # coordinator kills, one every TRANSACTIONS // (KILLS + 1) transactions
TXN_ID = "ledger-writer"
GROUP = "ledger-readers"


@pytest.fixture
def cluster(etcd_bin: str, tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path / "cluster", etcd_bin, session_timeout_ms=3000,
                         replica_lag_ms=3000)
    try:
        local.run("start-all", timeout=180)
        yield local
    finally:
        local.stop_all()


def _coordinator(bootstrap: str, key: str, key_type: int) -> int | None:
    """The node coordinating `key` (0: group, 1: transactional id), None while
    there is none; asks each broker in turn, as a client would."""
    for server in bootstrap.split(","):
        try:
            with WireClient(server) as client:
                response = client.request(ApiKey.FIND_COORDINATOR, 4, FindCoordinatorRequest(
                    key_type=i8(key_type), coordinator_keys=(key,)))
        except OSError:
            continue  # that broker is down
        (found,) = response.coordinators
        if found.error_code == ErrorCode.none:
            return int(found.node_id)
    return None


def _kill_and_restart(cluster: LocalCluster, node: int) -> None:
    cluster.run("kill", node)
    # Until its lease expires, the controller still counts it; once it is
    # gone, the new leaders of its partitions (coordinators among them) serve.
    cluster.run("start", node, timeout=120)


def _run_transaction(producer: Producer, number: int) -> None:
    """One transaction of PER_TRANSACTION records per partition round-robin,
    committed; retried from the start when librdkafka says it must be aborted
    (a coordinator moved mid-commit), as its documentation asks."""
    for _attempt in range(10):
        producer.begin_transaction()
        for i in range(PER_TRANSACTION):
            producer.produce(TOPIC, value=f"{number}:{i}".encode(), partition=i % PARTITIONS)
        try:
            producer.commit_transaction(WAIT)
            return
        except KafkaException as exc:
            error = exc.args[0]
            if error.txn_requires_abort():
                producer.abort_transaction(WAIT)
                continue
            if error.retriable():
                # The commit's outcome is unknown; committing again settles it.
                producer.commit_transaction(WAIT)
                return
            raise
    raise AssertionError(f"transaction {number} never committed")


def test_transactions_and_groups_survive_their_coordinators_being_killed(
        cluster: LocalCluster) -> None:
    bootstrap = cluster.bootstrap()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)])[TOPIC].result(WAIT)

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": TXN_ID,
                         "transaction.timeout.ms": 60000, "message.timeout.ms": 60000})
    producer.init_transactions(WAIT)
    killed: list[int] = []
    every = TRANSACTIONS // (KILLS + 1)
    for number in range(TRANSACTIONS):
        if number and number % every == 0 and len(killed) < KILLS:
            node = wait_until(lambda: _coordinator(bootstrap, TXN_ID, 1), WAIT,
                              what="the transaction coordinator")
            _kill_and_restart(cluster, node)
            killed.append(node)
        _run_transaction(producer, number)
    # An aborted transaction last: none of its records may be read.
    producer.begin_transaction()
    producer.produce(TOPIC, value=b"aborted:0", partition=0)
    producer.flush(WAIT)
    producer.abort_transaction(WAIT)
    assert len(killed) == KILLS

    # A group reads everything read_committed and commits its offsets.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([TOPIC])
    seen: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    expected = TRANSACTIONS * PER_TRANSACTION
    try:
        def read_all() -> bool:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                value = message.value()
                partition = message.partition()
                assert value is not None and partition is not None
                seen[partition].append(value.decode())
            return sum(map(len, seen.values())) >= expected
        wait_until(read_all, WAIT, interval=0, what=f"{expected} committed records")
        end = time.monotonic() + 2  # nothing more arrives: the aborted record stays hidden
        while time.monotonic() < end:
            message = consumer.poll(0.2)
            assert message is None or message.error() is not None, message.value()
        consumer.commit(asynchronous=False)
        committed = {tp.partition: tp.offset for tp in consumer.committed(
            [TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=WAIT)}
    finally:
        consumer.close()

    for partition in range(PARTITIONS):
        values = [tuple(map(int, v.split(":"))) for v in seen[partition]]
        assert values == sorted(values), f"partition {partition} out of order"
        assert len(set(values)) == len(values), f"partition {partition} has duplicates"
    every_record = sorted((n, i) for p in seen.values() for n, i in
                          (tuple(map(int, v.split(":"))) for v in p))
    assert every_record == [(n, i) for n in range(TRANSACTIONS) for i in range(PER_TRANSACTION)]

    # The group's coordinator dies; the new one serves the same offsets.
    node = wait_until(lambda: _coordinator(bootstrap, GROUP, 0), WAIT,
                      what="the group coordinator")
    cluster.run("kill", node)

    def offsets_after_failover() -> dict[int, int] | None:
        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                           "enable.auto.commit": False})
        try:
            found = reader.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)],
                                     timeout=10)
        except KafkaException as exc:
            if exc.args[0].retriable() or exc.args[0].code() == KafkaError._TIMED_OUT:
                return None
            raise
        finally:
            reader.close()
        return {tp.partition: tp.offset for tp in found}
    assert wait_until(offsets_after_failover, WAIT, what="offsets from the new coordinator") \
        == committed
    assert _coordinator(bootstrap, GROUP, 0) not in (None, node)
