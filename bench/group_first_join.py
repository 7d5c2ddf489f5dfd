"""How long a new classic group takes to assign every partition (issue 19).

M librdkafka members (`rdkgen group --first-join`, one thread each) subscribe
at once to a fresh P-partition topic as a fresh group; a first join is the
time until every partition is assigned and every member holds some. Each of
ROUNDS rounds times JOINS first joins (5 unless given) against one broker, strom
(embedded) or Apache Kafka 4.4 (bench/brokers.py), both with
group.initial.rebalance.delay.ms=0, and prints every join, the round's median
and its spread, then one JSON line with every value:

    .venv/bin/python bench/group_first_join.py strom 8 16 3
    .venv/bin/python bench/group_first_join.py kafka 50 500 3 5

A first join is bimodal on both brokers: one generation (~0.2 s) when every
member's JoinGroup lands in the first one, two (~2 s, librdkafka's pacing of
its next JoinGroup) when one arrives after it (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from brokers import Kafka
from common import median
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from fleet import first_join

from strom.testing import EmbeddedBroker


def main(which: str, members: int, partitions: int, rounds: int, joins: int = 5) -> None:
    broker: Any
    if which == "strom":
        broker = EmbeddedBroker().start()
    else:
        broker = Kafka(Path(tempfile.mkdtemp()), 1, 1 << 30)
        broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    values: list[list[float]] = []
    try:
        for r in range(rounds):
            times: list[float] = []
            for j in range(joins):
                name = f"first-join-{r}-{j}"
                for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
                    future.result()
                time.sleep(1)  # leaders settle before the clock starts, on both brokers
                times.append(first_join(broker.bootstrap, name, name, members))
                print(f"{which} members={members} partitions={partitions} round={r} "
                      f"join={j}: {times[-1]:.3f} s", flush=True)
                for future in admin.delete_topics([name]).values():
                    future.result()
            values.append(times)
            print(f"{which} round={r}: median {median(times):.3f} s, "
                  f"min {min(times):.3f}, max {max(times):.3f}, "
                  f"{sum(t < 1.0 for t in times)} of {joins} under 1 s", flush=True)
    finally:
        broker.stop()
    print(json.dumps({"broker": which, "members": members, "partitions": partitions,
                      "rebalance_s": values,
                      "round_medians_s": [median(v) for v in values]}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
         *(int(a) for a in sys.argv[5:6]))
