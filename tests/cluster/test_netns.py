"""tests/cluster/netns.py, the namespaces the partition tests run brokers and
etcd members in: traffic between chosen namespaces is dropped (silently: a
connect times out, it is not refused), everything else still flows, healing
restores it, and nothing of a lab is left once it is closed, even when the
test inside it fails. Also: scripts/local-cluster.sh runs each process in
its namespace (CLUSTER_NETNS_PREFIX)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import netns
from tests.cluster.fault_injector import wait_for
from tests.cluster.local_cluster import LocalCluster

REASON = netns.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

PORT = 8000
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("connected")
except TimeoutError:
    print("timeout")
except OSError as exc:
    print(type(exc).__name__)
"""


def connect(net: netns.Netns, source: str | None, target: str, timeout: float = 1.0) -> str:
    """'connected', 'timeout' or the error, connecting from namespace `source`
    (None: the root namespace, where the clients are) to `target`."""
    command = [sys.executable, "-c", CONNECT, net.address(target), str(PORT), str(timeout)]
    if source is not None:
        command = ["ip", "netns", "exec", net.namespace(source), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip()


@pytest.fixture
def lab() -> Iterator[netns.Netns]:
    with netns.lab(["a", "b", "c"]) as net:
        servers = [subprocess.Popen(
            ["ip", "netns", "exec", net.namespace(name), sys.executable, "-m", "http.server",
             "--bind", net.address(name), str(PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name in net.names]
        try:
            for name in net.names:
                assert wait_for(lambda n=name: connect(net, None, n) == "connected", 20), name
            yield net
        finally:
            for server in servers:
                server.kill()
                server.wait(10)


def test_partition_drops_traffic_between_the_sides_only(lab: netns.Netns) -> None:
    assert connect(lab, "a", "b") == "connected"
    lab.partition({"a"}, {"b"})
    assert lab.cut() == {"a": ["b"], "b": ["a"]}
    # Dropped both ways, silently (as a cut cable: no refusal comes back).
    assert connect(lab, "a", "b") == "timeout"
    assert connect(lab, "b", "a") == "timeout"
    assert connect(lab, "a", "c") == "connected"
    assert connect(lab, "c", "b") == "connected"
    assert connect(lab, None, "a") == "connected"  # the clients still reach both
    lab.heal()
    assert lab.cut() == {}
    assert connect(lab, "a", "b") == "connected"


def test_a_partition_of_one_port_leaves_the_other_ports_flowing(lab: netns.Netns) -> None:
    # A second listener on b (Kafka's controller port beside its broker port).
    second = subprocess.Popen(
        ["ip", "netns", "exec", lab.namespace("b"), sys.executable, "-m", "http.server",
         "--bind", lab.address("b"), str(PORT + 1)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: connect_port(lab, "a", "b", PORT + 1) == "connected", 20)
        lab.partition({"a"}, {f"b:{PORT + 1}"})
        assert lab.cut() == {"a": [f"b:{PORT + 1}"], "b": [f"a:{PORT + 1}"]}
        assert connect_port(lab, "a", "b", PORT + 1) == "timeout"
        assert connect_port(lab, "a", "b", PORT) == "connected"
        assert connect_port(lab, "b", "a", PORT) == "connected"
        assert connect_port(lab, "c", "b", PORT + 1) == "connected"
        lab.heal()
        assert connect_port(lab, "a", "b", PORT + 1) == "connected"
    finally:
        second.kill()
        second.wait(10)


def test_isolating_a_namespace_cuts_it_from_all_and_from_the_clients(lab: netns.Netns) -> None:
    lab.partition({"c"})
    assert connect(lab, "a", "c") == "timeout"
    assert connect(lab, "c", "b") == "timeout"
    assert connect(lab, None, "c") == "timeout"
    assert connect(lab, "a", "b") == "connected"
    lab.heal()
    assert connect(lab, None, "c") == "connected"
    lab.isolate_from_clients({"a"})
    assert connect(lab, None, "a") == "timeout"
    assert connect(lab, "b", "a") == "connected"


def test_a_slow_link_is_rate_limited_both_ways_until_healed(lab: netns.Netns) -> None:
    lab.slow("b", 256)
    assert lab.qdiscs("b").count("tbf") == 2
    assert "rate 256Kbit" in lab.qdiscs("b")
    assert connect(lab, "a", "b") == "connected"  # slow, not cut
    lab.heal()
    assert "tbf" not in lab.qdiscs("b")


def test_everything_is_removed_even_when_the_test_fails() -> None:
    made: list[netns.Netns] = []
    with pytest.raises(RuntimeError, match="inside"), netns.lab(["x", "y"]) as net:
        made.append(net)
        assert net.exists()
        raise RuntimeError("a failure inside the lab")
    assert not made[0].exists()


def test_local_cluster_runs_each_process_in_its_namespace(etcd_bin: str,
                                                          tmp_path: Path) -> None:
    names = ["etcd-1", "broker-1"]
    with netns.lab(names) as net:
        cluster = LocalCluster(tmp_path / "cluster", etcd_bin, brokers=1, net=net)
        try:
            cluster.run("start-all")
            assert cluster.bootstrap() == f"{net.address('broker-1')}:9092"
            for name in names:
                pid = cluster.status()[name][0]
                assert pid is not None
                # The process's network namespace is the one named for it.
                ours = Path(f"/proc/{pid}/ns/net").stat().st_ino
                named = Path(f"/run/netns/{net.namespace(name)}").stat().st_ino
                assert ours == named, name
            net.partition({"broker-1"}, {"etcd-1"})
            assert connect_port(net, "broker-1", "etcd-1", 2379) == "timeout"
            assert connect_port(net, "etcd-1", "broker-1", 9092) == "timeout"
        finally:
            net.heal()
            cluster.stop_all()


def connect_port(net: netns.Netns, source: str, target: str, port: int) -> str:
    command = ["ip", "netns", "exec", net.namespace(source), sys.executable, "-c", CONNECT,
               net.address(target), str(port), "1"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip()
