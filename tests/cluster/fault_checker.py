"""The fault test of issue 14: real clients against a local cluster while
faults are injected, then a verdict on what the clients were promised.

Idempotent acks=all producers write sequence-numbered records to a
replicated topic and a consumer group reads meanwhile, while
fault_injector.py kills, pauses and restarts brokers and etcd members. After
the faults the whole topic is read back from offset 0, and the checker
verifies that every acknowledged record is there exactly once, at the offset
its acknowledgement named, in per-(producer, partition) order, and that the
group was delivered every acknowledged record and never a record the log does
not hold. It prints the faults injected and the counts of acknowledged, lost
and duplicated records, with the fault timeline around anything lost.

    .venv/bin/python -m tests.cluster.fault_checker --faults 60

(the pytest test, tests/cluster/test_faults.py, runs fewer faults by default)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from tests.cluster.etcd_process import etcd_binary
from tests.cluster.fault_clients import (
    Acked,
    GroupReader,
    Writer,
    committed_offsets,
    parse_value,
    read_topic,
)
from tests.cluster.fault_injector import KINDS, Cluster, FaultEvent, FaultInjector, wait_for
from tests.cluster.local_cluster import LocalCluster
from tests.cluster.netns import Netns, lab
from tests.cluster.partition_faults import PARTITION_KINDS, PartitionInjector
from tests.cluster.slow_disk import DISK_KINDS, SlowDisks

TOPIC = "faults"
GROUP = "fault-checker"


@dataclass
class RunConfig:
    faults: int = 50
    kinds: Sequence[str] = KINDS
    partitions: int = 6
    replication: int = 3
    writers: int = 3
    readers: int = 2
    rate: float = 100.0  # records a second per writer
    session_timeout_ms: int = 3000
    replica_lag_ms: int = 3000
    etcd_members: int = 3
    heal_timeout: float = 60.0
    acks: str = "all"
    #: The next fault as soon as the processes run again (fault_injector.py).
    overlap: bool = False
    #: Stop injecting at the first fault the cluster did not handle (not
    #: noticed, not whole again): the records are still checked. The pytest
    #: test stops; the command line goes on with --keep-going.
    stop_on_finding: bool = True
    #: "strom", or "kafka": the baseline (kafka_cluster.py; needs namespaces).
    target: str = "strom"


@dataclass
class Verdict:
    faults: int = 0
    fault_kinds: Counter[str] = field(default_factory=Counter)
    acked: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    fatal: list[str] = field(default_factory=list)
    unresolved: int = 0
    no_offset: int = 0  # acknowledged without an offset (placement not checkable)
    acked_without_offset: list[Acked] = field(default_factory=list)
    in_log: int = 0
    lost: list[Acked] = field(default_factory=list)
    misplaced: list[tuple[Acked, list[tuple[int, int]]]] = field(default_factory=list)
    duplicated: list[tuple[str, list[tuple[int, int]]]] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    group_missed: list[Acked] = field(default_factory=list)
    group_phantom: list[tuple[int, int, str]] = field(default_factory=list)
    group_redelivered: int = 0
    group_errors: Counter[str] = field(default_factory=Counter)
    #: Partitions whose committed offset is below one the coordinator acknowledged.
    commits_lost: list[str] = field(default_factory=list)
    commits_checked: int = 0  # partitions with an acknowledged commit
    fault_notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: The faults as injected, and each one's longest pause between acknowledgements.
    events: list[FaultEvent] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.misplaced or self.duplicated or self.out_of_order
                    or self.group_missed or self.group_phantom or self.commits_lost)

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.fault_kinds.items()))
        return (f"faults injected: {self.faults} ({kinds}); acknowledged: {self.acked}; "
                f"lost: {len(self.lost)}; duplicated: {len(self.duplicated)}; "
                f"misplaced: {len(self.misplaced)}; out of order: {len(self.out_of_order)}; "
                f"group missed: {len(self.group_missed)}; group phantom: "
                f"{len(self.group_phantom)}; group redelivered: {self.group_redelivered}; "
                f"committed offsets lost: {len(self.commits_lost)} (of "
                f"{self.commits_checked} partitions); "
                f"records in log: {self.in_log}; failed sends: {dict(self.failed)}; "
                f"producer fatal errors: {len(self.fatal)}; unresolved: {self.unresolved}; "
                f"acknowledged without offset: {self.no_offset}; "
                f"faults with findings: {len(self.fault_notes)}; {self.seconds:.0f}s")


def judge(acked: list[Acked], log: dict[int, list[tuple[int, str]]],
          group_seen: list[tuple[int, int, str]]) -> Verdict:
    """The verdict on the records alone (faults are added by the caller)."""
    verdict = Verdict(acked=len(acked))
    verdict.acked_without_offset = [record for record in acked if record.offset < 0]
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)
    at: dict[tuple[int, int], str] = {}
    for partition, records in log.items():
        last_seq: dict[str, int] = {}
        for offset, value in records:
            verdict.in_log += 1
            where[value].append((partition, offset))
            at[(partition, offset)] = value
            writer, _p, seq = parse_value(value)
            if seq <= last_seq.get(writer, -1):
                verdict.out_of_order.append(
                    f"partition {partition} offset {offset}: {value} after seq "
                    f"{last_seq[writer]} of {writer}")
            last_seq[writer] = max(seq, last_seq.get(writer, -1))
    verdict.duplicated = [(v, places) for v, places in where.items() if len(places) > 1]
    for record in acked:
        places = where.get(record.value)
        if not places:
            verdict.lost.append(record)
        elif record.offset >= 0 and (record.partition, record.offset) not in places:
            verdict.misplaced.append((record, places))
    deliveries = Counter((p, o) for p, o, _v in group_seen)
    verdict.group_redelivered = sum(n - 1 for n in deliveries.values())
    seen = {(p, o, v) for p, o, v in group_seen}
    verdict.group_phantom = sorted((p, o, v) for p, o, v in seen if at.get((p, o)) != v)
    seen_values = {(p, v) for p, _o, v in group_seen}
    verdict.group_missed = [r for r in acked if (r.partition, r.offset, r.value) not in seen
                            and (r.offset >= 0 or (r.partition, r.value) not in seen_values)]
    return verdict


def event_pauses(acked: list[Acked],
                 events: list[FaultEvent]) -> list[tuple[FaultEvent, float, int]]:
    """Each fault's longest pause between acknowledgements on one partition
    while it lasted (from its start until the cluster was whole, or the next
    fault), and that partition: what the fault cost the producers."""
    by_partition: dict[int, list[float]] = defaultdict(list)
    for record in acked:
        by_partition[record.partition].append(record.at)
    last = max((record.at for record in acked), default=0.0)
    out = []
    for event, following in zip(events, [*events[1:], None], strict=True):
        # Overlapping faults are never whole in between: up to the next one
        # (the last one not past the writers' last acknowledgement).
        end = event.healed if event.healed is not None else \
            following.started if following is not None else min(event.started + 60, last)
        longest, where = 0.0, -1
        for partition, times in sorted(by_partition.items()):
            window = [event.started] + [t for t in times if event.started < t <= end] + [end]
            gap = max(b - a for a, b in zip(window, window[1:], strict=False))
            if gap > longest:
                longest, where = gap, partition
        out.append((event, longest, where))
    return out


def write_pauses(acked: list[Acked], events: list[FaultEvent]) -> dict[str, list[float]]:
    """event_pauses per fault kind."""
    pauses: dict[str, list[float]] = defaultdict(list)
    for event, longest, _partition in event_pauses(acked, events):
        pauses[event.kind].append(longest)
    return dict(pauses)


def describe_pauses(pauses: dict[str, list[float]]) -> str:
    return "; ".join(f"{kind}: median {statistics.median(values):.2f}s, max {max(values):.2f}s"
                     for kind, values in sorted(pauses.items()))


def check_commits(readers: list[GroupReader], committed: dict[int, int]) -> list[str]:
    """A commit the coordinator acknowledged must survive its failovers: the
    group's committed offset is never below the highest acknowledged one."""
    acknowledged: dict[int, int] = {}
    for reader in readers:
        for partition, offset in reader.committed.items():
            acknowledged[partition] = max(acknowledged.get(partition, -1), offset)
    return [f"partition {p}: committed {committed.get(p, -1)} < acknowledged commit {offset}"
            for p, offset in sorted(acknowledged.items()) if committed.get(p, -1) < offset]


def explain(verdict: Verdict, events: list[FaultEvent], origin: float, limit: int = 20) -> str:
    """Each finding with the faults just before and after it."""
    def around(t: float) -> str:
        before = [e for e in events if e.started <= t]
        after = [e for e in events if e.started > t]
        parts = []
        if before:
            parts.append(f"after #{before[-1].number} {before[-1].kind} "
                         f"({t - before[-1].started:.2f}s later)")
        if after:
            parts.append(f"before #{after[0].number} {after[0].kind}")
        return ", ".join(parts) or "no fault yet"
    lines = []
    for record in verdict.lost[:limit]:
        lines.append(f"LOST partition {record.partition} offset {record.offset} {record.value}"
                     f" acked at {record.at - origin:.2f}s, {around(record.at)}")
    for record, places in verdict.misplaced[:limit]:
        lines.append(f"MISPLACED {record.value} acked at partition {record.partition} offset "
                     f"{record.offset} ({record.at - origin:.2f}s, {around(record.at)}), "
                     f"found at {places}")
    for value, places in verdict.duplicated[:limit]:
        lines.append(f"DUPLICATED {value} at {places}")
    lines += [f"OUT OF ORDER {text}" for text in verdict.out_of_order[:limit]]
    for record in verdict.group_missed[:limit]:
        lines.append(f"GROUP MISSED partition {record.partition} offset {record.offset} "
                     f"{record.value}")
    lines += [f"GROUP PHANTOM partition {p} offset {o} {v}"
              for p, o, v in verdict.group_phantom[:limit]]
    lines += [f"COMMIT LOST {text}" for text in verdict.commits_lost[:limit]]
    lines += [f"FAULT FINDING {note}" for note in verdict.fault_notes[:limit]]
    lines += [f"(acknowledged without offset: partition {r.partition} {r.value} at "
              f"{r.at - origin:.2f}s, {around(r.at)})"
              for r in verdict.acked_without_offset[:limit]]
    lines += [f"PRODUCER FATAL {text}" for text in verdict.fatal[:limit]]
    return "\n".join(lines)


def run(directory: Path, etcd: str, config: RunConfig,
        say: Callable[[str], None] = print, net: Netns | None = None,
        disks: SlowDisks | None = None) -> Verdict:
    """With `net` (a lab with a namespace per broker-ID and etcd-N), every
    process runs in its namespace and network partitions can be injected;
    with `disks`, each broker's data dir is a disk of its own that the
    slow-disk fault throttles."""
    started = time.monotonic()
    if net is None and set(config.kinds) & set(PARTITION_KINDS):
        raise ValueError("network partitions need the processes in namespaces (net)")
    if disks is None and set(config.kinds) & set(DISK_KINDS):
        raise ValueError("a slow disk needs the data dirs on disks of their own (disks)")
    cluster: Cluster
    if config.target == "kafka":
        from tests.cluster.kafka_cluster import KafkaNetCluster
        if net is None:
            raise ValueError("the Kafka baseline runs in namespaces (net)")
        kafka = KafkaNetCluster(directory, net, config.session_timeout_ms,
                                config.replica_lag_ms)
        if disks is not None:
            kafka.kafka.before_format = lambda n, path: disks.mount(f"broker-{n}", path)
        cluster = kafka
    else:
        cluster = LocalCluster(directory, etcd, etcd_members=config.etcd_members,
                               session_timeout_ms=config.session_timeout_ms,
                               replica_lag_ms=config.replica_lag_ms, net=net)
        if disks is not None:
            for n in cluster.node_ids:
                disks.mount(f"broker-{n}", cluster.data_dir(n))
    writers: list[Writer] = []
    readers: list[GroupReader] = []
    try:
        cluster.run("start-all")
        bootstrap = cluster.bootstrap()
        injector = FaultInjector(cluster, TOPIC, config.partitions, config.replication,
                                 config.session_timeout_ms / 1000, config.heal_timeout, say,
                                 overlap=config.overlap, disks=disks) \
            if net is None else PartitionInjector(
                cluster, net, TOPIC, config.partitions, config.replication,
                config.session_timeout_ms / 1000, config.heal_timeout, say,
                overlap=config.overlap, disks=disks)
        assert wait_for(lambda: (s := injector.view.any_snapshot()) is not None
                        and s.brokers == set(cluster.node_ids), 60), "brokers did not register"
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
        admin.create_topics([NewTopic(
            TOPIC, config.partitions, config.replication,
            config={"min.insync.replicas": str(min(2, config.replication))})])[TOPIC].result(60)
        assert injector.wait_whole(), "the topic is not whole: " + injector.describe_state()
        readers = [GroupReader(str(i), bootstrap, TOPIC, GROUP)
                   for i in range(config.readers)]
        writers = [Writer(str(i), bootstrap, TOPIC, config.partitions, config.rate,
                          request_timeout_ms=10_000, acks=config.acks)
                   for i in range(config.writers)]
        for thread in [*readers, *writers]:
            thread.start()
        assert wait_for(lambda: all(len(w.stats.acked) >= 20 for w in writers), 60), \
            "writers got no acknowledgements before the faults"
        say(f"cluster up, writing; injecting {config.faults} faults")
        for number in range(config.faults):
            event = injector.inject(number, config.kinds[number % len(config.kinds)])
            if event.notes and config.stop_on_finding:
                say(f"stopping after fault #{number}: it was not handled (--keep-going "
                    "goes on)")
                break
        if config.overlap and not injector.wait_whole():
            injector.repair()
            if not injector.wait_whole():
                say("not whole after the last fault: " + injector.describe_state())
        # Writing resumed after the last fault: every writer is acknowledged again.
        last = time.monotonic()
        if not wait_for(lambda: all(w.stats.acked and w.stats.acked[-1].at > last
                                    for w in writers), 60):
            origin = injector.events[0].started if injector.events else started
            stalled = [f"writer {w.writer_name}: last acknowledgement at "
                       f"{w.stats.acked[-1].at - origin:.2f}s, partition "
                       f"{w.stats.acked[-1].partition}" if w.stats.acked else
                       f"writer {w.writer_name}: never acknowledged"
                       for w in writers if not (w.stats.acked and w.stats.acked[-1].at > last)]
            say("writers were not acknowledged again within 60s after the last fault: "
                + "; ".join(stalled))
        for writer in writers:
            writer.stopping.set()
        for writer in writers:
            writer.join(writer.flush_timeout + 30)
        acked = sorted((a for w in writers for a in w.stats.acked), key=lambda a: a.at)
        ends = _ends(acked)
        assert wait_for(lambda: _group_reached(readers, ends), 60, 0.2), \
            "the group did not read up to the last acknowledged offsets within 60s"
        for reader in readers:
            reader.stopping.set()
        for reader in readers:
            reader.join(30)
        log = read_topic(bootstrap, TOPIC, config.partitions, timeout=60)
        verdict = judge(acked, log, [seen for r in readers for seen in r.seen])
        verdict.commits_lost = check_commits(
            readers, committed_offsets(bootstrap, TOPIC, GROUP, config.partitions, 30))
        verdict.commits_checked = len({p for r in readers for p in r.committed})
        verdict.faults = len(injector.events)
        verdict.fault_kinds = Counter(e.kind for e in injector.events)
        verdict.fault_notes = [f"#{e.number} {e.kind} {e.target}: {note}"
                               for e in injector.events for note in e.notes]
        for writer in writers:
            verdict.failed.update(writer.stats.failed)
            verdict.fatal += writer.stats.fatal
            verdict.unresolved += writer.stats.unresolved
            verdict.no_offset += writer.stats.no_offset
        for reader in readers:
            verdict.group_errors.update(reader.errors)
        verdict.seconds = time.monotonic() - started
        origin = injector.events[0].started if injector.events else started
        verdict.events = list(injector.events)
        verdict.pauses = [gap for _e, gap, _p in event_pauses(acked, injector.events)]
        say(verdict.summary())
        say("longest pause between acknowledgements on a partition during a fault: "
            + describe_pauses(write_pauses(acked, injector.events)))
        longest = sorted(event_pauses(acked, injector.events), key=lambda e: -e[1])[:3]
        say("longest: " + "; ".join(f"#{e.number} {e.kind} {e.target}: {gap:.2f}s on partition "
                                    f"{p}" for e, gap, p in longest))
        details = explain(verdict, injector.events, origin)
        if details:
            say(details)
        return verdict
    finally:
        for writer in writers:
            writer.stopping.set()
        for reader in readers:
            reader.stopping.set()
        if net is not None:
            net.heal()  # a controlled shutdown needs etcd
        if disks is not None:
            disks.heal()
        cluster.stop_all()


def _ends(acked: list[Acked]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for record in acked:
        ends[record.partition] = max(ends.get(record.partition, -1), record.offset)
    return ends


def _group_reached(readers: list[GroupReader], ends: dict[int, int]) -> bool:
    best: dict[int, int] = {}
    for reader in readers:
        for partition, offset, _value in list(reader.seen):
            best[partition] = max(best.get(partition, -1), offset)
    return all(best.get(p, -1) >= end for p, end in ends.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"comma-separated, in turn (default {','.join(KINDS)})")
    parser.add_argument("--replication", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--session-timeout-ms", type=int, default=3000)
    parser.add_argument("--replica-lag-ms", type=int, default=3000)
    parser.add_argument("--acks", default="all", choices=["all", "1"],
                        help="1 (not idempotent) is a negative control: it should lose records")
    parser.add_argument("--overlap", action="store_true",
                        help="inject the next fault as soon as every process runs again, "
                             "without waiting for full ISRs (availability is then not checked)")
    parser.add_argument("--keep-going", action="store_true",
                        help="go on injecting after a fault the cluster did not handle")
    parser.add_argument("--dir", type=Path, help="cluster directory (default: a temp dir)")
    parser.add_argument("--netns", action="store_true",
                        help="each process in a network namespace of its own (implied by "
                             f"the partition kinds: {','.join(PARTITION_KINDS)})")
    args = parser.parse_args(argv)
    etcd = etcd_binary()
    if etcd is None:
        print("no etcd binary: run scripts/install-etcd.sh", file=sys.stderr)
        return 2
    if args.dir is not None and args.dir.exists() and any(args.dir.iterdir()):
        print(f"{args.dir} is not empty: the checker starts a new cluster", file=sys.stderr)
        return 2
    kinds = tuple(args.kinds.split(","))
    partitions = bool(set(kinds) & set(PARTITION_KINDS))
    config = RunConfig(faults=args.faults, kinds=kinds, replication=args.replication,
                       partitions=args.partitions, session_timeout_ms=args.session_timeout_ms,
                       replica_lag_ms=args.replica_lag_ms,
                       etcd_members=3 if "etcd-kill" in kinds or partitions else 1,
                       stop_on_finding=not args.keep_going, acks=args.acks,
                       overlap=args.overlap)
    verdict = run_in(args.dir, etcd, config, args.netns or partitions,
                     say=lambda text: print(text, flush=True))
    return 0 if verdict.ok else 1


def run_in(directory: Path | None, etcd: str, config: RunConfig, netns: bool,
           say: Callable[[str], None]) -> Verdict:
    """run() in a temporary directory (unless given), in namespaces if asked."""
    kept = directory is not None
    with tempfile.TemporaryDirectory(prefix="strom-faults-") as tmp, \
            SlowDisks(directory / "disks" if directory is not None else Path(tmp) / "disks",
                      keep=kept) as disks:
        directory = directory or Path(tmp) / "cluster"
        slow = disks if set(config.kinds) & set(DISK_KINDS) else None
        if not netns:
            return run(directory, etcd, config, say=say, disks=slow)
        names = [f"etcd-{n}" for n in range(1, config.etcd_members + 1)
                 if config.target == "strom"] + [f"broker-{n}" for n in range(1, 4)]
        with lab(names) as net:
            return run(directory, etcd, config, say=say, net=net, disks=slow)


if __name__ == "__main__":
    sys.exit(main())
