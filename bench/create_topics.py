"""CreateTopics and CreatePartitions of 1,000 partitions until Metadata shows
a leader for each (issue 19).

    .venv/bin/python bench/create_topics.py [--partitions 1000] [--runs 5] [--kafka] [--dev]
        [--dir /dev/shm]

One broker is started (strom, or with --kafka also Apache Kafka, single
node, KRaft), then each run creates a fresh topic with confluent-kafka's
AdminClient (replication factor 1) and polls Metadata until every partition
lists a leader; then it creates a one-partition topic (untimed) and adds
--partitions partitions to it with CreatePartitions, timed the same way. The
figures are medians over the runs; the broker's CPU seconds over all runs
are reported beside them, so a client-bound run shows.
On a machine whose disk is busy with other work, mkdir and fsync waits swamp
the figure; `--dir /dev/shm` (tmpfs) shows the brokers' own cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brokers  # noqa: E402
from brokers import Broker, Kafka, Strom, wait_for_leaders  # noqa: E402
from common import VENV_BIN  # noqa: E402


class DevStrom(Strom):
    """strom from the development virtualenv (editable): no reinstall per change."""

    def command(self) -> list[str]:
        # Strom.command installs the tree into the bench's runtime first: not
        # needed here, and it races with other benches reinstalling it.
        saved = brokers.strom_runtime_bin
        brokers.strom_runtime_bin = lambda *args, **kwargs: VENV_BIN / "strom"
        try:
            return super().command()
        finally:
            brokers.strom_runtime_bin = saved


def add_partitions(broker: Broker, topic: str, partitions: int, timeout: float) -> float:
    """Seconds from CreatePartitions (1 -> 1 + `partitions`) until every
    partition of `topic` has a leader."""
    broker.create_topic(topic, 1, timeout=timeout)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 2})
    admin.list_topics(topic, timeout=10)  # connected before the clock starts
    t0 = time.perf_counter()
    futures = admin.create_partitions([NewPartitions(topic, 1 + partitions)],
                                      operation_timeout=timeout, request_timeout=timeout)
    futures[topic].result(timeout=timeout)
    wait_for_leaders(admin, topic, 1 + partitions, timeout)
    return time.perf_counter() - t0


def measure(broker: Broker, partitions: int,
            runs: int) -> tuple[list[float], float, list[float], float]:
    """(CreateTopics times, its broker CPU, CreatePartitions times, its CPU)."""
    times: list[float] = []
    added: list[float] = []
    cpu_create = cpu_add = 0.0
    for run in range(runs):
        cpu0 = broker.cpu_s()
        t0 = time.perf_counter()
        broker.create_topic(f"bench-create-{run}", partitions, timeout=120)
        times.append(time.perf_counter() - t0)
        cpu1 = broker.cpu_s()
        added.append(add_partitions(broker, f"bench-add-{run}", partitions, 120))
        cpu_create += cpu1 - cpu0
        cpu_add += broker.cpu_s() - cpu1
    return times, cpu_create, added, cpu_add


def _line(label: str, what: str, partitions: int, times: list[float], cpu: float) -> str:
    return (f"{label}: {what} of {partitions} partitions -> all leaders:"
            f" median {statistics.median(times):.3f} s over {len(times)} runs"
            f" (min {min(times):.3f}, max {max(times):.3f}); broker CPU"
            f" {cpu / len(times):.3f} s per run; runs: {' '.join(f'{t:.3f}' for t in times)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kafka", action="store_true", help="also measure Apache Kafka")
    parser.add_argument("--dir", default=None,
                        help="parent of the data directories (default: the system's temp)")
    parser.add_argument("--dev", action="store_true",
                        help="run strom from .venv (editable) instead of the installed copy")
    args = parser.parse_args()
    kinds: list[type[Broker]] = [DevStrom if args.dev else Strom] + (
        [Kafka] if args.kafka else [])
    with tempfile.TemporaryDirectory(prefix="bench-create-", dir=args.dir) as root:
        for kind in kinds:
            broker = kind(Path(root), 1, 64 * 1024 * 1024)
            broker.start()
            try:
                times, cpu, added, cpu_added = measure(broker, args.partitions, args.runs)
            finally:
                broker.stop()
                broker.cleanup()
            print(_line(broker.label, "CreateTopics", args.partitions, times, cpu), flush=True)
            print(_line(broker.label, "CreatePartitions", args.partitions, added, cpu_added),
                  flush=True)


if __name__ == "__main__":
    main()
