"""Share partitions (KIP-932): records per second one share consumer gets
from one partition when it fetches and accepts in the same ShareFetch (the
acknowledgement piggybacked on the next fetch, as the Java and franz-go
clients do).

    .venv/bin/python bench/share_fetch.py [--records 50000] [--max-records 500]

Starts an embedded strom, opens a share session on a one-partition topic
(share.auto.offset.reset latest: the share partition starts at the end),
produces the records with librdkafka, then times raw ShareFetch v2 requests
until every record was acquired once. Prints records/s and the fetch count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer  # noqa: E402

from strom.testing import EmbeddedBroker  # noqa: E402
from tests.broker.share.share_client import (  # noqa: E402
    ACCEPT,
    ShareClient,
    acquired,
    make_topic,
)


def produce(bootstrap: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for _ in range(count):
        while True:
            try:
                producer.produce("share-bench", value=b"x" * 100, partition=0)
                break
            except BufferError:  # librdkafka's queue is full: let it drain
                producer.poll(0.1)
    assert producer.flush(60) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--max-records", type=int, default=500)
    args = parser.parse_args()
    with EmbeddedBroker() as broker:
        topic_id = make_topic(broker, "share-bench")
        client = ShareClient(broker, "share-bench")
        client.fetch(topic_id, [0])
        produce(broker.bootstrap, args.records)
        started = time.monotonic()
        got = fetches = 0
        acks = None
        while got < args.records:
            response = client.fetch(topic_id, [0], acks=acks, max_wait_ms=500,
                                    max_records=args.max_records)
            fetches += 1
            ranges = acquired(response)
            got += sum(last - first + 1 for first, last, _ in ranges)
            acks = {0: [(first, last, [ACCEPT]) for first, last, _ in ranges]} if ranges else None
        elapsed = time.monotonic() - started
        print(f"{args.records} records in {elapsed:.2f} s: {args.records / elapsed:,.0f} "
              f"records/s, {fetches} share fetches")


if __name__ == "__main__":
    main()
