"""Writes strom-dashboard.json, the Grafana dashboard over strom's /metrics.

    .venv/bin/python deploy/grafana/build_dashboard.py

The JSON is generated so that panels stay uniform and a change is one line
here; tests/metrics/test_dashboard.py checks the committed JSON is this
script's output and that every metric it queries is one a broker exports.
Import it in Grafana (Dashboards > New > Import) and pick the Prometheus
data source that scrapes the brokers' strom.http.listener.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("strom-dashboard.json")
SEL = 'instance=~"$instance"'

# (title, unit, [(PromQL, legend)], width)
Panel = tuple[str, str, list[tuple[str, str]], int]

ROWS: list[tuple[str, list[Panel]]] = [
    ("Throughput", [
        ("Messages in / s by topic", "short",
         [(f"sum by (topic) (rate(strom_topic_messages_in_total{{{SEL}}}[1m]))", "{{topic}}")],
         12),
        ("Bytes in and out / s", "Bps", [
            (f"sum(rate(strom_topic_bytes_in_total{{{SEL}}}[1m]))", "in"),
            (f"sum(rate(strom_topic_bytes_out_total{{{SEL}}}[1m]))", "out"),
            (f"sum(rate(strom_topic_replication_bytes_out_total{{{SEL}}}[1m]))",
             "replication out"),
        ], 12),
    ]),
    ("Requests", [
        ("Requests / s by API", "reqps",
         [(f"sum by (api) (rate(strom_request_duration_seconds_count{{{SEL}}}[1m]))",
           "{{api}}")], 8),
        ("Produce and Fetch latency (p50, p99)", "s", [
            (f'histogram_quantile(0.5, sum by (le, api) (rate(strom_request_duration_seconds_'
             f'bucket{{{SEL},api=~"Produce|Fetch"}}[5m])))', "{{api}} p50"),
            (f'histogram_quantile(0.99, sum by (le, api) (rate(strom_request_duration_seconds_'
             f'bucket{{{SEL},api=~"Produce|Fetch"}}[5m])))', "{{api}} p99"),
        ], 8),
        ("Errors / s by API and error", "short",
         [(f"sum by (api, error) (rate(strom_request_errors_total{{{SEL}}}[5m]))",
           "{{api}} {{error}}")], 8),
        ("Connections, in-flight and queued requests", "short", [
            (f"sum(strom_connections{{{SEL}}})", "connections"),
            (f"sum(strom_requests_in_flight{{{SEL}}})", "in flight"),
            (f"sum(strom_request_queue_size{{{SEL}}})", "queued"),
        ], 12),
        ("Quota throttle time / s by API", "s",
         [(f"sum by (api) (rate(strom_request_throttle_time_seconds_total{{{SEL}}}[5m]))",
           "{{api}}")], 12),
    ]),
    ("Consumers", [
        ("Consumer group lag", "short",
         [(f"sum by (group, topic) (strom_consumer_group_lag{{{SEL}}})",
           "{{group}} {{topic}}")], 16),
        ("Transactions / s", "short",
         [(f"sum by (result) (rate(strom_transactions_completed_total{{{SEL}}}[5m]))",
           "{{result}}")], 8),
    ]),
    ("Replication and storage", [
        ("Under-replicated, under min ISR and offline partitions", "short", [
            (f"sum(strom_under_replicated_partitions{{{SEL}}})", "under-replicated"),
            (f"sum(strom_under_min_isr_partitions{{{SEL}}})", "under min ISR"),
            (f"max(strom_offline_partitions{{{SEL}}})", "offline"),
        ], 8),
        ("ISR shrinks and expands / s", "short", [
            (f"sum(rate(strom_isr_shrinks_total{{{SEL}}}[5m]))", "shrinks"),
            (f"sum(rate(strom_isr_expands_total{{{SEL}}}[5m]))", "expands"),
        ], 8),
        ("fsync latency (p50, p99)", "s", [
            (f"histogram_quantile(0.5, sum by (le) (rate(strom_log_flush_duration_seconds_"
             f"bucket{{{SEL}}}[5m])))", "p50"),
            (f"histogram_quantile(0.99, sum by (le) (rate(strom_log_flush_duration_seconds_"
             f"bucket{{{SEL}}}[5m])))", "p99"),
        ], 8),
        ("Log size by topic", "bytes",
         [(f"sum by (topic) (strom_log_size_bytes{{{SEL}}})", "{{topic}}")], 12),
        ("Log segments by topic", "short",
         [(f"sum by (topic) (strom_log_segments{{{SEL}}})", "{{topic}}")], 12),
    ]),
    ("Runtime", [
        ("Event-loop lag (p99, max)", "s", [
            (f"histogram_quantile(0.99, sum by (le, instance) (rate(strom_event_loop_lag_"
             f"seconds_bucket{{{SEL}}}[5m])))", "{{instance}} p99"),
        ], 8),
        ("GC pause time / s by generation", "s",
         [(f"sum by (generation) (rate(strom_gc_pause_seconds_sum{{{SEL}}}[5m]))",
           "gen {{generation}}")], 8),
        ("Memory (RSS)", "bytes", [
            (f"process_resident_memory_bytes{{{SEL}}}", "{{instance}} RSS"),
        ], 8),
        ("Open file descriptors", "short", [
            (f"process_open_fds{{{SEL}}}", "{{instance}}"),
        ], 12),
        ("CPU seconds / s", "percentunit", [
            (f"rate(process_cpu_seconds_total{{{SEL}}}[1m])", "{{instance}}"),
        ], 12),
    ]),
]


def _panel(panel_id: int, title: str, unit: str, targets: list[tuple[str, str]], width: int,
           x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id, "type": "timeseries", "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi"}},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for i, (expr, legend) in enumerate(targets)],
    }


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    panel_id = 1
    y = 0
    for row_title, row in ROWS:
        panels.append({"id": panel_id, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        panel_id += 1
        y += 1
        x = 0
        for title, unit, targets, width in row:
            if x + width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel_id, title, unit, targets, width, x, y))
            panel_id += 1
            x += width
        y += 8
    return {
        "title": "strom",
        "uid": "strom-broker",
        "description": "strom brokers: throughput, requests, lag, replication, storage and "
                       "the Python runtime (docs/operations.md).",
        "tags": ["strom", "kafka"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus",
             "label": "Data source", "current": {}},
            {"name": "instance", "type": "query", "label": "Broker",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": "label_values(strom_partitions, instance)",
             "definition": "label_values(strom_partitions, instance)",
             "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
             "current": {"selected": True, "text": "All", "value": "$__all"}},
        ]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
