"""scripts/local-cluster.sh driven from Python: a cluster of real etcd and
`strom serve` processes on free loopback ports under a test's directory. The
tests and the fault checker act on it only through the script, as a person
would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Collection
from pathlib import Path

from tests.cluster.netns import Netns
from tests.process import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "local-cluster.sh"


class LocalCluster:
    #: etcd runs beside the brokers, not in them (kafka_cluster.py: in them).
    quorum_on_brokers = False

    def __init__(self, directory: Path, etcd_binary: str, brokers: int = 3,
                 etcd_members: int = 1, session_timeout_ms: int = 3000,
                 replica_lag_ms: int | None = None,
                 overrides: dict[str, str] | None = None,
                 etcd_election_ms: int = 500, net: Netns | None = None) -> None:
        """With `net`, broker-ID and etcd-N each run in that lab's namespace
        of the same name, on its address (Kafka's and etcd's usual ports);
        the lab must have a namespace for each."""
        self.directory = directory
        self.net = net
        if net is None:
            self.broker_hosts = ["127.0.0.1"] * brokers
            self.etcd_hosts = ["127.0.0.1"] * etcd_members
            self.broker_ports = [free_port() for _ in range(brokers)]
            self.etcd_ports = [free_port() for _ in range(etcd_members)]
            etcd_peer_ports = [free_port() for _ in self.etcd_ports]
        else:
            self.broker_hosts = [net.address(f"broker-{i + 1}") for i in range(brokers)]
            self.etcd_hosts = [net.address(f"etcd-{i + 1}") for i in range(etcd_members)]
            self.broker_ports = [9092] * brokers
            self.etcd_ports = [2379] * etcd_members
            etcd_peer_ports = [2380] * etcd_members
        self.env = dict(os.environ)
        self.env.update({
            "CLUSTER_DIR": str(directory),
            "CLUSTER_ID": "strom-local-test",
            "CLUSTER_BROKER_PORTS": " ".join(map(str, self.broker_ports)),
            "CLUSTER_ETCD_CLIENT_PORTS": " ".join(map(str, self.etcd_ports)),
            "CLUSTER_ETCD_PEER_PORTS": " ".join(map(str, etcd_peer_ports)),
            "CLUSTER_BROKER_HOSTS": " ".join(self.broker_hosts),
            "CLUSTER_ETCD_HOSTS": " ".join(self.etcd_hosts),
            # etcd elections in half the default time (heartbeat a tenth of it).
            "CLUSTER_ETCD_HEARTBEAT_MS": str(max(etcd_election_ms // 10, 10)),
            "CLUSTER_ETCD_ELECTION_MS": str(etcd_election_ms),
            "CLUSTER_SESSION_TIMEOUT_MS": str(session_timeout_ms),
            "CLUSTER_OVERRIDES": " ".join(f"{k}={v}" for k, v in (overrides or {}).items()),
            "STROM_PYTHON": sys.executable,
            "STROM_ETCD": etcd_binary,
            "CLUSTER_START_TIMEOUT": "60",
            "CLUSTER_STOP_TIMEOUT": "60",
        })
        if replica_lag_ms is not None:
            self.env["CLUSTER_REPLICA_LAG_MS"] = str(replica_lag_ms)
        if net is not None:
            self.env["CLUSTER_NETNS_PREFIX"] = net.namespace_prefix()

    def broker_address(self, node_id: int) -> str:
        return f"{self.broker_hosts[node_id - 1]}:{self.broker_ports[node_id - 1]}"

    def etcd_address(self, member: int) -> str:
        return f"{self.etcd_hosts[member - 1]}:{self.etcd_ports[member - 1]}"

    def data_dir(self, node_id: int) -> Path:
        """Broker `node_id`'s log.dirs (as the script sets it)."""
        return self.directory / f"broker-{node_id}" / "data"

    def broker_endpoints(self, but: int | None = None) -> list[str]:
        """The brokers' namespaces (netns.Netns names), but one."""
        return [f"broker-{n}" for n in self.node_ids if n != but]

    def quorum_endpoints(self, but: int | None = None) -> list[str]:
        """Where the metadata quorum is: every etcd member's namespace."""
        return [f"etcd-{n}" for n in self.etcd_members]

    def quorum_name(self, member: int) -> str:
        return f"etcd-{member}"

    def controller_id(self, named: int, exclude: Collection[int] = ()) -> int:
        """The controller: the one Metadata names (`named`)."""
        return named

    def quorum_leader(self) -> int | None:
        """The member that is etcd's raft leader (etcd's JSON gateway)."""
        for member in self.etcd_members:
            try:
                request = urllib.request.Request(
                    f"http://{self.etcd_address(member)}/v3/maintenance/status",
                    data=b"{}",
                    headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=2) as r:
                    status = json.loads(r.read())
            except (OSError, ValueError):
                continue
            if status.get("leader") and status.get("leader") == \
                    status.get("header", {}).get("member_id"):
                return member
        return None

    @property
    def node_ids(self) -> list[int]:
        return list(range(1, len(self.broker_ports) + 1))

    @property
    def etcd_members(self) -> list[int]:
        return list(range(1, len(self.etcd_ports) + 1))

    def run(self, *args: str | int, timeout: float = 120) -> str:
        """Run the script; its stdout. Raises with its output if it fails."""
        done = subprocess.run([str(SCRIPT), *map(str, args)], env=self.env, timeout=timeout,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"local-cluster.sh {' '.join(map(str, args))} exited "
                               f"{done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def bootstrap(self) -> str:
        return self.run("bootstrap").strip()

    def status(self) -> dict[str, tuple[int | None, str]]:
        """name -> (pid or None, running|paused|stopped)."""
        out: dict[str, tuple[int | None, str]] = {}
        for line in self.run("status").splitlines():
            name, pid, state = line.split()
            out[name] = (None if pid == "-" else int(pid), state)
        return out

    def stop_all(self) -> None:
        self.run("stop-all")


def process_exists(pid: int) -> bool:
    """True while `pid` is a process that has not exited (a zombie has: only
    its parent has not collected it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
