#!/usr/bin/env python3
"""strom against Apache Kafka (and Tansu) on this machine, side by side, in one run.

  python bench/run.py --quick            # 2 rounds, small sizes, under 5 minutes
  python bench/run.py                    # 3 rounds, larger sizes, Kafka + strom + Tansu
  python bench/run.py --brokers kafka,strom --rounds 5 --only produce_acks1_java,e2e

Each round starts every broker fresh (empty data directory, same disk, same
partitions and segment size), in an order that rotates from round to round,
and runs every workload against it with the same clients. Figures are the
median over rounds; ratios are strom/Kafka. Results go to bench/results/
(latest.json, latest.md, latest.png). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import rdkgen
import workloads
from brokers import BROKERS, Broker, BrokerError
from common import CACHE, JAVA_PERF_OPTS, JAVA_SERVER_OPTS, PYTHON, ROOT, log
from fleet import FLEET_WORKLOADS, raise_nofile
from report import chart, markdown, summarize
from workloads import FULL, QUICK, WORKLOADS, Context, Result, Sizes, run_workload

RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "mem_gib": round(mem_kib / 1048576, 1), "cpu": cpu,
            "kernel": platform.release(), "hostname": platform.node()}


def versions(brokers: list[Broker]) -> dict[str, str]:
    import confluent_kafka

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    out = {b.name: b.version() for b in brokers}
    out.update({
        "java": java.splitlines()[0] if java else "?",
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "rdkgen": subprocess.run([str(rdkgen.build()), "version"], capture_output=True,
                                 text=True).stdout.strip(),
    })
    try:
        from importlib.metadata import version

        out["uvloop"] = version("uvloop")
    except Exception:
        pass
    return out


def data_device(path: Path) -> str:
    res = subprocess.run(["df", "--output=source,fstype", str(path)], capture_output=True,
                         text=True)
    lines = res.stdout.split("\n")
    return " ".join(lines[1].split()) if len(lines) > 1 else "?"


def broker_round(b: Broker, sizes: Sizes, rnd: int, only: set[str] | None) -> list[Result]:
    results: list[Result] = []
    # Start-up fsyncs a few files: the previous broker's writeback (Kafka leaves
    # gigabytes of dirty pages, it does not fsync) must not land on them.
    os.sync()
    try:
        startup = b.start()
    except BrokerError as exc:
        log(f"{b.label} did not start: {exc}")
        return [Result("startup", b.name, rnd, "failed", reason=str(exc))]
    try:
        results.append(Result("startup", b.name, rnd, "ok", metrics={"seconds": startup},
                              detail={"prepare_s": b.prepare_s}))
        time.sleep(sizes.idle_wait_s)
        rss = b.rss_kib()
        results.append(Result("idle", b.name, rnd, "ok" if rss else "failed",
                              metrics={"rss_mib": rss / 1024} if rss else {},
                              reason="" if rss else "no VmRSS"))
        ctx = Context(b, sizes, rnd)
        for name, fn, sync_first in WORKLOADS + FLEET_WORKLOADS:
            if only is not None and name not in only and name != "warmup":
                continue
            skip = b.unfair.get(name, "")
            results.append(run_workload(name, fn, ctx, sync_first, skip))
        results.append(Result("peak", b.name, rnd, "ok",
                              metrics={"hwm_mib": (b.hwm_kib() or 0) / 1024}))
    finally:
        b.stop()
        b.cleanup()
    return results


def write_outputs(doc: dict[str, Any], out_dir: Path, labels: dict[str, str],
                  broker_names: list[str], unfair: dict[str, dict[str, str]]) -> str:
    rows = summarize(doc["results"], broker_names, unfair)
    doc["figures"] = rows
    m = doc["machine"]
    header = (f"strom vs Apache Kafka {doc['versions'].get('kafka', '?')}"
              f" — {doc['date']}, {m['nproc']} cores, {m['mem_gib']} GiB, {m['cpu']}\n\n"
              f"Command: `{doc['command']}` · {doc['mode']} · "
              f"{doc['rounds_done']}/{doc['rounds_planned']} rounds, medians · "
              f"{doc['settings']['partitions']} partitions, "
              f"segment {doc['settings']['segment_bytes'] // 1048576} MiB · "
              f"strom {doc['versions'].get('strom', '?')} · load average at round starts: "
              f"{', '.join(format(r['loadavg_start'], '.1f') for r in doc['rounds'])} (a shared "
              f"machine: other work ran alongside)")
    md = markdown(rows, broker_names, labels, header)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "latest.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(out_dir / "latest.json")
    (out_dir / "latest.md").write_text(md)
    title = (f"strom vs Apache Kafka {doc['versions'].get('kafka', '?')} — "
             f"{doc['date'][:16].replace('T', ' ')} — {m['nproc']} cores, {m['mem_gib']} GiB — "
             f"{doc['mode']}, median of {doc['rounds_done']} rounds")
    chart(rows, broker_names, labels, title, out_dir / "latest.png")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds (< 5 min)")
    parser.add_argument("--rounds", type=int, help="rounds (default 2 quick, 3 full)")
    parser.add_argument("--brokers", default=None,
                        help="comma-separated from kafka,strom,tansu,strom-nofsync "
                             "(default: kafka,strom quick; all three full)")
    parser.add_argument("--only", default=None,
                        help="comma-separated workload ids (warm-up always runs)")
    parser.add_argument("--client", choices=("c", "python"), default="c",
                        help="librdkafka generator of the *_rdkafka, e2e, p1000 and warm-up "
                             "workloads: c (bench/rdkgen_src/) or python (bench/loadgen.py); "
                             "the fleet, conn1000, idle10k and group50 workloads are C only")
    parser.add_argument("--strom-rev", default=None, metavar="REV",
                        help="run strom from this commit (git archive) instead of the "
                             "working tree, which other work may be editing")
    parser.add_argument("--strom-override", action="append", default=[], metavar="KEY=VALUE",
                        help="a strom config for this run (repeatable), e.g. "
                             "strom.acks.all.fsync=false or strom.processes=2; "
                             "recorded in the results and the label")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--segment-bytes", type=int, default=128 * 1048576)
    parser.add_argument("--data-dir", type=Path, default=CACHE / "bench" / "data",
                        help="parent of every broker's data directory (one disk)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="only rewrite the table and chart from a results JSON")
    args = parser.parse_args(argv)
    if args.render:
        saved: dict[str, Any] = json.loads(args.render.read_text())
        st = saved["settings"]
        print(write_outputs(saved, args.out, st["labels"], list(st["labels"]), st["unfair"]))
        return 0

    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds})
    names = (args.brokers or ("kafka,strom" if args.quick else "kafka,strom,tansu")).split(",")
    for n in names:
        if n not in BROKERS:
            parser.error(f"unknown broker {n!r}")
    only = set(args.only.split(",")) if args.only else None
    workloads.RDKAFKA_CLIENT["name"] = args.client
    # 10,000 idle connections need that many descriptors in the broker and the client.
    nofile = raise_nofile()
    args.data_dir.mkdir(parents=True, exist_ok=True)

    if args.strom_rev:
        from brokers import Strom
        from cluster_bench import export_revision

        # One export and one virtualenv per commit, of run.py's own: runs of
        # other benches (or another run.py) may export other commits meanwhile.
        short = subprocess.run(["git", "rev-parse", "--short", args.strom_rev], cwd=ROOT,
                               check=True, capture_output=True, text=True).stdout.strip()
        Strom.source = CACHE / "bench" / f"run-rev-src-{short}"
        Strom.runtime_name = f"strom-runtime-run-{short}"
        if not (Strom.source / ".exported").exists():
            export_revision(args.strom_rev, Strom.source)
            (Strom.source / ".exported").touch()
        Strom.source_rev = short
    strom_extra: dict[str, str] = {}
    for item in args.strom_override:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--strom-override {item!r}: expected KEY=VALUE")
        strom_extra[key.strip()] = value.strip()
    brokers = {n: BROKERS[n](args.data_dir, args.partitions, args.segment_bytes,
                             extra=strom_extra if n.startswith("strom") else None)
               for n in names}
    for n in (n for n in brokers if strom_extra and n.startswith("strom")):
        brokers[n].label += " (" + ", ".join(f"{k}={v}" for k, v in strom_extra.items()) + ")"
    if "tansu" in brokers:
        try:
            brokers["tansu"].version()
        except BrokerError as exc:
            log(f"Tansu left out: {exc}")
            del brokers["tansu"]
            names.remove("tansu")
    labels = {n: b.label for n, b in brokers.items()}
    unfair = {n: dict(b.unfair) for n, b in brokers.items()}
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(PYTHON, ROOT),
                                           "bench/run.py", *sys.argv[1:]])
    doc: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": cmd,
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "versions": versions(list(brokers.values())),
        "settings": {
            "partitions": args.partitions, "segment_bytes": args.segment_bytes,
            "data_dir": str(args.data_dir), "data_device": data_device(args.data_dir),
            "sizes": sizes.__dict__, "kafka_server_jvm": JAVA_SERVER_OPTS,
            "java_tools_jvm": JAVA_PERF_OPTS,
            "strom_fsyncs_acks_all": strom_extra.get("strom.acks.all.fsync", "true") == "true",
            "strom_overrides": strom_extra, "kafka_fsyncs_acks_all": False,
            "labels": labels, "unfair": unfair,
            "rdkafka_client": args.client, "nofile_limit": nofile,
        },
        "rounds_planned": sizes.rounds, "rounds_done": 0, "rounds": [], "results": [],
    }
    log(f"{doc['mode']} run: {sizes.rounds} rounds of {', '.join(labels.values())}; "
        f"data in {args.data_dir} ({doc['settings']['data_device']})")
    t0 = time.perf_counter()
    md = ""
    try:
        for rnd in range(1, sizes.rounds + 1):
            k = (rnd - 1) % len(names)
            order = names[k:] + names[:k]
            log(f"round {rnd}/{sizes.rounds}: {' -> '.join(order)}")
            doc["rounds"].append({"round": rnd, "order": order,
                                  "loadavg_start": os.getloadavg()[0]})
            for n in order:
                doc["results"] += [r.to_json() for r in
                                   broker_round(brokers[n], sizes, rnd, only)]
            doc["rounds_done"] = rnd
            doc["elapsed_s"] = time.perf_counter() - t0
            md = write_outputs(doc, args.out, labels, names, unfair)
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
        for b in brokers.values():
            b.stop(grace=5)
            b.cleanup()
        doc["interrupted"] = True
        md = write_outputs(doc, args.out, labels, names, unfair)
    print(md)
    log(f"done in {time.perf_counter() - t0:.0f}s: {args.out}/latest.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
