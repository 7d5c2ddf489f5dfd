"""Reassignment plans for `strom cluster reassign`, sans I/O: Kafka's JSON
format (what kafka-reassign-partitions.sh reads and writes, so plans go
either way) and the plan generator.

The generator moves topics onto a given set of brokers and moves as little
as it can, where Kafka's --generate places every partition afresh (moving
most replicas even when one broker is added): replicas already on a target
broker stay; a replica on a broker left out goes to the least loaded target
broker the partition does not use yet, in its place in the replica list;
then, while one broker holds two replicas more than another, one replica
moves from the most to the least loaded (a follower before a leader). So
adding a broker moves just its even share onto it, and leaving one out of
the list (decommissioning) moves only its replicas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Assignment = dict[tuple[str, int], list[int]]


class PlanError(ValueError):
    """A plan file that is not Kafka's reassignment JSON."""


def generate(current: Mapping[tuple[str, int], Sequence[int]], brokers: Sequence[int]
             ) -> Assignment:
    """A new assignment of `current`'s partitions onto `brokers`, each
    keeping its replication factor. ValueError if a partition has more
    replicas than there are brokers."""
    targets = sorted(set(brokers))
    if not targets:
        raise ValueError("no brokers to move onto")
    plan: Assignment = {}
    load = dict.fromkeys(targets, 0)
    for key in sorted(current):
        replicas = current[key]
        if len(replicas) > len(targets):
            raise ValueError(f"{key[0]}-{key[1]} has {len(replicas)} replicas but only "
                             f"{len(targets)} broker(s) were given")
        plan[key] = [b for b in replicas if b in load]
        for b in plan[key]:
            load[b] += 1
    # Replicas on brokers that are not targets go to the least loaded targets.
    for key in sorted(current):
        chosen = plan[key]
        for position, broker in enumerate(current[key]):
            if broker not in load:
                new = min((b for b in targets if b not in chosen), key=lambda b: (load[b], b))
                chosen.insert(min(position, len(chosen)), new)
                load[new] += 1
    # Then one replica at a time from the most to the least loaded broker,
    # until no broker holds two more than another: the fewest moves that
    # even the load out. A follower moves before a leader.
    for _ in range(sum(load.values())):
        high = max(targets, key=lambda b: (load[b], -b))
        low = min(targets, key=lambda b: (load[b], b))
        if load[high] - load[low] <= 1:
            break
        candidates = [(replicas.index(high) == 0, key) for key, replicas in plan.items()
                      if high in replicas and low not in replicas]
        if not candidates:
            break
        _, key = min(candidates)
        replicas = plan[key]
        replicas[replicas.index(high)] = low
        load[high] -= 1
        load[low] += 1
    return plan


def to_json(assignment: Mapping[tuple[str, int], Sequence[int]]) -> dict[str, Any]:
    """Kafka's reassignment JSON (version 1)."""
    return {"version": 1, "partitions": [
        {"topic": topic, "partition": partition, "replicas": list(replicas),
         "log_dirs": ["any"] * len(replicas)}
        for (topic, partition), replicas in sorted(assignment.items())]}


def from_json(text: str) -> Assignment:
    """The assignment a reassignment JSON file asks for."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("partitions"), list):
        raise PlanError('expected {"version": 1, "partitions": [...]}')
    plan: Assignment = {}
    for entry in document["partitions"]:
        try:
            topic, partition, replicas = entry["topic"], entry["partition"], entry["replicas"]
        except (KeyError, TypeError):
            raise PlanError(f"a partition needs topic, partition and replicas: {entry}") \
                from None
        if not isinstance(topic, str) or not isinstance(partition, int) \
                or not isinstance(replicas, list) \
                or not all(isinstance(r, int) for r in replicas):
            raise PlanError(f"bad partition entry: {entry}")
        if (topic, partition) in plan:
            raise PlanError(f"{topic}-{partition} is named twice")
        plan[(topic, partition)] = list(replicas)
    if not plan:
        raise PlanError("the plan moves no partitions")
    return plan


def moved(current: Mapping[tuple[str, int], Sequence[int]],
          plan: Mapping[tuple[str, int], Sequence[int]]) -> int:
    """Replicas the plan puts on brokers that do not hold them yet."""
    return sum(len(set(replicas) - set(current.get(key, ()))) for key, replicas in plan.items())
