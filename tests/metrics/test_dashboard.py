"""The Grafana dashboard queries only metrics a running broker exports, and the
committed JSON is what deploy/grafana/build_dashboard.py writes."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

from strom.testing import EmbeddedBroker
from tests.metrics.scrape import Scrape, scrape

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "strom-dashboard.json"

# PromQL identifiers that are not metric names.
_KEYWORDS = {"sum", "max", "min", "avg", "count", "by", "without", "rate", "irate",
             "increase", "histogram_quantile", "le", "on", "ignoring", "bool", "and", "or",
             "unless", "offset"}


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboard",
                                                  DASHBOARD.with_name("build_dashboard.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metric_names(expr: str) -> set[str]:
    """Metric names of a PromQL expression: identifiers outside label matchers,
    durations and strings, other than functions and keywords."""
    bare = re.sub(r'"[^"]*"', "", expr)             # strings (label values)
    bare = re.sub(r"\{[^}]*\}", "", bare)            # label matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)           # range durations
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)  # grouping labels
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare))
    return {name for name in names if name not in _KEYWORDS}


def exported(result: Scrape, name: str) -> bool:
    if name in result.names():
        return True
    # A family without samples yet (no errors so far) still has its # TYPE line.
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name.removesuffix(suffix) in result.types:
            return True
    return False


def queried_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            names |= metric_names(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            names |= metric_names(re.sub(r"label_values\((\w+),.*\)", r"\1",
                                         variable["query"]))
    return names


def test_metric_names_parser() -> None:
    assert metric_names('histogram_quantile(0.99, sum by (le, api) (rate(strom_request_'
                        'duration_seconds_bucket{instance=~"$instance",api="Produce"}[5m])))'
                        ) == {"strom_request_duration_seconds_bucket"}


def test_committed_json_is_generated() -> None:
    assert DASHBOARD.read_text() == _builder().render(), \
        "run .venv/bin/python deploy/grafana/build_dashboard.py"


def test_every_queried_metric_is_exported(tmp_path: Path) -> None:
    names = queried_names()
    assert len(names) >= 20  # the parser found the dashboard's queries
    with EmbeddedBroker(tmp_path, overrides={"strom.http.listener": "http://127.0.0.1:0"}) as b:
        result = scrape(b.http_url)
    missing = sorted(name for name in names if not exported(result, name))
    assert not missing, f"the dashboard queries metrics no broker exports: {missing}"
