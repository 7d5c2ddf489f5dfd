"""A full disk (issue 13, finding 7) and an unreadable partition (finding 9).

A strom process on a small tmpfs: produce until the disk is full. Writes fail
with KAFKA_STORAGE_ERROR while reads, deletes and retention keep working
(Kafka instead takes the log dir offline, and with its only dir the broker
stops, so space could no longer be freed through the API). DeleteRecords and
DeleteTopics free space, produce resumes, every acknowledged record is
intact, SIGTERM exits cleanly and a restart on the full disk comes up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import send
from tests.process import StromProcess
from tests.tmpfs import mounted_tmpfs

VALUE_BYTES = 8 * 1024
#: Segments small enough that DeleteRecords frees space in whole segments.
OVERRIDES = {"log.segment.bytes": str(512 * 1024), "num.partitions": "1"}


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "16m") as mount:
        yield mount


def _value(n: int) -> bytes:
    return f"{n:08d}".encode() + bytes([n % 251]) * (VALUE_BYTES - 8)


def _produce(bootstrap: str, topic: str, start: int, count: int
             ) -> tuple[dict[int, bytes], list[KafkaError]]:
    """Produce values start.. (acks=all, no retries); acknowledged offset ->
    value, and the errors, stopping after 20 errors."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0,
                         "linger.ms": 2, "batch.size": 65536, "enable.idempotence": False,
                         "message.timeout.ms": 20000})
    acked: dict[int, bytes] = {}
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked[msg.offset()] = msg.value()  # type: ignore[attr-defined]

    for n in range(start, start + count):
        producer.produce(topic, _value(n), on_delivery=on_delivery)
        producer.poll(0)
        if len(errors) >= 20:
            break
    assert producer.flush(30) == 0
    return acked, errors


def _fill(mount: Path, name: str) -> None:
    """Take the last free bytes, as another program on the disk would."""
    with open(mount / name, "wb", buffering=0) as f:
        for _ in range(100_000):
            try:
                f.write(b"x" * 4096)
            except OSError:
                break


def _read(bootstrap: str, topic: str) -> dict[int, bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "verify",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, 0, -2)])
    seen: dict[int, bytes] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                break
            raise AssertionError(msg.error())
        seen[msg.offset()] = msg.value()
    else:
        raise AssertionError("did not reach the end of the partition")
    consumer.close()
    return seen


def _delete_records(bootstrap: str, topic: str, offset: int) -> None:
    response = send(bootstrap, ApiKey.DELETE_RECORDS, 2, {
        "topics": [{"name": topic, "partitions": [{"partition_index": 0, "offset": offset}]}],
        "timeout": 10000})
    assert response.topics[0].partitions[0].error_code == ErrorCode.none


def _log_problems(log_path: Path) -> tuple[list[str], int]:
    text = log_path.read_text()
    noisy = [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line]
    return noisy, text.count("Traceback")


def test_full_disk_fails_writes_and_frees_space_through_the_api(tmpfs: Path) -> None:
    broker = StromProcess(tmpfs / "data", overrides=OVERRIDES)
    broker.log_path = tmpfs.parent / "strom.log"
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic("big", 1, 1),
                                           NewTopic("doomed", 1, 1)]).values():
            future.result(timeout=30)
        doomed, _ = _produce(broker.bootstrap, "doomed", 0, 200)  # 1.6 MiB to give back
        assert len(doomed) == 200

        acked, errors = _produce(broker.bootstrap, "big", 1000, 3000)
        assert errors, "the 16 MiB disk never filled"
        assert {e.code() for e in errors} == {KafkaError.KAFKA_STORAGE_ERROR}
        # Retriable in Kafka's table: a client with retries left backs off and retries.
        assert ErrorCode.kafka_storage_error.retriable
        assert len(acked) > 500
        # The offsets acknowledged are contiguous: a failed batch left nothing behind.
        assert sorted(acked) == list(range(len(acked)))

        _fill(tmpfs, "filler")  # now nothing at all is free
        _, errors = _produce(broker.bootstrap, "big", 5000, 1)
        assert [e.code() for e in errors] == [KafkaError.KAFKA_STORAGE_ERROR]

        # Auto-creating a topic and a coordinator answer with codes, no crash.
        meta = send(broker.bootstrap, ApiKey.METADATA, 12, {
            "topics": [{"name": "auto-created", "topic_id": None}],
            "allow_auto_topic_creation": True,
            "include_topic_authorized_operations": False})
        assert meta.topics[0].error_code == ErrorCode.kafka_storage_error
        found = send(broker.bootstrap, ApiKey.FIND_COORDINATOR, 4, {
            "key_type": 0, "coordinator_keys": ["g"]})
        assert found.coordinators[0].error_code == ErrorCode.coordinator_not_available

        # DeleteTopics frees the topic's space, even with no room for the metadata file.
        assert admin.delete_topics(["doomed"])["doomed"].result(timeout=30) is None
        assert not list((tmpfs / "data").glob("doomed-*"))
        (tmpfs / "filler").unlink()

        # DeleteRecords frees whole segments; produce resumes.
        _delete_records(broker.bootstrap, "big", len(acked) // 2)
        more, errors = _produce(broker.bootstrap, "big", 6000, 50)
        assert not errors and len(more) == 50
        assert min(more) == len(acked), "the first offset after the failures"
        acked.update(more)

        # Full again, then SIGTERM: a clean exit, and a restart on the full disk.
        _, errors = _produce(broker.bootstrap, "big", 7000, 3000)
        assert errors
        _fill(tmpfs, "filler2")
        assert broker.terminate() == 0
        broker.start()
        _, errors = _produce(broker.bootstrap, "big", 11000, 1)
        assert [e.code() for e in errors] == [KafkaError.KAFKA_STORAGE_ERROR]
        (tmpfs / "filler2").unlink()
        _delete_records(broker.bootstrap, "big", len(acked) // 2 + 100)
        more, errors = _produce(broker.bootstrap, "big", 12000, 10)
        assert not errors and len(more) == 10
        acked.update(more)

        stored = _read(broker.bootstrap, "big")
        start = min(stored)
        for offset, value in acked.items():
            if offset >= start:
                assert stored.get(offset) == value, f"offset {offset}"
        assert broker.terminate() == 0
    finally:
        broker.stop()
    noisy, tracebacks = _log_problems(broker.log_path)
    assert tracebacks == 0, broker.log_path.read_text()[-3000:]
    # One WARNING per condition (full), none per request; the shutdown on the
    # full disk says the next start recovers.
    assert len(noisy) <= 10, "\n".join(noisy)


def test_unreadable_partition_metadata_takes_only_that_partition_offline(
        tmp_path: Path) -> None:
    broker = StromProcess(tmp_path / "data")
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("t", 2, 1)])["t"].result(timeout=30)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for p in (0, 1):
            producer.produce("t", b"before", partition=p)
        assert producer.flush(30) == 0
        assert broker.terminate() == 0

        bad = tmp_path / "data" / "t-1" / "partition.metadata"
        bad.write_bytes(b"\xff\xfe garbage")
        broker.start()

        def produce_code(partition: int) -> int:
            response = send(broker.bootstrap, ApiKey.PRODUCE, 9, {
                "acks": 1, "timeout": 5000, "transactional_id": None,
                "topic_data": [{"name": "t", "partition_data": [
                    {"index": partition, "records": _batch()}]}]})
            return int(response.responses[0].partition_responses[0].error_code)

        assert produce_code(0) == ErrorCode.none
        assert produce_code(1) == ErrorCode.kafka_storage_error
        fetch = send(broker.bootstrap, ApiKey.FETCH, 12, {
            "replica_id": -1, "max_wait": 0, "min_bytes": 0, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "forgotten_topics_data": [], "rack_id": "",
            "topics": [{"topic": "t", "partitions": [
                {"partition": p, "fetch_offset": 0, "partition_max_bytes": 65536,
                 "current_leader_epoch": -1, "last_fetched_epoch": -1, "log_start_offset": -1}
                for p in (0, 1)]}]})
        codes = [p.error_code for p in fetch.responses[0].partitions]
        assert codes == [ErrorCode.none, ErrorCode.kafka_storage_error]
        offsets = send(broker.bootstrap, ApiKey.LIST_OFFSETS, 7, {
            "replica_id": -1, "isolation_level": 0, "topics": [{"name": "t", "partitions": [
                {"partition_index": p, "timestamp": -1, "current_leader_epoch": -1}
                for p in (0, 1)]}]})
        codes = [p.error_code for p in offsets.topics[0].partitions]
        assert codes == [ErrorCode.none, ErrorCode.kafka_storage_error]
        meta = send(broker.bootstrap, ApiKey.METADATA, 12, {
            "topics": [{"name": "t", "topic_id": None}], "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False})
        parts = {p.partition_index: p for p in meta.topics[0].partitions}
        assert parts[0].error_code == ErrorCode.none
        assert parts[1].error_code == ErrorCode.kafka_storage_error
        assert list(parts[1].offline_replicas) == [1]

        errors = [line for line in broker.log_path.read_text().splitlines()
                  if " ERROR " in line]
        assert len(errors) == 1 and "partition.metadata" in errors[0], errors
        assert "delete it" in errors[0]

        # The fix the line names: delete the file and restart.
        assert broker.terminate() == 0
        bad.unlink()
        broker.start()
        assert produce_code(1) == ErrorCode.none
        assert bad.exists()
        assert broker.terminate() == 0
    finally:
        broker.stop()
    assert "Traceback" not in broker.log_path.read_text()


def _batch() -> bytes:
    from strom.protocol.records import RecordSpec, build_batch
    return bytes(build_batch([RecordSpec(key=None, value=b"v", timestamp=int(time.time() * 1000))]))
