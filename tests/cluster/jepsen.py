"""`make jepsen`: a Jepsen-style run of the fault checker (issue 15). Three
brokers and a three-member etcd, each in a network namespace of its own,
while idempotent acks=all producers and a consumer group run; faults in turn:
kill -9 of a partition leader and of the controller, SIGSTOP of a leader past
its lease, the loss of etcd's raft leader, and network partitions (a leader
cut off from its followers, from etcd, a minority side, flapping links, a
slow link) and a leader's slow disk (slow_disk.py: its data dir's device
throttled in the block layer).
After each fault the run waits until the cluster is whole again. Then the
topic is read back and judged (tests/cluster/fault_checker.py), and a table
is printed: faults by kind, how long each took to notice and to recover
(from the fault lifted until every partition is led with its full ISR
again), the longest pause between acknowledgements it caused, and records
acknowledged / lost / duplicated, ending with one line

    jepsen: F faults, A acknowledged, L lost, D duplicated

    .venv/bin/python -m tests.cluster.jepsen --faults 100

The same run against three Apache Kafka 4.4 KRaft nodes is the baseline
(kafka_cluster.py: what stands for etcd there): --target strom,kafka (or
JEPSEN_TARGET) runs each in turn, prints each one's table, and ends with one
such line per system, named (`jepsen strom: ...`, `jepsen kafka: ...`).

Without namespaces (not root, no nftables) the network partitions are left
out, with the reason printed (and Kafka is not run); without slow disks
(slow_disk.unavailable()) the slow disk is."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from tests.cluster import netns
from tests.cluster.etcd_process import etcd_binary
from tests.cluster.fault_checker import RunConfig, Verdict, run_in
from tests.cluster.fault_injector import KINDS
from tests.cluster.partition_faults import PARTITION_KINDS
from tests.cluster.slow_disk import DISK_KINDS
from tests.cluster.slow_disk import unavailable as no_slow_disks

#: Crashes and partitions interleaved, so that no two partitions follow each other.
MIXED = ("leader-kill", "isolate-etcd", "leader-pause", "isolate-followers",
         "controller-kill", "minority", "etcd-kill", "flap", "slow-link", "slow-disk")
TARGETS = ("strom", "kafka")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of non-empty `values`."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 50):.2f} / {percentile(values, 99):.2f}"


def table(verdict: Verdict, system: str | None = None) -> str:
    """Faults by kind with their costs (seconds, p50 / p99), then the totals."""
    noticed: dict[str, list[float]] = defaultdict(list)
    recovery: dict[str, list[float]] = defaultdict(list)
    pauses: dict[str, list[float]] = defaultdict(list)
    count: dict[str, int] = defaultdict(int)
    for event, pause in zip(verdict.events, verdict.pauses, strict=True):
        count[event.kind] += 1
        pauses[event.kind].append(pause)
        if event.detected is not None:
            noticed[event.kind].append(event.detected - event.started)
        if event.healed is not None and event.ended is not None:
            recovery[event.kind].append(max(0.0, event.healed - event.ended))
    rows = [("fault", "n", "noticed s p50/p99", "recovery s p50/p99",
             "write pause s p50/p99")]
    for kind in sorted(count):
        rows.append((kind, str(count[kind]), _cell(noticed[kind]), _cell(recovery[kind]),
                     _cell(pauses[kind])))
    everything = [v for values in recovery.values() for v in values]
    rows.append(("all", str(len(verdict.events)), _cell([v for vs in noticed.values()
                                                          for v in vs]),
                 _cell(everything), _cell(verdict.pauses)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             .rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.append(f"records acknowledged {verdict.acked}, lost {len(verdict.lost)}, "
                 f"duplicated {len(verdict.duplicated)}, misplaced {len(verdict.misplaced)}, "
                 f"out of order {len(verdict.out_of_order)}, missed by the group "
                 f"{len(verdict.group_missed)}, committed offsets gone back "
                 f"{len(verdict.commits_lost)}; faults the cluster did not handle "
                 f"{len(verdict.fault_notes)}; sends failed (never acknowledged) "
                 f"{sum(verdict.failed.values())} {dict(verdict.failed) or ''}".rstrip())
    lines.append(final_line(verdict, system))
    return "\n".join(lines)


def final_line(verdict: Verdict, system: str | None = None) -> str:
    name = "jepsen" if system is None else f"jepsen {system}"
    return (f"{name}: {verdict.faults} faults, {verdict.acked} acknowledged, "
            f"{len(verdict.lost)} lost, {len(verdict.duplicated)} duplicated")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--kinds", default=",".join(MIXED),
                        help=f"comma-separated, in turn (default {','.join(MIXED)})")
    parser.add_argument("--session-timeout-ms", type=int, default=3000)
    parser.add_argument("--replica-lag-ms", type=int, default=3000)
    parser.add_argument("--dir", type=Path,
                        help="cluster directory, kept with every process's log (default: a "
                             "temporary one); one subdirectory per system")
    parser.add_argument("--target", default=os.environ.get("JEPSEN_TARGET") or "strom,kafka",
                        help="comma-separated systems, run in turn: strom, kafka (the "
                             "baseline); default $JEPSEN_TARGET or strom,kafka")
    args = parser.parse_args(argv)
    etcd = etcd_binary()
    if etcd is None:
        print("no etcd binary: run scripts/install-etcd.sh", file=sys.stderr)
        return 2
    kinds = tuple(args.kinds.split(","))
    unknown = set(kinds) - set(KINDS) - set(PARTITION_KINDS) - set(DISK_KINDS)
    targets = tuple(args.target.split(","))
    if unknown or set(targets) - set(TARGETS):
        print(f"unknown fault kinds or targets: {sorted(unknown)} "
              f"{sorted(set(targets) - set(TARGETS))}", file=sys.stderr)
        return 2
    reason = netns.unavailable()
    if reason is not None:
        print(f"no network partitions and no Kafka baseline: {reason}", flush=True)
        kinds = tuple(k for k in kinds if k not in PARTITION_KINDS)
        targets = tuple(t for t in targets if t != "kafka")
    disk_reason = no_slow_disks()
    if disk_reason is not None:
        print(f"no slow disks: {disk_reason}", flush=True)
        kinds = tuple(k for k in kinds if k not in DISK_KINDS)
    if "kafka" in targets:
        from tests.cluster.kafka_cluster import unavailable as no_kafka
        kafka_reason = no_kafka()
        if kafka_reason is not None:
            print(f"no Kafka baseline: {kafka_reason}", flush=True)
            targets = tuple(t for t in targets if t != "kafka")
    if args.dir is not None and args.dir.exists() and any(args.dir.iterdir()):
        print(f"{args.dir} is not empty: the run starts a new cluster", file=sys.stderr)
        return 2
    verdicts = {}
    for target in targets:
        config = RunConfig(faults=args.faults, kinds=kinds, etcd_members=3,
                           session_timeout_ms=args.session_timeout_ms,
                           replica_lag_ms=args.replica_lag_ms, stop_on_finding=False,
                           target=target)
        print(f"== {target}: {args.faults} faults ({', '.join(kinds)})", flush=True)
        verdicts[target] = run_in(None if args.dir is None else args.dir / target, etcd,
                                  config, netns=reason is None,
                                  say=lambda text: print(text, flush=True))
        print()
        print(f"== {target}")
        print(table(verdicts[target], target), flush=True)
    print()
    for target, verdict in verdicts.items():
        print(final_line(verdict, target), flush=True)
    return 0 if all(v.ok and not v.fatal for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
