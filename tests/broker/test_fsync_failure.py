"""An fsync failing with EIO takes its partition offline (issue 13, "fsyncgate").

After a failed fsync the kernel may have dropped the dirty pages, and a later
fsync can succeed over lost data, so the partition stops serving instead of
acknowledging more writes (Kafka takes the log directory offline): acks=all
produce, fetch and ListOffsets answer KAFKA_STORAGE_ERROR, Metadata shows it
with KAFKA_STORAGE_ERROR and this broker as an offline replica, the other
partitions serve, and a restart recovers it. The EIO comes from the storage
layer's test hook (strom.storage.flush.FSYNC_FAULTS) standing in for the disk;
the broker is real."""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch, scan_batches
from strom.storage import disk, files, flush
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import send


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(tmp_path / "data").start()
    try:
        yield embedded
    finally:
        flush.FSYNC_FAULTS.clear()
        embedded.stop()
        disk.clear(tmp_path)


def _produce(broker: EmbeddedBroker, partition: int, value: bytes) -> tuple[int, int]:
    batch = bytes(build_batch([RecordSpec(key=None, value=value,
                                          timestamp=int(time.time() * 1000))]))
    response = send(broker.bootstrap, ApiKey.PRODUCE, 9, {
        "acks": -1, "timeout": 10000, "transactional_id": None,
        "topic_data": [{"name": "t", "partition_data": [
            {"index": partition, "records": batch}]}]})
    result = response.responses[0].partition_responses[0]
    return int(result.error_code), int(result.base_offset)


def _fetch(broker: EmbeddedBroker) -> dict[int, tuple[int, bytes]]:
    response = send(broker.bootstrap, ApiKey.FETCH, 12, {
        "replica_id": -1, "max_wait": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "forgotten_topics_data": [], "rack_id": "",
        "topics": [{"topic": "t", "partitions": [
            {"partition": p, "fetch_offset": 0, "partition_max_bytes": 65536,
             "current_leader_epoch": -1, "last_fetched_epoch": -1, "log_start_offset": -1}
            for p in (0, 1)]}]})
    return {p.partition_index: (int(p.error_code), bytes(p.records or b""))
            for p in response.responses[0].partitions}


def _list_offsets(broker: EmbeddedBroker) -> list[int]:
    response = send(broker.bootstrap, ApiKey.LIST_OFFSETS, 7, {
        "replica_id": -1, "isolation_level": 0, "topics": [{"name": "t", "partitions": [
            {"partition_index": p, "timestamp": -1, "current_leader_epoch": -1}
            for p in (0, 1)]}]})
    return [int(p.error_code) for p in response.topics[0].partitions]


def test_eio_on_fsync_takes_the_partition_offline(
        broker: EmbeddedBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    created = send(broker.bootstrap, ApiKey.CREATE_TOPICS, 5, {
        "topics": [{"name": "t", "num_partitions": 2, "replication_factor": 1,
                    "assignments": [], "configs": []}],
        "timeout_ms": 10000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.none
    assert _produce(broker, 0, b"p0-acked") == (ErrorCode.none, 0)
    assert _produce(broker, 1, b"p1-acked") == (ErrorCode.none, 0)

    failing = tmp_path / "data" / files.partition_dir_name("t", 1)
    assert failing.is_dir()
    flush.FSYNC_FAULTS[failing] = errno.EIO
    with caplog.at_level(logging.ERROR):
        # Its data was appended but its fsync failed: never acknowledged.
        assert _produce(broker, 1, b"p1-lost")[0] == ErrorCode.kafka_storage_error
    # Offline now, even though the next fsync would succeed ("fsyncgate").
    del flush.FSYNC_FAULTS[failing]
    assert _produce(broker, 1, b"p1-refused")[0] == ErrorCode.kafka_storage_error
    assert _produce(broker, 0, b"p0-after") == (ErrorCode.none, 1)

    fetched = _fetch(broker)
    assert fetched[0][0] == ErrorCode.none and b"p0-after" in fetched[0][1]
    assert fetched[1][0] == ErrorCode.kafka_storage_error
    assert _list_offsets(broker) == [ErrorCode.none, ErrorCode.kafka_storage_error]
    meta = send(broker.bootstrap, ApiKey.METADATA, 12, {
        "topics": [{"name": "t", "topic_id": None}], "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": False})
    parts = {p.partition_index: p for p in meta.topics[0].partitions}
    assert parts[0].error_code == ErrorCode.none
    assert parts[1].error_code == ErrorCode.kafka_storage_error
    assert list(parts[1].offline_replicas) == [parts[1].leader_id]
    assert not disk.failing()  # no file-system-wide condition

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "t-1 is offline" in errors[0] and ".log" in errors[0]
    assert "check the disk" in errors[0] and "restart" in errors[0]

    # The restart recovers the log (its directory is not marked cleanly shut
    # down) and the partition serves again, with its acknowledged record.
    with caplog.at_level(logging.WARNING):
        broker.restart()
    assert any("not marked cleanly shut down" in r.getMessage() for r in caplog.records)
    fetched = _fetch(broker)
    assert fetched[1][0] == ErrorCode.none
    assert b"p1-acked" in fetched[1][1]
    assert _list_offsets(broker) == [ErrorCode.none, ErrorCode.none]
    code, offset = _produce(broker, 1, b"p1-again")
    assert code == ErrorCode.none
    # The unacknowledged record may have survived (the disk kept it, as with
    # Kafka); it is never below an acknowledged one.
    assert offset in (1, 2)
    records = _fetch(broker)[1][1]
    assert len(list(scan_batches(records))) == offset + 1
