"""How long the controller's leader elections take for many partitions.

    .venv/bin/python -m bench.elections [partitions]

Builds an image of `partitions` partitions (20 topics, replication factor 3
over three brokers, leaders striped), removes broker 1, and runs the
elections batch by batch as the controller does (cluster/elections.py): per
batch, computing the changes and applying them to the image. Prints the
number of batches, the worst batch and the total. etcd's write and the other
brokers' apply of each batch come on top.
"""

from __future__ import annotations

import sys
import time
import uuid

from strom.cluster.elections import election_records
from strom.cluster.image import (
    BrokerInfo,
    MetadataImage,
    MetadataRecord,
    PartitionRecord,
    TopicRecord,
)


def main(partitions: int = 20_000) -> None:
    brokers = {b: BrokerInfo(b, "localhost", 9090 + b, None, b) for b in (1, 2, 3)}
    records: list[MetadataRecord] = []
    per_topic = max(1, partitions // 20)
    for t in range(20):
        topic_id = uuid.uuid4()
        records.append(TopicRecord(f"t{t}", topic_id))
        for p in range(per_topic):
            replicas = tuple(1 + (p + i) % 3 for i in range(3))
            records.append(PartitionRecord(topic_id, p, replicas, replicas, replicas[0], 0, 0))
    image = MetadataImage("bench", 1, brokers).apply(records)
    started = time.perf_counter()
    assert election_records(image) == []
    idle = time.perf_counter() - started
    image = MetadataImage("bench", 1, {2: brokers[2], 3: brokers[3]}, image.topics)
    worst = 0.0
    batches = changes = 0
    started = time.perf_counter()
    while True:
        batch_started = time.perf_counter()
        changed = election_records(image)
        if not changed:
            break
        image = image.apply(changed)
        worst = max(worst, time.perf_counter() - batch_started)
        batches += 1
        changes += len(changed)
    total = time.perf_counter() - started
    print(f"{per_topic * 20} partitions, replication factor 3: nothing to elect: "
          f"{idle * 1000:.1f} ms; broker 1 lost: {changes} changes in {batches} batches, "
          f"worst batch {worst * 1000:.1f} ms, all {total * 1000:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
