"""The 1,000-partition consume rows of `make bench` (issue 17): parsing the Java
consumer's --print-metrics output into bytes per Fetch request and response."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # bench/ modules import each other by bare name

from workloads import WorkloadFailed, fetch_bytes, parse_java_metrics  # noqa: E402

# As ToolsUtils.printMetrics prints them: doubles with %.3f, other values as text.
OUTPUT = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-12-07 02:22:50:000, 2026-12-07 02:22:55:000, 97.6, 19.5, 100000, 20000.0, 300, 4700, \
20.7, 21276.6

Metric Name                                                                    Value
app-info:version:{client-id=c}                              : 4.4.0
consumer-fetch-manager-metrics:fetch-total:{client-id=c}     : 40.000
consumer-fetch-manager-metrics:fetch-total:{client-id=c, topic=t} : 9.000
consumer-node-metrics:incoming-byte-total:{client-id=c, node-id=node--1} : 900.000
consumer-node-metrics:request-total:{client-id=c, node-id=node--1} : 3.000
consumer-node-metrics:incoming-byte-total:{client-id=c, node-id=node-1} : 104857600.000
consumer-node-metrics:outgoing-byte-total:{client-id=c, node-id=node-1} : 1480000.000
consumer-node-metrics:request-total:{client-id=c, node-id=node-1} : 40.000
consumer-node-metrics:response-total:{client-id=c, node-id=node-1} : 40.000
consumer-node-metrics:incoming-byte-total:{client-id=c, node-id=node-2147483646} : 5000.000
consumer-node-metrics:request-rate:{client-id=c, node-id=node-1} : NaN
"""


def test_text_values_are_skipped_and_numbers_kept() -> None:
    metrics = parse_java_metrics(OUTPUT)
    assert ("app-info", "version", "client-id=c") not in metrics
    assert metrics[("consumer-node-metrics", "request-total",
                    "client-id=c, node-id=node-1")] == 40.0


def test_bytes_per_fetch_come_from_the_leader_connection() -> None:
    per = fetch_bytes(parse_java_metrics(OUTPUT))
    assert per == {"requests": 40.0, "request_bytes": 37_000.0,
                   "response_bytes": 104857600.0 / 40, "fetches": 40.0}


def test_no_node_metrics_is_a_failed_workload() -> None:
    with pytest.raises(WorkloadFailed):
        fetch_bytes(parse_java_metrics("Metric Name   Value\n"))
