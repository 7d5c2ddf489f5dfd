"""The fault test of issue 14 (Proof): idempotent acks=all producers and a
consumer group on a three-broker cluster with a three-member etcd while
leaders are killed and paused past their lease, the controller is killed and
etcd's leader is killed; every acknowledged record must be read back exactly
once, in order (tests/cluster/fault_checker.py). STROM_FAULTS sets the number
of faults (default 12); the issue's goal is 0 lost, 0 duplicated over at
least 50: `python -m tests.cluster.fault_checker --faults 60` runs that."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cluster.fault_checker import RunConfig, check_commits, judge, run, write_pauses
from tests.cluster.fault_clients import Acked, GroupReader
from tests.cluster.fault_injector import FaultEvent

FAULTS = int(os.environ.get("STROM_FAULTS", 12))


# Each fault takes a few seconds to notice and heal; a fault not handled
# stops the run (the checker still reads everything back).
@pytest.mark.timeout(max(300, 20 * FAULTS + 180))
def test_faults_lose_and_duplicate_nothing(etcd_bin: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    faults = FAULTS
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        with capsys.disabled():
            print(text, flush=True)

    verdict = run(tmp_path / "cluster", etcd_bin, RunConfig(faults=faults), say=say)
    assert verdict.ok, "\n".join(lines)
    assert verdict.fatal == [], "\n".join(lines)
    assert verdict.fault_notes == [], "\n".join(lines)
    assert verdict.faults == faults
    assert verdict.acked > 0


def _acked(partition: int, offset: int, value: str) -> Acked:
    return Acked(partition, offset, value, 0.0)


def test_checker_finds_every_kind_of_violation() -> None:
    """The checker itself, on made-up logs: it must see each violation."""
    acked = [_acked(0, 0, "w.0:0:0"), _acked(0, 1, "w.0:0:1"), _acked(0, 2, "w.0:0:2"),
             _acked(1, 0, "w.0:1:0"), _acked(1, 1, "w.0:1:1")]
    log = {0: [(0, "w.0:0:0"), (1, "w.0:0:1"), (2, "w.0:0:2")],
           1: [(0, "w.0:1:0"), (1, "w.0:1:1")]}
    group = [(0, 0, "w.0:0:0"), (0, 1, "w.0:0:1"), (0, 2, "w.0:0:2"), (0, 2, "w.0:0:2"),
             (1, 0, "w.0:1:0"), (1, 1, "w.0:1:1")]
    clean = judge(acked, log, group)
    assert clean.ok and clean.acked == 5 and clean.in_log == 5
    assert clean.group_redelivered == 1  # at-least-once redelivery is not a violation

    lost = judge(acked, {0: log[0], 1: [(0, "w.0:1:0")]}, group)
    assert [r.value for r in lost.lost] == ["w.0:1:1"] and not lost.ok

    duplicated = judge(acked, {0: [*log[0], (3, "w.0:0:2")], 1: log[1]}, group)
    assert [v for v, _ in duplicated.duplicated] == ["w.0:0:2"] and not duplicated.ok

    # Truncated and written again elsewhere: present once, but not where acknowledged.
    moved = judge(acked, {0: [(0, "w.0:0:0"), (1, "w.0:0:2"), (2, "w.0:0:1")],
                          1: log[1]}, [])
    assert {r.value for r, _ in moved.misplaced} == {"w.0:0:1", "w.0:0:2"}
    assert moved.out_of_order and not moved.ok

    missed = judge(acked, log, group[:-1])
    assert [r.value for r in missed.group_missed] == ["w.0:1:1"] and not missed.ok

    phantom = judge(acked, log, [*group, (1, 2, "w.1:1:0")])
    assert phantom.group_phantom == [(1, 2, "w.1:1:0")] and not phantom.ok


def test_write_pauses_measure_the_longest_gap_during_each_fault() -> None:
    acked = [Acked(0, i, f"w.0:0:{i}", t) for i, t in enumerate([0.0, 1.0, 4.5, 5.0, 9.0])]
    acked += [Acked(1, 0, "w.0:1:0", 1.2)]
    kill = FaultEvent(0, "leader-kill", "broker 1", 0, started=1.5, healed=6.0)
    pause = FaultEvent(1, "leader-pause", "broker 2", 1, started=6.0, healed=10.0)
    # Partition 1 has no acknowledgement during either: the whole fault is its pause.
    assert write_pauses(acked, [kill, pause]) == {"leader-kill": [4.5], "leader-pause": [4.0]}


def test_check_commits_finds_a_committed_offset_gone_back() -> None:
    one, two = (GroupReader(name, "127.0.0.1:1", "t", "g") for name in ("1", "2"))
    one.committed = {0: 10, 1: 5}
    two.committed = {0: 12}
    assert check_commits([one, two], {0: 12, 1: 7}) == []
    assert check_commits([one, two], {0: 11, 1: 5}) == [
        "partition 0: committed 11 < acknowledged commit 12"]
    assert check_commits([one, two], {0: 12}) == [
        "partition 1: committed -1 < acknowledged commit 5"]


def test_an_acknowledgement_without_offset_is_checked_by_value() -> None:
    """librdkafka may report an idempotent batch delivered without its offset:
    the record must still be in the log once (and reach the group)."""
    acked = [_acked(0, 0, "w.0:0:0"), _acked(0, -1, "w.0:0:1")]
    log = {0: [(0, "w.0:0:0"), (1, "w.0:0:1")]}
    group = [(0, 0, "w.0:0:0"), (0, 1, "w.0:0:1")]
    assert judge(acked, log, group).ok
    lost = judge(acked, {0: [(0, "w.0:0:0")]}, group[:1])
    assert [r.value for r in lost.lost] == ["w.0:0:1"]
    assert [r.value for r in lost.group_missed] == ["w.0:0:1"]
    twice = judge(acked, {0: [*log[0], (2, "w.0:0:1")]}, group)
    assert [v for v, _ in twice.duplicated] == ["w.0:0:1"]
