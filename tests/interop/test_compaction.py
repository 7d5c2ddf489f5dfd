"""Log compaction seen by real clients (confluent-kafka / librdkafka): a
compacted topic converges to the latest value per key, tombstones go after
delete.retention.ms, a consumer from the beginning rebuilds exactly the latest
state, keyless records are refused, and committed offsets in the compacted
__consumer_offsets survive its cleaning and a restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strom.testing import EmbeddedBroker

from .clients import Rec, produce_error

pytestmark = pytest.mark.interop

OVERRIDES = {
    "log.cleaner.backoff.ms": "50",
    "offsets.topic.num.partitions": "1",
    "offsets.topic.segment.bytes": "2048",
    "group.initial.rebalance.delay.ms": "0",
}
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.bytes": "2048",
    "segment.ms": "200",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "300",
}
TIMEOUT_S = 30.0


@pytest.fixture
def cbroker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path / "data", overrides=OVERRIDES) as broker:
        yield broker


def create(bootstrap: str, topic: str, partitions: int, config: dict[str, str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1, config=config)])
    futures[topic].result(timeout=30)


def producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                     "enable.idempotence": True})


def read_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, bytes, bytes | None]]:
    """Every record from the beginning up to the high watermarks, as
    (partition, key, value), with a consumer of its own."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: list[tuple[int, bytes, bytes | None]] = []
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + TIMEOUT_S
        while len(done) < partitions:
            assert time.monotonic() < deadline, f"reading {topic} timed out"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                    continue
                raise AssertionError(msg.error())
            if msg.offset() < ends[msg.partition()]:
                out.append((msg.partition(), msg.key(), msg.value()))
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        return out
    finally:
        consumer.close()


def test_compacted_topic_converges_to_the_latest_values(cbroker: EmbeddedBroker) -> None:
    topic = f"compacted-{uuid.uuid4().hex[:8]}"
    partitions = 2
    create(cbroker.bootstrap, topic, partitions, COMPACTED)
    p = producer(cbroker.bootstrap)
    model: dict[bytes, bytes | None] = {}
    for round_ in range(12):
        for k in range(40):
            key = b"customer-%d" % k
            value = None if (k % 5 == 0 and round_ == 11) else b"address-%d-%d" % (k, round_)
            p.produce(topic, key=key, value=value)
            model[key] = value
        p.flush(30)
    assert p.flush(30) == 0
    latest = {k: v for k, v in model.items() if v is not None}

    def converged() -> bool:
        seen: dict[bytes, list[bytes | None]] = {}
        for record in cbroker.records(topic):
            if record.key != b"tick":
                seen.setdefault(record.key, []).append(record.value)  # type: ignore[arg-type]
        return {k: v[-1] for k, v in seen.items()} == latest and all(
            len(v) == 1 for v in seen.values())

    # A trickle of writes to another key rolls the active segments (segment.ms)
    # so the last writes become cleanable; the producer's poll paces the loop.
    deadline = time.monotonic() + TIMEOUT_S
    while not converged():
        assert time.monotonic() < deadline, "the compacted topic did not converge"
        for partition in range(partitions):
            p.produce(topic, key=b"tick", value=b"t", partition=partition)
        p.flush(10)
        p.poll(0.1)

    state: dict[bytes, bytes] = {}
    records = read_all(cbroker.bootstrap, topic, partitions)
    for _partition, key, value in records:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    state.pop(b"tick", None)
    assert state == latest
    # Exactly the latest state: no superseded value and no tombstone is left.
    assert len([r for r in records if r[1] != b"tick"]) == len(latest)


def test_keyless_records_are_refused_on_a_compacted_topic(cbroker: EmbeddedBroker) -> None:
    topic = f"compacted-{uuid.uuid4().hex[:8]}"
    create(cbroker.bootstrap, topic, 1, COMPACTED)
    code = produce_error("confluent", cbroker.bootstrap, topic, Rec(0, None, b"no key"))
    assert code == 87  # INVALID_RECORD, as Kafka answers
    assert produce_error("confluent", cbroker.bootstrap, topic, Rec(0, b"k", b"v")) == 0


def test_compact_runs_a_pass_now(cbroker: EmbeddedBroker) -> None:
    topic = f"compacted-{uuid.uuid4().hex[:8]}"
    # A ratio of 1 is never exceeded: only compact() cleans this topic.
    create(cbroker.bootstrap, topic, 1, {**COMPACTED, "min.cleanable.dirty.ratio": "1",
                                         "segment.ms": "604800000", "segment.bytes": "1024"})
    p = producer(cbroker.bootstrap)
    for i in range(200):
        p.produce(topic, key=b"k%d" % (i % 10), value=b"v%d" % i)
        if i % 20 == 19:
            p.flush(30)
    assert p.flush(30) == 0
    before = len(cbroker.records(topic))
    assert cbroker.compact(topic) == 1
    after = cbroker.records(topic)
    assert len(after) < before
    assert {r.key: r.value for r in after} == {b"k%d" % k: b"v%d" % (190 + k) for k in range(10)}


def test_committed_offsets_survive_compaction_of_consumer_offsets(tmp_path: Path) -> None:
    from confluent_kafka import Consumer, TopicPartition

    overrides = {**OVERRIDES, "log.cleaner.min.cleanable.ratio": "0.01"}
    with EmbeddedBroker(tmp_path / "data", overrides=overrides) as broker:
        topic = f"plain-{uuid.uuid4().hex[:8]}"
        create(broker.bootstrap, topic, 1, {})
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g1",
                             "enable.auto.commit": False})
        try:
            for offset in range(1, 301):
                consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
        finally:
            consumer.close()
        broker.compact("__consumer_offsets")  # the background cleaner may be ahead
        # 300 commits of one key: only the active segment's and the latest
        # before it remain.
        assert len(broker.records("__consumer_offsets")) < 300 // 4
        broker.restart()
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g1"})
        try:
            committed = consumer.committed([TopicPartition(topic, 0)], timeout=30)
            assert committed[0].offset == 300
        finally:
            consumer.close()
