#!/usr/bin/env python3
"""Soak: 50 producers, keyed records, retention crossed under load, per minute.

  python bench/soak.py                       # 30 minutes per broker, strom then Kafka
  python bench/soak.py --minutes 2 --brokers strom    # a short try

In the style of published critiques of broker benchmarks: many producers,
keyed records (so every partition is written), a steady rate rather than a
burst, and retention small enough that segments are deleted while the load
runs. Latency percentiles are reported per minute, so degradation over time
shows. Per minute: produce ack latency (p50/p99/p99.9, acks=all by default),
end-to-end latency of a tailing consumer (record timestamp to receipt, 1 ms
resolution), throughput, errors, broker RSS and CPU, and the bytes on disk
(which must level off once retention deletes segments).

Results: bench/results/soak-latest.json, soak-latest.md, soak-latest.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from brokers import BROKERS, Broker, BrokerError
from common import CACHE, LOADGEN, PYTHON, ROOT, kill_group, log
from run import machine, versions
from workloads import produce_to_each_partition

RESULTS = ROOT / "bench" / "results"
BUCKET = math.log(1.02)


def merge(hists: list[dict[str, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in hists:
        for k, v in h.items():
            out[int(k)] = out.get(int(k), 0) + int(v)
    return out


def percentile_ms(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for k in sorted(hist):
        seen += hist[k]
        if seen >= rank:
            return math.exp((k + 0.5) * BUCKET) / 1000  # bucket middle, µs -> ms
    return None


def du_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's main thread (strom's event loop) has spent runnable
    but waiting for a CPU (/proc/<pid>/schedstat, second field): on a shared
    machine, how much of a broker's slowness was other processes holding the
    cores. Kafka's main thread is idle: read it for strom only."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class Reader(threading.Thread):
    """Collects the JSON lines a loadgen process prints, one per minute."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.lines.append(json.loads(line))
                except ValueError:
                    pass


def soak_broker(b: Broker, args: argparse.Namespace) -> dict[str, Any]:
    startup = b.start()
    topic = "soak"
    b.create_topic(topic, args.partitions)
    if produce_to_each_partition(b.bootstrap, topic, args.partitions, 120) < args.partitions:
        raise BrokerError(f"{b.name}: not every partition of {topic} takes writes")
    duration = args.minutes * 60
    procs: list[subprocess.Popen[str]] = []
    readers: list[Reader] = []
    samples: list[dict[str, Any]] = []
    per_proc = args.producers // args.processes
    errlog = None
    try:
        common = ["--bootstrap", b.bootstrap, "--topic", topic, "--duration", str(duration)]
        errlog = open(b.data_root / f"soak-{b.name}-clients.log", "w")  # noqa: SIM115
        consumer = subprocess.Popen([PYTHON, LOADGEN, "soak-consumer", *common],
                                    stdout=subprocess.PIPE, stderr=errlog,
                                    text=True, start_new_session=True)
        procs.append(consumer)
        time.sleep(2)  # the consumer is assigned at the end before the first record
        for i in range(args.processes):
            n = per_proc + (1 if i < args.producers % args.processes else 0)
            procs.append(subprocess.Popen(
                [PYTHON, LOADGEN, "soak-producers", *common, "--producers", str(n),
                 "--rate", str(args.rate * n / args.producers), "--keys", str(args.keys),
                 "--size", str(args.size), "--acks", args.acks, "--linger-ms", "5"],
                stdout=subprocess.PIPE, stderr=errlog, text=True,
                start_new_session=True))
        readers = [Reader(p) for p in procs]
        for r in readers:
            r.start()
        t0 = time.monotonic()
        cpu0 = b.cpu_s()
        wait0 = runqueue_wait_s(b.pid)
        minute = 0
        while time.monotonic() - t0 < duration + 5:
            time.sleep(1)
            if not b.alive():
                log(f"{b.label} died during the soak")
                break
            if time.monotonic() - t0 >= (minute + 1) * 60:
                cpu = b.cpu_s()
                wait = runqueue_wait_s(b.pid)
                samples.append({"minute": minute, "rss_mib": (b.rss_kib() or 0) / 1024,
                                "cpu_cores": (cpu - cpu0) / 60,
                                "cpu_wait_cores": (wait - wait0) / 60,
                                "load_1m": os.getloadavg()[0],
                                "disk_mib": du_bytes(b.data_dir) / 1048576})
                cpu0, wait0 = cpu, wait
                log(f"  {b.name} minute {minute + 1}/{args.minutes}: "
                    f"RSS {samples[-1]['rss_mib']:.0f} MiB, disk {samples[-1]['disk_mib']:.0f}"
                    f" MiB, CPU {samples[-1]['cpu_cores']:.2f}, waiting for a CPU "
                    f"{samples[-1]['cpu_wait_cores']:.2f}, load {samples[-1]['load_1m']:.1f}")
                minute += 1
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill_group(p)
        for r in readers:
            r.join(timeout=5)
    finally:
        for p in procs:
            kill_group(p)
        if errlog is not None:
            errlog.close()
        b.stop()
        b.cleanup()
    minutes = []
    prod_readers, cons_reader = readers[1:], readers[0]
    for m in range(args.minutes):
        # A process's last line covers the part of a minute it ran: still data.
        plines = [ln for r in prod_readers for ln in r.lines if ln.get("minute") == m]
        clines = [ln for ln in cons_reader.lines if ln.get("minute") == m]
        ph = merge([ln["hist"] for ln in plines])
        ch = merge([ln["hist"] for ln in clines])
        acked = sum(ln["acked"] for ln in plines)
        sample = next((s for s in samples if s["minute"] == m), {})
        minutes.append({
            "minute": m + 1,
            "acked_per_s": acked / 60,
            "mib_per_s": acked * args.size / 60 / 1048576,
            "produce_errors": sum(ln["errors"] for ln in plines),
            "produce_p50_ms": percentile_ms(ph, 0.5),
            "produce_p99_ms": percentile_ms(ph, 0.99),
            "produce_p999_ms": percentile_ms(ph, 0.999),
            "e2e_p50_ms": percentile_ms(ch, 0.5),
            "e2e_p99_ms": percentile_ms(ch, 0.99),
            "received_per_s": sum(ln["received"] for ln in clines) / 60,
            **{k: v for k, v in sample.items() if k != "minute"},
        })
    errors = sorted({e for r in prod_readers for ln in r.lines
                     for e in ln.get("first_errors", [])})[:5]
    return {"broker": b.name, "label": b.label, "startup_s": startup, "minutes": minutes,
            "first_errors": errors}


def _f(v: Any, digits: int = 1) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def markdown(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    out = [f"Soak — {doc['date']}, {doc['machine']['nproc']} cores, "
           f"{doc['machine']['mem_gib']} GiB · `{doc['command']}`", "",
           f"{s['producers']} producers ({s['processes']} processes), {s['rate']} records/s of "
           f"{s['size']} B in all, {s['keys']} keys, acks={s['acks']}, {s['partitions']} "
           f"partitions, segment {s['segment_bytes'] // 1048576} MiB, retention "
           f"{s['retention_bytes'] // 1048576} MiB per partition", "",
           "CPU: cores the broker used; CPU wait: share of the minute its main thread "
           "(strom's event loop) was runnable but waiting for a CPU held by other "
           "processes; load: 1-minute load average at the end of the minute.", ""]
    for run in doc["runs"]:
        out += [f"### {run['label']}", "",
                "| min | MiB/s | produce p50 | p99 | p99.9 ms | e2e p50 | e2e p99 ms "
                "| errors | RSS MiB | CPU | CPU wait | load | disk MiB |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for m in run["minutes"]:
            out.append(
                f"| {m['minute']} | {_f(m['mib_per_s'])} | {_f(m['produce_p50_ms'], 2)} | "
                f"{_f(m['produce_p99_ms'], 2)} | {_f(m['produce_p999_ms'], 2)} | "
                f"{_f(m['e2e_p50_ms'], 1)} | {_f(m['e2e_p99_ms'], 1)} | "
                f"{m['produce_errors']} | {_f(m.get('rss_mib'), 0)} | "
                f"{_f(m.get('cpu_cores'), 2)} | {_f(m.get('cpu_wait_cores'), 2)} | "
                f"{_f(m.get('load_1m'), 1)} | {_f(m.get('disk_mib'), 0)} |")
        if run["first_errors"]:
            out.append(f"\nerrors: {'; '.join(run['first_errors'])}")
        out.append("")
    return "\n".join(out)


def chart(doc: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install -e '.[bench]'): no PNG chart")
        return
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), dpi=110, sharex=True)
    for run in doc["runs"]:
        xs = [m["minute"] for m in run["minutes"]]
        for key, style in (("produce_p99_ms", "-"), ("produce_p999_ms", ":")):
            ys = [m[key] if m[key] is not None else float("nan") for m in run["minutes"]]
            axes[0].plot(xs, ys, style, label=f"{run['label']} {key[8:-3]}")
        axes[1].plot(xs, [m.get("disk_mib", float("nan")) for m in run["minutes"]],
                     label=f"{run['label']} disk MiB")
        axes[1].plot(xs, [m.get("rss_mib", float("nan")) for m in run["minutes"]], "--",
                     label=f"{run['label']} RSS MiB")
    axes[0].set_ylabel("produce ack latency, ms")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    axes[1].set_ylabel("MiB")
    axes[1].set_xlabel("minute")
    axes[1].legend(fontsize=8)
    axes[0].set_title(f"soak — {doc['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=30, help="per broker (default 30)")
    parser.add_argument("--brokers", default="strom,kafka")
    parser.add_argument("--producers", type=int, default=50)
    parser.add_argument("--processes", type=int, default=5,
                        help="load-generator processes the producers are spread over")
    parser.add_argument("--rate", type=int, default=10_000, help="records/s, all producers")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--acks", default="all")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--segment-bytes", type=int, default=16 * 1048576)
    parser.add_argument("--retention-bytes", type=int, default=64 * 1048576,
                        help="per partition; crossed after ~1.5 min at the default rate")
    parser.add_argument("--data-dir", type=Path, default=CACHE / "bench" / "soak")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = args.brokers.split(",")
    extra = {
        "log.retention.bytes": str(args.retention_bytes),
        "log.retention.check.interval.ms": "10000",
        "log.segment.delete.delay.ms": "1000",
    }
    args.data_dir.mkdir(parents=True, exist_ok=True)
    brokers = [BROKERS[n](args.data_dir, args.partitions, args.segment_bytes, extra)
               for n in names]
    doc: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(PYTHON, ROOT),
                                                    "bench/soak.py", *sys.argv[1:]]),
        "machine": machine(),
        "versions": versions(brokers),
        "settings": {"minutes": args.minutes, "producers": args.producers,
                     "processes": args.processes, "rate": args.rate, "size": args.size,
                     "keys": args.keys, "acks": args.acks, "partitions": args.partitions,
                     "segment_bytes": args.segment_bytes,
                     "retention_bytes": args.retention_bytes, "broker_config": extra},
        "runs": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for b in brokers:
        log(f"soak: {b.label}, {args.minutes} min")
        try:
            doc["runs"].append(soak_broker(b, args))
        except BrokerError as exc:
            log(f"{b.label}: {exc}")
            doc["runs"].append({"broker": b.name, "label": b.label, "error": str(exc),
                                "minutes": [], "first_errors": [str(exc)]})
        except KeyboardInterrupt:
            b.stop(grace=5)
            b.cleanup()
            break
        (args.out / "soak-latest.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    (args.out / "soak-latest.md").write_text(md)
    chart(doc, args.out / "soak-latest.png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
