"""Three-broker clusters on localhost for the failover benchmark.

`KafkaCluster`: Apache Kafka in KRaft mode, three combined broker+controller
processes (node ids 1-3), each a JVM started from .cache/kafka like the
single-node bench broker. Combined servers, not 3 brokers + separate
controllers: strom's brokers are also its controller candidates (the elected
controller is one of them, with etcd as the quorum store), so in both
clusters killing a broker can also kill the active controller; and three JVMs
are what a two-core machine shared with other work can carry. Which node was
the active controller is recorded for every round (DescribeQuorum).

`StromCluster`: etcd and three strom brokers through scripts/local-cluster.sh,
the script people and tests use, so the bench measures the cluster `make
cluster` starts.

Both take the same cluster settings: replication factor 3, min.insync.replicas
2, replica.lag.time.max.ms at Kafka's default, broker.session.timeout.ms
9000 (Kafka's default and strom's: the etcd lease TTL).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from brokers import BrokerError, random_cluster_id, strom_runtime_bin
from common import CACHE, JAVA_SERVER_OPTS, KAFKA_TOOL, ROOT, free_port, log, run_client, tail
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

NODES = (1, 2, 3)
SESSION_TIMEOUT_MS = 9000
LOCAL_CLUSTER = ROOT / "scripts" / "local-cluster.sh"

# The settings both clusters run with (Kafka's names; the three-node settings).
CLUSTER_SETTINGS = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "unclean.leader.election.enable": "false",
    "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
}


class Cluster:
    name = "cluster"
    label = "cluster"

    def bootstrap(self) -> str:
        raise NotImplementedError

    def start(self, timeout: float = 300.0) -> float:
        raise NotImplementedError

    def signal(self, node: int, sig: signal.Signals) -> None:
        raise NotImplementedError

    def alive(self, node: int) -> bool:
        raise NotImplementedError

    def start_node(self, node: int) -> None:
        raise NotImplementedError

    def stop_all(self) -> None:
        raise NotImplementedError

    def controller(self) -> int | None:
        """The node acting as the cluster's controller now (None if unknown)."""
        raise NotImplementedError

    def version(self) -> str:
        return "?"

    def wait_exit(self, node: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive(node):
                return True
            time.sleep(0.02)
        return not self.alive(node)

    def wait_brokers(self, count: int, timeout: float) -> None:
        """Until Metadata lists `count` brokers."""
        admin = admin_client(self.bootstrap())
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                if len(admin.list_topics(timeout=2).brokers) >= count:
                    return
            except KafkaException as exc:
                last = str(exc)
            time.sleep(0.1)
        raise BrokerError(f"{self.label}: fewer than {count} brokers after {timeout:.0f}s {last}")


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0,
                        "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100})


class KafkaCluster(Cluster):
    name = "kafka"
    label = "Apache Kafka"

    def __init__(self, data_root: Path, subdir: str = "failover-kafka",
                 namespaces: Mapping[int, tuple[str, str]] | None = None,
                 settings: Mapping[str, str] | None = None) -> None:
        """`namespaces`: node -> (network namespace, its address) to run each
        node in a namespace of its own, on Kafka's usual ports there
        (tests/cluster/kafka_cluster.py, the jepsen baseline); `settings`
        override CLUSTER_SETTINGS."""
        self.root = data_root / subdir
        self.namespaces = dict(namespaces or {})
        self.settings = {**CLUSTER_SETTINGS, **(settings or {})}
        self.ports: dict[int, int] = {}
        self.controller_ports: dict[int, int] = {}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        #: Called with each node's data dir once made, before it is formatted
        #: (to mount a file system of its own there).
        self.before_format: Callable[[int, Path], None] | None = None

    def host(self, node: int) -> str:
        return self.namespaces[node][1] if self.namespaces else "127.0.0.1"

    def data_dir(self, node: int) -> Path:
        return self.root / f"data-{node}"

    def bootstrap(self) -> str:
        return ",".join(f"{self.host(n)}:{self.ports[n]}" for n in NODES)

    def _config(self, node: int) -> Path:
        return self.root / f"server-{node}.properties"

    def start(self, timeout: float = 300.0) -> float:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        for n in NODES:
            self.ports[n] = 9092 if self.namespaces else free_port()
            self.controller_ports[n] = 9093 if self.namespaces else free_port()
        voters = ",".join(f"{n}@{self.host(n)}:{self.controller_ports[n]}" for n in NODES)
        cluster_id = random_cluster_id()
        for n in NODES:
            props = {
                "process.roles": "broker,controller",
                "node.id": str(n),
                # A static quorum of the three (KIP-853's dynamic quorum would need
                # `format --initial-controllers`; the static one is what 3.x-era
                # deployments and most guides use, and elects the same way).
                "controller.quorum.voters": voters,
                "listeners": f"PLAINTEXT://{self.host(n)}:{self.ports[n]},"
                             f"CONTROLLER://{self.host(n)}:{self.controller_ports[n]}",
                "advertised.listeners": f"PLAINTEXT://{self.host(n)}:{self.ports[n]}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "inter.broker.listener.name": "PLAINTEXT",
                "log.dirs": str(self.data_dir(n)),
                "num.partitions": "1",
                "group.initial.rebalance.delay.ms": "0",
                **self.settings,
            }
            self._config(n).write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            self.data_dir(n).mkdir()
            if self.before_format is not None:
                self.before_format(n, self.data_dir(n))
            fmt = run_client([KAFKA_TOOL, "storage", "format", "-t", cluster_id,
                              "-c", str(self._config(n))], timeout=120)
            if fmt.returncode != 0:
                raise BrokerError(f"kafka-storage format (node {n}): "
                                  f"{tail(fmt.stderr + fmt.stdout)}")
        t0 = time.perf_counter()
        for n in NODES:
            self.start_node(n)
        try:
            self.wait_brokers(len(NODES), timeout)
        except BrokerError:
            self.stop_all()
            raise
        return time.perf_counter() - t0

    def start_node(self, node: int) -> None:
        env = dict(os.environ, KAFKA_TOOL_JAVA_OPTS=JAVA_SERVER_OPTS)
        with open(self.root / f"node-{node}.log", "ab") as out:
            # kafka-tool execs java: the pid we hold is the JVM's, so signals reach Kafka itself.
            # `ip netns exec` execs too: still the JVM's pid.
            netns = ["ip", "netns", "exec", self.namespaces[node][0]] if self.namespaces else []
            self.procs[node] = subprocess.Popen(
                [*netns, KAFKA_TOOL, "server", str(self._config(node))], stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
                start_new_session=True)
        log(f"Kafka node {node} started (pid {self.procs[node].pid})")

    def alive(self, node: int) -> bool:
        proc = self.procs.get(node)
        return proc is not None and proc.poll() is None

    def signal(self, node: int, sig: signal.Signals) -> None:
        os.kill(self.procs[node].pid, sig)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def controller(self) -> int | None:
        # Kafka's Metadata/DescribeCluster name a random broker as "controller" in
        # KRaft mode; the quorum leader comes from DescribeQuorum. Every live node
        # is asked and the answer with the newest leader epoch wins: a node just
        # restarted may not know of the latest election yet.
        answers = []
        for n in NODES:
            if self.alive(n):
                try:
                    answers.append(describe_quorum_leader(self.ports[n], self.host(n)))
                except (OSError, ValueError):
                    continue
        return max(answers)[1] if answers else None

    def version(self) -> str:
        jars = glob.glob(str(CACHE / "kafka" / "libs" / "kafka-clients-*.jar"))
        m = re.search(r"kafka-clients-(.+)\.jar$", jars[0]) if jars else None
        return m.group(1) if m else "?"


def describe_quorum_leader(port: int, host: str = "127.0.0.1") -> tuple[int, int]:
    """(leader epoch, leader id) of the KRaft metadata quorum as one node sees it:
    DescribeQuorum v0 for __cluster_metadata-0."""
    from kio.schema.describe_quorum.v0 import request as dq
    from kio.schema.describe_quorum.v0.response import DescribeQuorumResponse
    from kio.schema.types import TopicName
    from kio.static.primitive import i32

    from strom.protocol.client_frames import decode_response, encode_request

    metadata_log = dq.TopicData(topic_name=TopicName("__cluster_metadata"),
                                partitions=(dq.PartitionData(partition_index=i32(0)),))
    req = dq.DescribeQuorumRequest(topics=(metadata_log,))
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(encode_request(req, 1, "strom-bench-failover"))
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        _, resp = decode_response(_recv_exact(sock, size), DescribeQuorumResponse)
    if resp.error_code != 0 or not resp.topics or not resp.topics[0].partitions:
        raise ValueError(f"DescribeQuorum error {resp.error_code}")
    part = resp.topics[0].partitions[0]
    if part.error_code != 0:
        raise ValueError(f"DescribeQuorum partition error {part.error_code}")
    if part.leader_id < 0:
        raise ValueError("no quorum leader known")
    return int(part.leader_epoch), int(part.leader_id)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return bytes(buf)


class StromCluster(Cluster):
    """etcd + three strom brokers, driven by scripts/local-cluster.sh on free
    loopback ports (other local clusters may hold the default 19092-19094/2379)."""

    name = "strom"
    label = "strom"

    def __init__(self, data_root: Path, source: Path | None = None,
                 revision: str = "") -> None:
        self.dir = data_root / "failover-strom"
        self.source = source
        self.revision = revision
        self.started = False
        self.pids: dict[int, int] = {}
        self.env = dict(os.environ, CLUSTER_DIR=str(self.dir),
                        CLUSTER_BROKER_PORTS=" ".join(str(free_port()) for _ in NODES),
                        CLUSTER_ETCD_CLIENT_PORTS=str(free_port()),
                        CLUSTER_ETCD_PEER_PORTS=str(free_port()),
                        CLUSTER_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS),
                        # As Kafka's bench nodes: warnings only.
                        CLUSTER_LOG_LEVEL="WARNING",
                        CLUSTER_OVERRIDES="group.initial.rebalance.delay.ms=0")
        self._bootstrap = ""
        self._version = "?"

    @staticmethod
    def unavailable() -> str:
        """Why this cluster cannot be measured here ('' when it can)."""
        if not LOCAL_CLUSTER.exists():
            return "scripts/local-cluster.sh is missing (cluster mode not on this tree yet)"
        return ""

    def _script(self, *args: str, timeout: float = 120.0) -> str:
        # Not from the repository's root: the script runs `python -m strom`, and
        # Python puts the working directory first on sys.path, so the tree being
        # edited would be imported instead of the runtime installed for the bench.
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        res = subprocess.run([str(LOCAL_CLUSTER), *args], capture_output=True, text=True,
                             env=self.env, cwd=self.dir.parent, timeout=timeout)
        if res.returncode != 0:
            raise BrokerError(f"local-cluster.sh {' '.join(args)}: exit {res.returncode}: "
                              f"{tail(res.stderr + res.stdout, 8)}")
        return res.stdout

    def bootstrap(self) -> str:
        return self._bootstrap

    def start(self, timeout: float = 300.0) -> float:
        shutil.rmtree(self.dir, ignore_errors=True)
        # A non-editable install of the tree as it is now, with etcd's client (as
        # the single-node bench runs strom): every restart in the run runs the
        # same code, whatever is edited meanwhile, compiled as users install it.
        # Installed once per object: a bench that starts the cluster again for
        # each round (bench/cluster_bench.py) measures the same code every round.
        # `source`: an export of one commit instead (cluster_bench.py --strom-rev).
        if "STROM_PYTHON" not in self.env:
            if self.source is None:
                runtime = strom_runtime_bin("cluster")
                self._version = self._describe_tree()
            else:
                runtime = strom_runtime_bin("cluster", self.source, "strom-runtime-cluster-rev")
                self._version = self.revision
            self.env["STROM_PYTHON"] = str(runtime.parent / "python")
        # Ports picked again at every start, just before it: between rounds (or
        # a long install) another process on a shared machine may take them.
        self.env.update(CLUSTER_BROKER_PORTS=" ".join(str(free_port()) for _ in NODES),
                        CLUSTER_ETCD_CLIENT_PORTS=str(free_port()),
                        CLUSTER_ETCD_PEER_PORTS=str(free_port()))
        t0 = time.perf_counter()
        self.started = True
        try:
            self._script("start-all", timeout=timeout)
            self._bootstrap = self._script("bootstrap").strip()
            for n in NODES:
                self._remember_pid(n)
            self.wait_brokers(len(NODES), timeout)
        except (BrokerError, subprocess.TimeoutExpired):
            self.stop_all()
            raise
        return time.perf_counter() - t0

    def _remember_pid(self, node: int) -> None:
        self.pids[node] = int(self._script("pid", f"broker-{node}").strip())

    def alive(self, node: int) -> bool:
        pid = self.pids.get(node)
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(self.dir).encode() not in f.read():
                    return False  # exited, and the pid already reused
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    def signal(self, node: int, sig: signal.Signals) -> None:
        # The pid the script recorded, signalled directly as Kafka's JVM is: the
        # signal's time is then not offset by a shell's start-up. (`local-cluster.sh
        # kill|stop` send the same signals, then wait for the exit.)
        os.kill(self.pids[node], sig)

    def start_node(self, node: int) -> None:
        self._script("start", str(node))
        self._remember_pid(node)

    def stop_all(self) -> None:
        if self.started:
            try:
                self._script("stop-all", timeout=180)
            except (BrokerError, subprocess.TimeoutExpired) as exc:
                log(f"strom stop-all: {exc}")
            self.started = False

    def controller(self) -> int | None:
        admin = admin_client(self.bootstrap())
        try:
            desc = admin.describe_cluster(request_timeout=5).result(timeout=10)
        except KafkaException:
            return None
        return None if desc.controller is None else int(desc.controller.id)

    def version(self) -> str:
        return self._version

    @staticmethod
    def _describe_tree() -> str:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "strom"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return f"{rev}{' + uncommitted changes' if dirty else ''}"
