"""Network namespaces for partition tests: each broker and each etcd member in
a namespace of its own, joined by a bridge, so that traffic between chosen
processes can be dropped while everything else keeps flowing (Jepsen's
partitions, on one machine).

    with Netns.create(["etcd-1", "broker-1", "broker-2"]) as net:
        net.address("broker-1")               # 10.77.X.11, its only address
        net.partition({"broker-1"}, {"etcd-1"})  # both directions dropped
        net.partition({"broker-1"}, {"broker-2:9093"})  # only broker-2's port 9093
        net.heal()

Layout: a bridge in the root namespace holds 10.77.X.1/24 (so the test's
clients, which run in the root namespace, reach every process), and each
namespace gets a veth pair onto the bridge with 10.77.X.(10+i)/24. X is
chosen free at random per lab; every name carries the lab's tag, so two labs
(two test runs) never share a namespace, a link or an address. The bridge is
connected to nothing else: no traffic leaves the machine.

Faults are nftables rules inside the namespaces (a table `strom_faults` with
an input and an output chain that drop packets from or to a set of blocked
addresses, and a second set of address . port pairs for a partition of one
listener only, e.g. a Kafka node's controller port and not its broker port):
silent drops, as a real partition, so connections hang and connects time out
rather than being refused. Partition and heal only change
the sets' elements, one `nft` call per namespace. A slow link is a token
bucket (tc tbf) on both ends of a namespace's veth pair (this kernel has no
netem: no delay or loss emulation, only a rate).

Everything is removed in close(), which the context manager always calls;
`sweep()` removes what a killed test run left behind (labs whose process is
gone). Needs root, `ip` (iproute2) and `nft` (nftables); `unavailable()` says
why not, for a skip."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import shutil
import subprocess
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

#: Every namespace and link name starts with this (plus the lab's tag).
PREFIX = "snt"
TABLE = "strom_faults"
SUBNET_BASE = "10.77"


def _run(*args: str, check: bool = True, stdin: str | None = None) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, input=stdin,
                          timeout=30, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


class NetnsError(RuntimeError):
    pass


def unavailable() -> str | None:
    """Why namespaces with nftables faults cannot be made here; None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"no `{tool}` ({package}; scripts/install-system-deps.sh installs it)"
    probe = f"{PREFIX}probe{os.getpid()}"
    try:
        _run("ip", "netns", "add", probe)
        try:
            _run("ip", "netns", "exec", probe, "nft", "add", "table", "inet", TABLE)
        finally:
            _run("ip", "netns", "del", probe, check=False)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot make a network namespace with nftables rules: {exc}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep() -> list[str]:
    """Remove the namespaces and links of labs whose test process is gone
    (a test killed before its clean-up); what was removed."""
    removed = []
    pattern = re.compile(rf"^{PREFIX}(\d+)[a-z]")
    for line in _run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = pattern.match(name)
        if match and not _alive(int(match.group(1))):
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    for line in _run("ip", "-o", "link", "show").splitlines():
        # "12: snt123bA@if3: <...>" or "12: snt123br: <...>"
        parts = line.split(": ", 2)
        if len(parts) < 2:
            continue
        name = parts[1].split("@")[0]
        match = pattern.match(name)
        if match and not _alive(int(match.group(1))):
            _run("ip", "link", "del", name, check=False)
            removed.append(name)
    return removed


def _free_subnet() -> int:
    """A third octet X such that 10.77.X.0/24 is not routed here yet."""
    used = set()
    for line in _run("ip", "-4", "route", "show").splitlines():
        match = re.match(rf"{re.escape(SUBNET_BASE)}\.(\d+)\.", line)
        if match:
            used.add(int(match.group(1)))
    free = [x for x in range(1, 255) if x not in used]
    if not free:
        raise NetnsError(f"no free {SUBNET_BASE}.X.0/24 subnet")
    return random.choice(free)


@dataclass
class Netns:
    """A lab: a bridge and one namespace per name."""

    tag: str
    subnet: int
    names: list[str]
    #: Blocked addresses per namespace name (what the nft sets hold).
    blocked: dict[str, set[str]] = field(default_factory=dict)
    #: Names whose link is slowed (slow()).
    slowed: set[str] = field(default_factory=set)
    _made_namespaces: list[str] = field(default_factory=list)
    _made_links: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, names: Sequence[str]) -> Netns:
        """Make the bridge and the namespaces (removing everything made so
        far if one step fails)."""
        if len(names) > 200:
            raise ValueError("at most 200 namespaces per lab")
        sweep()
        # The pid ties the lab to this process (sweep); a letter ends the number.
        tag = f"{os.getpid()}{random.choice('abcdefghijklmnopqrstuvwxyz')}"
        lab = cls(tag, _free_subnet(), list(names))
        try:
            lab._make()
        except BaseException:
            lab.close()
            raise
        return lab

    # -- names and addresses --------------------------------------------------------

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.tag}br"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (where the clients are)."""
        return f"{SUBNET_BASE}.{self.subnet}.1"

    def namespace(self, name: str) -> str:
        return f"{PREFIX}{self.tag}-{name}"

    def namespace_prefix(self) -> str:
        """namespace(name) == namespace_prefix() + name (CLUSTER_NETNS_PREFIX)."""
        return f"{PREFIX}{self.tag}-"

    def address(self, name: str) -> str:
        return f"{SUBNET_BASE}.{self.subnet}.{10 + self.names.index(name)}"

    def _link(self, name: str) -> str:
        # Interface names are at most 15 bytes: the tag and the index.
        link = f"{PREFIX}{self.tag}v{self.names.index(name)}"
        if len(link) > 15:
            raise NetnsError(f"link name {link} too long (pid {os.getpid()} too large)")
        return link

    # -- making and removing ------------------------------------------------------------

    def _make(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        self._made_links.append(self.bridge)
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for name in self.names:
            ns, link = self.namespace(name), self._link(name)
            _run("ip", "netns", "add", ns)
            self._made_namespaces.append(ns)
            _run("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0",
                 "netns", ns)
            self._made_links.append(link)
            _run("ip", "link", "set", link, "master", self.bridge)
            _run("ip", "link", "set", link, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.address(name)}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            self._nft(name, f"""
                table inet {TABLE} {{
                    set blocked {{ type ipv4_addr; }}
                    set blocked_ports {{ type ipv4_addr . inet_service; }}
                    chain input {{ type filter hook input priority 0; policy accept;
                        ip saddr @blocked drop;
                        ip saddr . tcp sport @blocked_ports drop;
                        ip saddr . tcp dport @blocked_ports drop; }}
                    chain output {{ type filter hook output priority 0; policy accept;
                        ip daddr @blocked drop;
                        ip daddr . tcp dport @blocked_ports drop;
                        ip daddr . tcp sport @blocked_ports drop; }}
                }}""")
            self.blocked[name] = set()

    def close(self) -> None:
        """Remove every namespace and link this lab made (processes still in a
        namespace lose only its name; the caller stops them first)."""
        for ns in reversed(self._made_namespaces):
            _run("ip", "netns", "del", ns, check=False)
        for link in reversed(self._made_links):
            # Deleting one end of a veth pair deletes both.
            _run("ip", "link", "del", link, check=False)
        self._made_namespaces.clear()
        self._made_links.clear()

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exists(self) -> bool:
        """Whether anything of this lab is still there (tests of the clean-up)."""
        namespaces = {line.split()[0] for line in _run("ip", "netns", "list").splitlines()
                      if line.split()}
        if any(self.namespace(n) in namespaces for n in self.names):
            return True
        return _run("ip", "link", "show", self.bridge, check=False) != ""

    # -- faults ---------------------------------------------------------------------------

    def _nft(self, name: str, script: str) -> None:
        _run("ip", "netns", "exec", self.namespace(name), "nft", "-f", "-", stdin=script)

    def _apply(self, names: Iterable[str]) -> None:
        for name in names:
            whole = sorted((a for a in self.blocked[name] if " . " not in a),
                           key=ipaddress.ip_address)
            ports = sorted(a for a in self.blocked[name] if " . " in a)
            script = f"flush set inet {TABLE} blocked\nflush set inet {TABLE} blocked_ports\n"
            if whole:
                script += f"add element inet {TABLE} blocked {{ {', '.join(whole)} }}\n"
            if ports:
                script += f"add element inet {TABLE} blocked_ports {{ {', '.join(ports)} }}\n"
            self._nft(name, script)

    def _endpoint(self, endpoint: str) -> tuple[str, int | None]:
        """'name' or 'name:port' -> (name, port or None)."""
        name, _, port = endpoint.partition(":")
        if name not in self.names:
            raise ValueError(f"not in this lab: {endpoint}")
        return name, int(port) if port else None

    def partition(self, side: Collection[str], other: Collection[str] | None = None) -> None:
        """Drop all traffic between `side` and `other` (default: every other
        namespace and the root namespace, i.e. `side` cut off from all),
        both directions. Adds to partitions already in place. An `other`
        given as 'name:port' cuts only the connections to or from that port
        of `name` (both ends of each: either side may have dialled)."""
        for name in side:
            if name not in self.names:
                raise ValueError(f"not in this lab: {name}")
        if other is None:
            other = [n for n in self.names if n not in side]
            for name in side:
                self.blocked[name].add(self.gateway)
        touched = set(side)
        for endpoint in other:
            b, port = self._endpoint(endpoint)
            touched.add(b)
            for a in side:
                if port is None:
                    self.blocked[a].add(self.address(b))
                    self.blocked[b].add(self.address(a))
                else:
                    self.blocked[a].add(f"{self.address(b)} . {port}")
                    self.blocked[b].add(f"{self.address(a)} . {port}")
        self._apply(touched)

    def isolate_from_clients(self, names: Collection[str]) -> None:
        """Drop traffic between `names` and the root namespace (the clients)."""
        for name in names:
            self.blocked[name].add(self.gateway)
        self._apply(names)

    def heal(self) -> None:
        """Every partition and slow link gone."""
        dirty = [name for name, blocked in self.blocked.items() if blocked]
        for name in dirty:
            self.blocked[name].clear()
        self._apply(dirty)
        for name in sorted(self.slowed):
            _run("tc", "qdisc", "del", "dev", self._link(name), "root", check=False)
            _run("ip", "netns", "exec", self.namespace(name), "tc", "qdisc", "del", "dev",
                 "eth0", "root", check=False)
        self.slowed.clear()

    def slow(self, name: str, rate_kbit: int) -> None:
        """Limit `name`'s link to `rate_kbit` kbit/s each way (a token bucket
        holding at most 200 ms of backlog; the rest is dropped)."""
        spec = ["tbf", "rate", f"{rate_kbit}kbit", "burst", "16kb", "latency", "200ms"]
        _run("tc", "qdisc", "replace", "dev", self._link(name), "root", *spec)
        _run("ip", "netns", "exec", self.namespace(name), "tc", "qdisc", "replace", "dev",
             "eth0", "root", *spec)
        self.slowed.add(name)

    def qdiscs(self, name: str) -> str:
        """`tc qdisc show` of both ends of `name`'s link (tests)."""
        return _run("tc", "qdisc", "show", "dev", self._link(name)) + _run(
            "ip", "netns", "exec", self.namespace(name), "tc", "qdisc", "show", "dev", "eth0")

    def cut(self) -> dict[str, list[str]]:
        """What is blocked now, by namespace name (names, or 'clients')."""
        by_address = {self.address(n): n for n in self.names}
        by_address[self.gateway] = "clients"

        def named(blocked: str) -> str:
            address, _, port = blocked.partition(" . ")
            return by_address[address] + (f":{port}" if port else "")
        return {name: sorted(named(a) for a in blocked)
                for name, blocked in self.blocked.items() if blocked}


@contextlib.contextmanager
def lab(names: Sequence[str]) -> Iterator[Netns]:
    net = Netns.create(names)
    try:
        yield net
    finally:
        net.close()
