"""A partition that never got a record has no directory (issue 19), and every
API still treats it as the empty log it is: reads, ListOffsets, DeleteRecords,
DescribeLogDirs, AlterConfigs, retention, the cleaner and DeleteTopics make
no directory and raise nothing; the first record makes it, also when that
first write's fsync fails or the disk is full. Restarts and kill -9 are in
test_big_topics.py; followers and reassignment in
tests/cluster/test_cluster_big_topics.py. Real brokers, real sockets."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import Record, RecordSpec, build_batch, iter_batches_records
from strom.storage import disk, flush
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import send
from tests.process import StromProcess
from tests.tmpfs import mounted_tmpfs

TIMEOUT = 30.0
DAY_MS = 86_400_000


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(tmp_path / "data", overrides={
        "log.retention.check.interval.ms": "100", "log.cleaner.backoff.ms": "50"}).start()
    try:
        yield embedded
    finally:
        flush.FSYNC_FAULTS.clear()
        embedded.stop()
        disk.clear(tmp_path)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # the broker's retention and cleaner rounds: no event to wait on


def _create(bootstrap: str, topic: str, partitions: int, configs: dict[str, str]) -> None:
    response = send(bootstrap, ApiKey.CREATE_TOPICS, 7, {
        "topics": [{"name": topic, "num_partitions": partitions, "replication_factor": 1,
                    "assignments": [], "configs": [{"name": k, "value": v}
                                                   for k, v in configs.items()]}],
        "timeout": 30_000})
    assert response.topics[0].error_code == ErrorCode.none


def _produce(bootstrap: str, topic: str, partition: int, records: list[RecordSpec],
             acks: int = -1) -> int:
    response = send(bootstrap, ApiKey.PRODUCE, 9, {
        "acks": acks, "timeout": 10_000, "transactional_id": None,
        "topic_data": [{"name": topic, "partition_data": [
            {"index": partition, "records": bytes(build_batch(records))}]}]})
    return int(response.responses[0].partition_responses[0].error_code)


def _value(value: bytes, key: bytes | None = None, age_ms: int = 0) -> RecordSpec:
    return RecordSpec(key=key, value=value, timestamp=int(time.time() * 1000) - age_ms)


def _list_offsets(bootstrap: str, topic: str, partition: int,
                  timestamp: int) -> tuple[int, int, int]:
    response = send(bootstrap, ApiKey.LIST_OFFSETS, 7, {
        "replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
            {"partition_index": partition, "current_leader_epoch": -1,
             "timestamp": timestamp}]}]})
    found = response.topics[0].partitions[0]
    return int(found.error_code), int(found.offset), int(found.timestamp)


def _fetch(bootstrap: str, topic: str, partition: int,
           offset: int) -> tuple[int, list[Record]]:
    response = send(bootstrap, ApiKey.FETCH, 12, {
        "replica_id": -1, "max_wait": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "forgotten_topics_data": [], "rack_id": "",
        "topics": [{"topic": topic, "partitions": [
            {"partition": partition, "fetch_offset": offset, "partition_max_bytes": 1 << 20,
             "current_leader_epoch": -1, "last_fetched_epoch": -1, "log_start_offset": -1}]}]})
    found = response.responses[0].partitions[0]
    data = bytes(found.records or b"")
    return int(found.error_code), [r for _, rs in iter_batches_records(data) for r in rs]


def _delete_records(bootstrap: str, topic: str, partition: int, offset: int) -> tuple[int, int]:
    response = send(bootstrap, ApiKey.DELETE_RECORDS, 2, {
        "topics": [{"name": topic, "partitions": [
            {"partition_index": partition, "offset": offset}]}], "timeout": 10_000})
    found = response.topics[0].partitions[0]
    return int(found.error_code), int(found.low_watermark)


def _log_dir_sizes(bootstrap: str, topic: str) -> dict[int, int]:
    response = send(bootstrap, ApiKey.DESCRIBE_LOG_DIRS, 1, {"topics": None})
    return {p.partition_index: int(p.partition_size) for result in response.results
            for t in result.topics if t.name == topic for p in t.partitions}


def _dirs(data: Path, topic: str) -> list[str]:
    return sorted(p.name for p in data.iterdir() if p.name.startswith(f"{topic}-"))


def test_a_never_written_partition_answers_as_an_empty_log(broker: EmbeddedBroker,
                                                           tmp_path: Path) -> None:
    data, bootstrap = tmp_path / "data", broker.bootstrap
    _create(bootstrap, "t", 2, {})
    assert _produce(bootstrap, "t", 0, [_value(b"a")]) == ErrorCode.none
    # Partition 1: never written.
    assert _list_offsets(bootstrap, "t", 1, -2) == (ErrorCode.none, 0, -1)  # earliest
    assert _list_offsets(bootstrap, "t", 1, -1) == (ErrorCode.none, 0, -1)  # latest
    assert _list_offsets(bootstrap, "t", 1, -3)[:2] == (ErrorCode.none, -1)  # max timestamp
    assert _list_offsets(bootstrap, "t", 1, 0)[:2] == (ErrorCode.none, -1)  # by time: none
    assert _fetch(bootstrap, "t", 1, 0) == (ErrorCode.none, [])
    assert _fetch(bootstrap, "t", 1, 1)[0] == ErrorCode.offset_out_of_range
    assert _delete_records(bootstrap, "t", 1, 0) == (ErrorCode.none, 0)
    assert _delete_records(bootstrap, "t", 1, -1) == (ErrorCode.none, 0)  # up to the HW
    assert _delete_records(bootstrap, "t", 1, 1)[0] == ErrorCode.offset_out_of_range
    sizes = _log_dir_sizes(bootstrap, "t")
    assert sorted(sizes) == [0, 1] and sizes[0] > 0 and sizes[1] == 0
    altered = send(bootstrap, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
        "resources": [{"resource_type": 2, "resource_name": "t", "configs": [
            {"name": "retention.ms", "config_operation": 0, "value": "1000"}]}],
        "validate_only": False})
    assert altered.responses[0].error_code == ErrorCode.none
    assert _dirs(data, "t") == ["t-0"]
    # Its first record: offset 0, readable, and now a directory.
    assert _produce(bootstrap, "t", 1, [_value(b"b")]) == ErrorCode.none
    assert [r.value for r in _fetch(bootstrap, "t", 1, 0)[1]] == [b"b"]
    assert _dirs(data, "t") == ["t-0", "t-1"]
    # A topic none of whose partitions got a record deletes without a trace.
    _create(bootstrap, "empty", 3, {})
    deleted = send(bootstrap, ApiKey.DELETE_TOPICS, 6, {
        "topics": [{"name": "empty", "topic_id": None}], "timeout": 30_000})
    assert deleted.responses[0].error_code == ErrorCode.none
    assert _dirs(data, "empty") == []
    _create(bootstrap, "empty", 1, {})
    assert _produce(bootstrap, "empty", 0, [_value(b"c")]) == ErrorCode.none
    assert _list_offsets(bootstrap, "empty", 0, -1)[:2] == (ErrorCode.none, 1)


def test_retention_and_the_cleaner_pass_never_written_partitions(broker: EmbeddedBroker,
                                                                tmp_path: Path) -> None:
    data, bootstrap = tmp_path / "data", broker.bootstrap
    # Retention: partition 0's records are a day old and go; partition 1 has none.
    _create(bootstrap, "r", 2, {"retention.ms": "60000"})
    old = [_value(f"{i}".encode(), age_ms=DAY_MS) for i in range(3)]
    assert _produce(bootstrap, "r", 0, old) == ErrorCode.none
    _wait_for(lambda: _list_offsets(bootstrap, "r", 0, -2)[1] == 3, "retention on r-0")
    # Compaction: partition 0's duplicate keys are cleaned; partition 1 has none.
    _create(bootstrap, "c", 2, {"cleanup.policy": "compact", "segment.bytes": "2048",
                                "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"})
    for i in range(30):
        assert _produce(bootstrap, "c", 0, [_value(b"x" * 100 + f"{i}".encode(), key=b"k")]) \
            == ErrorCode.none
    assert _produce(bootstrap, "c", 0, [_value(b"last", key=b"other")]) == ErrorCode.none
    _wait_for(lambda: len(_fetch(bootstrap, "c", 0, 0)[1]) < 31, "the cleaner on c-0")
    assert _dirs(data, "r") == ["r-0"] and _dirs(data, "c") == ["c-0"]
    for topic in ("r", "c"):
        assert _list_offsets(bootstrap, topic, 1, -1)[:2] == (ErrorCode.none, 0)
        assert _produce(bootstrap, topic, 1, [_value(b"v", key=b"k")]) == ErrorCode.none
        assert [r.value for r in _fetch(bootstrap, topic, 1, 0)[1]] == [b"v"]


def test_a_failed_fsync_at_the_first_write_takes_the_partition_offline(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    # The first write makes the directory; its first flush (acks=all) fails
    # with EIO: the partition goes offline like any other, the rest serve.
    bootstrap = broker.bootstrap
    _create(bootstrap, "t", 2, {})
    flush.FSYNC_FAULTS[tmp_path / "data" / "t-1"] = errno.EIO
    assert _produce(bootstrap, "t", 1, [_value(b"lost?")]) == ErrorCode.kafka_storage_error
    assert _list_offsets(bootstrap, "t", 1, -1)[0] == ErrorCode.kafka_storage_error
    assert _produce(bootstrap, "t", 0, [_value(b"fine")]) == ErrorCode.none


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def test_the_first_write_on_a_full_disk_fails_and_succeeds_once_there_is_room(
        small_disk: Path) -> None:
    broker = StromProcess(small_disk / "data")
    broker.log_path = small_disk.parent / "strom.log"
    broker.start()
    try:
        _create(broker.bootstrap, "t", 1_000, {})
        filler = small_disk / "filler"
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        code = _produce(broker.bootstrap, "t", 999, [_value(b"v" * 8192)], acks=1)
        assert code == ErrorCode.kafka_storage_error
        filler.unlink()
        _wait_for(lambda: _produce(broker.bootstrap, "t", 999, [_value(b"v")], acks=-1)
                  == ErrorCode.none, "a write once there is room")
        assert [r.value for r in _fetch(broker.bootstrap, "t", 999, 0)[1]] == [b"v"]
        assert broker.terminate() == 0
    finally:
        broker.stop()
    assert "Traceback" not in broker.log_path.read_text()
