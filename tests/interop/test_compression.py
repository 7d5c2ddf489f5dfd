"""gzip, snappy, lz4 and zstd batches from each client that can write them, stored as
sent (the broker keeps the producer's codec: compression.type=producer) and read
back intact by every other client."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from .clients import (
    CODECS,
    PRODUCERS,
    PYTHON_CLIENTS,
    Rec,
    by_partition_in_order,
    consume,
    content,
    keyed_records,
    produce,
    raw_fetch,
)

pytestmark = pytest.mark.interop

READERS = ("confluent", "kafka-python", "aiokafka", "kcat")


def compressible(n: int, partitions: int, tag: str) -> list[Rec]:
    return [
        Rec(i % partitions, f"{tag}-k{i}".encode(),
            (f"{tag} value {i} " + "abcdefgh" * (50 + i)).encode(),
            (("codec", tag.encode()),))
        for i in range(n)
    ]


def _codec_supported(client: str, codec: str) -> None:
    if client == "kafka-python":
        import kafka.codec as kc

        if not getattr(kc, f"has_{codec}")():
            pytest.skip(f"kafka-python has no {codec} codec here (python-snappy, lz4, "
                        f"zstandard packages)")


@pytest.mark.parametrize(
    "producer",
    [pytest.param(p, marks=[pytest.mark.java] if p == "java" else []) for p in PRODUCERS],
)
@pytest.mark.parametrize("codec", CODECS)
def test_compressed_batches_read_by_every_client(codec: str, producer: str, bootstrap: str,
                                                 topic: str, create_topic: Any,
                                                 client_available: Any) -> None:
    client_available(producer)
    _codec_supported(producer, codec)
    create_topic(topic, partitions=2)
    if producer == "java":
        # the console producer picks partitions by key (murmur2); make the records say so
        recs = [Rec(r.partition, r.key, r.value * 40, (("codec", codec.encode()),))
                for r in keyed_records(20, partitions=2, tag=codec)]
    else:
        recs = compressible(20, partitions=2, tag=codec)
    produce(producer, bootstrap, topic, recs, compression=codec)

    expected = content(by_partition_in_order(recs))
    for reader in READERS:
        if reader == "kcat" and shutil.which("kcat") is None:
            continue  # test_kcat.py reports the skip
        got = consume(reader, bootstrap, topic, len(recs))
        assert content(got) == expected, f"{reader} read {len(got)} records"

    # stored as produced: the producer's codec, a valid CRC
    for partition in (0, 1):
        error, hw, batches = raw_fetch(bootstrap, topic, partition)
        assert error == 0
        assert hw == 10
        assert batches, f"no batches in partition {partition}"
        assert sum(b.record_count for b in batches) == 10
        for b in batches:
            assert b.magic == 2
            assert b.crc_ok
            assert b.codec == codec, f"stored as {b.codec}, produced as {codec}"


@pytest.mark.java
def test_java_console_consumer_reads_every_codec(bootstrap: str, topic: str, create_topic: Any,
                                                 java_tools: Any) -> None:
    """Partition i holds batches of CODECS[i] from every Python client."""
    create_topic(topic, partitions=len(CODECS))
    recs: list[Rec] = []
    for partition, codec in enumerate(CODECS):
        for producer in PYTHON_CLIENTS:
            _codec_supported(producer, codec)
            part = [Rec(partition, f"{producer}-{i}".encode(),
                        f"{codec}-{producer}-{i}-".encode() * 30,
                        (("p", producer.encode()),)) for i in range(3)]
            produce(producer, bootstrap, topic, part, compression=codec)
            recs += part
    got = consume("java", bootstrap, topic, len(recs))
    assert content(got) == content(by_partition_in_order(recs))


def test_mixed_codecs_in_one_partition(bootstrap: str, topic: str, create_topic: Any) -> None:
    """Batches of every codec (and uncompressed) interleaved in one partition: offsets
    stay dense and each batch keeps its own codec."""
    create_topic(topic, partitions=1)
    recs: list[Rec] = []
    codecs = [None, *CODECS, None, *reversed(CODECS)]
    for i, codec in enumerate(codecs):
        part = [Rec(0, f"b{i}-{j}".encode(), f"batch {i} rec {j} ".encode() * 20)
                for j in range(5)]
        produce("confluent", bootstrap, topic, part, compression=codec)
        recs += part
    for reader in ("kafka-python", "aiokafka"):
        got = consume(reader, bootstrap, topic, len(recs))
        assert content(got) == content(recs)
        assert [r.offset for r in got] == list(range(len(recs)))
    _, hw, batches = raw_fetch(bootstrap, topic, 0)
    assert hw == len(recs)
    assert [b.codec for b in batches] == [c or "none" for c in codecs]
    assert [b.base_offset for b in batches] == [5 * i for i in range(len(codecs))]
    assert all(b.last_offset_delta == 4 for b in batches)
