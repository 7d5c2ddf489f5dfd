"""The table `make jepsen` prints (tests/cluster/jepsen.py), on a made-up run."""

from __future__ import annotations

from tests.cluster.fault_checker import Verdict
from tests.cluster.fault_clients import Acked
from tests.cluster.fault_injector import FaultEvent
from tests.cluster.jepsen import percentile, table


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([4.0, 1.0], 50) == 1.0


def test_table_counts_faults_by_kind_and_ends_with_the_plain_line() -> None:
    kill = FaultEvent(0, "leader-kill", "broker 1", 0, started=0.0, detected=3.0,
                      ended=3.5, healed=5.0)
    cut = FaultEvent(1, "isolate-etcd", "broker 2", 1, started=5.0, detected=8.0,
                     ended=9.0, healed=9.5)
    lost = Acked(0, 7, "w.0:0:7", 1.0)
    twice = ("w.0:0:9", [(0, 9), (0, 10)])
    verdict = Verdict(faults=2, acked=1000, lost=[lost], duplicated=[twice],
                      events=[kill, cut], pauses=[3.2, 0.4])
    text = table(verdict)
    lines = text.splitlines()
    assert lines[-1] == "jepsen: 2 faults, 1000 acknowledged, 1 lost, 1 duplicated"
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    # kind, n, noticed p50 / p99, recovery p50 / p99, pause p50 / p99
    assert rows["leader-kill"][:8] == ["leader-kill", "1", "3.00", "/", "3.00", "1.50", "/", "1.50"]
    assert rows["isolate-etcd"][5] == "0.50"
    assert rows["all"][1] == "2"
