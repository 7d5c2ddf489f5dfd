"""Network partitions (issue 15): three brokers and a three-member etcd, each
in a network namespace of its own, while idempotent acks=all producers and a
consumer group run (tests/cluster/fault_checker.py): a leader cut off from
etcd (still reachable by clients), a leader cut off from its followers, a
minority side (a leader and etcd's raft leader), flapping links. Every
acknowledged record must be read back exactly once, in order, and a leader
that was cut off must never acknowledge acks=all (probed straight at it).
STROM_PARTITION_FAULTS sets the number of faults (default 4: one of each);
`make jepsen` runs 100 mixed with crashes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cluster import netns
from tests.cluster.fault_checker import RunConfig, run_in
from tests.cluster.partition_faults import PARTITION_KINDS

FAULTS = int(os.environ.get("STROM_PARTITION_FAULTS", len(PARTITION_KINDS)))
REASON = netns.unavailable()


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
@pytest.mark.timeout(max(300, 30 * FAULTS + 180))
def test_partitions_lose_and_duplicate_nothing(etcd_bin: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        with capsys.disabled():
            print(text, flush=True)

    config = RunConfig(faults=FAULTS, kinds=PARTITION_KINDS, etcd_members=3)
    verdict = run_in(tmp_path / "cluster", etcd_bin, config, netns=True, say=say)
    report = "\n".join(lines)
    assert verdict.ok, report
    assert verdict.fatal == [], report
    assert verdict.fault_notes == [], report  # includes an acknowledged probe
    assert verdict.faults == FAULTS
    assert verdict.acked > 0
    # The cut-off leaders were asked and refused (not vacuous).
    probed = [info for e in verdict.events for info in e.info if info.startswith("acks=all")]
    expected = sum(1 for e in verdict.events
                   if e.kind in ("isolate-followers", "isolate-etcd", "minority"))
    assert len(probed) == expected, report
    assert not any(info.endswith(": NONE") for info in probed), report
