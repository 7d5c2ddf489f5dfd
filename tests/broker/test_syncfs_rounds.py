"""acks=all group commit by syncfs rounds (strom/broker/flusher.py, issue 19):
the partitions of a log directory waiting for a flush share one syncfs;
with too much dirty data, or when syncfs fails, each partition gets its own
fdatasync again and nothing acknowledged is lost. A real broker, a real
client (librdkafka), the counters read from /metrics."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.broker.flusher import ROUND_MAX_BYTES
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient
from tests.metrics.scrape import scrape

pytest.importorskip("strom.storage._fsync", reason="built without the C extensions")

PARTITIONS = 8
WAVES = 25
RECORDS = PARTITIONS * WAVES


def _broker(tmp_path: Path, **overrides: str) -> EmbeddedBroker:
    return EmbeddedBroker(tmp_path / "data", overrides={
        "strom.http.listener": "http://127.0.0.1:0", **overrides}).start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    # The dirty-page gate far above anything this machine holds: whatever
    # other work left unwritten in the page cache (a benchmark, the tests
    # before) would otherwise send these rounds to fdatasync (that gate has
    # tests of its own below). One run beside a benchmark counted 0 rounds.
    embedded = _broker(tmp_path, **{"strom.log.flush.syncfs.max.dirty.bytes": str(1 << 40)})
    try:
        yield embedded
    finally:
        embedded.stop()


def _counter(broker: EmbeddedBroker, name: str) -> float:
    result = scrape(broker.http_url)
    assert f"{name}_total" in result.names()
    return result.value(f"{name}_total")


def _produce_acks_all(broker: EmbeddedBroker, topic: str) -> None:
    """WAVES times a record to every partition (one request: flush() sends what
    linger.ms holds back; one flush of
    each: the first flush of a partition also writes its partition.metadata,
    so it is a flush of its own), each wave acked before the next."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "linger.ms": 1000, "enable.idempotence": True})
    failed: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    for wave in range(WAVES):
        for partition in range(PARTITIONS):
            producer.produce(topic, value=b"v%d" % (wave * PARTITIONS + partition),
                             partition=partition, on_delivery=delivered)
        assert producer.flush(60) == 0, "records left undelivered"
    assert failed == []


def _stored(broker: EmbeddedBroker, topic: str) -> list[bytes]:
    return sorted(bytes(r.value or b"") for r in broker.records(topic))


def test_partitions_waiting_together_share_a_syncfs(broker: EmbeddedBroker) -> None:
    """One acks=all request to every partition, WAVES times: after the first
    (each partition's first flush writes its partition.metadata: a flush of
    its own), the partitions of a request wait for one syncfs."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("shared", PARTITIONS, 1)])["shared"].result(timeout=30)
    with RawClient(broker.bootstrap) as client:
        for wave in range(WAVES):
            response = client.send(ApiKey.PRODUCE, 9, {
                "acks": -1, "timeout": 10000, "transactional_id": None,
                "topic_data": [{"name": "shared", "partition_data": [
                    {"index": p, "records": bytes(build_batch([RecordSpec(
                        key=None, value=b"v%d" % (wave * PARTITIONS + p),
                        timestamp=int(time.time() * 1000))]))}
                    for p in range(PARTITIONS)]}]})
            errors = {int(r.error_code) for r in response.responses[0].partition_responses}
            assert errors == {ErrorCode.none}
    assert _counter(broker, "strom_log_flush_syncfs_rounds") == WAVES - 1
    assert _counter(broker, "strom_log_flush_syncfs_fallbacks") == 0
    broker.restart()
    assert _stored(broker, "shared") == sorted(b"v%d" % i for i in range(RECORDS))


def test_a_client_producing_to_many_partitions_is_acked_through_rounds(
        broker: EmbeddedBroker) -> None:
    _produce_acks_all(broker, "client")
    # librdkafka sends a request per partition; those read in one turn of the
    # loop, or while a round runs, share the next one.
    assert 0 < _counter(broker, "strom_log_flush_syncfs_rounds") < RECORDS
    assert len(_stored(broker, "client")) == RECORDS


def test_with_the_limit_at_zero_each_partition_has_its_own_fdatasync(tmp_path: Path) -> None:
    broker = _broker(tmp_path, **{"strom.log.flush.syncfs.max.dirty.bytes": "0"})
    try:
        _produce_acks_all(broker, "own")
        assert _counter(broker, "strom_log_flush_syncfs_rounds") == 0
        assert _counter(broker, "strom_log_flush_syncfs_fallbacks") == 0
        assert len(_stored(broker, "own")) == RECORDS
    finally:
        broker.stop()


def test_a_dirty_page_cache_sends_the_round_back_to_fdatasync(tmp_path: Path) -> None:
    # One byte: any dirty data on the machine is too much. 16 MiB written just
    # before (and not synced) makes sure there is some.
    broker = _broker(tmp_path, **{"strom.log.flush.syncfs.max.dirty.bytes": "1"})
    try:
        with open(tmp_path / "dirty", "wb") as junk:
            junk.write(b"j" * (16 << 20))
        _produce_acks_all(broker, "dirty")
        assert _counter(broker, "strom_log_flush_syncfs_fallbacks") > 0
        broker.restart()
        assert len(_stored(broker, "dirty")) == RECORDS
    finally:
        broker.stop()


def test_a_failing_syncfs_turns_rounds_off_and_loses_nothing(
        broker: EmbeddedBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The directory's syncfs fd swapped for an O_PATH fd, which the kernel's
    # syncfs refuses (EBADF): a file system whose syncfs fails, without one.
    flusher = broker.services.replicas.flusher
    data = tmp_path / "data"
    good = flusher._syncfs_fds[data]
    flusher._syncfs_fds[data] = [os.open(data, os.O_PATH) for _ in good]
    for fd in good:
        os.close(fd)
    with caplog.at_level(logging.WARNING, logger="strom.broker.flusher"):
        _produce_acks_all(broker, "failing")
    assert any("syncfs of" in r.getMessage() and "fdatasync from now on" in r.getMessage()
               for r in caplog.records)
    assert _counter(broker, "strom_log_flush_syncfs_fallbacks") >= 1
    assert data not in flusher._syncfs_fds
    rounds = _counter(broker, "strom_log_flush_syncfs_rounds")
    _produce_acks_all(broker, "after")
    assert _counter(broker, "strom_log_flush_syncfs_rounds") == rounds  # stays off
    deadline = time.monotonic() + 10
    while len(_stored(broker, "failing")) < RECORDS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_stored(broker, "failing")) == RECORDS


def test_a_large_flush_gets_its_own_fdatasync(broker: EmbeddedBroker) -> None:
    """Above ROUND_MAX_BYTES unsynced, a partition is not put in a round:
    fdatasyncs of large flushes on several threads write back in parallel,
    a syncfs through one kernel thread."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("large", 1, 1)])["large"].result(timeout=30)

    def produce(value: bytes) -> None:
        with RawClient(broker.bootstrap) as client:
            response = client.send(ApiKey.PRODUCE, 9, {
                "acks": -1, "timeout": 10000, "transactional_id": None,
                "topic_data": [{"name": "large", "partition_data": [{"index": 0, "records": bytes(
                    build_batch([RecordSpec(key=None, value=value,
                                            timestamp=int(time.time() * 1000))]))}]}]})
        assert response.responses[0].partition_responses[0].error_code == ErrorCode.none

    produce(b"first")  # writes partition.metadata: a flush of its own
    rounds = _counter(broker, "strom_log_flush_syncfs_rounds")
    produce(b"small")
    assert _counter(broker, "strom_log_flush_syncfs_rounds") == rounds + 1
    produce(os.urandom(ROUND_MAX_BYTES + 1))
    assert _counter(broker, "strom_log_flush_syncfs_rounds") == rounds + 1
    assert len(broker.records("large")) == 3
