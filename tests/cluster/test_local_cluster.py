"""scripts/local-cluster.sh: etcd and three brokers started, driven and
stopped through the script (as `make cluster` and people use it), with real
clients producing and consuming across the brokers meanwhile. Every wait has
a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.cluster.brokers import read_values
from tests.cluster.local_cluster import SCRIPT, LocalCluster, process_exists
from tests.interop.clients import wait_until
from tests.process import default_sigint

WAIT = 30.0
PARTITIONS = 3


@pytest.fixture
def cluster(etcd_bin: str, tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path / "cluster", etcd_bin, session_timeout_ms=3000)
    try:
        yield local
    finally:
        local.stop_all()


def _brokers(bootstrap: str) -> list[int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return sorted(metadata.brokers)


def _create(bootstrap: str, topic: str) -> bool:
    """Create `topic`; False on a retriable error. A timed-out request may
    have been applied: the topic existing counts as created."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        # One broker: one replica, and acks=all needs only it.
        admin.create_topics([NewTopic(topic, PARTITIONS, 1, config={
            "min.insync.replicas": "1"})])[topic].result(WAIT)
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return True
        if error.retriable() or error.code() == KafkaError.REQUEST_TIMED_OUT:
            return False
        raise
    return True


def _produce(bootstrap: str, topic: str, tag: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "message.timeout.ms": int(WAIT * 1000)})
    failures: list[str] = []

    def delivered(err: KafkaError | None, _message: object) -> None:
        if err is not None:
            failures.append(str(err))
    for i in range(count):
        producer.produce(topic, value=f"{tag}-{i}".encode(), partition=i % PARTITIONS,
                         on_delivery=delivered)
    assert producer.flush(WAIT) == 0
    assert failures == []


def _read_all(bootstrap: str, topic: str, expected: int) -> list[str]:
    by_partition = read_values(bootstrap, topic, PARTITIONS, expected)
    return [value for values in by_partition.values() for value in values]


def test_script_drives_a_three_broker_cluster(cluster: LocalCluster) -> None:
    cluster.run("start-all")
    status = cluster.status()
    assert [state for _pid, state in status.values()] == ["running"] * 4
    assert sorted(status) == ["broker-1", "broker-2", "broker-3", "etcd-1"]
    bootstrap = cluster.bootstrap()
    assert bootstrap == ",".join(f"127.0.0.1:{port}" for port in cluster.broker_ports)
    wait_until(lambda: _brokers(bootstrap) == [1, 2, 3], WAIT, what="three brokers registered")

    # Each broker was started with Kafka's settings for a cluster of three.
    properties = (cluster.directory / "broker-2" / "server.properties").read_text()
    for setting in ("node.id=2", "default.replication.factor=3", "min.insync.replicas=2",
                    "unclean.leader.election.enable=false", "replica.lag.time.max.ms=30000"):
        assert setting in properties.splitlines()

    # The broker's default.replication.factor (3) places every partition on all three.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("local", PARTITIONS)])["local"].result(WAIT)
    placed = admin.list_topics("local", timeout=10).topics["local"].partitions
    assert [sorted(placed[p].replicas) for p in range(PARTITIONS)] == [[1, 2, 3]] * PARTITIONS
    _produce(bootstrap, "local", "first", 30)
    assert sorted(_read_all(bootstrap, "local", 30)) == sorted(f"first-{i}" for i in range(30))

    # kill -9: the process is gone at once; its lease runs out, then it starts again.
    killed_pid = status["broker-2"][0]
    assert killed_pid is not None
    cluster.run("kill", 2)
    assert not process_exists(killed_pid)
    assert cluster.status()["broker-2"] == (None, "stopped")
    wait_until(lambda: _brokers(bootstrap) == [1, 3], WAIT, what="broker 2's lease to expire")
    cluster.run("start", 2)
    restarted_pid, state = cluster.status()["broker-2"]
    assert state == "running" and restarted_pid not in (None, killed_pid)
    wait_until(lambda: _brokers(bootstrap) == [1, 2, 3], WAIT, what="broker 2 back")

    # SIGSTOP / SIGCONT: the same process, paused and going on.
    cluster.run("pause", 3)
    assert cluster.status()["broker-3"][1] == "paused"
    cluster.run("resume", 3)
    assert cluster.status()["broker-3"] == (status["broker-3"][0], "running")

    # SIGTERM: a clean exit, the broker leaves the cluster at once.
    cluster.run("stop", 1)
    assert cluster.status()["broker-1"] == (None, "stopped")
    assert not process_exists(status["broker-1"][0] or 0)
    rest = ",".join(f"127.0.0.1:{port}" for port in cluster.broker_ports[1:])
    wait_until(lambda: _brokers(rest) == [2, 3], WAIT, what="broker 1 to leave")
    cluster.run("start", 1)
    wait_until(lambda: _brokers(bootstrap) == [1, 2, 3], WAIT, what="broker 1 back")
    _produce(bootstrap, "local", "second", 30)
    assert len(_read_all(bootstrap, "local", 60)) == 60

    # stop-all leaves no process behind.
    before = cluster.status()
    pids = [pid for pid, _state in before.values() if pid is not None]
    assert len(pids) == 4
    cluster.stop_all()
    assert {state for _pid, state in cluster.status().values()} == {"stopped"}
    assert [pid for pid in pids if process_exists(pid)] == []
    assert list((cluster.directory / "pids").glob("*.pid")) == []
    assert (cluster.directory / "broker-1.log").exists()
    assert (cluster.directory / "etcd-1.log").exists()


def test_three_member_etcd_survives_a_member_kill(etcd_bin: str, tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", etcd_bin, brokers=1, etcd_members=3)
    try:
        cluster.run("start-all")
        assert len(cluster.run("etcd-endpoints").strip().split(",")) == 3
        bootstrap = cluster.bootstrap()
        wait_until(lambda: _brokers(bootstrap) == [1], WAIT, what="broker registered")
        first = cluster.status()["etcd-1"][0]
        cluster.run("etcd-kill", 1)
        assert first is not None and not process_exists(first)
        assert cluster.status()["etcd-1"] == (None, "stopped")
        # Two members of three keep a quorum: metadata still commits (the
        # broker's etcd client may time out once on the member that died, a
        # retriable REQUEST_TIMED_OUT, as a client sees from Kafka's controller).
        wait_until(lambda: _create(bootstrap, "quorum"), WAIT, interval=0,
                   what="topic created with one etcd member down")
        cluster.run("etcd-start", 1)
        assert cluster.status()["etcd-1"][1] == "running"
        _produce(bootstrap, "quorum", "q", 9)
        assert len(_read_all(bootstrap, "quorum", 9)) == 9
    finally:
        cluster.stop_all()
    assert {state for _pid, state in cluster.status().values()} == {"stopped"}


def test_run_stops_everything_on_ctrl_c(etcd_bin: str, tmp_path: Path) -> None:
    """`make cluster`: `run` in the foreground; SIGINT to its process group
    (a terminal's Ctrl-C) stops brokers and etcd, and the script exits."""
    cluster = LocalCluster(tmp_path / "cluster", etcd_bin, brokers=2)
    output = tmp_path / "run.out"
    with open(output, "wb") as out:
        foreground = subprocess.Popen([str(SCRIPT), "run"], env=cluster.env, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=default_sigint)
    try:
        wait_until(lambda: "Ctrl-C stops" in output.read_text(), 90, interval=0.1,
                   what="the cluster to start")
        status = cluster.status()
        assert [state for _pid, state in status.values()] == ["running"] * 3
        os.killpg(foreground.pid, signal.SIGINT)
        assert foreground.wait(90) == 0
    finally:
        if foreground.poll() is None:
            os.killpg(foreground.pid, signal.SIGKILL)
        cluster.stop_all()
    assert [pid for pid, _state in status.values() if pid and process_exists(pid)] == []
    assert "stopping the cluster" in output.read_text()
