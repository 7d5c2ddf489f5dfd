"""Keyed records with headers, to several partitions, produced by one real client and
read back by another: every pair of confluent-kafka, kafka-python, aiokafka, kcat and
Kafka's console tools."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .clients import (
    CONSUMERS,
    PRODUCERS,
    PYTHON_CLIENTS,
    Rec,
    by_partition_in_order,
    consume,
    content,
    keyed_records,
    produce,
)

pytestmark = pytest.mark.interop


def _java_marks(*clients: str) -> Any:
    return [pytest.mark.java] if "java" in clients else []


MATRIX = [
    pytest.param(p, c, id=f"{p}-to-{c}", marks=_java_marks(p, c))
    for p in PRODUCERS
    for c in CONSUMERS
]


def assert_offsets_dense(got: list[Rec]) -> None:
    for p in {r.partition for r in got}:
        offsets = [r.offset for r in got if r.partition == p]
        assert offsets == list(range(len(offsets))), f"partition {p} offsets {offsets}"


@pytest.mark.parametrize(("producer", "consumer"), MATRIX)
def test_cross_client_roundtrip(producer: str, consumer: str, bootstrap: str, topic: str,
                                create_topic: Any, client_available: Any) -> None:
    client_available(producer)
    client_available(consumer)
    create_topic(topic, partitions=3)
    recs = keyed_records(12, partitions=3, tag=producer.replace("-", ""))
    assert {r.partition for r in recs} == {0, 1, 2}
    before_ms = int(time.time() * 1000) - 5_000

    produce(producer, bootstrap, topic, recs)
    got = consume(consumer, bootstrap, topic, len(recs))

    assert content(got) == content(by_partition_in_order(recs))
    assert_offsets_dense(got)
    after_ms = int(time.time() * 1000) + 5_000
    # CreateTime set by the producer, kept by the broker
    assert all(before_ms <= (r.timestamp or 0) <= after_ms for r in got), [
        r.timestamp for r in got
    ]


@pytest.mark.parametrize("consumer", PYTHON_CLIENTS)
@pytest.mark.parametrize("producer", PYTHON_CLIENTS)
def test_binary_keys_values_headers(producer: str, consumer: str, bootstrap: str, topic: str,
                                    create_topic: Any) -> None:
    """Every byte value survives in keys, values and header values."""
    create_topic(topic, partitions=2)
    all_bytes = bytes(range(256))
    recs = [
        Rec(0, all_bytes, all_bytes * 4, (("bin", all_bytes), ("utf8-ключ", "värde".encode()))),
        Rec(1, b"\x00", b"\x00\xff" * 1000, (("dup", b"1"), ("dup", b"2"))),
        Rec(1, b"k\n\t", bytes(reversed(all_bytes)), ()),
    ]
    produce(producer, bootstrap, topic, recs)
    got = consume(consumer, bootstrap, topic, len(recs))
    assert content(got) == content(by_partition_in_order(recs))


def test_many_records_many_batches(bootstrap: str, topic: str, create_topic: Any) -> None:
    """A few thousand records in many batches come back complete and in order."""
    create_topic(topic, partitions=3)
    n = 3000
    recs = [Rec(i % 3, f"k{i}".encode(), f"v{i}".encode() * (1 + i % 50)) for i in range(n)]
    produce("confluent", bootstrap, topic, recs, config={"linger.ms": 1, "batch.num.messages": 97})
    for consumer in ("kafka-python", "confluent"):
        got = consume(consumer, bootstrap, topic, n)
        assert len(got) == n, consumer
        assert content(got) == content(by_partition_in_order(recs)), consumer
        assert_offsets_dense(got)
