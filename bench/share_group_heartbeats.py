"""Share group (KIP-932) heartbeats: what joining and heartbeating cost the group
coordinator as a share group grows to its largest size.

    .venv/bin/python bench/share_group_heartbeats.py [--members 200] [--partitions 64]

Starts an embedded strom, creates one topic, then over one connection lets
`--members` members join one share group one after another (each join bumps the
group epoch and reassigns every member with the simple assignor), then lets each
heartbeat once more (taking its new assignment). Prints the median and p99 round
trip of joins and of heartbeats, in ms. Every join writes and fsyncs records in
__consumer_offsets before it is answered.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka.admin import AdminClient  # noqa: E402
from confluent_kafka.cimpl import NewTopic  # noqa: E402

from strom.protocol.api import ApiKey  # noqa: E402
from strom.testing import EmbeddedBroker  # noqa: E402
from tests.broker.raw_client import RawClient  # noqa: E402


def _quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, EmbeddedBroker(
            Path(data), overrides={"group.share.max.size": str(args.members)}) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("bench", args.partitions, 1)])["bench"].result(30)
        with RawClient(broker.bootstrap) as client:
            client.send(ApiKey.FIND_COORDINATOR, 4, {"key_type": 0,
                                                     "coordinator_keys": ["bench-group"]})
            broker.run(broker.services.groups.runtime.wait_loaded())
            members = [str(uuid.uuid4()) for _ in range(args.members)]
            epochs: dict[str, int] = {}
            joins: list[float] = []
            beats: list[float] = []
            for rounds, samples in ((0, joins), (1, beats)):
                for member in members:
                    started = time.perf_counter()
                    answer = client.send(ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
                        "group_id": "bench-group", "member_id": member,
                        "member_epoch": epochs.get(member, 0), "rack_id": None,
                        "subscribed_topic_names": ["bench"] if rounds == 0 else None})
                    samples.append(time.perf_counter() - started)
                    assert answer.error_code == 0, answer
                    epochs[member] = answer.member_epoch
    print(f"{args.members} members, {args.partitions} partitions")
    print(f"join:      {_quantiles(joins)}")
    print(f"heartbeat: {_quantiles(beats)}")


if __name__ == "__main__":
    main()
