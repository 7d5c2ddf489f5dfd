"""Network partitions injected into a local cluster whose brokers and etcd
members each run in a network namespace of their own (tests/cluster/netns.py),
as Jepsen injects them: traffic between chosen processes is dropped, the
processes keep running. The clients (in the root namespace) reach every broker
unless said otherwise. Kinds:

- `isolate-followers`: a partition's leader cut off from the other brokers
  (it still reaches etcd and the clients): its followers stop fetching, it
  must shrink the ISR and then refuse acks=all (`min.insync.replicas`=2).
- `isolate-etcd`: a leader cut off from every etcd member, still reachable by
  the clients and the other brokers: its lease runs out and the controller
  elects another leader. The old leader must not acknowledge acks=all after
  that: it is probed with an acks=all Produce sent straight to it.
- `minority`: a leader and one etcd member (etcd's raft leader) on one side,
  the other brokers and etcd members on the other.
- `flap`: a leader's links to the other brokers and etcd go down and up again
  at random intervals (0.2-1.5 s) for a few seconds.
- `slow-link`: a leader's link limited to 256 kbit/s (about 30 records of
  the writers' a second, against their 300) for two leases.

Against Kafka (kafka_cluster.py) "etcd" is the KRaft controller quorum on
the brokers' port 9093 and the brokers' replication is port 9092: the same
kinds cut those ports.

Each fault ends by healing the network; the caller (FaultInjector.inject)
then waits until the cluster is whole again, as after a crash."""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Callable

from kio.schema.errors import ErrorCode
from kio.schema.produce.v9 import request as pr
from kio.schema.types import TopicName

from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from tests.cluster.fault_injector import Cluster, FaultEvent, FaultInjector, Snapshot, wait_for
from tests.cluster.netns import Netns
from tests.cluster.slow_disk import SlowDisks
from tests.wire import WireClient

PARTITION_KINDS = ("isolate-followers", "isolate-etcd", "minority", "flap", "slow-link")
PROBE_TIMEOUT_MS = 3000
#: How much later than its timeout a probe's answer may come on a loaded machine.
PROBE_LATE_S = 2.0


class PartitionInjector(FaultInjector):
    def __init__(self, cluster: Cluster, net: Netns, topic: str, partitions: int,
                 replication: int, session_timeout_s: float, heal_timeout: float = 60.0,
                 say: Callable[[str], None] = print, overlap: bool = False,
                 seed: int = 0, disks: SlowDisks | None = None) -> None:
        super().__init__(cluster, topic, partitions, replication, session_timeout_s,
                         heal_timeout, say, overlap, disks)
        self.net = net
        self.topic = topic
        self.random = random.Random(seed)
        #: Probes (acks=all straight to a deposed or cut-off leader): fault
        #: number -> the answer's error name, or "no answer".
        self.probes: dict[int, str] = {}

    def _inject_fault(self, number: int, kind: str, partition: int,
                      snapshot: Snapshot) -> FaultEvent:
        if kind not in PARTITION_KINDS:
            return super()._inject_fault(number, kind, partition, snapshot)
        leader = self.leader_of(snapshot, partition, number)
        event = FaultEvent(number, kind, f"broker {leader}", partition, time.monotonic())
        try:
            if kind == "isolate-followers":
                self._isolate_followers(event, leader, partition)
            elif kind == "isolate-etcd":
                self._isolate_etcd(event, leader, partition)
            elif kind == "minority":
                self._minority(event, leader, partition)
            elif kind == "slow-link":
                self.net.slow(f"broker-{leader}", 256)
                time.sleep(2 * self.session_timeout_s)  # the fault itself: slow this long
                event.detected = time.monotonic()
            else:
                self._flap(event, leader)
        finally:
            self.net.heal()
            event.ended = time.monotonic()
        return event

    # -- the kinds ------------------------------------------------------------------------

    def _brokers(self, but: int | None = None) -> list[str]:
        """The other brokers' replication endpoints (a Kafka node's broker port)."""
        return self.cluster.broker_endpoints(but)

    def _etcds(self, but: int | None = None) -> list[str]:
        """The metadata quorum (etcd; the other KRaft voters' controller port)."""
        return self.cluster.quorum_endpoints(but)

    def _isolate_followers(self, event: FaultEvent, leader: int, partition: int) -> None:
        before = self.view.snapshot(leader)
        controller = -1 if before is None else self.cluster.controller_id(before.controller)
        self.net.partition({f"broker-{leader}"}, self._brokers(but=leader))

        def shrunk() -> bool:
            s = self.view.snapshot(leader)
            view = None if s is None else s.partitions.get(partition)
            return view is not None and view.leader == leader and view.isr == (leader,)
        # The leader shrinks the ISR through the controller (AlterPartition),
        # so only when it is the controller; otherwise the controller is on
        # the other side and the ISR stays as it was (as Kafka's when its
        # leader reaches its followers' side only through the controller).
        # Either way acks=all must not be acknowledged: refused below
        # min.insync.replicas, or timed out waiting for followers that cannot fetch.
        if wait_for(shrunk, 2 * self.session_timeout_s + 3):
            event.detected = time.monotonic()
        elif controller == leader:
            event.notes.append("the ISR did not shrink to its leader alone, the controller: "
                               + self.describe_state())
        else:
            event.info.append(f"ISR not shrunk: controller {controller} on the other side")
        self._probe(event, leader, partition, expect_refusal=True)

    def _isolate_etcd(self, event: FaultEvent, leader: int, partition: int) -> None:
        self.net.partition({f"broker-{leader}"}, self._etcds(but=leader))
        self._deposed(event, leader, partition)

    def _minority(self, event: FaultEvent, leader: int, partition: int) -> None:
        member = self._etcd_leader() or self.cluster.etcd_members[0]
        if self.cluster.quorum_on_brokers:
            # A KRaft voter is a broker too: the leader alone is the minority
            # (with the quorum's leader when it is that one).
            side = {f"broker-{leader}"}
            event.target += f" (quorum leader {member})"
        else:
            side = {f"broker-{leader}", f"etcd-{member}"}
            event.target += f" + etcd-{member}"
        self.net.partition(side, [n for n in self.net.names if n not in side])
        self._deposed(event, leader, partition)

    def _deposed(self, event: FaultEvent, leader: int, partition: int) -> None:
        """Wait until the others elected another leader and saw the old one
        leave; then the old one, still reachable by clients, must not
        acknowledge acks=all."""
        if not wait_for(self._noticed(event.kind, leader, partition), self.notice_timeout):
            event.notes.append(f"no other leader within {self.notice_timeout:.0f}s: "
                               + self.describe_state())
            return
        event.detected = time.monotonic()
        if not wait_for(lambda: self._left(leader), self.notice_timeout):
            event.notes.append(f"broker {leader} still registered while cut off from etcd")
        self._probe(event, leader, partition, expect_refusal=True)

    def _flap(self, event: FaultEvent, leader: int) -> None:
        others = [n for n in self.net.names if n != f"broker-{leader}"]
        until = time.monotonic() + 2 * self.session_timeout_s
        flips = 0
        while time.monotonic() < until:
            self.net.partition({f"broker-{leader}"}, others)
            time.sleep(self.random.uniform(0.2, 1.5))  # the fault itself: links down this long
            self.net.heal()
            time.sleep(self.random.uniform(0.2, 1.5))  # and up this long
            flips += 1
        event.detected = time.monotonic()
        event.info.append(f"{flips} cuts")

    # -- probes ---------------------------------------------------------------------------

    def _probe(self, event: FaultEvent, node_id: int, partition: int,
               expect_refusal: bool) -> None:
        """An acks=all Produce of one record straight to `node_id` (which may
        not know it lost the partition); a finding if it is acknowledged."""
        sent = time.monotonic()
        answer = probe_acks_all(self.cluster.broker_address(node_id), self.topic, partition,
                                f"probe{event.number}:{partition}:0", PROBE_TIMEOUT_MS)
        took = time.monotonic() - sent
        self.probes[event.number] = answer
        event.info.append(f"acks=all sent to broker {node_id}: {answer} after {took:.2f}s")
        if answer != "no answer" and took > PROBE_TIMEOUT_MS / 1000 + PROBE_LATE_S:
            # The broker holds an acks=all no longer than the request's timeout
            # (Kafka's delayed produce expires then): a later answer is a finding.
            event.notes.append(f"broker {node_id} answered the acks=all probe {answer} after "
                               f"{took:.2f}s, past its {PROBE_TIMEOUT_MS} ms timeout")
        if expect_refusal and answer == "NONE":
            event.notes.append(f"broker {node_id} acknowledged an acks=all write to partition "
                               f"{partition} while {event.kind} cut it off")


def probe_acks_all(address: str, topic: str, partition: int, value: str,
                   timeout_ms: int = 3000) -> str:
    """The error name of an acks=all Produce of one record (NONE: acknowledged),
    or 'no answer' when none came within the request's timeout plus 5 s."""
    batch = bytes(build_batch([RecordSpec(key=None, value=value.encode(),
                                          timestamp=int(time.time() * 1000))]))
    request = pr.ProduceRequest(
        transactional_id=None, acks=-1, timeout=datetime.timedelta(milliseconds=timeout_ms),
        topic_data=(pr.TopicProduceData(name=TopicName(topic), partition_data=(
            pr.PartitionProduceData(index=partition, records=batch),)),))
    try:
        with WireClient(address, timeout=timeout_ms / 1000 + 5) as client:
            response = client.request(ApiKey.PRODUCE, 9, request)
    except (OSError, ConnectionError):
        return "no answer"
    return ErrorCode(int(response.responses[0].partition_responses[0].error_code)).name.upper()
