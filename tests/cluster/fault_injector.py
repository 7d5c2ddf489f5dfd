"""Faults injected into a local cluster through scripts/local-cluster.sh, as a
person would: a partition leader killed (kill -9) then restarted, a leader
paused (SIGSTOP) for longer than its etcd lease then resumed, the controller
killed then restarted, the etcd leader killed (in a three-member etcd) then
restarted; with slow disks (slow_disk.py), a leader's disk throttled. A
Kafka cluster (kafka_cluster.py) takes the same faults through the same
verbs. Each fault is followed by a bounded wait until the cluster is whole
again (every broker registered, every partition led with its full ISR, as
seen by every broker), so that faults never pile up into a loss of quorum the
settings do not promise to survive. What happened is kept as a timeline."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kio.schema.metadata.v12 import request as md
from kio.schema.types import TopicName

from strom.protocol.api import ApiKey
from tests.cluster.slow_disk import DISK_KINDS, SlowDisks
from tests.wire import WireClient

KINDS = ("leader-kill", "leader-pause", "controller-kill", "etcd-kill")


class Cluster(Protocol):
    """What the faults act on: local_cluster.LocalCluster (strom and etcd
    through scripts/local-cluster.sh) or kafka_cluster.KafkaNetCluster."""

    quorum_on_brokers: bool

    @property
    def node_ids(self) -> list[int]: ...
    @property
    def etcd_members(self) -> list[int]: ...
    def run(self, *args: str | int, timeout: float = 120) -> str: ...
    def status(self) -> dict[str, tuple[int | None, str]]: ...
    def bootstrap(self) -> str: ...
    def broker_address(self, node_id: int) -> str: ...
    def data_dir(self, node_id: int) -> Path: ...
    def broker_endpoints(self, but: int | None = None) -> list[str]: ...
    def quorum_endpoints(self, but: int | None = None) -> list[str]: ...
    def quorum_name(self, member: int) -> str: ...
    def controller_id(self, named: int, exclude: Collection[int] = ()) -> int: ...
    def quorum_leader(self) -> int | None: ...
    def stop_all(self) -> None: ...


@dataclass(frozen=True)
class PartitionView:
    leader: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]


@dataclass(frozen=True)
class Snapshot:
    """One broker's Metadata answer."""
    node_id: int
    brokers: frozenset[int]
    controller: int
    partitions: dict[int, PartitionView]


@dataclass
class FaultEvent:
    number: int
    kind: str
    target: str
    partition: int | None
    started: float
    detected: float | None = None  # the cluster noticed (new leader / controller)
    healed: float | None = None  # whole again
    ended: float | None = None  # the fault lifted (restarted, resumed, network healed)
    notes: list[str] = field(default_factory=list)  # findings: the cluster did not cope
    info: list[str] = field(default_factory=list)  # expected (overlapping faults)

    def describe(self, origin: float) -> str:
        def at(t: float | None) -> str:
            return "-" if t is None else f"{t - origin:7.2f}s"
        where = "" if self.partition is None else f" (partition {self.partition})"
        text = (f"#{self.number:3d} {self.kind:15s} {self.target}{where}: at {at(self.started)}, "
                f"noticed {at(self.detected)}, whole {at(self.healed)}")
        return text + "".join(f"\n       ! {note}" for note in self.notes) \
            + "".join(f"\n       - {note}" for note in self.info)


class ClusterView:
    def __init__(self, cluster: Cluster, topic: str) -> None:
        self.cluster = cluster
        self.topic = topic

    def snapshot(self, node_id: int) -> Snapshot | None:
        """Broker `node_id`'s view, or None if it does not answer within 2 s."""
        request = md.MetadataRequest(
            topics=(md.MetadataRequestTopic(name=TopicName(self.topic), topic_id=None),),
            allow_auto_topic_creation=False, include_topic_authorized_operations=False)
        try:
            with WireClient(self.cluster.broker_address(node_id), timeout=2) as client:
                response = client.request(ApiKey.METADATA, 12, request)
        except (OSError, ConnectionError):
            return None
        partitions: dict[int, PartitionView] = {}
        for topic in response.topics:
            if topic.name == self.topic and topic.error_code == 0:
                for p in topic.partitions:
                    partitions[int(p.partition_index)] = PartitionView(
                        int(p.leader_id), tuple(int(n) for n in p.isr_nodes),
                        tuple(int(n) for n in p.replica_nodes))
        return Snapshot(node_id, frozenset(int(b.node_id) for b in response.brokers),
                        int(response.controller_id), partitions)

    def any_snapshot(self, exclude: Collection[int] = ()) -> Snapshot | None:
        for node_id in self.cluster.node_ids:
            if node_id not in exclude:
                snapshot = self.snapshot(node_id)
                if snapshot is not None:
                    return snapshot
        return None


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Poll until `condition()` is truthy; False once `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)  # polling brokers' metadata: there is no event to wait on


class FaultInjector:
    def __init__(self, cluster: Cluster, topic: str, partitions: int, replication: int,
                 session_timeout_s: float, heal_timeout: float = 60.0,
                 say: Callable[[str], None] = print, overlap: bool = False,
                 disks: SlowDisks | None = None) -> None:
        self.cluster = cluster
        self.disks = disks
        self.view = ClusterView(cluster, topic)
        self.partitions = partitions
        self.replication = replication
        self.session_timeout_s = session_timeout_s
        #: A fault is noticed within a lease plus the controller's reaction.
        self.notice_timeout = 3 * session_timeout_s + 15
        self.heal_timeout = heal_timeout
        #: Inject the next fault as soon as every process runs again, without
        #: waiting for the ISR to be full: faults pile up.
        self.overlap = overlap
        if overlap:
            self.notice_timeout = 2 * session_timeout_s + 5
        self.say = say
        self.events: list[FaultEvent] = []

    # -- health --------------------------------------------------------------------------

    def whole(self, snapshot: Snapshot | None) -> bool:
        if snapshot is None or snapshot.brokers != set(self.cluster.node_ids) \
                or snapshot.controller < 0 or len(snapshot.partitions) != self.partitions:
            return False
        return all(p.leader >= 0 and len(p.isr) == self.replication
                   for p in snapshot.partitions.values())

    def is_whole(self) -> bool:
        """Every broker running and each one's view whole."""
        status = self.cluster.status()
        if any(state != "running" for _pid, state in status.values()):
            return False
        return all(self.whole(self.view.snapshot(n)) for n in self.cluster.node_ids)

    def wait_whole(self, timeout: float | None = None) -> bool:
        return wait_for(self.is_whole, self.heal_timeout if timeout is None else timeout, 0.2)

    def describe_state(self) -> str:
        views = []
        for node_id in self.cluster.node_ids:
            s = self.view.snapshot(node_id)
            if s is None:
                views.append(f"broker {node_id}: no answer")
                continue
            parts = " ".join(f"{p}:L{v.leader}/isr{list(v.isr)}"
                             for p, v in sorted(s.partitions.items()))
            views.append(f"broker {node_id}: brokers {sorted(s.brokers)} controller "
                         f"{s.controller} {parts}")
        status = " ".join(f"{name}={state}" for name, (_pid, state)
                          in self.cluster.status().items())
        return f"processes: {status}; " + "; ".join(views)

    def repair(self) -> list[str]:
        """Start whatever is stopped and resume whatever is paused."""
        done = []
        for name, (_pid, state) in self.cluster.status().items():
            kind, number = name.split("-")
            if state == "paused":
                self.cluster.run("resume", number)
                done.append(f"resumed {name}")
            elif state == "stopped":
                self.cluster.run("etcd-start" if kind == "etcd" else "start", number)
                done.append(f"started {name}")
        return done

    # -- faults -----------------------------------------------------------------------------

    def inject(self, number: int, kind: str) -> FaultEvent:
        partition = number % self.partitions
        snapshot = self.view.any_snapshot()
        assert snapshot is not None, "no broker answers"
        event = self._inject_fault(number, kind, partition, snapshot)
        self.events.append(event)
        if self.overlap:
            # Only the processes back: the next fault may hit a cluster still
            # catching up. Availability is then not promised, data still is.
            if not wait_for(self.all_running, self.heal_timeout):
                event.notes.append("processes not all running: " + self.describe_state())
            event.info, event.notes = event.notes, []
        elif self.wait_whole():
            event.healed = time.monotonic()
        else:
            event.notes.append(f"not whole {self.heal_timeout:.0f}s after the fault: "
                               + self.describe_state())
            repaired = self.repair()
            if repaired:
                event.notes.append("repaired by hand: " + ", ".join(repaired))
            if self.wait_whole():
                event.healed = time.monotonic()
            else:
                event.notes.append("still not whole after the repair: " + self.describe_state())
        self.say(event.describe(self.events[0].started))
        return event

    def _inject_fault(self, number: int, kind: str, partition: int,
                      snapshot: Snapshot) -> FaultEvent:
        """Inject one fault and lift it again (the caller waits for the cluster
        to be whole); partition_faults.py adds network partitions."""
        if kind == "etcd-kill":
            return self._etcd_kill(number)
        if kind == "controller-kill":
            return self._broker_fault(number, kind,
                                      self.cluster.controller_id(snapshot.controller), None)
        if kind in DISK_KINDS:
            return self._slow_disk(number, self.leader_of(snapshot, partition, number),
                                   partition)
        return self._broker_fault(number, kind, self.leader_of(snapshot, partition, number),
                                  partition)

    def leader_of(self, snapshot: Snapshot, partition: int, number: int) -> int:
        """The partition's leader, or some broker if it has none."""
        leader = snapshot.partitions[partition].leader if partition in \
            snapshot.partitions else -1
        if leader < 0:
            leader = self.cluster.node_ids[number % len(self.cluster.node_ids)]
        return leader

    def all_running(self) -> bool:
        return all(state == "running" for _pid, state in self.cluster.status().values())

    def _noticed(self, kind: str, victim: int, partition: int | None) -> Callable[[], bool]:
        """The fault seen by the other brokers: the victim's partition has
        another leader (with one replica: the victim left the cluster), or
        another controller is named."""
        def check() -> bool:
            s = self.view.any_snapshot(exclude={victim})
            if s is None:
                return False
            if kind == "controller-kill":
                return self.cluster.controller_id(s.controller, exclude={victim}) \
                    not in (-1, victim)
            if partition is None or self.replication == 1:
                return victim not in s.brokers
            view = s.partitions.get(partition)
            return view is not None and view.leader not in (-1, victim)
        return check

    def _broker_fault(self, number: int, kind: str, victim: int,
                      partition: int | None) -> FaultEvent:
        event = FaultEvent(number, kind, f"broker {victim}", partition, time.monotonic())
        if kind == "leader-pause":
            self.cluster.run("pause", victim)
        else:
            self.cluster.run("kill", victim)
        if wait_for(self._noticed(kind, victim, partition), self.notice_timeout):
            event.detected = time.monotonic()
        else:
            event.notes.append(f"not noticed within {self.notice_timeout:.0f}s: "
                               + self.describe_state())
        if kind == "leader-pause":
            # Paused past its lease: the others must have seen it leave.
            if not wait_for(lambda: self._left(victim), self.notice_timeout):
                event.notes.append(f"broker {victim} still registered while paused")
            self.cluster.run("resume", victim)
            event.ended = time.monotonic()
            # A resumed broker must rejoin on its own (a new registration).
            if not self.overlap and not self.wait_whole():
                event.notes.append(f"broker {victim} did not rejoin after SIGCONT within "
                                   f"{self.heal_timeout:.0f}s: {self.describe_state()}; "
                                   "restarting it")
                self.cluster.run("stop", victim)
                self._start_broker(victim, event)
        else:
            self._start_broker(victim, event)
            event.ended = time.monotonic()
        return event

    def _left(self, victim: int) -> bool:
        s = self.view.any_snapshot(exclude={victim})
        return s is not None and victim not in s.brokers

    def _start_broker(self, node_id: int, event: FaultEvent) -> None:
        """Start again; a broker killed before its lease ran out is refused
        (DUPLICATE_BROKER_REGISTRATION) until it does, so retry until then."""
        deadline = time.monotonic() + self.notice_timeout
        while True:
            try:
                self.cluster.run("start", node_id)
                return
            except RuntimeError as exc:
                if time.monotonic() > deadline:
                    event.notes.append(f"broker {node_id} did not start: {exc}")
                    return
                wait_for(lambda: self._left(node_id), 2 * self.session_timeout_s)

    def _etcd_kill(self, number: int) -> FaultEvent:
        member = self._etcd_leader() or self.cluster.etcd_members[
            number % len(self.cluster.etcd_members)]
        event = FaultEvent(number, "etcd-kill", self.cluster.quorum_name(member), None,
                           time.monotonic())
        self.cluster.run("etcd-kill", member)
        # Down for longer than a broker lease: every broker must carry on
        # through the other members without losing its registration.
        lost: set[int] = set()

        def watch() -> bool:
            s = self.view.any_snapshot()
            if s is not None:
                lost.update(set(self.cluster.node_ids) - s.brokers)
            return False
        wait_for(watch, 1.5 * self.session_timeout_s, 0.2)
        event.detected = time.monotonic()
        if self.cluster.quorum_on_brokers:
            lost.discard(member)  # a KRaft voter is also a broker: it went with it
        if lost:
            event.notes.append(f"brokers {sorted(lost)} left the cluster while "
                               f"{self.cluster.quorum_name(member)} was down")
        self.cluster.run("etcd-start", member)
        event.ended = time.monotonic()
        return event

    def _etcd_leader(self) -> int | None:
        """The metadata quorum's leader (etcd's raft leader; KRaft's)."""
        return self.cluster.quorum_leader()

    def _slow_disk(self, number: int, leader: int, partition: int) -> FaultEvent:
        """A leader's disk throttled (slow_disk.py) for two leases."""
        event = FaultEvent(number, "slow-disk", f"broker {leader}", partition, time.monotonic())
        if self.disks is None:
            raise ValueError("slow-disk needs the brokers' data dirs on slow disks")
        self.disks.slow(f"broker-{leader}")
        try:
            time.sleep(2 * self.session_timeout_s)  # the fault itself: slow this long
            event.detected = time.monotonic()
        finally:
            self.disks.heal()
            event.ended = time.monotonic()
        return event
