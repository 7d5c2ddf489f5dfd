"""How long a new classic group takes to assign every partition (issue 19).

M librdkafka members (`rdkgen group`, one thread each) subscribe at once to a
fresh P-partition topic; `rebalance_s` is the time until every partition is
assigned and every member holds some. Against strom (embedded) or Apache
Kafka 4.4 (bench/brokers.py), both with group.initial.rebalance.delay.ms=0:

    .venv/bin/python bench/group_first_join.py strom 8 16 3
    .venv/bin/python bench/group_first_join.py kafka 50 500 3
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
from brokers import Kafka
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from strom.testing import EmbeddedBroker


def main(which: str, members: int, partitions: int, rounds: int) -> None:
    broker: Any
    if which == "strom":
        broker = EmbeddedBroker().start()
    else:
        broker = Kafka(Path(tempfile.mkdtemp()), 1, 1 << 30)
        broker.start()
    binary = str(rdkgen.build())
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    try:
        for r in range(rounds):
            topic = f"first-join-{r}"
            for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
                future.result()
            time.sleep(1)  # leaders settle before the clock starts, on both brokers
            run = subprocess.run(
                [binary, "group", "--bootstrap", broker.bootstrap, "--topic", topic,
                 "--members", str(members), "--group", f"first-join-{r}",
                 "--duration", "1", "--warmup-s", "0", "--rate", "100"],
                capture_output=True, text=True, timeout=300)
            lines = [ln for ln in run.stdout.splitlines() if ln.startswith('{"mode"')]
            out = json.loads(lines[-1]) if lines else {"error": run.stderr[-300:]}
            print(f"{which} members={members} partitions={partitions} round={r}: "
                  f"rebalance_s={out.get('rebalance_s')} "
                  f"leave_rebalance_s={out.get('leave_rebalance_s')} "
                  f"{out.get('error', '')}", flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
