"""build -> read / validate / decode round trips, control batches, and the
decoders fed whole, one byte at a time, and with trailing bytes."""

from __future__ import annotations

import pytest

from strom.errors import CorruptRecordError, InvalidRecordError, KafkaError
from strom.protocol.records import (
    Compression,
    ControlRecordType,
    Record,
    RecordSpec,
    TimestampType,
    assign_offsets,
    batch_crc_ok,
    build_batch,
    build_control_batch,
    decode_end_transaction_marker,
    decode_records,
    iter_batches_records,
    read_batch_header,
    scan_batches,
    set_log_append_time,
    validate_produced_batch,
)

NOW = 1_700_000_000_000
CODECS = list(Compression)

RECORD_SETS: dict[str, list[RecordSpec]] = {
    "one": [RecordSpec(key=b"k", value=b"v", timestamp=NOW)],
    "null-keys-and-values": [
        RecordSpec(key=None, value=b"a", timestamp=NOW),
        RecordSpec(key=b"b", value=None, timestamp=NOW + 1),
        RecordSpec(key=None, value=None, timestamp=NOW + 2),
    ],
    "empty": [RecordSpec(key=b"", value=b"", timestamp=NOW)],
    "headers": [
        RecordSpec(
            key=b"k",
            value=b"v",
            headers=(("a", b"1"), ("a", b"2"), ("null", None), ("", b""), ("\u00fcnicode", b"x")),
            timestamp=NOW,
        )
    ],
    "timestamps-out-of-order": [
        RecordSpec(value=b"%d" % i, timestamp=NOW + t) for i, t in enumerate([3, -7, 12, 12, 0])
    ],
    "no-timestamps": [RecordSpec(value=b"x"), RecordSpec(value=b"y")],
    "many": [
        RecordSpec(key=b"%d" % i, value=b"v" * (i % 300), timestamp=NOW + i) for i in range(700)
    ],
    "large": [RecordSpec(key=b"k" * 10_000, value=b"v" * 100_000, timestamp=NOW)],
}


def expected(specs: list[RecordSpec], base_offset: int) -> list[Record]:
    first = next((s.timestamp for s in specs if s.timestamp is not None), -1)
    return [
        Record(
            base_offset + i,
            first if s.timestamp is None else s.timestamp,
            s.key,
            s.value,
            s.headers,
        )
        for i, s in enumerate(specs)
    ]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("name", list(RECORD_SETS))
def test_round_trip(codec: Compression, name: str) -> None:
    specs = RECORD_SETS[name]
    buf = build_batch(specs, compression=codec)
    header = read_batch_header(buf)
    assert header.compression is codec
    assert header.records_count == len(specs)
    assert batch_crc_ok(buf, header)
    validated = validate_produced_batch(
        memoryview(buf),
        max_message_bytes=10**7,
        compacted=False,
        timestamp_type=TimestampType.CREATE_TIME,
        now_ms=NOW,
        timestamp_before_max_ms=10**6,
        timestamp_after_max_ms=10**6,
    )
    records = decode_records(buf, header)
    assert records == expected(specs, 0)
    if any(s.timestamp is not None for s in specs):
        assert validated.max_timestamp == max(r.timestamp for r in records)
        assert records[validated.offset_delta_of_max_timestamp].timestamp == validated.max_timestamp
    assert header.max_timestamp == validated.max_timestamp


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_broker_append_path(codec: Compression) -> None:
    """validate, then assign offsets and LogAppendTime in place, then read."""
    specs = RECORD_SETS["null-keys-and-values"]
    buf = bytearray(build_batch(specs, compression=codec))
    validated = validate_produced_batch(
        memoryview(buf),
        max_message_bytes=10**6,
        compacted=False,
        timestamp_type=TimestampType.LOG_APPEND_TIME,
        now_ms=NOW + 50,
        timestamp_before_max_ms=0,
        timestamp_after_max_ms=0,
    )
    assign_offsets(buf, validated.header, 4242, 3)
    set_log_append_time(buf, validated.header, validated.max_timestamp)
    ((header, records),) = list(iter_batches_records(buf))
    assert header.partition_leader_epoch == 3
    assert [(r.offset, r.timestamp) for r in records] == [
        (4242, NOW + 50),
        (4243, NOW + 50),
        (4244, NOW + 50),
    ]
    assert [(r.key, r.value) for r in records] == [(s.key, s.value) for s in specs]


def test_builder_fields() -> None:
    buf = build_batch(
        [RecordSpec(value=b"x")] * 3,
        base_offset=7,
        base_timestamp=NOW,
        producer_id=11,
        producer_epoch=4,
        base_sequence=90,
        transactional=True,
        partition_leader_epoch=2,
        timestamp_type=TimestampType.LOG_APPEND_TIME,
    )
    header = read_batch_header(buf)
    assert (header.base_offset, header.partition_leader_epoch) == (7, 2)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (11, 4, 90)
    assert header.is_transactional and not header.is_control
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert (header.base_timestamp, header.max_timestamp) == (NOW, NOW)


def test_builder_rejects_an_empty_batch() -> None:
    with pytest.raises(ValueError):
        build_batch([])


@pytest.mark.parametrize("kind", list(ControlRecordType))
def test_control_batch(kind: ControlRecordType) -> None:
    buf = build_control_batch(
        kind,
        producer_id=5,
        producer_epoch=1,
        coordinator_epoch=12,
        timestamp=NOW,
        base_offset=99,
        partition_leader_epoch=4,
    )
    header = read_batch_header(buf)
    assert header.is_control and header.is_transactional
    assert (header.producer_id, header.producer_epoch) == (5, 1)
    assert (header.base_offset, header.records_count, header.partition_leader_epoch) == (99, 1, 4)
    assert header.compression is Compression.NONE
    (record,) = decode_records(buf, header)
    assert record.offset == 99 and record.timestamp == NOW
    assert record.key == b"\x00\x00\x00" + bytes([kind])
    assert decode_end_transaction_marker(record) == (kind, 12)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (None, b"\x00\x00\x00\x00\x00\x00"),
        (b"\x00", b""),
        (b"\x00\x00\x00\x05", b"\x00" * 6),
        (b"\x00" * 4, b""),
    ],
)
def test_not_a_transaction_marker(key: bytes | None, value: bytes) -> None:
    with pytest.raises(InvalidRecordError):
        decode_end_transaction_marker(Record(0, 0, key, value, ()))


def _log() -> bytes:
    return b"".join(
        build_batch(RECORD_SETS[name], compression=codec, base_offset=offset)
        for name, codec, offset in [
            ("one", Compression.NONE, 0),
            ("headers", Compression.GZIP, 1),
            ("null-keys-and-values", Compression.ZSTD, 2),
        ]
    )


def test_iter_batches_records_whole_and_with_trailing_bytes() -> None:
    log = _log()
    whole = [(h.base_offset, records) for h, records in iter_batches_records(log)]
    assert [offset for offset, _ in whole] == [0, 1, 2]
    assert [len(records) for _, records in whole] == [1, 1, 3]
    torn = build_batch(RECORD_SETS["many"], base_offset=5)[:200]
    for tail in (b"\x00" * 60, torn):
        with_tail = [(h.base_offset, records) for h, records in iter_batches_records(log + tail)]
        assert with_tail == whole
    # a complete header that is not a batch header is damage, not a torn tail
    with pytest.raises(CorruptRecordError):
        list(iter_batches_records(log + b"\x00" * 61))


def test_decoders_one_byte_at_a_time() -> None:
    """Every prefix of a log decodes to the batches it fully holds."""
    log = _log()
    full = [(h.end, records) for h, records in iter_batches_records(log)]
    for size in range(len(log) + 1):
        prefix = memoryview(log)[:size]
        assert [(h.end, r) for h, r in iter_batches_records(prefix)] == [
            (end, records) for end, records in full if end <= size
        ]


def test_decode_records_on_a_truncated_buffer() -> None:
    buf = build_batch(RECORD_SETS["many"])
    header = read_batch_header(buf)
    for size in (61, len(buf) // 2, len(buf) - 1):
        with pytest.raises(CorruptRecordError):
            decode_records(buf[:size], header)


def test_iter_batches_records_checks_crc() -> None:
    log = bytearray(_log())
    log[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        list(iter_batches_records(log))


def test_decode_with_trailing_bytes_inside_the_batch() -> None:
    buf = bytearray(build_batch(RECORD_SETS["one"]) + b"\x00\x00")
    # lengthen the batch to cover the two extra bytes: records then end early
    batch_length = int.from_bytes(buf[8:12], "big") + 2
    buf[8:12] = batch_length.to_bytes(4, "big")
    with pytest.raises(KafkaError) as info:
        decode_records(buf, read_batch_header(buf))
    assert isinstance(info.value, InvalidRecordError)
    assert [h.end for h in scan_batches(buf)] == [len(buf)]
