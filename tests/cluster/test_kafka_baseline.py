"""tests/cluster/kafka_cluster.py, make jepsen's Kafka baseline: three KRaft
nodes, each in its own network namespace, taking the faults' verbs; a
partition of the quorum leader's controller port (what `isolate-etcd` cuts
for Kafka) makes the other voters elect another leader."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster import kafka_cluster, netns
from tests.cluster.fault_injector import wait_for

REASON = netns.unavailable() or kafka_cluster.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def test_kafka_nodes_in_namespaces_take_the_fault_verbs(tmp_path: Path) -> None:
    with netns.lab(["broker-1", "broker-2", "broker-3"]) as net:
        cluster = kafka_cluster.KafkaNetCluster(tmp_path, net, session_timeout_ms=3000,
                                                replica_lag_ms=3000)
        try:
            cluster.run("start-all", timeout=240)
            assert cluster.bootstrap() == ",".join(
                f"{net.address(f'broker-{n}')}:9092" for n in (1, 2, 3))
            for name, (pid, state) in cluster.status().items():
                assert state == "running" and pid is not None
                # The JVM itself (`ip netns exec` execs) in the namespace named for it.
                assert Path(f"/proc/{pid}/ns/net").stat().st_ino == \
                    Path(f"/run/netns/{net.namespace(name)}").stat().st_ino, name
            assert wait_for(lambda: cluster.quorum_leader() is not None, 60)
            leader = cluster.quorum_leader()
            assert leader is not None
            net.partition({f"broker-{leader}"}, cluster.quorum_endpoints(but=leader))
            assert wait_for(lambda: cluster.quorum_leader(exclude={leader}) not in
                            (None, leader), 60), "the other voters did not elect"
            net.heal()
            # A signal's stop or continue reaches every thread a moment later.
            cluster.run("pause", 2)
            assert wait_for(lambda: cluster.status()["broker-2"][1] == "paused", 10)
            cluster.run("resume", 2)
            assert wait_for(lambda: cluster.status()["broker-2"][1] == "running", 10)
            cluster.run("etcd-kill", 3)
            assert cluster.status()["broker-3"] == (None, "stopped")
        finally:
            net.heal()
            cluster.stop_all()
