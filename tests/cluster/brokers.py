"""Cluster-mode brokers for tests: `strom serve` subprocesses on one etcd,
started and waited for, and the client-side reads the tests share. Every
wait has a deadline."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata

from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import StromProcess

WAIT = 30.0  # seconds; every wait in the cluster tests is bounded by it


def cluster_broker(tmp_path: Path, etcd: EtcdCluster, node_id: int) -> StromProcess:
    """Broker `node_id` of a test cluster (not started)."""
    return StromProcess(tmp_path / f"broker-{node_id}", overrides={
        "node.id": str(node_id), "cluster.id": "strom-test-cluster",
        "strom.metadata.etcd.endpoints": etcd.endpoints,
        # Short leases: a broker gone is noticed quickly (whole seconds).
        "broker.session.timeout.ms": "3000",
        # A cluster refuses to create the coordinators' topics with fewer
        # brokers than their replication factor (Kafka's 3), as Kafka does.
        "offsets.topic.replication.factor": "2",
        "transaction.state.log.replication.factor": "2",
        "share.coordinator.state.topic.replication.factor": "2",
    })


def metadata_of(bootstrap: str, topic: str | None = None) -> ClusterMetadata:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.list_topics(topic, timeout=10)


def cluster_of(bootstrap: str, size: int) -> ClusterMetadata | None:
    """The cluster's metadata once `size` brokers are registered, else None."""
    metadata = metadata_of(bootstrap)
    return metadata if len(metadata.brokers) == size else None


@contextmanager
def registered_brokers(tmp_path: Path, etcd: EtcdCluster, nodes: Sequence[int] = (1, 2)
                       ) -> Iterator[list[StromProcess]]:
    """Brokers `nodes` started, yielded once the first sees them all registered."""
    started = [cluster_broker(tmp_path, etcd, node_id) for node_id in nodes]
    try:
        for broker in started:
            broker.start(timeout=WAIT)
        wait_until(lambda: cluster_of(started[0].bootstrap, len(started)), WAIT,
                   what=f"{len(started)} brokers registered")
        yield started
    finally:
        for broker in started:
            broker.stop()


def controller_and_other(started: Sequence[StromProcess]) -> tuple[StromProcess, StromProcess]:
    """Of two registered brokers: (the controller, the other one)."""
    controller_id = metadata_of(started[0].bootstrap).controller_id
    by_id = {int(b.overrides["node.id"]): b for b in started}
    other = next(b for node, b in by_id.items() if node != controller_id)
    return by_id[controller_id], other


def read_values(bootstrap: str, topic: str, partitions: int, expected: int,
                **config: Any) -> dict[int, list[str]]:
    """The values of the first `expected` records of `topic`'s partitions,
    by partition, read from offset 0 by an assigned consumer (`config` adds
    consumer settings, e.g. isolation.level)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, **config})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    try:
        def done() -> bool:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                value = message.value()
                partition = message.partition()
                assert value is not None and partition is not None
                seen[partition].append(value.decode())
            return sum(map(len, seen.values())) >= expected
        wait_until(done, WAIT, interval=0, what=f"{expected} records consumed")
    finally:
        consumer.close()
    return seen
