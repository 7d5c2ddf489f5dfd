"""The jepsen baseline: three Apache Kafka 4.4 KRaft nodes (combined
broker+controller, bench/clusters.py's launcher) each in a network namespace
of its own (netns.py), under the same faults as strom's cluster through the
verbs scripts/local-cluster.sh gives strom's (start, kill, pause, resume,
stop, etcd-kill, etcd-start).

What stands for etcd: the KRaft controller quorum, whose voters are the
three nodes themselves (their CONTROLLER listener, port 9093; clients and
replication use 9092). So, for Kafka:
- `etcd-kill` kills -9 the quorum's leader (a whole node, the broker with it)
  and keeps it down as long as strom's etcd member (1.5 leases);
- `isolate-etcd` cuts a leader off from the other voters' controller port
  only (it still replicates and serves clients);
- `isolate-followers` cuts it off from the other brokers' port 9092 only (it
  still reaches the controller);
- `minority` cuts the leader off from both other nodes (a minority of
  brokers and of voters; with the quorum leader when it is that node).
Settings as strom's: replication factor 3, min.insync.replicas 2, unclean
election off, the same broker.session.timeout.ms and replica.lag.time.max.ms."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

from tests.cluster.netns import Netns

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # bench/ modules import each other by bare name

from clusters import NODES, KafkaCluster, describe_quorum_leader  # noqa: E402

KAFKA_LIBS = ROOT / ".cache" / "kafka" / "libs"


def unavailable() -> str | None:
    if not any(KAFKA_LIBS.glob("kafka_*.jar")):
        return f"no Apache Kafka jars in {KAFKA_LIBS} (scripts/fetch-kafka.sh)"
    return None


class KafkaNetCluster:
    quorum_on_brokers = True

    def __init__(self, directory: Path, net: Netns, session_timeout_ms: int,
                 replica_lag_ms: int) -> None:
        self.directory = directory
        self.net = net
        settings = {
            "broker.session.timeout.ms": str(session_timeout_ms),
            # Kafka's defaults are 2 s in 9 s: the same share of the lease.
            "broker.heartbeat.interval.ms": str(max(100, session_timeout_ms * 2 // 9)),
            "replica.lag.time.max.ms": str(replica_lag_ms),
        }
        self.kafka = KafkaCluster(
            directory, subdir="kafka",
            namespaces={n: (net.namespace(f"broker-{n}"), net.address(f"broker-{n}"))
                        for n in NODES},
            settings=settings)

    # -- what the faults use -------------------------------------------------------------

    @property
    def node_ids(self) -> list[int]:
        return list(NODES)

    @property
    def etcd_members(self) -> list[int]:
        """The KRaft voters: the nodes themselves."""
        return list(NODES)

    def broker_address(self, node_id: int) -> str:
        return f"{self.kafka.host(node_id)}:9092"

    def bootstrap(self) -> str:
        return self.kafka.bootstrap()

    def data_dir(self, node_id: int) -> Path:
        return self.kafka.data_dir(node_id)

    def broker_endpoints(self, but: int | None = None) -> list[str]:
        return [f"broker-{n}:9092" for n in NODES if n != but]

    def quorum_endpoints(self, but: int | None = None) -> list[str]:
        return [f"broker-{n}:9093" for n in NODES if n != but]

    def quorum_name(self, member: int) -> str:
        return f"controller {member}"

    def quorum_leader(self, exclude: Collection[int] = ()) -> int | None:
        """The KRaft quorum's leader (the active controller): DescribeQuorum to
        every live node, the newest leader epoch wins."""
        answers = []
        for n in NODES:
            if n not in exclude and self.status()[f"broker-{n}"][1] == "running":
                try:
                    answers.append(describe_quorum_leader(9092, self.kafka.host(n)))
                except (OSError, ValueError):
                    continue
        return max(answers)[1] if answers else None

    def controller_id(self, named: int, exclude: Collection[int] = ()) -> int:
        """Kafka's Metadata names a random broker as controller in KRaft mode:
        the quorum's leader instead."""
        leader = self.quorum_leader(exclude)
        return -1 if leader is None else leader

    def status(self) -> dict[str, tuple[int | None, str]]:
        out: dict[str, tuple[int | None, str]] = {}
        for n in NODES:
            proc = self.kafka.procs.get(n)
            if proc is None or proc.poll() is not None:
                out[f"broker-{n}"] = (None, "stopped")
                continue
            try:
                state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                state = "X"
            out[f"broker-{n}"] = (proc.pid, "paused" if state in ("T", "t") else "running")
        return out

    def run(self, *args: str | int, timeout: float = 120) -> str:
        """local-cluster.sh's verbs (those the faults use)."""
        verb, *rest = [str(a) for a in args]
        if verb == "start-all":
            self.kafka.start(timeout)
            return ""
        if verb == "stop-all":
            self.stop_all()
            return ""
        node = int(rest[0])
        proc = self.kafka.procs.get(node)
        running = proc is not None and proc.poll() is None
        if verb in ("start", "etcd-start"):
            if running:
                raise RuntimeError(f"Kafka node {node} is running")
            self.kafka.start_node(node)
        elif verb in ("kill", "etcd-kill") and proc is not None and running:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout)
        elif verb == "pause" and proc is not None and running:
            proc.send_signal(signal.SIGSTOP)
        elif verb == "resume" and proc is not None and running:
            proc.send_signal(signal.SIGCONT)
        elif verb == "stop" and proc is not None and running:
            self._stop(proc, timeout)
        elif verb not in ("kill", "etcd-kill", "pause", "resume", "stop"):
            raise ValueError(f"unknown verb {verb}")
        return ""

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
        proc.send_signal(signal.SIGCONT)  # a paused JVM cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.kafka.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        self.kafka.stop_all()
