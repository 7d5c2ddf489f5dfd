"""kill -9 in the middle of an acks=all stream: after a restart every
acknowledged record is there, in order, and nothing torn is served."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.process import StromProcess


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                            replication_factor=1)])
    futures[topic].result(timeout=30)


def _read_all(bootstrap: str, topic: str, partitions: int) -> dict[int, list[tuple[int, bytes]]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "verify",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    while len(at_end) < partitions and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
                continue
            raise AssertionError(msg.error())
        seen[msg.partition()].append((msg.offset(), msg.value()))
    consumer.close()
    assert len(at_end) == partitions, "did not reach the end of every partition"
    return seen


@pytest.mark.parametrize("round_", range(2))
def test_kill_9_keeps_every_acknowledged_record(tmp_path: Path, round_: int) -> None:
    topic, partitions = "crash", 3
    broker = StromProcess(tmp_path / "data")
    broker.start()
    try:
        _create_topic(broker.bootstrap, topic, partitions)
        acked: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        lock = threading.Lock()
        enough = threading.Event()

        def on_delivery(err: object, msg: object) -> None:
            if err is None:
                with lock:
                    acked[msg.partition()].append((msg.offset(), msg.value()))  # type: ignore[attr-defined]
                    if sum(len(v) for v in acked.values()) >= 3000:
                        enough.set()

        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                             "linger.ms": 2, "enable.idempotence": False,
                             "message.timeout.ms": 5000, "retries": 0})
        i = 0
        while not enough.is_set() and i < 1_000_000:
            try:
                producer.produce(topic, value=b"v%08d" % i + b"x" * (i % 700),
                                 partition=i % partitions, on_delivery=on_delivery)
                i += 1
            except BufferError:
                producer.poll(0.01)
            producer.poll(0)
        broker.kill()  # mid-stream: the producer still has requests in flight
        producer.flush(10)
    finally:
        broker.stop()
    restarted = StromProcess(tmp_path / "data", port=broker.port)
    restarted.start()
    try:
        stored = _read_all(restarted.bootstrap, topic, partitions)
    finally:
        restarted.stop()
    for p in range(partitions):
        offsets = [o for o, _ in stored[p]]
        assert offsets == list(range(len(offsets))), f"gap or disorder in partition {p}"
        for _, value in stored[p]:
            index = int(value[1:9])
            assert value == b"v%08d" % index + b"x" * (index % 700), "torn record"
        stored_by_offset = dict(stored[p])
        for offset, value in acked[p]:
            assert stored_by_offset.get(offset) == value, (p, offset)
    assert sum(len(v) for v in acked.values()) >= 3000


def test_sigterm_shuts_down_cleanly_with_checkpoints(tmp_path: Path) -> None:
    broker = StromProcess(tmp_path / "data")
    broker.start()
    try:
        _create_topic(broker.bootstrap, "clean", 2)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "1"})
        for i in range(100):
            producer.produce("clean", value=b"%d" % i, partition=i % 2)
        assert producer.flush(30) == 0
        assert broker.terminate() == 0
    finally:
        broker.stop()
    data = tmp_path / "data"
    checkpoint = (data / "recovery-point-offset-checkpoint").read_text().split("\n")
    assert checkpoint[0] == "0"
    entries = {tuple(line.split()[:2]): int(line.split()[2]) for line in checkpoint[2:] if line}
    assert entries[("clean", "0")] == 50 and entries[("clean", "1")] == 50
    assert (data / "log-start-offset-checkpoint").exists()
    assert (data / "replication-offset-checkpoint").exists()
    assert (data / "clean-0" / "00000000000000000000.log").stat().st_size > 0
