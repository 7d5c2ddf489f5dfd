"""`strom serve` with strom.processes=2 (issue 19, more than one core): one
command runs two broker processes, pinned to different cores, that own
disjoint partitions of one cluster (etcd). Real clients see two brokers; an
idempotent acks=all producer's records come back in order, once each, from
both; a consumer group commits its offsets through its coordinator; a
broker process that dies takes the set down (its supervisor restarts the
whole), and after kill -9 of one process every acknowledged record is still
there; brokers whose `strom serve` is killed stop too. Every wait has a
deadline."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.cluster.brokers import WAIT, cluster_of, metadata_of, read_values
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import StromProcess

PARTITIONS = 4
PER_PARTITION = 50


def two_free_ports() -> int:
    """A port p with p + 1 free too (process i listens on p + i)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
                return port
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


@pytest.fixture
def serve(etcd: EtcdCluster, tmp_path: Path) -> Iterator[StromProcess]:
    proc = StromProcess(tmp_path / "data", port=two_free_ports(), overrides={
        "strom.processes": "2", "node.id": "1", "cluster.id": "strom-processes-test",
        "strom.metadata.etcd.endpoints": etcd.endpoints,
        "broker.session.timeout.ms": "3000",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
    })
    try:
        yield proc
    finally:
        proc.stop()
        for pid in brokers_under(tmp_path):  # whatever outlived a failed test
            os.kill(pid, signal.SIGKILL)


def brokers_under(path: Path) -> list[int]:
    """Pids of the brokers started with this test's own data directory (the
    test's tmp_path is in their command line; nobody else's is)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(path).encode() in cmdline and b"strom" in cmdline:
                found.append(int(entry.name))
    return found


def produce(bootstrap: str, topic: str, tag: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 0,
                         "message.timeout.ms": int(WAIT * 1000)})
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(PER_PARTITION):
        for partition in range(PARTITIONS):
            producer.produce(topic, value=f"{tag}-{partition}-{i}".encode(),
                             partition=partition,
                             on_delivery=on_delivery)
    assert producer.flush(WAIT) == 0
    assert failures == []


def group_read(bootstrap: str, topic: str) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "shards",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        count = 0

        def all_read() -> bool:
            nonlocal count
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                count += 1
            return count == PARTITIONS * PER_PARTITION
        wait_until(all_read, WAIT, what="the group to read every record")
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                       timeout=WAIT)
        assert sorted((tp.partition, tp.offset) for tp in committed) == \
            [(p, PER_PARTITION) for p in range(PARTITIONS)]
    finally:
        consumer.close()


def expected(tag: str) -> dict[int, list[str]]:
    return {p: [f"{tag}-{p}-{i}" for i in range(PER_PARTITION)] for p in range(PARTITIONS)}


def test_two_processes_serve_one_cluster(serve: StromProcess, tmp_path: Path) -> None:
    serve.start(timeout=WAIT)
    assert serve.proc is not None
    bootstrap = serve.bootstrap
    cluster = wait_until(lambda: cluster_of(bootstrap, 2), WAIT, what="both processes")
    # CreateTopics goes to the controller, which places partitions over the
    # brokers its own image holds: wait until the second process sees both too
    # (the CI run at 9b23456 created the topic before it did: every leader 2).
    wait_until(lambda: cluster_of(f"127.0.0.1:{serve.port + 1}", 2), WAIT,
               what="the second process to see both")
    assert sorted(cluster.brokers) == [1, 2]
    assert cluster.brokers[2].port == serve.port + 1
    shards = children(serve.proc.pid)
    assert len(shards) == 2
    if len(os.sched_getaffinity(0)) >= 2:
        cores = [os.sched_getaffinity(pid) for pid in shards]
        assert all(len(c) == 1 for c in cores) and cores[0] != cores[1]
    assert (tmp_path / "data-shard1" / "meta.properties").exists()

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("spread", PARTITIONS, 1)])["spread"].result(WAIT)
    metadata = wait_until(
        lambda: (m := metadata_of(bootstrap, "spread")).topics["spread"].partitions
        and len(m.topics["spread"].partitions) == PARTITIONS and m, WAIT, what="the topic")
    assert sorted(p.leader for p in metadata.topics["spread"].partitions.values()) == \
        [1, 1, 2, 2]
    produce(bootstrap, "spread", "one")
    assert read_values(bootstrap, "spread", PARTITIONS, PARTITIONS * PER_PARTITION) == \
        expected("one")

    # A consumer group: its coordinator is whichever process leads the group's
    # __consumer_offsets partition (FindCoordinator); offsets commit and read back.
    group_read(bootstrap, "spread")

    # kill -9 of the second process: the supervisor stops the first and exits
    # non-zero; started again, every acknowledged record is there, in order.
    os.kill(shards[1], signal.SIGKILL)
    assert serve.proc.wait(timeout=WAIT) != 0
    assert all(not os.path.exists(f"/proc/{pid}") for pid in shards)  # reaped by it
    serve.start(timeout=WAIT)
    wait_until(lambda: cluster_of(bootstrap, 2), WAIT, what="both processes again")
    produce(bootstrap, "spread", "two")
    seen = read_values(bootstrap, "spread", PARTITIONS, 2 * PARTITIONS * PER_PARTITION)
    assert seen == {p: expected("one")[p] + expected("two")[p] for p in range(PARTITIONS)}

    # SIGTERM: both shut down cleanly and strom serve exits 0.
    shards = children(serve.proc.pid)
    assert serve.terminate(timeout=WAIT) == 0
    assert all(not os.path.exists(f"/proc/{pid}") for pid in shards)

    # kill -9 of strom serve itself: the kernel sends its brokers SIGTERM
    # (PR_SET_PDEATHSIG) and they shut down instead of running on unsupervised.
    serve.start(timeout=WAIT)
    shards = wait_until(lambda: len(c := children(serve.proc.pid)) == 2 and c, WAIT,
                        what="both processes")
    serve.kill()

    def gone() -> bool:
        return all(not os.path.exists(f"/proc/{pid}") or
                   _state(pid) == "Z" for pid in shards)
    wait_until(gone, WAIT, what="the brokers to stop after their supervisor died")


def _state(pid: int) -> str:
    """A process's state letter (Z: exited, not reaped by its new parent yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
