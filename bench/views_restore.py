#!/usr/bin/env python3
"""Restoring a strom.views view from a million events, on strom and on Apache Kafka.

  .venv/bin/python bench/views_restore.py                      # 1,000,000 events, strom + Kafka
  .venv/bin/python bench/views_restore.py --events 200000 --brokers strom

For each broker (started fresh, same disk, same partitions; see brokers.py):
produce N typed events (OrderPlaced, JSON with type/version headers) to a
topic of P partitions, then time, from an empty store until caught up:

  raw      a bare confluent-kafka consume loop reading every record (the floor)
  memory   View + MemoryStore: decode each event, handler updates per-customer
           totals (1,000 customers) and a per-sku counter
  sqlite   the same View + SQLiteStore (the default backend), WAL, synchronous=NORMAL

Each restore runs in a fresh process (clean imports and heap) and reports
events/s; the view's own progress lines go to stderr. Ratios are strom/Kafka.
The view restores by itself, with its offsets in its store: no consumer group.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

TOPIC = "views-restore"
MODES = ("raw", "memory", "sqlite")


def produce(bootstrap: str, events: int, partitions: int) -> float:
    from dataclasses import dataclass

    from confluent_kafka import Producer

    from strom.views import EventRegistry

    registry = EventRegistry()

    @registry.event("OrderPlaced", version=2)
    @dataclass(frozen=True)
    class OrderPlaced:
        order_id: str
        customer_id: str
        sku: str
        quantity: int
        total_cents: int

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 20, "batch.size": 1 << 20,
                         "compression.type": "none", "partitioner": "murmur2_random"})
    t0 = time.perf_counter()
    for i in range(events):
        e = registry.encode(OrderPlaced(f"o-{i}", f"c-{i % 1000}", f"sku-{i % 97}",
                                        1 + i % 5, 100 + i % 10_000))
        while True:
            try:
                producer.produce(TOPIC, e.value, key=f"o-{i}", headers=list(e.headers))
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("records left unacknowledged after 120s")
    return time.perf_counter() - t0


def restore(mode: str, bootstrap: str, events: int, workdir: Path) -> dict[str, Any]:
    """Runs in a child process: restore once, print a JSON line."""
    import logging
    from dataclasses import dataclass

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="    %(asctime)s %(message)s")
    logging.getLogger("strom.views.client").setLevel(logging.WARNING)

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from strom.views import Context, EventRegistry, MemoryStore, SQLiteStore, View

    if mode == "raw":
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-raw",
                             "enable.auto.commit": False, "enable.partition.eof": True})
        md = consumer.list_topics(TOPIC, timeout=10)
        parts = sorted(md.topics[TOPIC].partitions)
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in parts])
        t0 = time.perf_counter()
        n, eof = 0, set[int]()
        deadline = time.monotonic() + 600
        while len(eof) < len(parts) and time.monotonic() < deadline:
            for msg in consumer.consume(5000, 0.5):
                if msg.error() is None:
                    n += 1
                    msg.value()
                    msg.headers()
                else:
                    partition = msg.partition()
                    if partition is not None:
                        eof.add(partition)
        elapsed = time.perf_counter() - t0
        consumer.close()
        return {"mode": mode, "events": n, "seconds": elapsed}

    registry = EventRegistry()

    @registry.event("OrderPlaced", version=2)
    @dataclass(frozen=True)
    class OrderPlaced:
        order_id: str
        customer_id: str
        sku: str
        quantity: int
        total_cents: int

    store = (MemoryStore() if mode == "memory"
             else SQLiteStore(workdir / f"restore-{os.getpid()}.db"))
    view = View("bench-restore", bootstrap=bootstrap, topics=[TOPIC], registry=registry,
                store=store, progress_interval=2.0)

    @view.on(OrderPlaced)
    def placed(event: OrderPlaced, ctx: Context) -> None:
        totals = ctx.get("customers", event.customer_id) or [0, 0]
        ctx.put("customers", event.customer_id,
                [totals[0] + 1, totals[1] + event.total_cents])
        ctx.put("skus", event.sku, (ctx.get("skus", event.sku) or 0) + event.quantity)

    t0 = time.perf_counter()
    progress = view.run_until_caught_up(timeout=900)
    elapsed = time.perf_counter() - t0
    with view.snapshot() as snap:
        orders = sum(v[0] for _, v in snap.items("customers"))
    store.close()
    if orders != events:
        raise RuntimeError(f"{mode}: view counted {orders} orders, expected {events}")
    return {"mode": mode, "events": progress.applied, "seconds": elapsed}


def run_child(mode: str, bootstrap: str, events: int, workdir: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--bootstrap", bootstrap,
                          "--events", str(events), "--workdir", str(workdir)],
                         stdout=subprocess.PIPE, text=True, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} restore failed with {out.returncode}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--brokers", default="strom,kafka",
                        help="comma-separated: strom, kafka (skipped if its jars are missing)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(restore(args.child, args.bootstrap, args.events, args.workdir)))
        return 0

    from brokers import BROKERS
    from common import CACHE, log

    names = [b for b in args.brokers.split(",") if b]
    if "kafka" in names and not list((CACHE / "kafka" / "libs").glob("kafka-server-*.jar")):
        log("no Apache Kafka jars in .cache/kafka (make kafka-jars): strom only")
        names.remove("kafka")
    modes = [m for m in args.modes.split(",") if m]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="strom-views-bench-") as tmp:
        root = Path(tmp)
        for name in names:
            broker = BROKERS[name](root, args.partitions, 1 << 30)
            broker.start()
            try:
                broker.create_topic(TOPIC, args.partitions)
                secs = produce(broker.bootstrap, args.events, args.partitions)
                log(f"{broker.label}: produced {args.events:,} events in {secs:.1f}s")
                results[name] = {}
                for mode in modes:
                    r = run_child(mode, broker.bootstrap, args.events, root)
                    rate = r["events"] / r["seconds"]
                    results[name][mode] = rate
                    log(f"{broker.label}: {mode:6} restored {r['events']:,} events in "
                        f"{r['seconds']:.1f}s = {rate:,.0f} events/s")
            finally:
                broker.stop()
                broker.cleanup()

    print(f"\nRestoring a view from {args.events:,} events ({args.partitions} partitions), "
          "events/s:\n")
    header = "| mode | " + " | ".join(names) + (" | strom/kafka |" if len(names) > 1 else " |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for mode in modes:
        cells = [f"{results[n][mode]:,.0f}" for n in names]
        ratio = ""
        if "strom" in results and "kafka" in results:
            ratio = f" | {results['strom'][mode] / results['kafka'][mode]:.2f}"
        print(f"| {mode} | " + " | ".join(cells) + ratio + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
