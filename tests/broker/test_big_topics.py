"""Creating and deleting thousands of partitions never stalls other clients
(hardening #4).

Before, a CreateTopics of 8,000 partitions held the event loop for 6-11 s
(mkdir, partition.metadata and fsyncs per partition, inline) and a
DeleteTopics of them for 54 s (three fsynced checkpoint files rewritten per
partition): no other client was answered meanwhile. Logs are now removed on a
worker thread (broker/log_jobs.py) while the loop serves, and created without
touching the disk: a new log makes its directory at its first write (issue
19), so the topic takes produce as soon as CreateTopics answers. The tests
check ordering, not speed: another connection is answered while the big
request is in flight.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from tests.broker.raw_client import RawClient, send
from tests.process import StromProcess

PARTITIONS = 2_000  # a second or more of filesystem work: time to answer others meanwhile
TIMEOUT = 120.0
TOPIC = "big"


@pytest.fixture
def strom(tmp_path: Path) -> Iterator[StromProcess]:
    broker = StromProcess(tmp_path / "data")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)  # polling the filesystem: there is no event to wait on


def _create_request(name: str, partitions: int) -> dict[str, Any]:
    return {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": 1,
                        "assignments": [], "configs": []}], "timeout": 120_000}


def _answered(client: RawClient) -> bool:
    return bool(select.select([client], [], [], 0)[0])


def _produce_code(bootstrap: str, topic: str, partition: int) -> int:
    batch = bytes(build_batch([RecordSpec(key=None, value=b"v",
                                          timestamp=int(time.time() * 1000))]))
    response = send(bootstrap, ApiKey.PRODUCE, 9, {
        "acks": -1, "timeout": 5000, "transactional_id": None,
        "topic_data": [{"name": topic, "partition_data": [
            {"index": partition, "records": batch}]}]})
    return int(response.responses[0].partition_responses[0].error_code)


def _topic_dirs(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir() if p.name.startswith(f"{TOPIC}-"))


def _send(bootstrap: str, api_key: int, version: int, body: dict[str, Any]) -> Any:
    with RawClient(bootstrap, timeout=TIMEOUT) as client:
        return client.send(api_key, version, body)


def _produce_everywhere(bootstrap: str, topic: str, partitions: int) -> None:
    """One record into every partition, in one Produce request (acks=1)."""
    batch = bytes(build_batch([RecordSpec(key=None, value=b"v",
                                          timestamp=int(time.time() * 1000))]))
    response = _send(bootstrap, ApiKey.PRODUCE, 9, {
        "acks": 1, "timeout": 30_000, "transactional_id": None,
        "topic_data": [{"name": topic, "partition_data": [
            {"index": p, "records": batch} for p in range(partitions)]}]})
    codes = {r.error_code for r in response.responses[0].partition_responses}
    assert codes == {ErrorCode.none}


def test_a_big_topic_makes_no_directory_until_records_arrive(strom: StromProcess) -> None:
    data = strom.data_dir
    response = _send(strom.bootstrap, ApiKey.CREATE_TOPICS, 7, _create_request(TOPIC, 1_000))
    assert response.topics[0].error_code == ErrorCode.none
    # Answered after the metadata only: not one partition directory.
    assert _topic_dirs(data) == []
    # CreatePartitions likewise.
    more = _send(strom.bootstrap, ApiKey.CREATE_PARTITIONS, 3, {
        "topics": [{"name": TOPIC, "count": 2_000, "assignments": None}],
        "timeout": 120_000, "validate_only": False})
    assert more.results[0].error_code == ErrorCode.none
    assert _topic_dirs(data) == []
    # A record makes its partition's directory, and only that one.
    assert _produce_code(strom.bootstrap, TOPIC, 1_999) == ErrorCode.none
    assert _produce_code(strom.bootstrap, TOPIC, 0) == ErrorCode.none
    assert _topic_dirs(data) == [f"{TOPIC}-0", f"{TOPIC}-1999"]
    assert strom.terminate() == 0
    # A clean shutdown makes nothing for the others either.
    assert _topic_dirs(data) == [f"{TOPIC}-0", f"{TOPIC}-1999"]
    assert {p.name for p in (data / f"{TOPIC}-0").iterdir()} >= {
        "partition.metadata", "leader-epoch-checkpoint", "00000000000000000000.log"}
    # After a restart every partition is back, the unwritten ones still without
    # a directory, and each takes records.
    strom.start(timeout=TIMEOUT)
    metadata = send(strom.bootstrap, ApiKey.METADATA, 12, {
        "topics": [{"name": TOPIC, "topic_id": None}], "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": False})
    assert len(metadata.topics[0].partitions) == 2_000
    assert all(p.error_code == ErrorCode.none for p in metadata.topics[0].partitions)
    assert _topic_dirs(data) == [f"{TOPIC}-0", f"{TOPIC}-1999"]
    assert _produce_code(strom.bootstrap, TOPIC, 500) == ErrorCode.none
    assert strom.terminate() == 0
    assert "Traceback" not in strom.log_path.read_text()


def test_others_are_answered_while_a_big_topic_is_deleted(strom: StromProcess) -> None:
    data = strom.data_dir
    with RawClient(strom.bootstrap, timeout=TIMEOUT) as admin, \
            RawClient(strom.bootstrap, timeout=TIMEOUT) as other:
        response = admin.send(ApiKey.CREATE_TOPICS, 7, _create_request(TOPIC, PARTITIONS))
        assert response.topics[0].error_code == ErrorCode.none
        _produce_everywhere(strom.bootstrap, TOPIC, PARTITIONS)  # every directory made
        deleted = admin.send_only(ApiKey.DELETE_TOPICS, 6, {
            "topics": [{"name": TOPIC, "topic_id": None}], "timeout": 120_000})
        _wait_for(lambda: not (data / f"{TOPIC}-0").exists(), "the first directory renamed")
        other.send(ApiKey.API_VERSIONS, 0, {})
        assert not _answered(admin), "the loop was held: DeleteTopics answered first"
        response = admin.receive(ApiKey.DELETE_TOPICS, 6, deleted)
        assert response.responses[0].error_code == ErrorCode.none
    # Answered once the logs are gone from disk.
    assert [p.name for p in data.iterdir() if p.name.startswith(TOPIC)] == []
    assert strom.terminate() == 0
    assert "Traceback" not in strom.log_path.read_text()


def test_concurrent_creates_of_one_name_one_succeeds(strom: StromProcess) -> None:
    codes: list[int] = []
    start = threading.Barrier(2)

    def create() -> None:
        with RawClient(strom.bootstrap, timeout=TIMEOUT) as client:
            start.wait(timeout=TIMEOUT)
            response = client.send(ApiKey.CREATE_TOPICS, 7, _create_request(TOPIC, 500))
            codes.append(int(response.topics[0].error_code))

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert sorted(codes) == [ErrorCode.none, ErrorCode.topic_already_exists]
    assert _produce_code(strom.bootstrap, TOPIC, 499) == ErrorCode.none


def test_a_crash_after_a_big_create_leaves_a_topic_that_works(strom: StromProcess) -> None:
    # kill -9 right after CreateTopics answered: the partitions that never
    # got a record have no directory, and come back from the metadata.
    data = strom.data_dir
    response = _send(strom.bootstrap, ApiKey.CREATE_TOPICS, 7,
                     _create_request(TOPIC, PARTITIONS))
    assert response.topics[0].error_code == ErrorCode.none
    assert _produce_code(strom.bootstrap, TOPIC, 7) == ErrorCode.none  # acks=all: durable
    strom.kill()
    strom.start(timeout=TIMEOUT)
    metadata = send(strom.bootstrap, ApiKey.METADATA, 12, {
        "topics": [{"name": TOPIC, "topic_id": None}], "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": False})
    (topic,) = metadata.topics
    # Whole: every partition, each with a log that takes appends.
    assert topic.error_code == ErrorCode.none
    assert sorted(p.partition_index for p in topic.partitions) == list(range(PARTITIONS))
    assert all(p.error_code == ErrorCode.none for p in topic.partitions)
    assert _topic_dirs(data) == [f"{TOPIC}-7"]
    listed = send(strom.bootstrap, ApiKey.LIST_OFFSETS, 7, {
        "replica_id": -1, "isolation_level": 0, "topics": [{"name": TOPIC, "partitions": [
            {"partition_index": p, "current_leader_epoch": -1, "timestamp": -1}
            for p in (0, 7, PARTITIONS - 1)]}]})
    assert [(p.error_code, p.offset) for p in listed.topics[0].partitions] == [
        (ErrorCode.none, 0), (ErrorCode.none, 1), (ErrorCode.none, 0)]
    for partition in (0, 100, PARTITIONS - 1):
        assert _produce_code(strom.bootstrap, TOPIC, partition) == ErrorCode.none
    assert _topic_dirs(data) == sorted(f"{TOPIC}-{p}" for p in (0, 7, 100, PARTITIONS - 1))
    assert strom.terminate() == 0


def test_a_topic_deleted_and_created_again_while_its_logs_are_made(
        strom: StromProcess) -> None:
    data = strom.data_dir
    with RawClient(strom.bootstrap, timeout=TIMEOUT) as first, \
            RawClient(strom.bootstrap, timeout=TIMEOUT) as second:
        created = first.send_only(ApiKey.CREATE_TOPICS, 7, _create_request(TOPIC, PARTITIONS))
        deleted = second.send(ApiKey.DELETE_TOPICS, 6, {
            "topics": [{"name": TOPIC, "topic_id": None}], "timeout": 120_000})
        assert deleted.responses[0].error_code == ErrorCode.none
        # Committed before the deletion: the first create succeeded, as in Kafka.
        assert first.receive(ApiKey.CREATE_TOPICS, 7, created).topics[0].error_code == 0
        assert [p.name for p in data.iterdir() if p.name.startswith(TOPIC)] == []
        # The same name again, with other partitions: none of the old logs.
        again = second.send(ApiKey.CREATE_TOPICS, 7, _create_request(TOPIC, 3))
        assert again.topics[0].error_code == ErrorCode.none
    assert _produce_code(strom.bootstrap, TOPIC, 2) == ErrorCode.none
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(TOPIC)) == [f"{TOPIC}-2"]
    listed = send(strom.bootstrap, ApiKey.LIST_OFFSETS, 7, {
        "replica_id": -1, "isolation_level": 0, "topics": [{"name": TOPIC, "partitions": [
            {"partition_index": 2, "current_leader_epoch": -1, "timestamp": -1}]}]})
    assert listed.topics[0].partitions[0].offset == 1  # none of the old log


def test_preallocated_topics_are_created_in_the_background_too(strom: StromProcess) -> None:
    request = _create_request(TOPIC, 20)
    request["topics"][0]["configs"] = [{"name": "preallocate", "value": "true"},
                                       {"name": "segment.bytes", "value": "1048576"}]
    response = send(strom.bootstrap, ApiKey.CREATE_TOPICS, 7, request)
    assert response.topics[0].error_code == ErrorCode.none
    assert _produce_code(strom.bootstrap, TOPIC, 19) == ErrorCode.none


def test_a_crash_during_a_big_delete_leaves_no_topic(strom: StromProcess) -> None:
    data = strom.data_dir
    with RawClient(strom.bootstrap, timeout=TIMEOUT) as admin:
        response = admin.send(ApiKey.CREATE_TOPICS, 7, _create_request(TOPIC, PARTITIONS))
        assert response.topics[0].error_code == ErrorCode.none
        _produce_everywhere(strom.bootstrap, TOPIC, PARTITIONS)  # every directory made
        admin.send_only(ApiKey.DELETE_TOPICS, 6, {
            "topics": [{"name": TOPIC, "topic_id": None}], "timeout": 120_000})
        _wait_for(lambda: not (data / f"{TOPIC}-0").exists(), "the first directory renamed")
        strom.kill()
    strom.start(timeout=TIMEOUT)
    metadata = send(strom.bootstrap, ApiKey.METADATA, 12, {
        "topics": [{"name": TOPIC, "topic_id": None}], "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": False})
    assert metadata.topics[0].error_code == ErrorCode.unknown_topic_or_partition
    # Start-up finished the deletion: renamed directories and the rest alike.
    assert [p.name for p in data.iterdir() if p.name.startswith(TOPIC)] == []
    again = send(strom.bootstrap, ApiKey.CREATE_TOPICS, 7, _create_request(TOPIC, 2))
    assert again.topics[0].error_code == ErrorCode.none
    assert _produce_code(strom.bootstrap, TOPIC, 1) == ErrorCode.none
    assert strom.terminate() == 0


def test_every_partition_added_takes_records_at_once(strom: StromProcess) -> None:
    # CreatePartitions answers once the new logs take appends (issue 19: they
    # are built without the loader, their files named on first use): one
    # Produce right after the answer lands in all 1,001 partitions, Metadata
    # lists a leader for each, and each written log has its files under
    # Kafka's names after a clean shutdown.
    data = strom.data_dir
    assert _send(strom.bootstrap, ApiKey.CREATE_TOPICS, 7,
                 _create_request(TOPIC, 1)).topics[0].error_code == ErrorCode.none
    with RawClient(strom.bootstrap, timeout=TIMEOUT) as client:
        more = client.send(ApiKey.CREATE_PARTITIONS, 3, {
            "topics": [{"name": TOPIC, "count": 1_001, "assignments": None}],
            "timeout": 120_000, "validate_only": False})
        assert more.results[0].error_code == ErrorCode.none
        _produce_everywhere(strom.bootstrap, TOPIC, 1_001)
        for version in (1, 9, 12):
            metadata = client.send(ApiKey.METADATA, version, {
                "topics": [{"name": TOPIC, "topic_id": None}],
                "allow_auto_topic_creation": False,
                "include_cluster_authorized_operations": False,
                "include_topic_authorized_operations": False})
            partitions = metadata.topics[0].partitions
            assert sorted(p.partition_index for p in partitions) == list(range(1_001))
            (broker,) = metadata.brokers
            assert {(p.error_code, p.leader_id) for p in partitions} == {
                (ErrorCode.none, broker.node_id)}
    listed = send(strom.bootstrap, ApiKey.LIST_OFFSETS, 7, {
        "replica_id": -1, "isolation_level": 0, "topics": [{"name": TOPIC, "partitions": [
            {"partition_index": p, "current_leader_epoch": -1, "timestamp": -1}
            for p in (0, 1, 500, 1_000)]}]})
    assert [(p.error_code, p.offset) for p in listed.topics[0].partitions] == [
        (ErrorCode.none, 1)] * 4
    assert strom.terminate() == 0
    assert len(_topic_dirs(data)) == 1_001
    for partition in (1, 1_000):
        assert {p.name for p in (data / f"{TOPIC}-{partition}").iterdir()} >= {
            "00000000000000000000.log", "00000000000000000000.index",
            "00000000000000000000.timeindex", "partition.metadata"}
        assert (data / f"{TOPIC}-{partition}" / "00000000000000000000.log").stat().st_size > 0
