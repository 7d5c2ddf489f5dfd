"""CreateTopics of 1,000 partitions until Metadata shows a leader for each (issue 19).

    .venv/bin/python bench/create_topics.py [--partitions 1000] [--runs 5] [--kafka] [--dev]
        [--dir /dev/shm]

One broker is started (strom, or with --kafka also Apache Kafka, single
node, KRaft), then each run creates a fresh topic with confluent-kafka's
AdminClient (replication factor 1) and polls Metadata until every partition
lists a leader. The figure is the median over the runs; the broker's CPU
seconds over all runs are reported beside it, so a client-bound run shows.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brokers import Broker, Kafka, Strom  # noqa: E402
from common import VENV_BIN  # noqa: E402


class DevStrom(Strom):
    """strom from the development virtualenv (editable): no reinstall per change."""

    def command(self) -> list[str]:
        argv = super().command()
        argv[0] = str(VENV_BIN / "strom")
        return argv


def measure(broker: Broker, partitions: int, runs: int) -> tuple[list[float], float]:
    times: list[float] = []
    cpu0 = broker.cpu_s()
    for run in range(runs):
        t0 = time.perf_counter()
        broker.create_topic(f"bench-create-{run}", partitions, timeout=120)
        times.append(time.perf_counter() - t0)
    return times, broker.cpu_s() - cpu0


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
                times, cpu = measure(broker, args.partitions, args.runs)
            finally:
                broker.stop()
                broker.cleanup()
            print(f"{broker.label}: CreateTopics of {args.partitions} partitions -> all leaders:"
                  f" median {statistics.median(times):.3f} s over {len(times)} runs"
                  f" (min {min(times):.3f}, max {max(times):.3f}); broker CPU"
                  f" {cpu / len(times):.3f} s per run; runs: {' '.join(f'{t:.3f}' for t in times)}",
                  flush=True)


if __name__ == "__main__":
    main()
