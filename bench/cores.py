#!/usr/bin/env python3
"""strom on one core against strom on two: shard-per-core measured (issue 19).

  python bench/cores.py                       # 3 alternating rounds, both layouts
  python bench/cores.py --rounds 1 --quick    # to see it work
  python bench/cores.py --busy                # with a competing CPU hog

A shard is a broker process that owns a disjoint set of partitions (Kafka's
clients route every produce and fetch to the partition's leader, so shards
need no request forwarding on the data path). Layouts, each on a fresh
data directory:

- `1`: one single-node broker (the default `strom serve`) pinned to core 0,
  the client pinned to core 1.
- `1u`: the same, nothing pinned (the scheduler moves the one busy
  thread to whichever core is free: what a default deployment gets).
- `2`: `strom serve --override strom.processes=2`: two broker processes
  (nodes 1, 2; cluster mode over etcd at replication factor 1, partitions
  spread over both), which it pins to cores 0 and 1; the client is not
  pinned (a 2-core machine has no third core for it).
- `2rf2` (only when asked for, `--layouts 2,2rf2`): the same with topics at
  replication factor 2, so each process also follows the other's partitions
  over loopback Fetch: what replication between the processes of one
  machine costs.

Workloads (librdkafka through confluent-kafka, one client process):

- `small`: 100-byte records, one record per request (`batch.num.messages=1`,
  `linger.ms=0`), acks=1, 32 producer instances (each writing one partition, so a
  request carries one batch), 5 requests in flight each;
  requests/s acknowledged.
- `bulk`: 1 KiB records, linger.ms 5, 1 MiB batches, acks=1; MiB/s.

Each row reports the brokers' and the client's CPU (cores busy). `--busy`
runs a CPU hog (a Python busy loop, not pinned) during the workloads,
the "one other busy process on the machine" of the issue. Results:
bench/results/cores-latest.json and .md. See docs/benchmarks.md
("More than one core").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from brokers import strom_runtime_bin
from cluster_bench import export_revision
from common import CACHE, CLK_TCK, PYTHON, ROOT, free_port, log, port_open

RESULTS = ROOT / "bench" / "results"
ETCD = CACHE / "etcd" / "etcd"
PARTITIONS = 8

CLIENT = r'''
import json, sys, time, os
from confluent_kafka import Producer
bootstrap, topic, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "small":
    conf = {"linger.ms": 0, "batch.num.messages": 1, "acks": "1",
            "max.in.flight.requests.per.connection": 5}
    producers, size = 32, 100
else:
    conf = {"linger.ms": 5, "batch.size": 1048576, "acks": "1",
            "message.max.bytes": 2000000}
    producers, size = 1, 1024
ps = [Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False,
                "queue.buffering.max.messages": 200000, **conf}) for _ in range(producers)]
for p in ps:
    p.list_topics(topic, timeout=20)
value = os.urandom(size)
errors = [0]
def cb(err, msg):
    if err is not None:
        errors[0] += 1
cpu0, t0 = time.process_time(), time.perf_counter()
i = 0
while i < n:
    p = ps[i % producers]
    try:
        # Each producer writes one partition: one batch, so one record, per request.
        p.produce(topic, value, partition=(i % producers) % 8, on_delivery=cb)
        i += 1
    except BufferError:
        p.poll(0.001)
    if i % 1000 == 0:
        for q in ps:
            q.poll(0)
for p in ps:
    p.flush(120)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "records": n, "errors": errors[0],
                  "client_cpu": (time.process_time() - cpu0) / wall}))
'''

HOG = "while True: pass"

#: name: (broker processes, broker on core 0 and client on core 1, label)
LAYOUTS = {"1": (1, True, "1 process, pinned apart from the client"),
           "1u": (1, False, "1 process, nothing pinned"),
           "2": (2, False, "strom.processes=2 (one per core)"),
           "2rf2": (2, False, "strom.processes=2, replication factor 2 across them")}


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def consecutive_free_ports(n: int) -> int:
    """A port p with p .. p + n - 1 free (strom.processes listens on p + i)."""
    for _ in range(50):
        first = free_port()
        socks = [socket.socket() for _ in range(n)]
        try:
            for i, sock in enumerate(socks):
                sock.bind(("127.0.0.1", first + i))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


class Layout:
    def __init__(self, shards: int, base: Path, strom: Path, pinned: bool,
                 rf: int = 1) -> None:
        self.rf = rf
        self.strom = strom
        self.pinned = pinned
        self.shards = shards
        self.base = base
        self.procs: list[subprocess.Popen[bytes]] = []
        self.etcd: subprocess.Popen[bytes] | None = None
        first = consecutive_free_ports(shards)
        self.ports = [first + i for i in range(shards)]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> None:
        overrides: dict[str, str] = {"group.initial.rebalance.delay.ms": "0",
                                     "num.partitions": str(PARTITIONS),
                                     "message.max.bytes": "2000000"}
        if self.shards > 1:
            cport, pport = free_port(), free_port()
            self.etcd = subprocess.Popen(
                [*pin(None), str(ETCD), "--name", "e", "--data-dir", str(self.base / "etcd"),
                 "--listen-client-urls", f"http://127.0.0.1:{cport}",
                 "--advertise-client-urls", f"http://127.0.0.1:{cport}",
                 "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                 "--initial-cluster", f"e=http://127.0.0.1:{pport}", "--log-level", "error"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            overrides.update({"strom.metadata.etcd.endpoints": f"http://127.0.0.1:{cport}",
                              "cluster.id": "cores-bench",
                              "offsets.topic.replication.factor": "1",
                              "transaction.state.log.replication.factor": "1",
                              "transaction.state.log.min.isr": "1",
                              "default.replication.factor": "1"})
        if self.shards > 1:
            # The built thing: one `strom serve` running one broker process per
            # core (strom.processes, strom/cli/processes.py), which pins them.
            overrides.update({"strom.processes": str(self.shards), "node.id": "1"})
        args = [*pin(0 if self.pinned else None), str(self.strom), "serve",
                "--log-level", "WARNING",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.ports[0]}",
                "--override", f"log.dirs={self.base / 'data'}"]
        for k, v in overrides.items():
            args += ["--override", f"{k}={v}"]
        with open(self.base / "broker.log", "ab") as out:
            self.procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                               cwd=self.base))
        deadline = time.monotonic() + 60
        for port in self.ports:
            while not port_open(port):
                if time.monotonic() > deadline:
                    log_tail = (self.base / "broker.log").read_text()[-1500:]
                    raise TimeoutError(f"broker on {port} did not listen "
                                       f"(exit {self.procs[0].poll()}): {log_tail}")
                time.sleep(0.05)  # polling a port: there is no event to wait on
        if self.shards > 1:
            self._wait_brokers()

    def _wait_brokers(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + 60
        while len(admin.list_topics(timeout=10).brokers) < self.shards:
            if time.monotonic() > deadline:
                raise TimeoutError("brokers did not register")
            time.sleep(0.1)  # polling metadata: there is no event to wait on

    def create(self, topic: str) -> list[int]:
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS, self.rf)])[topic].result(30)
        deadline = time.monotonic() + 30
        while True:
            md = admin.list_topics(topic, timeout=10).topics[topic]
            leaders = [p.leader for p in md.partitions.values()]
            if len(leaders) == PARTITIONS and all(x >= 0 for x in leaders):
                return sorted(leaders)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: no leaders")
            time.sleep(0.1)  # polling metadata: there is no event to wait on

    def cpu(self) -> float:
        """CPU seconds of the broker processes (strom.processes' children too)."""
        total = 0.0
        for p in self.procs:
            total += proc_cpu_s(p.pid)
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                total += sum(proc_cpu_s(int(c)) for c in f.read().split())
        return total

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.etcd is not None:
            self.etcd.kill()
            self.etcd.wait()


def run_workload(layout: Layout, mode: str, n: int) -> dict[str, Any]:
    topic = f"{mode}-{time.monotonic_ns()}"
    leaders = layout.create(topic)
    client_cpu = 1 if layout.pinned else None
    c0 = layout.cpu()
    res = subprocess.run([*pin(client_cpu), PYTHON, "-c", CLIENT, layout.bootstrap, topic,
                          mode, str(n)], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    out["broker_cpu"] = (layout.cpu() - c0) / out["wall_s"]
    out["leaders"] = leaders
    if mode == "small":
        out["requests_per_s"] = n / out["wall_s"]
    else:
        out["mib_per_s"] = n * 1024 / out["wall_s"] / 1048576
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--busy", action="store_true", help="a CPU hog beside the workloads")
    ap.add_argument("--layouts", default="1,1u,2")
    ap.add_argument("--tag", default="", help="results go to cores[-busy]-TAG-latest.*")
    ap.add_argument("--strom-rev", default="HEAD",
                    help="the commit measured (exported and installed non-editable: other "
                         "work may edit the tree while this runs)")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the brokers and the hog are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    src = CACHE / "bench" / "cores-rev-src"
    rev = export_revision(args.strom_rev, src)
    strom = strom_runtime_bin("cluster", src, "strom-runtime-cores")
    if (os.cpu_count() or 1) < 2:
        log("needs 2 cores")
        return 1
    small_n = 30_000 if args.quick else 150_000
    bulk_n = 300_000 if args.quick else 2_000_000
    layouts = args.layouts.split(",")
    for name in layouts:
        if name not in LAYOUTS:
            ap.error(f"--layouts: {name!r} is none of {', '.join(LAYOUTS)}")
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()
    for rnd in range(args.rounds):
        order = layouts if rnd % 2 == 0 else list(reversed(layouts))
        for name in order:
            shards, pinned, _ = LAYOUTS[name]
            base = Path(tempfile.mkdtemp(prefix=f"cores-{shards}-", dir=ROOT / ".cache"))
            layout = Layout(shards, base, strom, pinned, 2 if name.endswith("rf2") else 1)
            hog = None
            try:
                layout.start()
                run_workload(layout, "small", 5_000)  # warm-up
                if args.busy:
                    hog = subprocess.Popen([sys.executable, "-c", HOG])
                for mode, n in (("small", small_n), ("bulk", bulk_n)):
                    r = run_workload(layout, mode, n)
                    r.update(round=rnd, layout=name, shards=shards, mode=mode, busy=args.busy)
                    log(json.dumps(r))
                    rows.append(r)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
                layout.stop()
                shutil.rmtree(base, ignore_errors=True)
    doc = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "command": " ".join(sys.argv), "strom_rev": rev, "loadavg_start": load0,
           "loadavg_end": os.getloadavg(), "rows": rows}
    lines = [f"# strom at {rev}, 1 vs 2 broker processes — {doc['date']}", "",
             f"`{doc['command']}`; load average at start {load0[0]:.1f}, "
             f"at end {doc['loadavg_end'][0]:.1f}", "",
             "| workload | layout | median | range | broker CPU (cores) | broker CPU per "
             "request / per MiB | client CPU |",
             "|---|---|---|---|---|---|---|"]
    for mode, key in (("small", "requests_per_s"), ("bulk", "mib_per_s")):
        for name in layouts:
            sel = [r for r in rows if r["mode"] == mode and r["layout"] == name]
            if not sel:
                continue
            vals = [r[key] for r in sel]
            # CPU per unit of work: what a loaded machine blurs least.
            unit, scale = ("us", 1e6) if mode == "small" else ("ms", 1e3)
            per = [r["broker_cpu"] / r[key] * scale for r in sel]
            lines.append(f"| {mode} ({key}) | {LAYOUTS[name][2]} | "
                         f"{statistics.median(vals):,.0f} | "
                         f"{min(vals):,.0f}–{max(vals):,.0f} | "
                         f"{statistics.median(r['broker_cpu'] for r in sel):.2f} | "
                         f"{statistics.median(per):.1f} {unit} ({min(per):.1f}–{max(per):.1f}) | "
                         f"{statistics.median(r['client_cpu'] for r in sel):.2f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = ("-busy" if args.busy else "") + (f"-{args.tag}" if args.tag else "")
    (RESULTS / f"cores{suffix}-latest.json").write_text(json.dumps(doc, indent=1))
    (RESULTS / f"cores{suffix}-latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
