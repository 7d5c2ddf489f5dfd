"""CPU seconds a single strom broker spends per phase (produce acks=1,
produce acks=all, consume), for two source trees alternately.

On a shared machine the broker's own CPU time per record moves far less with
other work's load than wall-clock throughput does, so this is the A/B to run
for a change to the hot path while the machine is busy:

    git worktree add /tmp/base <rev>
    cp strom/protocol/records/_walk*.so /tmp/base/strom/protocol/records/  # built in-tree
    .venv/bin/python bench/cpu_ab.py /tmp/base . --rounds 3

Without the in-tree C extension the base runs its pure-Python fallback and
looks several times slower. CPU time is read from /proc in clock ticks
(10 ms): use enough records that a phase takes well over a second of CPU for
fine comparisons.

--head-metrics turns the head broker's HTTP listener on (strom.http.listener)
and scrapes its /metrics every --scrape-interval seconds while it runs, to
measure what metrics cost (docs/operations.md, "Metrics").
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

PARTITIONS = 6
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)  # polling a port: there is no event to wait on
    raise TimeoutError(f"no broker on port {port}")


def _scrape(url: str, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                response.read()
        except OSError:
            pass  # starting or stopping; the next scrape tells


def _run(tree: str, records: int, value: bytes, scrape_interval: float | None = None,
         linger_ms: int = 5, batch_size: int = 1048576) -> dict[str, float]:
    data = tempfile.mkdtemp(prefix="cpu-ab-")
    port = _free_port()
    args = [sys.executable, "-m", "strom", "serve", "--override",
            f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={data}"]
    stop = threading.Event()
    scraper: threading.Thread | None = None
    if scrape_interval is not None:
        http_port = _free_port()
        args += ["--override", f"strom.http.listener=http://127.0.0.1:{http_port}"]
        scraper = threading.Thread(target=_scrape, daemon=True, args=(
            f"http://127.0.0.1:{http_port}/metrics", scrape_interval, stop))
    proc = subprocess.Popen(args, env=dict(os.environ, PYTHONPATH=tree), cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bootstrap = f"127.0.0.1:{port}"
    out: dict[str, float] = {}
    try:
        _wait_listening(port)
        if scraper is not None:
            scraper.start()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic("acks1", PARTITIONS, 1),
                                           NewTopic("acksall", PARTITIONS, 1)]).values():
            future.result(30)
        for topic, acks in (("acks1", "1"), ("acksall", "all")):
            producer = Producer({"bootstrap.servers": bootstrap, "acks": acks,
                                 "linger.ms": linger_ms, "batch.size": batch_size})
            before = _cpu_seconds(proc.pid)
            for _ in range(records):
                while True:
                    try:
                        producer.produce(topic, value)
                        break
                    except BufferError:
                        producer.poll(0.01)
            producer.flush(300)
            out[f"produce acks={acks}"] = _cpu_seconds(proc.pid) - before
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cpu-ab",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition("acks1", p, 0) for p in range(PARTITIONS)])
        before = _cpu_seconds(proc.pid)
        read = 0
        deadline = time.monotonic() + 300
        while read < records and time.monotonic() < deadline:
            read += sum(1 for m in consumer.consume(10000, 0.5) if m.error() is None)
        out["consume"] = _cpu_seconds(proc.pid) - before
        consumer.close()
    finally:
        stop.set()
        if scraper is not None and scraper.is_alive():
            scraper.join(15)
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the tree to compare against")
    parser.add_argument("head", help="the tree with the change")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=1_500_000)
    parser.add_argument("--size", type=int, default=100, help="record value bytes")
    parser.add_argument("--head-metrics", action="store_true",
                        help="the head broker serves /metrics, scraped while it runs")
    parser.add_argument("--scrape-interval", type=float, default=1.0,
                        help="seconds between scrapes with --head-metrics (Prometheus' "
                             "default is 15)")
    parser.add_argument("--linger-ms", type=int, default=5,
                        help="producer linger.ms (0 and a small --batch-size: many small "
                             "requests, where per-request costs show)")
    parser.add_argument("--batch-size", type=int, default=1048576, help="producer batch.size")
    args = parser.parse_args()
    trees = {"base": os.path.abspath(args.base), "head": os.path.abspath(args.head)}
    value = b"x" * args.size
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():  # alternating: load drifts hit both alike
            scrape = args.scrape_interval if name == "head" and args.head_metrics else None
            results[name].append(_run(tree, args.records, value, scrape, args.linger_ms,
                                      args.batch_size))
            print(name, {k: round(v, 2) for k, v in results[name][-1].items()}, flush=True)
    for phase in results["base"][0]:
        base = statistics.median(r[phase] for r in results["base"])
        head = statistics.median(r[phase] for r in results["head"])
        print(f"{phase}: base {base:.2f} s CPU, head {head:.2f} s CPU for {args.records:,} "
              f"records of {args.size} B; head/base {head / base:.3f}")


if __name__ == "__main__":
    main()
