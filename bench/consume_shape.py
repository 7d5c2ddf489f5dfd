"""What a librdkafka consume from the page cache asks of a broker (issue 19).

Starts one broker (strom as `bench/run.py` runs it, or Apache Kafka 4.4),
produces RECORDS one-KiB records to a 6-partition topic with `rdkgen produce`
(acks=1), reads them ROUNDS times with `rdkgen consume` (the `consume_rdkafka`
row's client and settings), then once more with confluent-kafka and
librdkafka's statistics: how many Fetch requests the read took, the bytes
received and the request round trips. Shows whether a consume row is bound
by the broker or by the one client:

    .venv/bin/python bench/consume_shape.py strom|kafka [RECORDS] [ROUNDS]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rdkgen
from brokers import Kafka, Strom
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

PARTITIONS = 6
TOPIC = "consume-shape"


def _rdkgen(binary: str, *args: str) -> dict[str, Any]:
    run = subprocess.run([binary, *args], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"rdkgen {args[0]} failed: {run.stderr[-300:]}")
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def _fetch_shape(bootstrap: str, records: int) -> None:
    stats: list[str] = []
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "consume-shape",
        "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 1_048_576, "queued.max.messages.kbytes": 262_144,
        "statistics.interval.ms": 200, "stats_cb": stats.append})
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    got = 0
    deadline = time.monotonic() + 120
    while got < records and time.monotonic() < deadline:
        got += sum(1 for m in consumer.consume(10_000, 1.0) if not m.error())
    seen = len(stats)
    settle = time.monotonic() + 3  # one more statistics report after the last fetch
    while len(stats) == seen and time.monotonic() < settle:
        consumer.poll(0.05)
    for raw in stats:
        for broker in json.loads(raw)["brokers"].values():
            rtt = broker["rtt"]
            if broker.get("nodeid", -1) >= 0 and rtt["cnt"]:
                print(f"  fetch round trips in 200 ms: {rtt['cnt']}, avg {rtt['avg']} µs, "
                      f"p50 {rtt['p50']} µs, p99 {rtt['p99']} µs")
    for broker in json.loads(stats[-1])["brokers"].values():
        if broker.get("nodeid", -1) >= 0:
            requests = {k: v for k, v in broker["req"].items() if v}
            print(f"read {got} records: requests {requests}, bytes received "
                  f"{broker['rxbytes']:,}")
    consumer.close()


def main(which: str, records: int, rounds: int) -> None:
    root = Path(tempfile.mkdtemp())
    broker = Kafka(root, PARTITIONS, 1 << 30) if which == "kafka" else Strom(
        root, PARTITIONS, 1 << 30)
    broker.start()
    try:
        binary = str(rdkgen.build())
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
            future.result()
        time.sleep(1)  # leaders settle, on both brokers
        _rdkgen(binary, "produce", "--bootstrap", broker.bootstrap, "--topic", TOPIC,
                "--records", str(records), "--acks", "1")
        for r in range(rounds):
            out = _rdkgen(binary, "consume", "--bootstrap", broker.bootstrap,
                          "--topic", TOPIC, "--records", str(records))
            print(f"{which} consume round {r}: {out['mib_per_s']:.0f} MiB/s, "
                  f"client {out['client_cpu_cores']:.2f} cores, {out['wall_s']:.2f} s",
                  flush=True)
        _fetch_shape(broker.bootstrap, records)
    finally:
        broker.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_500_000,
         int(sys.argv[3]) if len(sys.argv) > 3 else 4)
