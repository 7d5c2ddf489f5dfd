"""CreatePartitions of 1,000 partitions against an in-process broker: the
broker thread's CPU per operation, and optionally a cProfile of it (issue 19).

    .venv/bin/python bench/create_partitions_cpu.py [--partitions 1000] [--rounds 6]
        [--dir /dev/shm] [--profile]

An EmbeddedBroker runs with `strom serve`'s GC settings (start-up heap
frozen, raised thresholds); each round creates a one-partition topic, then
times CreatePartitions to 1 + --partitions with confluent-kafka's
AdminClient until Metadata lists a leader for every partition, and reads the
broker thread's CPU clock around it (the client's threads are not counted,
unlike bench/create_topics.py's process CPU). --profile runs cProfile on the
broker's event loop over the timed windows and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brokers import wait_for_leaders  # noqa: E402

from strom.testing import EmbeddedBroker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--dir", default=None, help="parent of the data directory")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-partitions-", dir=args.dir) as root:
        broker = EmbeddedBroker(Path(root)).start()
        try:
            # As `strom serve` (cli/serve.py): without it, collections over the
            # growing heap dominate the later rounds.
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
            run(broker, args.partitions, args.rounds, args.profile)
        finally:
            broker.stop()


def run(broker: EmbeddedBroker, partitions: int, rounds: int, profile: bool) -> None:
    loop, thread = broker._loop, broker._thread  # the broker's own event loop thread
    assert loop is not None and thread is not None and thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    profiler = cProfile.Profile()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 2})
    walls: list[float] = []
    cpus: list[float] = []
    for n in range(rounds):
        topic = f"add-{n}"
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        wait_for_leaders(admin, topic, 1, 30)
        if profile:
            _on_loop(loop, profiler.enable)
        cpu0 = time.clock_gettime(clock)
        t0 = time.perf_counter()
        futures = admin.create_partitions([NewPartitions(topic, 1 + partitions)],
                                          operation_timeout=30, request_timeout=30)
        futures[topic].result(30)
        answered = time.perf_counter() - t0
        wait_for_leaders(admin, topic, 1 + partitions, 30)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.clock_gettime(clock) - cpu0)
        if profile:
            _on_loop(loop, profiler.disable)
        print(f"round {n}: answered {answered:.4f} s, all leaders {walls[-1]:.4f} s,"
              f" broker thread CPU {cpus[-1]:.4f} s", flush=True)
    print(f"CreatePartitions of {partitions}: median {statistics.median(walls):.4f} s to all"
          f" leaders, broker thread CPU median {statistics.median(cpus):.4f} s"
          f" (min {min(cpus):.4f}, max {max(cpus):.4f}) over {rounds} rounds")
    if profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    """Run `fn` on the broker's loop thread (cProfile profiles its own thread)."""
    done = threading.Event()

    def call() -> None:
        fn()
        done.set()

    loop.call_soon_threadsafe(call)
    done.wait(10)


if __name__ == "__main__":
    main()
