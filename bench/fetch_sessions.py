"""Incremental fetch sessions (KIP-227): what an idle consumer of 1,000
partitions sends and receives per fetch, without a session and with one.

    .venv/bin/python bench/fetch_sessions.py [--partitions 1000] [--fetches 200]

Starts an embedded strom, creates one topic with one record per partition,
then sends Fetch requests (v12: topics by name; v16: by id) positioned at the
log end, as a caught-up consumer does: sessionless (session id 0, epoch -1,
every partition each time) and in a session (one full fetch, then
incremental fetches naming no partition). Prints bytes per request and
response and the mean round trip (max_wait 0: no long poll).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from confluent_kafka.cimpl import NewTopic  # noqa: E402

from strom.protocol.api import ApiKey  # noqa: E402
from strom.testing import EmbeddedBroker  # noqa: E402
from tests.broker.raw_client import RawClient  # noqa: E402

TOPIC = "fetch-sessions"


def _body(version: int, topic_id: uuid.UUID, session_id: int, epoch: int,
          partitions: int) -> dict[str, Any]:
    ident: dict[str, Any] = {"topic_id": topic_id} if version >= 13 else {"topic": TOPIC}
    return {"replica_id": -1, "max_wait": 0, "min_bytes": 0, "max_bytes": 50 << 20,
            "isolation_level": 0, "session_id": session_id, "session_epoch": epoch,
            "topics": [{**ident, "partitions": [
                {"partition": p, "fetch_offset": 1, "partition_max_bytes": 1 << 20}
                for p in range(partitions)]}] if partitions else [],
            "forgotten_topics_data": [], "rack_id": ""}


def _round(client: RawClient, version: int, body: dict[str, Any]) -> tuple[int, int, Any]:
    frame = client.encode(ApiKey.FETCH, version, body, 1)
    correlation_id = client.send_only(ApiKey.FETCH, version, body)
    response_frame = client.receive_frame()
    assert int.from_bytes(response_frame[:4], "big") == correlation_id
    # session_id sits after correlation id (+ tag byte for v12+), throttle, error.
    at = 4 + (1 if version >= 12 else 0) + 4
    error = int.from_bytes(response_frame[at:at + 2], "big", signed=True)
    session_id = int.from_bytes(response_frame[at + 2:at + 6], "big", signed=True)
    assert error == 0, error
    return len(frame), len(response_frame) + 4, session_id


def measure(bootstrap: str, topic_id: uuid.UUID, version: int, partitions: int,
            fetches: int) -> None:
    with RawClient(bootstrap) as client:
        started = time.perf_counter()
        for _ in range(fetches):
            req, resp, _ = _round(client, version, _body(version, topic_id, 0, -1, partitions))
        sessionless_s = (time.perf_counter() - started) / fetches
        _, _, session_id = _round(client, version, _body(version, topic_id, 0, 0, partitions))
        assert session_id != 0, "no session created"
        started = time.perf_counter()
        for epoch in range(1, fetches + 1):
            s_req, s_resp, _ = _round(client, version,
                                      _body(version, topic_id, session_id, epoch, 0))
        session_s = (time.perf_counter() - started) / fetches
    print(f"Fetch v{version}, {partitions} partitions, idle consumer:")
    print(f"  sessionless: request {req:7,d} B  response {resp:7,d} B  "
          f"round trip {sessionless_s * 1000:7.2f} ms")
    print(f"  session:     request {s_req:7,d} B  response {s_resp:7,d} B  "
          f"round trip {session_s * 1000:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--fetches", type=int, default=200)
    args = parser.parse_args()
    with EmbeddedBroker() as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, args.partitions, 1)])[TOPIC].result(120)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        for p in range(args.partitions):
            producer.produce(TOPIC, value=b"x", partition=p)
        assert producer.flush(60) == 0
        with RawClient(broker.bootstrap) as client:
            metadata = client.send(ApiKey.METADATA, 12, {
                "topics": [{"name": TOPIC, "topic_id": uuid.UUID(int=0)}],
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False})
            topic_id = metadata.topics[0].topic_id
        for version in (12, 16):
            measure(broker.bootstrap, topic_id, version, args.partitions, args.fetches)


if __name__ == "__main__":
    main()
