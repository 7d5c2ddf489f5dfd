"""Records inside a v2 batch: varints and full record decoding.

One record, after the batch header (Kafka's DefaultRecord)::

    length          varint   bytes of the record after this field
    attributes      int8     unused, 0
    timestamp_delta varlong  from the batch's base_timestamp
    offset_delta    varint   from the batch's base_offset
    key_length      varint   -1 for a null key
    key             bytes
    value_length    varint   -1 for a null value
    value           bytes
    header_count    varint
    headers         header_count x (key_length varint >= 0, key utf-8,
                                    value_length varint (-1 null), value)

Varints are zigzag-encoded; like Kafka's ByteUtils a varint takes at most 5
bytes and a varlong at most 10. Malformed records raise InvalidRecordError,
which is what Kafka's DefaultRecord.readFrom throws (INVALID_RECORD).

This module builds `Record` objects and is for consumers of the data
(coordinator replay, tools, tests); the produce path validates without
building them (see validate.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from strom.errors import CorruptRecordError, InvalidRecordError
from strom.protocol.records.batch import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    Buffer,
    Compression,
    TimestampType,
    batch_crc_ok,
    scan_batches,
)
from strom.protocol.records.compression import decompress

__all__ = [
    "MIN_RECORD_SIZE",
    "Record",
    "decode_records",
    "encode_varint",
    "encode_varlong",
    "iter_batches_records",
    "read_varint",
    "read_varlong",
    "records_section",
]

#: Smallest possible record: a one-byte length and six one-byte fields.
MIN_RECORD_SIZE = 7

_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record; `offset` and `timestamp` are absolute."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def read_varint(data: Buffer, position: int) -> tuple[int, int]:
    """(value, next position) of the zigzag varint (int32) at `position`.

    IndexError if the data ends inside it; InvalidRecordError past 5 bytes.
    """
    raw = 0
    shift = 0
    while True:
        byte = data[position]
        position += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 28:
            raise InvalidRecordError("varint is longer than 5 bytes")
    # Java reads into an int: bits past 32 fall off.
    raw &= _MASK32
    return (raw >> 1) ^ -(raw & 1), position


def read_varlong(data: Buffer, position: int) -> tuple[int, int]:
    """(value, next position) of the zigzag varlong (int64) at `position`."""
    raw = 0
    shift = 0
    while True:
        byte = data[position]
        position += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise InvalidRecordError("varlong is longer than 10 bytes")
    raw &= _MASK64
    return (raw >> 1) ^ -(raw & 1), position


def _encode_unsigned(raw: int) -> bytes:
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def encode_varint(value: int) -> bytes:
    """Zigzag varint of an int32."""
    if not -(1 << 31) <= value < (1 << 31):
        raise ValueError(f"{value} does not fit in an int32 varint")
    return _encode_unsigned(((value << 1) ^ (value >> 31)) & _MASK32)


def encode_varlong(value: int) -> bytes:
    """Zigzag varint of an int64."""
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"{value} does not fit in an int64 varlong")
    return _encode_unsigned(((value << 1) ^ (value >> 63)) & _MASK64)


def records_section(
    buf: Buffer, header: BatchHeader, *, max_uncompressed_bytes: int | None = None
) -> bytes | memoryview:
    """The batch's records, uncompressed: a view into `buf` when the batch is
    not compressed, otherwise freshly decompressed bytes."""
    end = header.position + header.batch_length + LOG_OVERHEAD
    if end > len(buf):
        raise CorruptRecordError(f"record batch at {header.position} extends past the buffer")
    section = memoryview(buf)[header.position + BATCH_HEADER_SIZE : end]
    codec = header.compression
    if codec == Compression.NONE:
        return section
    return decompress(codec, section, max_uncompressed_bytes)


def decode_records(
    buf: Buffer, header: BatchHeader, *, max_uncompressed_bytes: int | None = None
) -> list[Record]:
    """All records of the batch at `header`, decompressing as needed.

    A LogAppendTime batch gives every record its max_timestamp, as Kafka's
    readers do. The CRC is not checked here (`batch_crc_ok`).
    """
    data = bytes(records_section(buf, header, max_uncompressed_bytes=max_uncompressed_bytes))
    count = header.records_count
    if count < 0 or count > len(data) // MIN_RECORD_SIZE:
        raise InvalidRecordError(f"record count {count} does not fit in {len(data)} bytes")
    log_append_time = (
        header.max_timestamp if header.timestamp_type == TimestampType.LOG_APPEND_TIME else None
    )
    records: list[Record] = []
    position = 0
    try:
        for _ in range(count):
            record, position = _decode_record(data, position, header, log_append_time)
            records.append(record)
    except IndexError:
        raise InvalidRecordError("record extends past the end of its batch") from None
    if position != len(data):
        raise InvalidRecordError(
            f"{len(data) - position} bytes remain after the batch's {count} records"
        )
    return records


def _decode_record(
    data: bytes, position: int, header: BatchHeader, log_append_time: int | None
) -> tuple[Record, int]:
    length, position = read_varint(data, position)
    record_end = position + length
    if length < MIN_RECORD_SIZE - 1 or record_end > len(data):
        raise InvalidRecordError(f"invalid record length {length}")
    position += 1  # attributes: unused in v2
    timestamp_delta, position = read_varlong(data, position)
    offset_delta, position = read_varint(data, position)
    key, position = _read_bytes(data, position, record_end)
    value, position = _read_bytes(data, position, record_end)
    header_count, position = read_varint(data, position)
    if header_count < 0 or header_count > record_end - position:
        raise InvalidRecordError(f"invalid record header count {header_count}")
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(header_count):
        key_length, position = read_varint(data, position)
        if key_length < 0 or position + key_length > record_end:
            raise InvalidRecordError(f"invalid record header key length {key_length}")
        # Java decodes header keys leniently (malformed bytes become U+FFFD).
        header_key = data[position : position + key_length].decode("utf-8", "replace")
        position += key_length
        header_value, position = _read_bytes(data, position, record_end)
        headers.append((header_key, header_value))
    if position != record_end:
        raise InvalidRecordError(
            f"record length {length} does not match its fields ({position - record_end:+d})"
        )
    timestamp = (
        header.base_timestamp + timestamp_delta if log_append_time is None else log_append_time
    )
    record = Record(header.base_offset + offset_delta, timestamp, key, value, tuple(headers))
    return record, position


def _read_bytes(data: bytes, position: int, record_end: int) -> tuple[bytes | None, int]:
    length, position = read_varint(data, position)
    if length == -1:
        return None, position
    # Kafka reads any negative length as null; only -1 is ever written, so
    # anything else is damage and is rejected here.
    if length < 0 or position + length > record_end:
        raise InvalidRecordError(f"invalid record field length {length}")
    return data[position : position + length], position + length


def iter_batches_records(buf: Buffer) -> Iterator[tuple[BatchHeader, list[Record]]]:
    """Every complete batch in `buf` with its records; CRCs are checked
    (CorruptRecordError). For tests and tools, not for hot paths."""
    for header in scan_batches(buf):
        if not batch_crc_ok(buf, header):
            raise CorruptRecordError(f"record batch at {header.position} fails its CRC")
        yield header, decode_records(buf, header)
