"""Transactions across brokers (real etcd, two real `strom serve` processes,
librdkafka's transactional producer): a transaction spanning partitions led
by both brokers commits and aborts as on one broker. The coordinator writes
the markers of a partition led elsewhere with WriteTxnMarkers to its leader,
and a leader checks a transactional batch with a coordinator on the other
broker through AddPartitionsToTxn v5 (broker/txn_channel.py). Without them
the transaction never completes: its markers are retried forever, the last
stable offset stays at the transaction's first record and a read_committed
consumer sees nothing. Every wait has a deadline."""

from __future__ import annotations

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from tests.cluster.brokers import WAIT, metadata_of, read_values
from tests.interop.clients import wait_until
from tests.process import StromProcess

TOPIC = "orders"


def test_a_transaction_spanning_both_brokers_commits_and_aborts(
        two_brokers: list[StromProcess]) -> None:
    bootstrap = ",".join(b.bootstrap for b in two_brokers)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(WAIT)
    leaders = wait_until(
        lambda: (lambda t: {p: t.partitions[p].leader for p in t.partitions}
                 if t is not None and len(t.partitions) == 2 else None)(
            metadata_of(bootstrap, TOPIC).topics.get(TOPIC)), WAIT, what="topic leaders")
    assert sorted(leaders.values()) == [1, 2]  # one partition on each broker

    # Whichever broker coordinates, one of the two partitions is led by the other.
    producer = Producer({"bootstrap.servers": bootstrap,
                         "transactional.id": "spanning",
                         "transaction.timeout.ms": 60000,
                         "message.timeout.ms": int(WAIT * 1000)})
    producer.init_transactions(WAIT)
    for outcome in ("commit", "abort", "commit"):
        producer.begin_transaction()
        for partition in (0, 1):
            for i in range(3):
                producer.produce(TOPIC, value=f"{outcome}-{partition}-{i}".encode(),
                                 partition=partition)
        if outcome == "commit":
            producer.commit_transaction(WAIT)
        else:
            producer.abort_transaction(WAIT)

    # The aborted transaction sits between the two committed ones: a leak of
    # its records would show among the first twelve read.
    seen = read_values(bootstrap, TOPIC, 2, 12, **{"isolation.level": "read_committed"})
    for partition in (0, 1):
        assert seen[partition] == [f"commit-{partition}-{i}" for i in range(3)] * 2

    # The transaction log is replicated on both brokers, and its
    # min.insync.replicas is transaction.state.log.min.isr (Kafka's 2).
    state = metadata_of(bootstrap, "__transaction_state").topics["__transaction_state"]
    assert {len(p.replicas) for p in state.partitions.values()} == {2}
    resource = ConfigResource(ConfigResource.Type.TOPIC, "__transaction_state")
    configs = admin.describe_configs([resource])[resource].result(WAIT)
    assert configs["min.insync.replicas"].value == "2"
