"""Cross-check against an independent codec: kafka-python's DefaultRecordBatch
and DefaultRecordBatchBuilder (its own varint, record and xerial framing code).

kafka-python only ships gzip; its snappy, lz4 and zstd hooks are pointed at
cramjam here, so its framing code (xerial blocks included) still runs.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import cramjam
import kafka.codec
import kafka.record.default_records as kafka_records
import pytest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from strom.protocol.records import (
    Compression,
    ControlRecordType,
    RecordSpec,
    TimestampType,
    batch_crc_ok,
    build_batch,
    build_control_batch,
    compress,
    decode_records,
    decompress,
    read_batch_header,
    set_log_append_time,
    validate_produced_batch,
)

NOW = 1_700_000_000_000
CODECS = list(Compression)


@pytest.fixture(autouse=True)
def kafka_python_codecs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    snappy = types.SimpleNamespace(
        compress=lambda data: bytes(cramjam.snappy.compress_raw(bytes(data))),
        decompress=lambda data: bytes(cramjam.snappy.decompress_raw(bytes(data))),
    )
    monkeypatch.setattr(kafka.codec, "snappy", snappy)
    monkeypatch.setattr(kafka.codec, "lz4", object())
    monkeypatch.setattr(kafka.codec, "zstd", object())
    monkeypatch.setattr(
        kafka_records, "lz4_encode", lambda data: bytes(cramjam.lz4.compress(bytes(data)))
    )
    monkeypatch.setattr(
        kafka_records, "lz4_decode", lambda data: bytes(cramjam.lz4.decompress(bytes(data)))
    )
    monkeypatch.setattr(
        kafka_records, "zstd_encode", lambda data: bytes(cramjam.zstd.compress(bytes(data)))
    )
    monkeypatch.setattr(
        kafka_records, "zstd_decode", lambda data: bytes(cramjam.zstd.decompress(bytes(data)))
    )
    yield


RECORDS: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]] = [
    (b"key-0", b"value " * 50, [], NOW),
    (None, b"null key", [("trace", b"abc"), ("empty", b"")], NOW + 5),
    (b"", b"", [], NOW - 3),
    (b"null value", None, [("h\u00e9", None)], NOW + 5),
    (b"k" * 300, b"v" * 20_000, [("h", b"x" * 200)] * 3, NOW + 1),
]


def kafka_python_batch(codec: Compression, **kwargs: Any) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=int(codec),
        is_transactional=kwargs.get("transactional", False),
        producer_id=kwargs.get("producer_id", -1),
        producer_epoch=kwargs.get("producer_epoch", -1),
        base_sequence=kwargs.get("base_sequence", -1),
        batch_size=10**7,
    )
    for offset, (key, value, headers, timestamp) in enumerate(RECORDS):
        assert builder.append(offset, timestamp, key, value, headers) is not None
    return bytes(builder.build())


def read_with_kafka_python(buf: bytes) -> list[tuple[Any, ...]]:
    batch = DefaultRecordBatch(bytearray(buf))
    assert batch.validate_crc()
    return [
        (r.offset, r.timestamp, r.timestamp_type, r.key, r.value, [tuple(h) for h in r.headers])
        for r in batch
    ]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_strom_reads_what_kafka_python_writes(codec: Compression) -> None:
    buf = kafka_python_batch(codec, producer_id=9, producer_epoch=1, base_sequence=100)
    header = read_batch_header(buf)
    assert header.compression is codec
    assert batch_crc_ok(buf, header)
    validated = validate_produced_batch(
        memoryview(buf),
        max_message_bytes=10**7,
        compacted=False,
        timestamp_type=TimestampType.CREATE_TIME,
        now_ms=NOW,
        timestamp_before_max_ms=1000,
        timestamp_after_max_ms=1000,
    )
    assert (validated.max_timestamp, validated.offset_delta_of_max_timestamp) == (NOW + 5, 1)
    ours = [
        (r.offset, r.timestamp, 0, r.key, r.value, list(r.headers))
        for r in decode_records(buf, header)
    ]
    assert ours == read_with_kafka_python(buf)
    assert [(r[3], r[4], r[5], r[1]) for r in ours] == [tuple(x) for x in RECORDS]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_kafka_python_reads_what_strom_writes(codec: Compression) -> None:
    specs = [RecordSpec(key=k, value=v, headers=tuple(h), timestamp=t) for k, v, h, t in RECORDS]
    buf = build_batch(specs, compression=codec, base_offset=500, producer_id=3, producer_epoch=0)
    theirs = read_with_kafka_python(buf)
    ours = [
        (r.offset, r.timestamp, 0, r.key, r.value, list(r.headers))
        for r in decode_records(buf, read_batch_header(buf))
    ]
    assert theirs == ours
    assert [r[0] for r in theirs] == list(range(500, 505))
    batch = DefaultRecordBatch(bytearray(buf))
    assert batch.compression_type == int(codec)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (3, 0, -1)
    assert batch.max_timestamp == NOW + 5


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_kafka_python_sees_log_append_time(codec: Compression) -> None:
    buf = bytearray(kafka_python_batch(codec))
    set_log_append_time(buf, read_batch_header(buf), NOW + 777)
    theirs = read_with_kafka_python(bytes(buf))
    assert {(r[1], r[2]) for r in theirs} == {(NOW + 777, 1)}
    assert {r.timestamp for r in decode_records(buf, read_batch_header(buf))} == {NOW + 777}


@pytest.mark.parametrize("kind", list(ControlRecordType))
def test_kafka_python_reads_control_batches(kind: ControlRecordType) -> None:
    buf = build_control_batch(
        kind, producer_id=4, producer_epoch=2, coordinator_epoch=7, timestamp=NOW, base_offset=10
    )
    batch = DefaultRecordBatch(bytearray(buf))
    assert batch.validate_crc()
    assert batch.is_control_batch and batch.is_transactional
    (record,) = list(batch)
    assert record.offset == 10
    assert record.type == int(kind)
    assert record.abort == (kind is ControlRecordType.ABORT)


def test_strom_reads_kafka_python_snappy_xerial_blocks() -> None:
    data = bytes(range(256)) * 700  # several 32 KiB xerial blocks
    framed = kafka.codec.snappy_encode(data, xerial_compatible=True)
    assert framed[:8] == b"\x82SNAPPY\x00"
    assert decompress(Compression.SNAPPY, framed) == data
    assert kafka.codec.snappy_decode(compress(Compression.SNAPPY, data)) == data
