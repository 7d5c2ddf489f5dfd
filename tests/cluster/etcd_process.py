"""Real etcd processes for the cluster tests: one member or a cluster of
members on free loopback ports, each with its own data dir under the test's
tmp dir, started and waited for (health endpoint, with a deadline), killed at
the end. The binary: $STROM_ETCD, else .cache/etcd/etcd (built by
scripts/install-etcd.sh, which `make test` runs), else `etcd` on PATH."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.process import free_port

ROOT = Path(__file__).resolve().parents[2]


def etcd_binary() -> str | None:
    explicit = os.environ.get("STROM_ETCD")
    if explicit:
        return explicit
    built = ROOT / ".cache" / "etcd" / "etcd"
    if built.exists():
        return str(built)
    return shutil.which("etcd")


class EtcdMember:
    def __init__(self, binary: str, data_dir: Path, name: str) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{name}.log"
        self.initial_cluster = ""

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self) -> None:
        """Start (or restart, on the same ports and data) without waiting."""
        client_url = f"http://{self.endpoint}"
        args = [
            self.binary, "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", "strom-test",
            # Elections in a tenth of the default time: a killed member's
            # followers elect a new leader in about a second.
            "--heartbeat-interval", "50", "--election-timeout", "500",
            "--log-level", "warn",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"etcd {self.name} exited with {self.proc.returncode}: "
                               f"{self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as r:
                return bool(json.loads(r.read()).get("health") == "true")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def kill(self) -> None:
        """kill -9; the data dir stays for a restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


class EtcdCluster:
    """`size` members forming one etcd cluster."""

    def __init__(self, binary: str, base: Path, size: int = 1) -> None:
        self.members = [EtcdMember(binary, base / f"etcd{i}", f"etcd{i}") for i in range(size)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.initial_cluster = initial

    @property
    def endpoints(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    def start(self, timeout: float = 20) -> None:
        for member in self.members:
            member.start()
        self.wait_healthy(self.members, timeout)

    @staticmethod
    def wait_healthy(members: list[EtcdMember], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(members)
        while waiting:
            waiting = [m for m in waiting if not m.healthy()]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd {[m.name for m in waiting]} not healthy in {timeout}s")
            time.sleep(0.05)  # polling an HTTP endpoint: there is no event to wait on

    def restart(self, member: EtcdMember, timeout: float = 20) -> None:
        member.kill()
        member.start()
        self.wait_healthy([member], timeout)

    def stop(self) -> None:
        for member in self.members:
            member.kill()
