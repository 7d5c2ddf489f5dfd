"""Start to first produce of the embedded test broker (issue 7's goal: < 120 ms).

    .venv/bin/python bench/embedded_startup.py [--runs 7]

Each run starts a fresh EmbeddedBroker (new data directory, free port),
produces one record with confluent-kafka and waits for its acknowledgement.
The first run also pays Python's imports and is reported separately.
"""

from __future__ import annotations

import argparse
import statistics
import time

from confluent_kafka import Producer

from strom.testing import EmbeddedBroker


def start_to_first_produce() -> float:
    started = time.perf_counter()
    with EmbeddedBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0})
        producer.produce("first", b"x")
        if producer.flush(10) != 0:
            raise RuntimeError("the first record was not acknowledged")
        elapsed = time.perf_counter() - started
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    first = start_to_first_produce()
    runs = [start_to_first_produce() for _ in range(args.runs)]
    print(f"first run {first * 1000:.0f} ms; then median {statistics.median(runs) * 1000:.0f} ms"
          f" over {len(runs)} runs (min {min(runs) * 1000:.0f}, max {max(runs) * 1000:.0f})")


if __name__ == "__main__":
    main()
