"""Building v2 batches: for tests, internal topics and control (transaction
marker) batches. Clients' batches are never rebuilt by the broker.

A control batch (Kafka's EndTransactionMarker) is a transactional batch with
the control bit set and one record whose key is ``int16 version (0), int16
type`` and whose value is ``int16 version (0), int32 coordinator_epoch``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from strom.errors import InvalidRecordError
from strom.protocol.records.batch import (
    ATTRIBUTES_OFFSET,
    LOG_OVERHEAD,
    MAGIC_V2,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    NO_TIMESTAMP,
    Compression,
    TimestampType,
    compute_attributes,
)
from strom.protocol.records.compression import compress
from strom.protocol.records.crc import crc32c
from strom.protocol.records.record import Record, encode_varint, encode_varlong

__all__ = [
    "ControlRecordType",
    "RecordSpec",
    "assemble_batch",
    "build_batch",
    "build_control_batch",
    "decode_end_transaction_marker",
    "encode_record",
]

_HEADER_AFTER_CRC = struct.Struct(">hiqqqhii")  # attributes .. records_count
_HEADER_BEFORE_CRC = struct.Struct(">qiib")  # base_offset .. magic
_CRC = struct.Struct(">I")
_CONTROL_KEY = struct.Struct(">hh")
_END_TXN_MARKER_VALUE = struct.Struct(">hi")
_CONTROL_KEY_VERSION = 0
_END_TXN_MARKER_VERSION = 0
_NULL_LENGTH = encode_varint(-1)


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """A record to build; `timestamp` None means the batch's base timestamp."""

    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int | None = None


class ControlRecordType(enum.IntEnum):
    """Type field of a control record key (transaction markers only)."""

    ABORT = 0
    COMMIT = 1


def _length_prefixed(data: bytes | None) -> bytes:
    if data is None:
        return _NULL_LENGTH
    return encode_varint(len(data)) + data


def encode_record(
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> bytes:
    """One record, length prefix included."""
    parts = [
        b"\x00",  # attributes
        encode_varlong(timestamp_delta),
        encode_varint(offset_delta),
        _length_prefixed(key),
        _length_prefixed(value),
        encode_varint(len(headers)),
    ]
    for header_key, header_value in headers:
        parts.append(_length_prefixed(header_key.encode("utf-8")))
        parts.append(_length_prefixed(header_value))
    body = b"".join(parts)
    return encode_varint(len(body)) + body


def build_batch(
    records: Sequence[RecordSpec],
    *,
    base_offset: int = 0,
    compression: Compression = Compression.NONE,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    base_timestamp: int | None = None,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    partition_leader_epoch: int = -1,
) -> bytes:
    """A complete v2 batch holding `records` at consecutive offsets.

    `base_timestamp` defaults to the first explicit record timestamp, or -1
    (no timestamp) if there is none. max_timestamp is the largest record
    timestamp, as Kafka's MemoryRecordsBuilder writes it.
    """
    if not records:
        raise ValueError("a batch needs at least one record")
    if base_timestamp is None:
        base_timestamp = next(
            (spec.timestamp for spec in records if spec.timestamp is not None), NO_TIMESTAMP
        )
    encoded: list[bytes] = []
    max_timestamp = NO_TIMESTAMP
    for offset_delta, spec in enumerate(records):
        timestamp = base_timestamp if spec.timestamp is None else spec.timestamp
        max_timestamp = max(max_timestamp, timestamp)
        encoded.append(
            encode_record(
                offset_delta, timestamp - base_timestamp, spec.key, spec.value, spec.headers
            )
        )
    attributes = compute_attributes(compression, timestamp_type, transactional=transactional)
    return assemble_batch(
        b"".join(encoded),
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=len(records) - 1,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        records_count=len(records),
        compression=compression,
    )


def build_control_batch(
    kind: ControlRecordType,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
) -> bytes:
    """A COMMIT or ABORT transaction marker batch (never compressed)."""
    key = _CONTROL_KEY.pack(_CONTROL_KEY_VERSION, int(kind))
    value = _END_TXN_MARKER_VALUE.pack(_END_TXN_MARKER_VERSION, coordinator_epoch)
    attributes = compute_attributes(
        Compression.NONE, TimestampType.CREATE_TIME, transactional=True, control=True
    )
    return assemble_batch(
        encode_record(0, 0, key, value),
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=0,
        base_timestamp=timestamp,
        max_timestamp=timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=NO_SEQUENCE,
        records_count=1,
        compression=Compression.NONE,
    )


def decode_end_transaction_marker(record: Record) -> tuple[ControlRecordType, int]:
    """(COMMIT or ABORT, coordinator epoch) of a control batch's record."""
    if record.key is None or len(record.key) < _CONTROL_KEY.size:
        raise InvalidRecordError("control record key is too short")
    _version, kind = _CONTROL_KEY.unpack_from(record.key)
    if kind not in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
        raise InvalidRecordError(f"control record type {kind} is not a transaction marker")
    if record.value is None or len(record.value) < _END_TXN_MARKER_VALUE.size:
        raise InvalidRecordError("transaction marker value is too short")
    _value_version, coordinator_epoch = _END_TXN_MARKER_VALUE.unpack_from(record.value)
    return ControlRecordType(kind), coordinator_epoch


def assemble_batch(
    records: bytes,
    *,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
    attributes: int = 0,
    last_offset_delta: int,
    base_timestamp: int = NO_TIMESTAMP,
    max_timestamp: int = NO_TIMESTAMP,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
    records_count: int,
    compression: Compression = Compression.NONE,
) -> bytes:
    """A batch around an already encoded records section, header fields
    taken as given (no consistency checks: tests use it to build bad
    batches). `compression` compresses `records`; `attributes` should name
    the same codec. The CRC is computed."""
    payload = compress(compression, records)
    after_crc = (
        _HEADER_AFTER_CRC.pack(
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            records_count,
        )
        + payload
    )
    batch_length = ATTRIBUTES_OFFSET + len(after_crc) - LOG_OVERHEAD
    before_crc = _HEADER_BEFORE_CRC.pack(
        base_offset, batch_length, partition_leader_epoch, MAGIC_V2
    )
    return before_crc + _CRC.pack(crc32c(after_crc)) + after_crc
