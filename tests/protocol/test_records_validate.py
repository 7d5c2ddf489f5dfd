"""validate_produced_batch: what Kafka's broker accepts, and the error code
it returns for each kind of bad batch."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from crc32c import crc32c

from strom.errors import (
    CorruptRecordError,
    ErrorCode,
    InvalidRecordError,
    InvalidTimestampError,
    KafkaError,
    RecordTooLargeError,
)
from strom.protocol.records import (
    Compression,
    ControlRecordType,
    RecordSpec,
    RecordValidationError,
    TimestampType,
    TimestampValidationError,
    ValidatedBatch,
    build_batch,
    build_control_batch,
    compress,
    validate_produced_batch,
)
from strom.protocol.records.builder import assemble_batch, encode_record
from strom.protocol.records.record import encode_varint

NOW = 1_700_000_000_000
LONG_MAX = 2**63 - 1
CODECS = list(Compression)


def validate(buf: bytes | bytearray, **overrides: Any) -> ValidatedBatch:
    kwargs: dict[str, Any] = {
        "max_message_bytes": 1_048_588,
        "compacted": False,
        "timestamp_type": TimestampType.CREATE_TIME,
        "now_ms": NOW,
        "timestamp_before_max_ms": LONG_MAX,
        "timestamp_after_max_ms": LONG_MAX,
    }
    kwargs.update(overrides)
    return validate_produced_batch(memoryview(buf), **kwargs)


def rejects(
    exc_type: type[KafkaError], code: ErrorCode, buf: bytes | bytearray, **overrides: Any
) -> KafkaError:
    with pytest.raises(exc_type) as info:
        validate(buf, **overrides)
    assert info.value.code == code
    return info.value


def recrc(buf: bytes | bytearray) -> bytes:
    """Fix the CRC after editing a covered field, to reach the checks after it."""
    out = bytearray(buf)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def batch(n: int = 3, codec: Compression = Compression.NONE, **kwargs: Any) -> bytes:
    specs = [
        RecordSpec(key=b"key%d" % i, value=b"value %d" % i, timestamp=NOW + i) for i in range(n)
    ]
    return build_batch(specs, compression=codec, **kwargs)


def raw_batch(records: list[bytes], codec: Compression = Compression.NONE, **kwargs: Any) -> bytes:
    """A batch around hand-encoded records; header fields default to consistent."""
    fields: dict[str, Any] = {
        "attributes": int(codec),
        "last_offset_delta": len(records) - 1,
        "records_count": len(records),
        "base_timestamp": NOW,
        "max_timestamp": NOW,
        "compression": codec,
    }
    fields.update(kwargs)
    return assemble_batch(b"".join(records), **fields)


# -- accepted batches -------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_accepts_a_well_formed_batch(codec: Compression) -> None:
    buf = batch(5, codec, producer_id=3, producer_epoch=0, base_sequence=0)
    result = validate(buf, compacted=True)
    assert result.header.records_count == 5
    assert result.header.compression is codec
    assert result.max_timestamp == NOW + 4
    assert result.offset_delta_of_max_timestamp == 4


def test_does_not_modify_the_buffer() -> None:
    buf = bytearray(batch(3, Compression.GZIP))
    before = bytes(buf)
    validate(buf)
    assert bytes(buf) == before


def test_max_timestamp_is_computed_from_records() -> None:
    specs = [RecordSpec(value=b"v", timestamp=NOW + t) for t in (5, 9, 9, 3)]
    buf = bytearray(build_batch(specs))
    struct.pack_into(">q", buf, 35, NOW + 1000)  # a client's wrong max_timestamp
    result = validate(recrc(buf))
    assert (result.max_timestamp, result.offset_delta_of_max_timestamp) == (NOW + 9, 1)
    assert result.header.max_timestamp == NOW + 1000


def test_records_without_timestamps() -> None:
    buf = build_batch([RecordSpec(value=b"a"), RecordSpec(value=b"b")])  # timestamps -1
    result = validate(buf, timestamp_before_max_ms=0, timestamp_after_max_ms=0)
    assert (result.max_timestamp, result.offset_delta_of_max_timestamp) == (-1, -1)


def test_log_append_time_topic_ignores_record_timestamps() -> None:
    specs = [RecordSpec(value=b"v", timestamp=1)]
    result = validate(
        build_batch(specs),
        timestamp_type=TimestampType.LOG_APPEND_TIME,
        timestamp_before_max_ms=0,
        timestamp_after_max_ms=0,
    )
    assert (result.max_timestamp, result.offset_delta_of_max_timestamp) == (NOW, 0)


def test_record_sizes_over_one_byte_varints() -> None:
    specs = [
        RecordSpec(key=b"k" * 200, value=b"v" * 20_000, headers=(("h" * 300, b"x" * 70_000),))
    ] * 70
    validate(build_batch(specs, base_timestamp=NOW - 10**6), max_message_bytes=10**8)


# -- framing: CORRUPT_MESSAGE / INVALID_RECORD as Kafka decides --------------


@pytest.mark.parametrize("cut", [0, 1, 11, 12, 16, 17, 60, 61, -1])
def test_truncated(cut: int) -> None:
    buf = batch(3)
    rejects(InvalidRecordError, ErrorCode.invalid_record, buf[:cut])


def test_truncated_one_byte_at_a_time() -> None:
    buf = batch(3, Compression.GZIP)
    for size in range(len(buf)):
        with pytest.raises((InvalidRecordError, CorruptRecordError)):
            validate(buf[:size])
    validate(buf)


@pytest.mark.parametrize("trailing", [b"\x00", b"\x00" * 11, b"\xff" * 12, b"\x00" * 100])
def test_trailing_bytes(trailing: bytes) -> None:
    rejects(InvalidRecordError, ErrorCode.invalid_record, batch(3) + trailing)


def test_two_batches() -> None:
    rejects(InvalidRecordError, ErrorCode.invalid_record, batch(3) + batch(2))


@pytest.mark.parametrize("magic", [0, 1])
def test_old_magic(magic: int) -> None:
    buf = bytearray(batch(3))
    buf[16] = magic
    rejects(InvalidRecordError, ErrorCode.invalid_record, buf)


@pytest.mark.parametrize("magic", [3, 0x80, 0xFF])
def test_unknown_magic(magic: int) -> None:
    buf = bytearray(batch(3))
    buf[16] = magic
    rejects(CorruptRecordError, ErrorCode.corrupt_message, buf)


@pytest.mark.parametrize("batch_length", [-5, 0, 13])
def test_length_field_below_any_overhead(batch_length: int) -> None:
    buf = bytearray(batch(3))
    struct.pack_into(">i", buf, 8, batch_length)
    rejects(CorruptRecordError, ErrorCode.corrupt_message, buf)


def test_length_field_below_v2_header() -> None:
    buf = bytearray(batch(3)[:40])
    struct.pack_into(">i", buf, 8, 28)
    rejects(CorruptRecordError, ErrorCode.corrupt_message, buf)


def test_huge_length_field() -> None:
    buf = bytearray(batch(3))
    struct.pack_into(">i", buf, 8, 2**31 - 1)
    rejects(InvalidRecordError, ErrorCode.invalid_record, buf)


def test_base_offset_must_be_zero() -> None:
    rejects(InvalidRecordError, ErrorCode.invalid_record, batch(3, base_offset=5))


def test_oversized() -> None:
    buf = batch(3, Compression.ZSTD)
    validate(buf, max_message_bytes=len(buf))
    error = rejects(
        RecordTooLargeError, ErrorCode.message_too_large, buf, max_message_bytes=len(buf) - 1
    )
    assert not error.retriable


@pytest.mark.parametrize("position", [17, 20, 21, 30, 60, 61, -1])
def test_crc_mismatch(position: int) -> None:
    buf = bytearray(batch(3, Compression.SNAPPY))
    buf[position] ^= 0x40
    error = rejects(CorruptRecordError, ErrorCode.corrupt_message, buf)
    assert error.retriable


def test_unknown_codec_with_valid_crc() -> None:
    buf = bytearray(batch(3))
    struct.pack_into(">h", buf, 21, 6)
    rejects(CorruptRecordError, ErrorCode.corrupt_message, recrc(buf))


# -- batch fields: INVALID_RECORD ----------------------------------------------


@pytest.mark.parametrize(
    ("count", "last_offset_delta"), [(0, -1), (0, 0), (-1, -1), (2, 2), (4, 2), (3, 3), (4, 3)]
)
def test_count_and_offset_range(count: int, last_offset_delta: int) -> None:
    buf = bytearray(batch(3))
    struct.pack_into(">i", buf, 23, last_offset_delta)
    struct.pack_into(">i", buf, 57, count)
    rejects(InvalidRecordError, ErrorCode.invalid_record, recrc(buf))


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_fewer_records_than_count(codec: Compression) -> None:
    records = [encode_record(i, 0, b"k", b"v") for i in range(3)]
    buf = raw_batch(records, codec, last_offset_delta=3, records_count=4)
    rejects(InvalidRecordError, ErrorCode.invalid_record, buf)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_more_records_than_count(codec: Compression) -> None:
    records = [encode_record(i, 0, b"k", b"v") for i in range(3)]
    buf = raw_batch(records, codec, last_offset_delta=1, records_count=2)
    rejects(InvalidRecordError, ErrorCode.invalid_record, buf)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("deltas", [[0, 2, 1], [1, 2, 3], [0, 0, 1], [0, 1, 300], [0, 1, -2]])
def test_offset_deltas_must_be_consecutive(codec: Compression, deltas: list[int]) -> None:
    records = [encode_record(d, 0, b"k", b"v") for d in deltas]
    rejects(InvalidRecordError, ErrorCode.invalid_record, raw_batch(records, codec))


def test_control_batch_from_a_client() -> None:
    buf = build_control_batch(
        ControlRecordType.COMMIT,
        producer_id=1,
        producer_epoch=0,
        coordinator_epoch=0,
        timestamp=NOW,
    )
    rejects(InvalidRecordError, ErrorCode.invalid_record, buf)


def test_producer_id_without_sequence() -> None:
    buf = batch(3, producer_id=10, producer_epoch=0, base_sequence=-1)
    rejects(InvalidRecordError, ErrorCode.invalid_record, buf)


# -- record structure: INVALID_RECORD ------------------------------------------


def _record_body(
    *, key: bytes = b"\x02k", value: bytes = b"\x02v", headers: bytes = b"\x00", offset: int = 0
) -> bytes:
    return b"\x00" + b"\x00" + encode_varint(offset) + key + value + headers


@pytest.mark.parametrize(
    "record",
    [
        encode_varint(len(_record_body()) + 1) + _record_body() + b"\x00",  # extra byte inside
        encode_varint(len(_record_body()) - 1) + _record_body(),  # length one short
        encode_varint(2**31 - 1) + _record_body(),  # huge length
        encode_varint(-1) + _record_body(),  # negative length
        encode_varint(5) + b"\x00" * 5,  # length below any record
        b"\xff\xff\xff\xff\xff\x01" + _record_body(),  # varint over 5 bytes
        encode_varint(9) + _record_body(key=encode_varint(2**31 - 1)),  # huge key length
        encode_varint(8) + _record_body(key=encode_varint(-2)),  # negative key length
        encode_varint(8) + _record_body(value=encode_varint(-3)),
        encode_varint(7) + _record_body(headers=encode_varint(-1)),
        encode_varint(11) + _record_body(headers=encode_varint(2**30)),
        encode_varint(9) + _record_body(headers=b"\x02\x01\x01"),  # negative header key
        encode_varint(10) + _record_body(headers=b"\x02\x00" + encode_varint(50)),  # past end
        encode_varint(10) + _record_body(headers=b"\x02\x00\x03"),  # header value -2
        _record_body(),  # no length prefix at all
    ],
)
@pytest.mark.parametrize("codec", [Compression.NONE, Compression.LZ4], ids=lambda c: c.name)
def test_malformed_record(record: bytes, codec: Compression) -> None:
    good = encode_record(1, 0, b"k", b"v")
    buf = raw_batch([record, good], codec)
    rejects(InvalidRecordError, ErrorCode.invalid_record, buf)


def test_huge_record_count_is_rejected_without_walking() -> None:
    buf = raw_batch([encode_record(0, 0, b"k", b"v")], last_offset_delta=2**31 - 2)
    buf = bytearray(buf)
    struct.pack_into(">i", buf, 57, 2**31 - 1)
    rejects(InvalidRecordError, ErrorCode.invalid_record, recrc(buf))


@pytest.mark.parametrize("codec", COMPRESSED := [c for c in Compression if c], ids=lambda c: c.name)
def test_undecodable_compressed_payload(codec: Compression) -> None:
    buf = assemble_batch(
        b"\x13\x37" * 40,
        attributes=int(codec),
        last_offset_delta=0,
        records_count=1,
    )
    rejects(CorruptRecordError, ErrorCode.corrupt_message, buf)


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name)
def test_decompression_bomb(codec: Compression) -> None:
    huge = encode_record(0, 0, None, bytes(8 * 1024 * 1024))
    buf = raw_batch([huge], codec)
    validate(buf)
    rejects(CorruptRecordError, ErrorCode.corrupt_message, buf, max_uncompressed_bytes=1024 * 1024)


def test_compressed_records_after_decompression_are_checked_for_trailing_bytes() -> None:
    section = encode_record(0, 0, b"k", b"v") + b"\x00\x00"
    buf = assemble_batch(
        section,
        attributes=int(Compression.GZIP),
        last_offset_delta=0,
        records_count=1,
        compression=Compression.GZIP,
    )
    rejects(InvalidRecordError, ErrorCode.invalid_record, buf)
    assert compress(Compression.GZIP, section)  # the payload itself is valid gzip


# -- per-record errors: compacted keys and timestamps ----------------------------


def test_compacted_topic_needs_keys() -> None:
    specs = [RecordSpec(key=b"a", value=b"1"), RecordSpec(value=b"2"), RecordSpec(value=b"3")]
    buf = build_batch(specs, base_timestamp=NOW)
    validate(buf)
    error = rejects(RecordValidationError, ErrorCode.invalid_record, buf, compacted=True)
    assert isinstance(error, RecordValidationError)
    assert [e.batch_index for e in error.record_errors] == [1, 2]


def test_empty_key_is_a_key() -> None:
    validate(build_batch([RecordSpec(key=b"", value=b"v")]), compacted=True)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_timestamp_too_old_or_too_new(codec: Compression) -> None:
    specs = [
        RecordSpec(value=b"ok", timestamp=NOW),
        RecordSpec(value=b"old", timestamp=NOW - 1001),
        RecordSpec(value=b"edge", timestamp=NOW - 1000),
        RecordSpec(value=b"new", timestamp=NOW + 501),
        RecordSpec(value=b"edge", timestamp=NOW + 500),
        RecordSpec(value=b"none", timestamp=-1),
    ]
    buf = build_batch(specs, compression=codec)
    error = rejects(
        TimestampValidationError,
        ErrorCode.invalid_timestamp,
        buf,
        timestamp_before_max_ms=1000,
        timestamp_after_max_ms=500,
    )
    assert isinstance(error, InvalidTimestampError) and isinstance(error, TimestampValidationError)
    assert [e.batch_index for e in error.record_errors] == [1, 3]
    # LogAppendTime topics do not check record timestamps
    validate(
        buf,
        timestamp_type=TimestampType.LOG_APPEND_TIME,
        timestamp_before_max_ms=1000,
        timestamp_after_max_ms=500,
    )


def test_timestamp_errors_win_over_key_errors() -> None:
    specs = [RecordSpec(value=b"no key", timestamp=NOW), RecordSpec(key=b"k", timestamp=0)]
    buf = build_batch(specs)
    error = rejects(
        TimestampValidationError,
        ErrorCode.invalid_timestamp,
        buf,
        compacted=True,
        timestamp_before_max_ms=1000,
    )
    assert isinstance(error, TimestampValidationError)
    assert [e.batch_index for e in error.record_errors] == [0, 1]


def test_key_error_hides_that_records_timestamp() -> None:
    buf = build_batch([RecordSpec(value=b"no key", timestamp=0)])
    rejects(
        RecordValidationError,
        ErrorCode.invalid_record,
        buf,
        compacted=True,
        timestamp_before_max_ms=1000,
    )


def test_producer_must_not_set_log_append_time() -> None:
    lat = build_batch(
        [RecordSpec(value=b"v", timestamp=NOW)], timestamp_type=TimestampType.LOG_APPEND_TIME
    )
    rejects(
        TimestampValidationError,
        ErrorCode.invalid_timestamp,
        lat,
        timestamp_type=TimestampType.LOG_APPEND_TIME,
    )
    # On a CreateTime topic Kafka only objects when the timestamp is missing.
    assert validate(lat).max_timestamp == NOW
    lat_without = build_batch(
        [RecordSpec(value=b"v")], timestamp_type=TimestampType.LOG_APPEND_TIME
    )
    rejects(TimestampValidationError, ErrorCode.invalid_timestamp, lat_without)
