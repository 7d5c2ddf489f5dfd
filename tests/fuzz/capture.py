"""Record the request frames real clients send, as seeds for the fuzzer.

    .venv/bin/python -m tests.fuzz.capture      # rewrites tests/fuzz/captured.frames

kafka-python and confluent-kafka (librdkafka) create a topic, produce (plain,
compressed, idempotent, transactional), consume in a group, commit and
describe, through a relay in front of a strom subprocess. The file holds the
frames as they were sent (size prefix included), one frame per distinct
(api key, version, body), in the order first seen.
"""

from __future__ import annotations

import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.interop.request_tap import RequestTap
from tests.process import StromProcess, free_port

CAPTURED = Path(__file__).with_name("captured.frames")
TOPIC = "fuzz-capture"


class RecordingTap(RequestTap):
    """A RequestTap that also keeps every request frame's bytes."""

    def __init__(self, upstream_port: int) -> None:
        self.frames: list[bytes] = []
        super().__init__(upstream_port)

    def _count_frames(self, pending: bytearray) -> None:
        offset = 0
        while len(pending) - offset >= 4:
            (size,) = struct.unpack_from(">i", pending, offset)
            if len(pending) - offset < 4 + size:
                break
            with self._lock:
                self.frames.append(bytes(pending[offset:offset + 4 + size]))
            offset += 4 + size
        # The base class counts (and drops) the same whole frames.
        super()._count_frames(pending)


def load_frames(path: Path = CAPTURED) -> list[bytes]:
    data = path.read_bytes()
    frames = []
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack_from(">i", data, offset)
        frames.append(data[offset:offset + 4 + size])
        offset += 4 + size
    return frames


def _attempt(call: Callable[[], object]) -> None:
    """Admin calls whose answers do not matter here, only the requests they send."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - an unsupported call still sent its request
        print(f"capture: {exc!r}", file=sys.stderr)


def _kafka_python(bootstrap: str) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kp-admin")
    admin.create_topics([NewTopic(TOPIC, 2, 1)])
    _attempt(lambda: admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)]))
    _attempt(lambda: admin.describe_cluster())
    _attempt(lambda: admin.describe_log_dirs())
    for compression in (None, "gzip"):
        producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="kp-producer",
                                 compression_type=compression, linger_ms=5)
        for i in range(20):
            producer.send(TOPIC, key=f"k{i}".encode(), value=f"v{i}".encode() * 10,
                          headers=[("h", b"x")])
        producer.flush()
        producer.close()
    consumer = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id="kp-group",
                             client_id="kp-consumer", auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    for seen, _ in enumerate(consumer, 1):
        if seen >= 20:
            break
    consumer.commit()
    consumer.committed(TopicPartition(TOPIC, 0))
    consumer.close()
    _attempt(lambda: admin.list_groups())
    _attempt(lambda: admin.describe_groups(["kp-group"]))
    _attempt(lambda: admin.list_group_offsets("kp-group"))
    _attempt(lambda: admin.describe_producers([TopicPartition(TOPIC, 0)]))
    _attempt(lambda: admin.list_transactions())
    _attempt(lambda: admin.delete_records({TopicPartition(TOPIC, 0): 1}))
    admin.close()


def _confluent(bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions

    common = {"bootstrap.servers": bootstrap}
    producer = Producer({**common, "client.id": "rdk-producer", "enable.idempotence": True,
                         "compression.type": "lz4", "linger.ms": 5})
    for i in range(20):
        producer.produce(TOPIC, key=f"k{i}", value=f"v{i}" * 10, headers={"h": b"y"})
    producer.flush(10)
    txn = Producer({**common, "client.id": "rdk-txn", "transactional.id": "fuzz-txn",
                    "compression.type": "zstd"})
    txn.init_transactions(10)
    txn.begin_transaction()
    for i in range(5):
        txn.produce(TOPIC, key=f"t{i}", value=f"t{i}")
    txn.commit_transaction(10)
    consumer = Consumer({**common, "client.id": "rdk-consumer", "group.id": "rdk-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([TOPIC])
    deadline = time.monotonic() + 15
    got = 0
    while got < 20 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            got += 1
    consumer.commit(asynchronous=False)
    consumer.offsets_for_times([TopicPartition(TOPIC, 0, 0)], timeout=5)
    consumer.close()
    admin = AdminClient({**common, "client.id": "rdk-admin"})
    for future in admin.create_partitions([NewPartitions(TOPIC, 3)]).values():
        future.result(10)
    for future in admin.describe_configs([ConfigResource("TOPIC", TOPIC)]).values():
        future.result(10)
    admin.list_consumer_groups().result(10)
    for future in admin.describe_consumer_groups(["rdk-group"]).values():
        future.result(10)


def capture() -> list[bytes]:
    with tempfile.TemporaryDirectory(prefix="strom-capture-") as tmp:
        port = free_port()
        tap = RecordingTap(port)
        broker = StromProcess(Path(tmp) / "data", port=port, overrides={
            "advertised.listeners": f"PLAINTEXT://{tap.address}",
            "offsets.topic.num.partitions": "1", "transaction.state.log.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "group.initial.rebalance.delay.ms": "0"})
        broker.start()
        try:
            _kafka_python(tap.address)
            _confluent(tap.address)
        finally:
            tap.close()
            broker.stop()
        distinct: dict[tuple[int, int, bytes], bytes] = {}
        for frame in tap.frames:
            api_key, version = struct.unpack_from(">hh", frame, 4)
            # Same request but for its correlation id: keep one.
            key = (api_key, version, frame[4:8] + frame[12:])
            distinct.setdefault(key, frame)
        return list(distinct.values())


def main() -> None:
    frames = capture()
    CAPTURED.write_bytes(b"".join(frames))
    keys = sorted({struct.unpack_from(">hh", f, 4) for f in frames})
    print(f"{len(frames)} frames, {len(keys)} (api key, version) pairs -> {CAPTURED}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
