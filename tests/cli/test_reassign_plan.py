"""The reassignment plan generator and Kafka's plan JSON (cli/reassign_plan.py),
sans I/O: a new broker gets its even share and no more moves than that, a
decommissioned broker's replicas alone move, leaders that stay stay first."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from strom.cli.reassign_plan import PlanError, from_json, generate, moved, to_json

# Six partitions at replication factor 2 over brokers 1-3 (Kafka's striping).
CURRENT = {("t", p): [1 + p % 3, 1 + (p + 1) % 3] for p in range(6)}


def _load(plan: dict[tuple[str, int], list[int]]) -> Counter[int]:
    return Counter(b for replicas in plan.values() for b in replicas)


def test_adding_a_broker_moves_just_its_share_onto_it() -> None:
    plan = generate(CURRENT, [1, 2, 3, 4])
    assert _load(plan) == {1: 3, 2: 3, 3: 3, 4: 3}
    assert moved(CURRENT, plan) == 3
    assert all(len(set(r)) == 2 for r in plan.values())


def test_decommissioning_moves_only_the_leaving_brokers_replicas() -> None:
    plan = generate(CURRENT, [2, 3])
    assert all(set(r) == {2, 3} for r in plan.values())
    assert moved(CURRENT, plan) == sum(1 in r for r in CURRENT.values())
    # A leader that stays is still the first (preferred) replica.
    for key, replicas in CURRENT.items():
        if replicas[0] != 1:
            assert plan[key][0] == replicas[0]


def test_the_same_brokers_change_nothing() -> None:
    assert generate(CURRENT, [1, 2, 3]) == CURRENT


def test_too_few_brokers() -> None:
    with pytest.raises(ValueError, match="only 1 broker"):
        generate(CURRENT, [1])


def test_kafkas_json_both_ways() -> None:
    document = to_json({("t", 0): [2, 3]})
    assert document == {"version": 1, "partitions": [
        {"topic": "t", "partition": 0, "replicas": [2, 3], "log_dirs": ["any", "any"]}]}
    assert from_json(json.dumps(document)) == {("t", 0): [2, 3]}
    for bad in ("nope", "{}", '{"partitions": []}', '{"partitions": [{"topic": "t"}]}',
                '{"partitions": [{"topic": "t", "partition": 0, "replicas": ["x"]}]}'):
        with pytest.raises(PlanError):
            from_json(bad)
