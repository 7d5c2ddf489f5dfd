"""Turns per-round results into figures: medians, ratios, a markdown table, a PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import log, median


@dataclass(frozen=True)
class Figure:
    id: str
    label: str
    unit: str
    workload: str
    metric: str
    higher_is_better: bool
    goal: float | None  # strom/Kafka: at least (higher) or at most (lower) this


FIGURES: list[Figure] = [
    Figure("produce_acks1_java", "produce 1 KiB, acks=1 — ProducerPerformance", "MiB/s",
           "produce_acks1_java", "mib_per_s", True, 1.0),
    Figure("produce_acks1_rdkafka", "produce 1 KiB, acks=1 — librdkafka", "MiB/s",
           "produce_acks1_rdkafka", "mib_per_s", True, 1.0),
    Figure("produce_acksall_java", "produce 1 KiB, acks=all — ProducerPerformance", "MiB/s",
           "produce_acksall_java", "mib_per_s", True, 1.0),
    Figure("produce_acksall_rdkafka", "produce 1 KiB, acks=all — librdkafka", "MiB/s",
           "produce_acksall_rdkafka", "mib_per_s", True, 1.0),
    Figure("consume_java", "consume from page cache — ConsumerPerformance (group)", "MiB/s",
           "consume_java", "mib_per_s", True, 1.0),
    Figure("consume_rdkafka", "consume from page cache — librdkafka (assign)", "MiB/s",
           "consume_rdkafka", "mib_per_s", True, 1.0),
    Figure("small_java", "100 B records, linger 0 — ProducerPerformance", "records/s",
           "small_java", "records_per_s", True, 0.7),
    Figure("small_rdkafka", "100 B records, linger 0 — librdkafka", "records/s",
           "small_rdkafka", "records_per_s", True, 0.7),
    Figure("e2e_p50", "end-to-end latency p50 @ 20 MiB/s", "ms", "e2e", "p50_ms", False, None),
    Figure("e2e_p99", "end-to-end latency p99 @ 20 MiB/s", "ms", "e2e", "p99_ms", False, 1.0),
    Figure("e2e_p999", "end-to-end latency p99.9 @ 20 MiB/s", "ms", "e2e", "p999_ms", False,
           None),
    Figure("startup", "start-up to first produce", "s", "startup", "seconds", False, 0.1),
    Figure("idle_rss", "idle RSS", "MiB", "idle", "rss_mib", False, 0.1),
    Figure("p1000_rss", "1,000 partitions: RSS after load", "MiB", "p1000", "rss_mib", False,
           1.0),
    Figure("p1000_p99", "1,000 partitions: produce p99 @ 5 MiB/s, keyed", "ms", "p1000",
           "lat_p99_ms", False, 1.0),
    # Issue 17: fetch sessions (KIP-227). The same consume against a second
    # broker started with max.incremental.fetch.session.cache.slots=0.
    Figure("consume1000_java", "1,000 partitions: consume, fetch.max.bytes 1 MiB — "
           "ConsumerPerformance (group), fetch sessions", "MiB/s", "consume1000_java",
           "mib_per_s", True, None),
    Figure("consume1000_req", "1,000 partitions: consume — client bytes per request to the "
           "leader (Fetch)", "B", "consume1000_java", "fetch_request_bytes", False, None),
    Figure("consume1000_resp", "1,000 partitions: consume — client bytes per response",
           "B", "consume1000_java", "fetch_response_bytes", False, None),
    Figure("consume1000_nosession", "1,000 partitions: consume, no sessions (cache.slots=0)",
           "MiB/s", "consume1000_java_nosession", "mib_per_s", True, None),
    Figure("consume1000_nosession_req", "1,000 partitions, no sessions — bytes per request",
           "B", "consume1000_java_nosession", "fetch_request_bytes", False, None),
    Figure("consume1000_nosession_resp", "1,000 partitions, no sessions — bytes per response",
           "B", "consume1000_java_nosession", "fetch_response_bytes", False, None),
    # Issue 19: many clients, driven by the C generator (bench/fleet.py).
    Figure("fleet_p50", "fleet: 50 producers × 200 records/s, 1 KiB, acks=all, idempotent, "
           "linger 0 — ack p50", "ms", "fleet", "lat_p50_ms", False, 0.8),
    Figure("fleet_p99", "fleet — ack p99", "ms", "fleet", "lat_p99_ms", False, 0.8),
    Figure("fleet_p999", "fleet — ack p99.9", "ms", "fleet", "lat_p999_ms", False, 0.8),
    Figure("fleet_cpu", "fleet — broker CPU per record", "µs", "fleet",
           "broker_cpu_us_per_record", False, None),
    Figure("conn1000_p99", "1,000 producers × 5 records/s, one record per request — ack p99",
           "ms", "conn1000", "lat_p99_ms", False, 1.0),
    Figure("conn1000_rss", "1,000 producers — broker RSS", "MiB", "conn1000", "rss_mib", False,
           1.0),
    Figure("idle10k_rss", "10,000 idle connections + 5 MiB/s — broker RSS", "MiB", "idle10k",
           "rss_mib", False, 1.0),
    Figure("idle10k_p99", "10,000 idle connections + 5 MiB/s — produce p99", "ms", "idle10k",
           "lat_p99_ms", False, 1.0),
    # rebalance_s: the median of the round's first joins (fleet.GROUP_FIRST_JOINS; one
    # in result files before it); a first join takes one generation or two.
    Figure("group50_rebalance", "group of 50 over 500 partitions — subscribe to all assigned "
           "(median of the round's first joins)", "s", "group50", "rebalance_s", False, 1.0),
    Figure("group50_rebalance_min", "group of 50 — first join, fastest of the round", "s",
           "group50", "rebalance_min_s", False, None),
    Figure("group50_rebalance_max", "group of 50 — first join, slowest of the round", "s",
           "group50", "rebalance_max_s", False, None),
    Figure("group50_ready", "group of 50 — subscribe to a record consumed from every "
           "partition", "s", "group50", "ready_s", False, 1.0),
    # leave_rebalance_s: the median of the leaves after the round's further first joins,
    # stepped over the heartbeat interval (fleet.GROUP_LEAVE_AFTER_S; the main run's one
    # leave in result files before it); fastest and slowest include the main run's.
    Figure("group50_leave", "group of 50 — one member leaves to all reassigned (median of "
           "the round's leaves stepped over the heartbeat interval)", "s", "group50",
           "leave_rebalance_s", False, 1.0),
    Figure("group50_leave_min", "group of 50 — a member leaves, fastest of the round", "s",
           "group50", "leave_rebalance_min_s", False, None),
    Figure("group50_leave_max", "group of 50 — a member leaves, slowest of the round", "s",
           "group50", "leave_rebalance_max_s", False, None),
    Figure("group50_p99", "group of 50 — end-to-end p99 @ 2,000 records/s", "ms", "group50",
           "lat_p99_ms", False, 1.0),
]

CPU_KEYS = ("broker_cpu_cores", "client_cpu_cores")


def summarize(results: list[dict[str, Any]], brokers: list[str],
              unfair: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """One row per figure: per broker the median over its successful rounds."""
    rows: list[dict[str, Any]] = []
    for fig in FIGURES:
        row: dict[str, Any] = {"figure": fig.id, "label": fig.label, "unit": fig.unit,
                               "higher_is_better": fig.higher_is_better, "goal": fig.goal,
                               "brokers": {}}
        for b in brokers:
            rs = [r for r in results if r["broker"] == b and r["workload"] == fig.workload]
            ok = [r["metrics"][fig.metric] for r in rs
                  if r["status"] == "ok" and fig.metric in r["metrics"]]
            cell: dict[str, Any] = {"rounds": len(rs), "ok_rounds": len(ok), "values": ok}
            # Broker and client CPU (cores) beside every figure: a row where the
            # client used a whole core measured the client, not the broker.
            for key in CPU_KEYS:
                cpu = [float(r["detail"][key]) for r in rs
                       if r["status"] == "ok" and key in r.get("detail", {})]
                if cpu:
                    cell[key] = median(cpu)
            if fig.id in unfair.get(b, {}):
                cell.update(status="n/a", reason=unfair[b][fig.id])
            elif ok:
                cell.update(status="ok", median=median(ok))
            else:
                failed = [r for r in rs if r["status"] != "ok"]
                reason = failed[0]["reason"] if failed else "not run"
                status = failed[0]["status"] if failed else "skipped"
                cell.update(status=status, reason=reason)
            row["brokers"][b] = cell
        k = row["brokers"].get("kafka", {}).get("median")
        s = row["brokers"].get("strom", {}).get("median")
        t = row["brokers"].get("tansu", {}).get("median")
        row["strom_over_kafka"] = s / k if s is not None and k else None
        row["strom_over_tansu"] = s / t if s is not None and t else None
        row["tansu_over_kafka"] = t / k if t is not None and k else None
        n = row["brokers"].get("strom-nofsync", {}).get("median")
        row["strom_nofsync_over_kafka"] = n / k if n is not None and k else None
        ratio = row["strom_over_kafka"]
        if fig.goal is None or ratio is None:
            row["goal_met"] = None
        else:
            row["goal_met"] = ratio >= fig.goal if fig.higher_is_better else ratio <= fig.goal
        rows.append(row)
    return rows


def _num(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "—"
    st = cell.get("status")
    if st == "ok":
        extra = "" if cell["ok_rounds"] == cell["rounds"] else \
            f" ({cell['ok_rounds']}/{cell['rounds']} rounds)"
        return _num(cell["median"]) + extra
    if st == "n/a":
        return "n/a¹"
    return "FAILED²" if st == "failed" else "skipped"


def _cpu(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("status") != "ok" or "broker_cpu_cores" not in cell:
        return "—"
    client = cell.get("client_cpu_cores")
    return f"{cell['broker_cpu_cores']:.2f} / " + (f"{client:.2f}" if client is not None else "—")


def markdown(rows: list[dict[str, Any]], brokers: list[str], labels: dict[str, str],
             header: str) -> str:
    cols = ["figure", "unit"] + [labels[b] for b in brokers] + ["strom/Kafka", "goal"]
    if "tansu" in brokers:
        cols.insert(-1, "strom/Tansu")
    if "strom-nofsync" in brokers:
        cols.insert(-1, "strom without fsync/Kafka")
    cols += [f"{labels[b]} CPU broker / client" for b in brokers]
    out = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [row["label"], row["unit"]] + [_cell(row["brokers"].get(b)) for b in brokers]
        r = row["strom_over_kafka"]
        cells.append(f"{r:.2f}" if r is not None else "—")
        if "tansu" in brokers:
            rt = row["strom_over_tansu"]
            cells.append(f"{rt:.2f}" if rt is not None else "—")
        if "strom-nofsync" in brokers:
            rn = row["strom_nofsync_over_kafka"]
            cells.append(f"{rn:.2f}" if rn is not None else "—")
        if row["goal"] is None:
            goal = "—"
        else:
            sign = "≥" if row["higher_is_better"] else "≤"
            met = {True: " ✅", False: " ❌", None: ""}[row["goal_met"]]
            goal = f"{sign} {row['goal']}{met}"
        cells.append(goal)
        cells += [_cpu(row["brokers"].get(b)) for b in brokers]
        out.append("| " + " | ".join(cells) + " |")
    notes: list[str] = []
    na = sorted({f"{labels[b]}: {c['reason']}" for row in rows for b, c in row["brokers"].items()
                 if c.get("status") == "n/a"})
    if na:
        notes.append("¹ not a fair comparison, not run: " + "; ".join(na) + ".")
    failed = []
    for row in rows:
        for b, c in row["brokers"].items():
            if c.get("status") == "failed":
                failed.append(f"{labels[b]} / {row['label']}: {c['reason']}")
    notes.append("CPU: cores used during the workload (broker process; load generator "
                 "process), medians over rounds.")
    if failed:
        notes.append("² failed:\n" + "\n".join(f"  - {f}" for f in dict.fromkeys(failed)))
    return "\n".join(out + [""] + notes) + "\n"


def chart(rows: list[dict[str, Any]], brokers: list[str], labels: dict[str, str],
          title: str, path: Path) -> bool:
    """Horizontal bars: how each broker compares with Kafka, >1 = better than Kafka."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install -e '.[bench]'): no PNG chart")
        return False
    others = [b for b in brokers if b != "kafka"]
    shown = [r for r in rows if any(r["brokers"].get(b, {}).get("median") for b in others)]
    fig, ax = plt.subplots(figsize=(10, 0.5 * max(len(shown), 4) + 1.6), dpi=110)
    height = 0.8 / max(len(others), 1)
    colors = {"strom": "#2b7bba", "tansu": "#e08b2c"}
    for i, b in enumerate(others):
        ys: list[float] = []
        xs: list[float] = []
        for j, row in enumerate(shown):
            k = row["brokers"].get("kafka", {}).get("median")
            v = row["brokers"].get(b, {}).get("median")
            if not k or not v:
                continue
            ratio = v / k
            xs.append(ratio if row["higher_is_better"] else 1 / ratio)
            ys.append(j + (i - (len(others) - 1) / 2) * height)
        ax.barh(ys, xs, height=height, color=colors.get(b, "#888"), label=labels[b])
        if b == "strom":
            for j, row in enumerate(shown):
                if row["goal"] is not None:
                    g = row["goal"] if row["higher_is_better"] else 1 / row["goal"]
                    y = j + (i - (len(others) - 1) / 2) * height
                    ax.plot([g, g], [y - height / 2, y + height / 2], color="black", lw=2)
    ax.axvline(1.0, color="#444", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([f"{r['label']} ({r['unit']})" for r in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("relative to Apache Kafka (>1 = better than Kafka; black tick = strom's goal)")
    ax.set_title(title, fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
