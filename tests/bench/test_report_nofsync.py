"""`bench/run.py`'s strom-nofsync broker and its column in the report
(issue 19): the like-for-like comparison with Kafka's durability, beside
strom's stricter default, and --strom-override."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # bench/ modules import each other by bare name

from brokers import BROKERS  # noqa: E402
from report import markdown, summarize  # noqa: E402


def _result(broker: str, p50: float) -> dict[str, object]:
    return {"workload": "fleet", "broker": broker, "round": 1, "status": "ok",
            "metrics": {"lat_p50_ms": p50}, "reason": "", "detail": {}}


def test_strom_nofsync_runs_strom_without_acks_all_fsync(tmp_path: Path) -> None:
    broker = BROKERS["strom-nofsync"](tmp_path, 6, 1 << 20)
    argv = broker.command()
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "--override"]
    # The last override of a key wins in `strom serve`: false after the default true.
    fsync = [o for o in overrides if o.startswith("strom.acks.all.fsync=")]
    assert fsync[-1] == "strom.acks.all.fsync=false"
    assert broker.data_dir != BROKERS["strom"](tmp_path, 6, 1 << 20).data_dir
    extra = BROKERS["strom-nofsync"](tmp_path, 6, 1 << 20, {"strom.processes": "1"})
    assert "strom.processes=1" in extra.command()


def test_report_gives_each_strom_its_ratio_to_kafka() -> None:
    brokers = ["kafka", "strom", "strom-nofsync"]
    results = [_result("kafka", 0.4), _result("strom", 2.0), _result("strom-nofsync", 0.3)]
    rows = summarize(results, brokers, {})
    [fleet] = [row for row in rows if row["figure"] == "fleet_p50"]
    assert fleet["strom_over_kafka"] == 5.0
    assert abs(fleet["strom_nofsync_over_kafka"] - 0.75) < 1e-9
    labels = {"kafka": "Kafka", "strom": "strom", "strom-nofsync": "strom without fsync"}
    table = markdown(rows, brokers, labels, "# t")
    header = next(line for line in table.splitlines() if line.startswith("| figure"))
    assert "strom without fsync/Kafka" in header
    line = next(line for line in table.splitlines() if "ack p50" in line)
    assert "| 5.00 | 0.75 |" in line
