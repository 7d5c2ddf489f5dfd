"""How long a new classic group takes to assign every partition, and to reassign
after a member leaves (issue 19).

M librdkafka members (`rdkgen group --first-join`, one thread each) subscribe
at once to a fresh P-partition topic as a fresh group; a first join is the
time until every partition is assigned and every member holds some. Each of
ROUNDS rounds times JOINS first joins (5 unless given) against each broker
named, strom (`bench/brokers.py` Strom, as `bench/run.py` runs it) or Apache
Kafka 4.4 (Kafka), both with group.initial.rebalance.delay.ms=0; with several
brokers all are started first and the joins alternate between them, so they
share the machine's noise (after one untimed join on each, which warms
Kafka's JVM). It prints every join, each round's median and its spread, then
one JSON line with every value:

    .venv/bin/python bench/group_first_join.py strom 8 16 3
    .venv/bin/python bench/group_first_join.py kafka,strom 50 500 3 5 --leave

With --leave, after each join one member closes (`--leave --leave-after S`,
S stepping through fleet.GROUP_LEAVE_AFTER_S, one per quarter of librdkafka's
3 s heartbeat interval) and the time until the other members hold every
partition is printed too (`leave_rebalance_s`).

A first join is bimodal on both brokers: one generation (~0.2 s) when every
member's JoinGroup lands in the first one, two (~2 s, librdkafka's pacing of
its next JoinGroup) when one arrives after it. A leave is paced by the
members' next Heartbeat, 0-3 s after it (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from brokers import Broker, Kafka, Strom
from common import median
from fleet import GROUP_LEAVE_AFTER_S, FirstJoin, first_join, first_join_leave

BROKERS: dict[str, type[Broker]] = {"kafka": Kafka, "strom": Strom}


def _one(broker: Broker, name: str, members: int, partitions: int,
         leave_after: float | None) -> FirstJoin:
    broker.create_topic(name, partitions)
    time.sleep(1)  # leaders settle before the clock starts, on both brokers
    try:
        if leave_after is None:
            return FirstJoin(first_join(broker.bootstrap, name, name, members))
        return first_join_leave(broker.bootstrap, name, name, leave_after, members)
    finally:
        broker.delete_topic(name)


def _summary(values: list[float]) -> str:
    return f"median {median(values):.3f} s, min {min(values):.3f}, max {max(values):.3f}"


def main(which: list[str], members: int, partitions: int, rounds: int, joins: int = 5,
         leave: bool = False) -> None:
    root = Path(tempfile.mkdtemp(prefix="group-first-join-"))
    brokers: dict[str, Broker] = {}
    out: dict[str, dict[str, list[list[float]]]] = {
        b: {"rebalance_s": [], "leave_rebalance_s": []} for b in which}
    try:
        for b in which:
            brokers[b] = BROKERS[b](root, 1, 1 << 30)
            brokers[b].start()
        if len(which) > 1:
            for broker in brokers.values():
                _one(broker, "first-join-warm-up", members, partitions,
                     GROUP_LEAVE_AFTER_S[0] if leave else None)
        print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
        for r in range(rounds):
            per: dict[str, tuple[list[float], list[float]]] = {b: ([], []) for b in which}
            for j in range(joins):
                after = GROUP_LEAVE_AFTER_S[j % len(GROUP_LEAVE_AFTER_S)] if leave else None
                for b, broker in brokers.items():
                    got = _one(broker, f"first-join-{r}-{j}", members, partitions, after)
                    per[b][0].append(got.rebalance_s)
                    line = (f"{b} members={members} partitions={partitions} round={r} "
                            f"join={j}: {got.rebalance_s:.3f} s")
                    if got.leave_rebalance_s is not None:
                        per[b][1].append(got.leave_rebalance_s)
                        line += f", leave after {after} s: {got.leave_rebalance_s:.3f} s"
                    print(f"{line} (load {os.getloadavg()[0]:.2f})", flush=True)
            for b, (times, leaves) in per.items():
                out[b]["rebalance_s"].append(times)
                print(f"{b} round={r}: joins {_summary(times)}, "
                      f"{sum(t < 1.0 for t in times)} of {joins} under 1 s", flush=True)
                if leaves:
                    out[b]["leave_rebalance_s"].append(leaves)
                    print(f"{b} round={r}: leaves {_summary(leaves)}", flush=True)
    finally:
        for broker in brokers.values():
            broker.stop()
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    for b in which:
        result: dict[str, Any] = {"broker": b, "members": members, "partitions": partitions,
                                  **out[b],
                                  "round_medians_s": [median(v) for v in out[b]["rebalance_s"]]}
        if leave:
            result["leave_round_medians_s"] = [median(v) for v in out[b]["leave_rebalance_s"]]
        print(json.dumps(result))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--leave"]
    main(args[0].split(","), int(args[1]), int(args[2]), int(args[3]),
         int(args[4]) if len(args) > 4 else 5, leave="--leave" in sys.argv[1:])
