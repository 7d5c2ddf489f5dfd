"""Partition reassignment (KIP-455) in a three-broker cluster (etcd and three
`strom serve` processes), driven by Apache Kafka's own
kafka-reassign-partitions.sh (ReassignPartitionsCommand) while an idempotent
acks=all producer writes: the replicas move, every acknowledged record is on
the new replicas afterwards (read from the new leader), the broker that lost
its replicas deletes their logs. The request-level errors, forwarded from a
broker that is not the controller. Every wait has a deadline."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kio.schema.alter_partition_reassignments.v0.request import (
    AlterPartitionReassignmentsRequest,
    ReassignablePartition,
    ReassignableTopic,
)
from kio.schema.describe_log_dirs.v1.request import DescribeLogDirsRequest
from kio.schema.list_partition_reassignments.v0.request import (
    ListPartitionReassignmentsRequest,
)
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i32

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.cluster.brokers import WAIT, metadata_of, read_values, registered_brokers
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import run_kafka_tool, wait_until
from tests.process import StromProcess
from tests.wire import WireClient

REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand"
LEADER_ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"


@pytest.fixture
def three(etcd: EtcdCluster, tmp_path: Path) -> Iterator[dict[int, StromProcess]]:
    with registered_brokers(tmp_path, etcd, (1, 2, 3)) as started:
        yield {int(b.overrides["node.id"]): b for b in started}


class KeepProducing:
    """An idempotent acks=all producer writing numbered records to every
    partition of a topic on a thread, remembering what was acknowledged."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.topic, self.partitions = topic, partitions
        self.acked: dict[int, set[str]] = {p: set() for p in range(partitions)}
        self.failed: list[str] = []
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                   "enable.idempotence": True, "linger.ms": 5})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> KeepProducing:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self._producer.flush(WAIT)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        value = message.value()
        partition = message.partition()
        assert value is not None and partition is not None
        if error is None:
            self.acked[partition].add(value.decode())
        else:
            self.failed.append(f"{value.decode()}: {error}")

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            partition = n % self.partitions
            self._producer.produce(self.topic, f"v{n}".encode(), partition=partition,
                                   on_delivery=self._delivered)
            n += 1
            # Paced by the delivery reports it waits for (no sleep to sync on).
            self._producer.poll(0.002)

    def count(self) -> int:
        return sum(map(len, self.acked.values()))


def _replicas(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    found = metadata_of(bootstrap, topic).topics[topic]
    return {p.id: (p.leader, list(p.replicas), sorted(p.isrs))
            for p in found.partitions.values()}


def _reassign(bootstrap: str, tmp_path: Path, plan: dict[int, list[int]], topic: str,
              *args: str) -> str:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": p, "replicas": r, "log_dirs": ["any"] * len(r)}
        for p, r in plan.items()]}))
    done = run_kafka_tool(REASSIGN, "--bootstrap-server", bootstrap,
                          "--reassignment-json-file", str(plan_file), *args)
    return done.stdout + done.stderr


def test_kafkas_tool_moves_replicas_while_producing(three: dict[int, StromProcess],
                                                    tmp_path: Path) -> None:
    one = three[1]
    admin = AdminClient({"bootstrap.servers": one.bootstrap})
    topic = NewTopic("moving", num_partitions=2, replica_assignment=[[1, 2], [2, 1]],
                     config={"min.insync.replicas": "2"})
    admin.create_topics([topic])["moving"].result(WAIT)
    wait_until(lambda: all(len(isr) == 2 for _, _, isr in
                           _replicas(one.bootstrap, "moving").values()), WAIT)
    log_of_one = three[1].data_dir / "moving-0"

    plan = {0: [3, 2], 1: [3, 1]}
    with KeepProducing(one.bootstrap, "moving", 2) as producer:
        wait_until(lambda: producer.count() >= 200, WAIT, what="records before the move")
        assert log_of_one.exists()  # made by its first records (issue 19)
        out = _reassign(one.bootstrap, tmp_path, plan, "moving", "--execute")
        assert "Successfully started partition reassignments" in out, out
        out = wait_until(
            lambda: (o := _reassign(one.bootstrap, tmp_path, plan, "moving", "--verify"))
            .count("is completed") == 2 and o, WAIT, interval=0.5,
            what="the reassignment to complete")
        before = producer.count()
        wait_until(lambda: producer.count() >= before + 200, WAIT,
                   what="records after the move")
    assert not producer.failed, producer.failed[:5]

    placed = _replicas(one.bootstrap, "moving")
    assert {p: replicas for p, (_, replicas, _) in placed.items()} == plan
    # Broker 1 and 2 each led a partition they no longer hold (0 and 1) or
    # was removed from: broker 3, the first target replica, leads both.
    assert {leader for leader, _, _ in placed.values()} == {3}
    # Every acknowledged record is on broker 3, read from it as leader.
    seen = read_values(three[3].bootstrap, "moving", 2, producer.count())
    for partition, acked in producer.acked.items():
        assert acked <= set(seen[partition]), sorted(acked - set(seen[partition]))[:5]
    # Broker 1 lost its replica of partition 0: its log goes.
    wait_until(lambda: not log_of_one.exists(), WAIT, what="broker 1 deleting moving-0")
    assert (three[1].data_dir / "moving-1").exists()
    # DescribeLogDirs across the brokers (Kafka's kafka-log-dirs.sh) shows where
    # the replicas are now.
    described = run_kafka_tool(LOG_DIRS, "--bootstrap-server", one.bootstrap, "--describe",
                               "--topic-list", "moving", "--broker-list", "1,2,3").stdout
    document = json.loads(described.strip().splitlines()[-1])
    hosted = {b["broker"]: sorted(p["partition"] for d in b["logDirs"] for p in d["partitions"])
              for b in document["brokers"]}
    assert hosted == {1: ["moving-1"], 2: ["moving-0"], 3: ["moving-0", "moving-1"]}
    # Kafka's leader election tool: broker 3 is already the preferred leader.
    elected = run_kafka_tool(LEADER_ELECTION, "--bootstrap-server", one.bootstrap,
                             "--election-type", "PREFERRED", "--topic", "moving",
                             "--partition", "0")
    assert "Valid replica already elected for partitions" in elected.stdout, elected.stdout


def _alter(bootstrap: str, partitions: dict[int, tuple[int, ...] | None], topic: str) -> Any:
    request = AlterPartitionReassignmentsRequest(topics=(ReassignableTopic(
        name=TopicName(topic), partitions=tuple(
            ReassignablePartition(partition_index=i32(p), replicas=None if r is None
                                  else tuple(BrokerId(b) for b in r))
            for p, r in partitions.items())),))
    with WireClient(bootstrap) as client:
        return client.request(ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, request)


def test_errors_forwarded_from_another_broker(three: dict[int, StromProcess],
                                              tmp_path: Path) -> None:
    one = three[1]
    controller = metadata_of(one.bootstrap).controller_id
    other = three[next(n for n in three if n != controller)]
    admin = AdminClient({"bootstrap.servers": one.bootstrap})
    admin.create_topics([NewTopic("fixed", num_partitions=1, replica_assignment=[[1, 2]])])[
        "fixed"].result(WAIT)

    response = _alter(other.bootstrap, {0: None, 1: (1, 2), 2: None}, "fixed")
    assert response.error_code == ErrorCode.none
    codes = {p.partition_index: p.error_code for p in response.responses[0].partitions}
    assert codes == {0: ErrorCode.no_reassignment_in_progress,
                     1: ErrorCode.unknown_topic_or_partition,
                     2: ErrorCode.unknown_topic_or_partition}
    for bad in ((1, 9), (1, 1), ()):
        (result,) = _alter(other.bootstrap, {0: bad}, "fixed").responses[0].partitions
        assert result.error_code == ErrorCode.invalid_replica_assignment, bad
    assert _alter(other.bootstrap, {0: (1, 2)}, "nope").responses[0].partitions[0] \
        .error_code == ErrorCode.unknown_topic_or_partition

    # Kafka's --generate proposes a plan over the brokers named.
    topics_file = tmp_path / "topics.json"
    topics_file.write_text(json.dumps({"version": 1, "topics": [{"topic": "fixed"}]}))
    generated = run_kafka_tool(REASSIGN, "--bootstrap-server", other.bootstrap, "--generate",
                               "--topics-to-move-json-file", str(topics_file),
                               "--broker-list", "2,3").stdout
    proposed = json.loads(generated.split("Proposed partition reassignment configuration")[1])
    assert [sorted(p["replicas"]) for p in proposed["partitions"]] == [[2, 3]]

    # A shrink within the ISR completes at once; nothing is left to list.
    (result,) = _alter(other.bootstrap, {0: (2,)}, "fixed").responses[0].partitions
    assert result.error_code == ErrorCode.none
    with WireClient(other.bootstrap) as client:
        listed = client.request(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0,
                                ListPartitionReassignmentsRequest(topics=None))
    assert listed.error_code == ErrorCode.none and listed.topics == ()
    wait_until(lambda: _replicas(other.bootstrap, "fixed")[0][1] == [2], WAIT)


def _log_size(bootstrap: str, topic: str, partition: int) -> int:
    """The size of this broker's replica (DescribeLogDirs), -1 if it has none."""
    with WireClient(bootstrap) as client:
        response = client.request(ApiKey.DESCRIBE_LOG_DIRS, 1,
                                  DescribeLogDirsRequest(topics=None))
    for result in response.results:
        for found in result.topics:
            for p in found.partitions:
                if found.name == topic and p.partition_index == partition:
                    return int(p.partition_size)
    return -1


def _moving(bootstrap: str) -> list[str]:
    with WireClient(bootstrap) as client:
        listed = client.request(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0,
                                ListPartitionReassignmentsRequest(topics=None))
    return [f"{t.name}-{p.partition_index}" for t in listed.topics for p in t.partitions]


def test_throttle_holds_back_the_new_replica_only(three: dict[int, StromProcess],
                                                  tmp_path: Path) -> None:
    one = three[1]
    admin = AdminClient({"bootstrap.servers": one.bootstrap})
    admin.create_topics([NewTopic("slow", num_partitions=1, replica_assignment=[[1, 2]],
                                  config={"min.insync.replicas": "2"})])["slow"].result(WAIT)
    producer = Producer({"bootstrap.servers": one.bootstrap, "acks": "all",
                         "linger.ms": 20})
    for _ in range(300):  # 3 MB: three times what one replica fetch takes
        producer.produce("slow", bytes(10_000), partition=0)
        producer.poll(0)
    assert producer.flush(WAIT) == 0
    leader_size = _log_size(one.bootstrap, "slow", 0)

    # 1 byte/s: the new replica gets the first fetch's worth, then waits.
    plan = {0: [1, 3]}
    out = _reassign(one.bootstrap, tmp_path, plan, "slow", "--execute", "--throttle", "1")
    assert "The inter-broker throttle limit was set to 1 B/s" in out, out
    wait_until(lambda: _log_size(three[3].bootstrap, "slow", 0) > 0, WAIT,
               what="broker 3 fetching its new replica")
    # A bounded look at a throttled move: it stays behind (unthrottled it
    # finishes in well under a second on loopback), while the in-sync
    # follower keeps acks=all working.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert _moving(one.bootstrap) == ["slow-0"]
        assert 0 < _log_size(three[3].bootstrap, "slow", 0) < leader_size
        producer.produce("slow", b"in-sync", partition=0)
        assert producer.flush(WAIT) == 0
    # Raising the throttle (the tool's --additional) lets it finish.
    out = _reassign(one.bootstrap, tmp_path, plan, "slow", "--execute", "--additional",
                    "--throttle", "100000000")
    wait_until(lambda: not _moving(one.bootstrap), WAIT, interval=0.2,
               what="the move to finish")
    out = _reassign(one.bootstrap, tmp_path, plan, "slow", "--verify")
    assert "is completed" in out and "Clearing broker-level throttles" in out, out
    assert _replicas(one.bootstrap, "slow")[0][1] == [1, 3]
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([resource])[resource].result(WAIT)
    assert configs["leader.replication.throttled.rate"].value == str(2**63 - 1)
    assert _log_size(three[3].bootstrap, "slow", 0) >= leader_size
