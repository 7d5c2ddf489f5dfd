#!/usr/bin/env python3
"""Three strom brokers against three Apache Kafka brokers on this machine.

  python bench/cluster_bench.py                 # 2 rounds each, 1 GiB catch-up
  python bench/cluster_bench.py --quick         # small sizes, to see it work
  python bench/cluster_bench.py --rounds 3 --catchup-bytes 268435456

Rounds alternate between the clusters (strom, Kafka, strom, Kafka, ...); each
round starts its cluster from empty data directories (bench/clusters.py: strom
through scripts/local-cluster.sh with etcd, Kafka as three combined
broker+controller KRaft nodes; replication factor 3, min.insync.replicas 2 on
both), measures, and stops it. The client is the same for both: librdkafka
(confluent-kafka) through bench/loadgen.py. Per round, in this order:

1. produce: 1 KiB records, acks=all, to a topic of 3 partitions at
   replication factor 3 (leaders spread over the brokers); MiB/s. A warm-up
   run of the same kind on another topic comes first (Kafka's JIT).
2. e2e: producer timestamp -> consumer receive at a fixed rate that both
   clusters sustain (default 2 MiB/s, acks=all, linger.ms 1, 5 requests in
   flight per connection); p50/p99.
3. catch-up: a topic whose partitions are led by the two other brokers; one
   broker (the follower of every partition, never the active controller) is
   stopped (SIGTERM), `--catchup-bytes` are written with acks=all (the two
   left are min.insync.replicas, so writes go on), the broker is started
   again; the time from its start until Metadata lists it in the ISR of every
   partition of the topic (polled every 100 ms).
4. failover: kill -9 of a partition leader (not the controller) under an
   acks=all producer, to the first acknowledgement after the gap: one round
   of bench/failover.py (`one_round`, mode kill, target leader).

Each figure is the median over rounds, with the spread (min-max); ratios are
strom/Kafka with the direction that is better. Results:
bench/results/cluster-latest.json and cluster-latest.md, with `uptime`'s
load averages at the start and end of the run (the machine may be shared).
See docs/benchmarks.md (Cluster: three brokers each).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from brokers import BrokerError
from clusters import CLUSTER_SETTINGS, NODES, Cluster, KafkaCluster, StromCluster, admin_client
from common import CACHE, PYTHON, ROOT, log, median, proc_cpu_s
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from failover import one_round
from run import machine
from workloads import WorkloadFailed, e2e_latency, loadgen_at

RESULTS = ROOT / "bench" / "results"
PARTITIONS = 3
RECORD = 1024
# The e2e producer: linger.ms as the single-node e2e (bench/workloads.py), and
# at most 5 requests in flight per connection, the Java client's default and
# what librdkafka allows an idempotent producer. With librdkafka's default
# (1,000,000) it pipelines a request per millisecond per partition; Kafka reads
# a connection's next request only once the previous one is answered, so at
# acks=all each tiny request waited a replication round trip behind the others
# and the queue grew without bound (p50 9 s at 1 MiB/s here), while batches
# grow as they should when in-flight requests are capped.
E2E_LINGER_MS = 1
E2E_IN_FLIGHT = 5


@dataclass
class Sizes:
    warmup_records: int
    produce_records: int
    e2e_seconds: float
    catchup_bytes: int
    client_timeout_s: float


QUICK = Sizes(warmup_records=20_000, produce_records=50_000, e2e_seconds=5,
              catchup_bytes=64 << 20, client_timeout_s=180)
FULL = Sizes(warmup_records=100_000, produce_records=400_000, e2e_seconds=30,
             catchup_bytes=1 << 30, client_timeout_s=900)

# Which way is better for each figure, and how it is shown.
FIGURES: dict[str, tuple[str, str, str]] = {
    # key: (label, unit, better)
    "produce_mib_s": ("produce acks=all, RF 3, 1 KiB records, 3 partitions", "MiB/s", "higher"),
    "e2e_p50_ms": ("end-to-end p50 at the fixed rate", "ms", "lower"),
    "e2e_p99_ms": ("end-to-end p99 at the fixed rate", "ms", "lower"),
    "failover_s": ("failover: kill -9 of a leader -> first ack after the gap", "s", "lower"),
    "catchup_s": ("follower catch-up: broker start -> in the ISR of every partition",
                  "s", "lower"),
    "catchup_registered_s": ("  of which: broker start -> listed in Metadata again", "s",
                             "lower"),
    "catchup_fetch_s": ("  of which: listed again -> in the ISR of every partition", "s",
                        "lower"),
    "catchup_write_mib_s": ("produce acks=all with one broker down (the catch-up write)",
                            "MiB/s", "higher"),
}


def export_revision(rev: str, dest: Path) -> str:
    """The tree of commit `rev` into `dest`; its short hash. Other work may be
    editing the working tree while the bench runs: a commit is what every
    round can run unchanged, and what the results can name."""
    short = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.strip()
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", rev], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {rev} failed")
    return short


def client_versions() -> dict[str, str]:
    import confluent_kafka

    return {"confluent_kafka": confluent_kafka.version()[0],
            "librdkafka": confluent_kafka.libversion()[0]}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def broker_pids(cluster: Cluster) -> list[int]:
    if isinstance(cluster, KafkaCluster):
        return [p.pid for p in cluster.procs.values() if p.poll() is None]
    if isinstance(cluster, StromCluster):
        return [pid for n, pid in cluster.pids.items() if cluster.alive(n)]
    return []


def runqueue_wait_s(pid: int) -> float:
    """Seconds the threads of `pid` spent runnable but waiting for a core
    (/proc/<pid>/task/*/schedstat, second field): on a machine shared with
    other work, how much of a phase a broker spent waiting to be scheduled."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class CpuWindow:
    """CPU the cluster's broker processes spend over a phase, and the time
    their threads waited for a core, both in cores (seconds per second)."""

    def __init__(self, cluster: Cluster) -> None:
        self.pids = broker_pids(cluster)
        self.cpu0 = sum(proc_cpu_s(p) for p in self.pids)
        self.wait0 = sum(runqueue_wait_s(p) for p in self.pids)
        self.t0 = time.perf_counter()

    def cores(self) -> float:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        return round((sum(proc_cpu_s(p) for p in self.pids) - self.cpu0) / wall, 2)

    def waiting(self) -> float:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        return round((sum(runqueue_wait_s(p) for p in self.pids) - self.wait0) / wall, 2)


def create_topic(admin: AdminClient, topic: str,
                 assignment: list[list[int]] | None = None) -> None:
    if assignment is None:
        new = NewTopic(topic, PARTITIONS, 3)
    else:
        new = NewTopic(topic, len(assignment), replica_assignment=assignment)
    fut = admin.create_topics([new], operation_timeout=60, request_timeout=60)[topic]
    try:
        fut.result(timeout=90)
    except KafkaException as exc:
        raise BrokerError(f"CreateTopics {topic}: {exc.args[0]}") from exc


def isr_state(admin: AdminClient, topic: str) -> dict[int, tuple[int, list[int]]] | None:
    """partition -> (leader, isr); None when Metadata does not answer."""
    try:
        md = admin.list_topics(topic, timeout=2)
    except KafkaException:
        return None
    meta = md.topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        return None
    return {p: (int(m.leader), [int(i) for i in m.isrs]) for p, m in meta.partitions.items()}


def wait_isr(admin: AdminClient, topic: str, want: set[int], timeout: float,
             poll: float = 0.1) -> float:
    """Until every partition of `topic` has a leader and exactly `want` in its
    ISR; the monotonic time it was first seen so."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = isr_state(admin, topic)
        if state and len(state) >= 1 and all(
                leader in want and set(isr) == want for leader, isr in state.values()):
            return time.monotonic()
        time.sleep(poll)
    raise BrokerError(f"{topic}: ISR not {sorted(want)} after {timeout:.0f}s: {state}")


def produce(cluster: Cluster, topic: str, records: int, timeout: float,
            down: int | None = None) -> dict[str, Any]:
    """loadgen's produce, acks=all. `down`: a node left out of the bootstrap list
    (stopped: librdkafka reports each refused bootstrap connection as an error)."""
    # Both clusters list their nodes' addresses in node id order.
    addrs = cluster.bootstrap().split(",")
    bootstrap = ",".join(a for n, a in zip(NODES, addrs, strict=True) if n != down)
    out, _ = loadgen_at(bootstrap, "produce", topic, timeout, records=records,
                        size=RECORD, acks="all", linger_ms=5, batch_bytes=1048576)
    if out.get("unflushed"):
        raise WorkloadFailed(f"{out['unflushed']} records not acknowledged")
    return out


def phase_produce(cluster: Cluster, admin: AdminClient, rnd: int,
                  sizes: Sizes) -> dict[str, Any]:
    create_topic(admin, f"warmup-r{rnd}")
    wait_isr(admin, f"warmup-r{rnd}", set(NODES), 60)
    produce(cluster, f"warmup-r{rnd}", sizes.warmup_records, sizes.client_timeout_s)
    topic = f"produce-r{rnd}"
    create_topic(admin, topic)
    wait_isr(admin, topic, set(NODES), 60)
    os.sync()  # the warm-up's writeback must not land on this run
    cpu = CpuWindow(cluster)
    out = produce(cluster, topic, sizes.produce_records, sizes.client_timeout_s)
    return {"produce_mib_s": round(out["mib_per_s"], 2), "produce_broker_cores": cpu.cores(),
            "produce_broker_runq_wait": cpu.waiting(),
            "produce_client_main_thread_busy": round(out["client_main_thread_busy"], 2)}


def phase_e2e(cluster: Cluster, admin: AdminClient, rnd: int, sizes: Sizes,
              rate_mib: float, in_flight: int) -> dict[str, Any]:
    topic = f"e2e-r{rnd}"
    create_topic(admin, topic)
    wait_isr(admin, topic, set(NODES), 60)
    cpu = CpuWindow(cluster)
    res, out, _ = e2e_latency(cluster.bootstrap(), topic, rate_mib * 1024, sizes.e2e_seconds,
                              acks="all", linger_ms=E2E_LINGER_MS, max_in_flight=in_flight)
    return {"e2e_p50_ms": round(res["p50_ms"], 2), "e2e_p99_ms": round(res["p99_ms"], 2),
            "e2e_p999_ms": round(res["p999_ms"], 2), "e2e_max_ms": round(res["max_ms"], 2),
            "e2e_producer_mib_s": round(out["mib_per_s"], 2), "e2e_broker_cores": cpu.cores(),
            "e2e_broker_runq_wait": cpu.waiting()}


def phase_catchup(cluster: Cluster, admin: AdminClient, rnd: int, sizes: Sizes,
                  timeout: float) -> dict[str, Any]:
    """Stop a follower, write, restart it: start -> back in every partition's ISR."""
    controller = cluster.controller()
    candidates = [n for n in NODES if n != controller]
    follower = candidates[rnd % len(candidates)]
    leaders = [n for n in NODES if n != follower]
    # Leaders alternate over the two others; the stopped broker is last in every list.
    assignment = [[leaders[p % 2], leaders[(p + 1) % 2], follower] for p in range(PARTITIONS)]
    topic = f"catchup-r{rnd}"
    create_topic(admin, topic, assignment)
    wait_isr(admin, topic, set(NODES), 60)
    log(f"{cluster.label} catch-up: stopping node {follower} (controller {controller})")
    cluster.signal(follower, signal.SIGTERM)
    if not cluster.wait_exit(follower, 120):
        raise BrokerError(f"node {follower} did not exit within 120 s of SIGTERM")
    t_stopped = time.monotonic()
    # Out of the ISR before the write, so that acks=all waits for two replicas only.
    t_shrunk = wait_isr(admin, topic, set(leaders), timeout)
    records = sizes.catchup_bytes // RECORD
    os.sync()
    out = produce(cluster, topic, records, sizes.client_timeout_s, down=follower)
    os.sync()  # the write's dirty pages are not the follower's start-up's problem
    log(f"{cluster.label} catch-up: {out['bytes'] / 1048576:.0f} MiB written at "
        f"{out['mib_per_s']:.1f} MiB/s; starting node {follower}")
    cpu_window: CpuWindow | None = None
    t0 = time.monotonic()
    cluster.start_node(follower)
    t_registered: float | None = None
    deadline = t0 + timeout
    t_isr: float | None = None
    while time.monotonic() < deadline:
        if cpu_window is None:
            cpu_window = CpuWindow(cluster)
        if t_registered is None:
            try:
                if follower in admin.list_topics(timeout=2).brokers:
                    t_registered = time.monotonic()
            except KafkaException:
                pass
        state = isr_state(admin, topic)
        if state and all(follower in isr for _, isr in state.values()):
            t_isr = time.monotonic()
            break
        time.sleep(0.1)
    if t_isr is None:
        raise BrokerError(f"node {follower} not back in the ISR of {topic} after {timeout:.0f}s")
    return {"catchup_s": round(t_isr - t0, 2),
            "catchup_registered_s": None if t_registered is None else round(t_registered - t0, 2),
            "catchup_fetch_s": None if t_registered is None else round(t_isr - t_registered, 2),
            "catchup_node": follower, "catchup_mib": round(out["bytes"] / 1048576),
            "catchup_write_mib_s": round(out["mib_per_s"], 2),
            "catchup_isr_shrink_s": round(t_shrunk - t_stopped, 2),
            "catchup_broker_cores": cpu_window.cores() if cpu_window else None,
            "catchup_broker_runq_wait": cpu_window.waiting() if cpu_window else None}


def phase_failover(cluster: Cluster, admin: AdminClient, rnd: int,
                   timeout: float) -> dict[str, Any]:
    fargs = argparse.Namespace(rate=200.0, warm=2.0, settle=2.0, window=90.0,
                               recovery_timeout=timeout)
    row, _, _ = one_round(cluster, admin, "kill", "leader", rnd, fargs, 0)
    if row["status"] != "ok":
        raise BrokerError(f"failover: {row.get('reason')}")
    return {"failover_s": row["resume_s"], "failover_gap_s": row["gap_s"],
            "failover_leader_moved_s": row["leader_moved_s"],
            "failover_delivery_errors": row["delivery_errors"]}


PHASES = ("produce", "e2e", "catchup", "failover")


def one_cluster_round(cluster: Cluster, rnd: int, args: argparse.Namespace) -> dict[str, Any]:
    row: dict[str, Any] = {"broker": cluster.name, "round": rnd,
                           "loadavg_start": os.getloadavg()}
    os.sync()
    try:
        row["startup_s"] = round(cluster.start(), 2)
        row["version"] = cluster.version()
        admin = admin_client(cluster.bootstrap())
        for phase in args.phases:
            t0 = time.perf_counter()
            row[f"{phase}_loadavg"] = round(os.getloadavg()[0], 2)
            if phase == "produce":
                row.update(phase_produce(cluster, admin, rnd, args.sizes))
            elif phase == "e2e":
                row.update(phase_e2e(cluster, admin, rnd, args.sizes, args.e2e_rate,
                                     args.e2e_in_flight))
            elif phase == "catchup":
                row.update(phase_catchup(cluster, admin, rnd, args.sizes, args.timeout))
            elif phase == "failover":
                row.update(phase_failover(cluster, admin, rnd, args.timeout))
            row[f"{phase}_wall_s"] = round(time.perf_counter() - t0, 1)
            log(f"{cluster.label} round {rnd} {phase}: "
                + ", ".join(f"{k}={v}" for k, v in row.items()
                            if k.startswith(phase[:4]) and not k.endswith("loadavg")))
        row["status"] = "ok"
    except (BrokerError, WorkloadFailed, KafkaException, subprocess.SubprocessError) as exc:
        row["status"] = "failed"
        row["reason"] = str(exc)
        log(f"{cluster.label} round {rnd}: FAILED {exc}")
    finally:
        cluster.stop_all()
    row["loadavg_end"] = os.getloadavg()
    return row


def summarize(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key, (label, unit, better) in FIGURES.items():
        fig: dict[str, Any] = {"figure": key, "label": label, "unit": unit, "better": better}
        for name in ("strom", "kafka"):
            vals = [r[key] for r in rounds if r["broker"] == name and r.get(key) is not None]
            fig[name] = {"median": median(vals), "min": min(vals), "max": max(vals),
                         "n": len(vals)} if vals else None
        s, k = fig["strom"], fig["kafka"]
        fig["ratio"] = round(s["median"] / k["median"], 3) if s and k and k["median"] else None
        if fig["ratio"] is None:
            fig["strom_wins"] = None
        else:
            fig["strom_wins"] = fig["ratio"] >= 1.0 if better == "higher" else fig["ratio"] <= 1.0
        out.append(fig)
    return out


def markdown(doc: dict[str, Any]) -> str:
    def cell(v: dict[str, Any] | None, unit: str) -> str:
        if v is None:
            return "—"
        fmt = ".1f" if unit == "MiB/s" or v["median"] >= 10 else ".2f"
        return (f"{v['median']:{fmt}} {unit} ({v['min']:{fmt}}–{v['max']:{fmt}}, "
                f"n={v['n']})")

    s = doc["settings"]
    lines = [
        f"Cluster: three strom brokers vs three Apache Kafka {doc['versions'].get('kafka', '?')} "
        f"brokers — {doc['date']}, {doc['machine']['nproc']} cores",
        "",
        f"Command: `{doc['command']}` · {s['rounds']} rounds each, alternating "
        f"(strom, Kafka, ...) · librdkafka {doc['versions'].get('librdkafka', '?')} for both · "
        f"RF 3, min.insync.replicas 2 · e2e at {s['e2e_rate_mib_s']} MiB/s for "
        f"{s['sizes']['e2e_seconds']} s · catch-up write {s['sizes']['catchup_bytes'] >> 20} MiB "
        f"· strom {doc['versions'].get('strom', '?')}",
        "",
        "| figure | better | strom | Apache Kafka | strom/Kafka |",
        "|---|---|---|---|---|"]
    for f in doc["figures"]:
        ratio = "—" if f["ratio"] is None else f"{f['ratio']:.2f}×"
        lines.append(f"| {f['label']} | {f['better']} | {cell(f['strom'], f['unit'])} | "
                     f"{cell(f['kafka'], f['unit'])} | {ratio} |")
    lines += ["", "Medians over rounds (min–max). Load averages (`uptime`): start "
              f"`{doc['uptime_start']}`, end `{doc['uptime_end']}`."]
    for r in doc["rounds"]:
        if r["status"] != "ok":
            lines.append(f"- {r['broker']} round {r['round']}: FAILED: {r.get('reason')}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per cluster (default 2)")
    parser.add_argument("--catchup-bytes", type=int, default=None,
                        help="bytes written while the follower is down (default 1 GiB; "
                             "--quick: 64 MiB)")
    parser.add_argument("--produce-records", type=int, default=None)
    parser.add_argument("--e2e-rate", type=float, default=2.0,
                        help="MiB/s (default 2: at 5 Kafka's three nodes fell behind here)")
    parser.add_argument("--e2e-seconds", type=float, default=None)
    parser.add_argument("--e2e-in-flight", type=int, default=E2E_IN_FLIGHT,
                        help="the e2e producer's max.in.flight.requests.per.connection "
                             "(default 5; 0: librdkafka's default)")
    parser.add_argument("--brokers", default="strom,kafka",
                        help="clusters, in the order each round runs them")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="longest wait for a cluster to recover or a follower to catch up")
    parser.add_argument("--strom-rev", default="HEAD",
                        help="the commit strom runs from (default HEAD: committed code only; "
                             "'worktree': the working tree as it is)")
    parser.add_argument("--data-dir", type=Path, default=CACHE / "bench" / "cluster-data")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    args.sizes = Sizes(
        warmup_records=base.warmup_records,
        produce_records=args.produce_records or base.produce_records,
        e2e_seconds=args.e2e_seconds or base.e2e_seconds,
        catchup_bytes=args.catchup_bytes or base.catchup_bytes,
        client_timeout_s=base.client_timeout_s)
    args.phases = args.phases.split(",")
    names = args.brokers.split(",")
    if bad := [p for p in args.phases if p not in PHASES] + \
            [n for n in names if n not in ("kafka", "strom")]:
        parser.error(f"unknown: {bad}")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if "strom" in names and (reason := StromCluster.unavailable()):
        parser.error(f"strom cannot run here: {reason}")
    clusters: dict[str, Cluster] = {}
    for n in names:
        if n == "kafka":
            clusters[n] = KafkaCluster(args.data_dir)
        elif args.strom_rev == "worktree":
            clusters[n] = StromCluster(args.data_dir)
        else:
            src = CACHE / "bench" / "strom-rev-src"
            clusters[n] = StromCluster(args.data_dir, src, export_revision(args.strom_rev, src))
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(PYTHON, ROOT),
                                           "bench/cluster_bench.py", *sys.argv[1:]])
    doc: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": cmd, "machine": machine(), "uptime_start": uptime(),
        "settings": {"rounds": args.rounds, "order": names, "phases": args.phases,
                     "sizes": asdict(args.sizes), "e2e_rate_mib_s": args.e2e_rate,
                     "e2e_in_flight": args.e2e_in_flight, "e2e_linger_ms": E2E_LINGER_MS,
                     "partitions": PARTITIONS, "record_bytes": RECORD,
                     "cluster": CLUSTER_SETTINGS,
                     "kafka_topology": "3 combined broker+controller nodes (KRaft, static quorum)",
                     "strom_topology": "etcd + 3 brokers (scripts/local-cluster.sh)"},
        "rounds": [],
    }
    log(f"cluster bench: {args.rounds} rounds of {names}, phases {args.phases}; "
        f"{doc['uptime_start']}")
    t0 = time.perf_counter()

    def write() -> str:
        """Rewritten after every round: an interrupted run keeps what it measured."""
        doc["uptime_end"] = uptime()
        doc["elapsed_s"] = round(time.perf_counter() - t0)
        doc["versions"] = {**client_versions(),
                           **{n: c.version() for n, c in clusters.items()}}
        doc["figures"] = summarize(doc["rounds"])
        md = markdown(doc)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cluster-latest.json").write_text(json.dumps(doc, indent=1) + "\n")
        (args.out / "cluster-latest.md").write_text(md)
        return md

    try:
        for rnd in range(1, args.rounds + 1):
            for name in names:
                doc["rounds"].append(one_cluster_round(clusters[name], rnd, args))
                write()
    finally:
        for c in clusters.values():
            c.stop_all()
    print(write())
    log(f"done in {doc['elapsed_s']}s: {args.out}/cluster-latest.{{json,md}}")
    return 0 if all(r["status"] == "ok" for r in doc["rounds"]) else 1


if __name__ == "__main__":
    sys.exit(main())
