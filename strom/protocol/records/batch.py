"""Record batch (magic v2) header: layout, reading, and in-place patching.

On-the-wire and on-disk layout of one batch (big-endian), as in Kafka's
DefaultRecordBatch::

    offset  size  field
         0     8  base_offset
         8     4  batch_length            bytes after this field
        12     4  partition_leader_epoch
        16     1  magic                   always 2 here
        17     4  crc                     CRC32C of bytes [21, end of batch)
        21     2  attributes              bits 0-2 compression, 3 timestamp type,
                                          4 transactional, 5 control,
                                          6 delete horizon (KIP-534)
        23     4  last_offset_delta
        27     8  base_timestamp
        35     8  max_timestamp
        43     8  producer_id
        51     2  producer_epoch
        53     4  base_sequence
        57     4  records_count
        61        records (possibly compressed)

Invariants the broker relies on: base_offset and partition_leader_epoch lie
outside the CRC, so offset assignment never recomputes it; everything from
attributes on is covered, so setting LogAppendTime does. `scan_batches` never
yields a batch that extends past the end of the buffer.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

from strom.errors import CorruptRecordError
from strom.protocol.records.crc import crc32c

__all__ = [
    "BATCH_HEADER_SIZE",
    "LOG_OVERHEAD",
    "MAGIC_V2",
    "NO_PRODUCER_ID",
    "NO_SEQUENCE",
    "NO_TIMESTAMP",
    "BatchHeader",
    "Buffer",
    "Compression",
    "TimestampType",
    "assign_offsets",
    "batch_crc_ok",
    "compute_attributes",
    "read_batch_header",
    "scan_batches",
    "set_log_append_time",
    "set_max_timestamp",
]

#: Anything that exposes bytes through the buffer protocol and can be indexed
#: and sliced; `collections.abc.Buffer` only exists from Python 3.12.
Buffer: TypeAlias = bytes | bytearray | memoryview

BATCH_HEADER_SIZE = 61
LOG_OVERHEAD = 12
MAGIC_V2 = 2
NO_TIMESTAMP = -1
NO_PRODUCER_ID = -1
NO_SEQUENCE = -1

BASE_OFFSET_OFFSET = 0
BATCH_LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAX_TIMESTAMP_OFFSET = 35
#: The smallest legal batch_length: a header with no records.
MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - LOG_OVERHEAD

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

_HEADER = struct.Struct(">qiibIhiqqqhii")
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT16 = struct.Struct(">h")
assert _HEADER.size == BATCH_HEADER_SIZE


class Compression(enum.IntEnum):
    """Codec ids in the low three attribute bits."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


_CODECS = tuple(Compression)


class TimestampType(enum.IntEnum):
    """`message.timestamp.type`; attribute bit 3 of a batch."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


def compute_attributes(
    compression: Compression,
    timestamp_type: TimestampType,
    *,
    transactional: bool = False,
    control: bool = False,
    delete_horizon: bool = False,
) -> int:
    """The attributes field for these flags (DefaultRecordBatch.computeAttributes)."""
    attributes = int(compression) & COMPRESSION_MASK
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        attributes |= TIMESTAMP_TYPE_MASK
    if transactional:
        attributes |= TRANSACTIONAL_MASK
    if control:
        attributes |= CONTROL_MASK
    if delete_horizon:
        attributes |= DELETE_HORIZON_MASK
    return attributes


# Not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__, ~0.07 us a field; made once per request or more (issue 19).
@dataclass(slots=True)
class BatchHeader:
    """The 61-byte header of one batch, read from `position` in some buffer.

    A snapshot: patching the buffer afterwards (`assign_offsets`, ...) does not
    update it; read the header again if the new values are needed.
    """

    position: int
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes of the whole batch, log overhead included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def end(self) -> int:
        """Buffer position just after this batch."""
        return self.position + self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> Compression:
        codec = self.attributes & COMPRESSION_MASK
        if codec > Compression.ZSTD:
            # Kafka's CompressionType.forId fails the same way; the CRC is
            # right, so the batch was built wrong rather than damaged.
            raise CorruptRecordError(f"unknown compression codec id {codec}")
        # A tuple, not Compression(codec): an enum call is two Python-level
        # calls (EnumType.__call__, Enum.__new__), made per produced batch.
        return _CODECS[codec]

    @property
    def timestamp_type(self) -> TimestampType:
        if self.attributes & TIMESTAMP_TYPE_MASK:
            return TimestampType.LOG_APPEND_TIME
        return TimestampType.CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_MASK)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id > NO_PRODUCER_ID

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record; sequences wrap at 2**31 as in Kafka."""
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) % (1 << 31)


def read_batch_header(buf: Buffer, position: int = 0) -> BatchHeader:
    """The header of the batch at `position`.

    Raises CorruptRecordError if fewer than BATCH_HEADER_SIZE bytes remain,
    the magic is not 2, or batch_length cannot hold a header. It does not
    check that the whole batch is present; `scan_batches` does.
    """
    if position < 0 or len(buf) - position < BATCH_HEADER_SIZE:
        raise CorruptRecordError(
            f"record batch header at {position} is truncated "
            f"({max(len(buf) - position, 0)} of {BATCH_HEADER_SIZE} bytes)"
        )
    fields = _HEADER.unpack_from(buf, position)
    magic = fields[3]
    if magic != MAGIC_V2:
        raise CorruptRecordError(f"record batch at {position} has magic {magic}, expected 2")
    batch_length = fields[1]
    if batch_length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"record batch at {position} has length {batch_length}, "
            f"smaller than the header ({MIN_BATCH_LENGTH})"
        )
    return BatchHeader(position, *fields)


def scan_batches(buf: Buffer, position: int = 0, end: int | None = None) -> Iterator[BatchHeader]:
    """Headers of the complete batches in buf[position:end], in order.

    Stops silently at a torn tail (an incomplete header or batch), which is
    what a crash mid-append leaves. A complete header that is not a v2 header
    raises CorruptRecordError: that is damage, not a torn write. CRCs are not
    checked here (see `batch_crc_ok`).
    """
    limit = len(buf) if end is None else min(end, len(buf))
    while limit - position >= BATCH_HEADER_SIZE:
        header = read_batch_header(buf, position)
        next_position = position + header.batch_length + LOG_OVERHEAD
        if next_position > limit:
            return
        yield header
        position = next_position


def batch_crc_ok(buf: Buffer, header: BatchHeader) -> bool:
    """Whether the stored CRC32C matches attributes..end of the batch."""
    end = header.position + header.batch_length + LOG_OVERHEAD
    if end > len(buf):
        return False
    # A memoryview slice shares the buffer: no copy of the batch.
    covered = memoryview(buf)[header.position + ATTRIBUTES_OFFSET : end]
    return bool(crc32c(covered) == header.crc)


def assign_offsets(
    buf: memoryview | bytearray,
    header: BatchHeader,
    base_offset: int,
    partition_leader_epoch: int,
) -> None:
    """Write the broker-assigned base offset and leader epoch in place.

    Both fields precede the CRC-covered range, so the CRC stays valid.
    """
    _INT64.pack_into(buf, header.position + BASE_OFFSET_OFFSET, base_offset)
    _INT32.pack_into(buf, header.position + PARTITION_LEADER_EPOCH_OFFSET, partition_leader_epoch)


def set_max_timestamp(
    buf: memoryview | bytearray,
    header: BatchHeader,
    timestamp_type: TimestampType,
    max_timestamp: int,
) -> None:
    """Set the timestamp-type bit and max_timestamp, and recompute the CRC.

    Kafka's DefaultRecordBatch.setMaxTimestamp: base_timestamp is left alone,
    so CreateTime deltas survive; readers of a LogAppendTime batch take every
    record's timestamp from max_timestamp. A no-op when nothing changes.
    """
    if header.timestamp_type == timestamp_type and header.max_timestamp == max_timestamp:
        return
    end = header.position + header.batch_length + LOG_OVERHEAD
    if end > len(buf):
        raise CorruptRecordError(f"record batch at {header.position} extends past the buffer")
    attributes = header.attributes & ~TIMESTAMP_TYPE_MASK
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        attributes |= TIMESTAMP_TYPE_MASK
    _INT16.pack_into(buf, header.position + ATTRIBUTES_OFFSET, attributes)
    _INT64.pack_into(buf, header.position + MAX_TIMESTAMP_OFFSET, max_timestamp)
    crc = crc32c(memoryview(buf)[header.position + ATTRIBUTES_OFFSET : end])
    _UINT32.pack_into(buf, header.position + CRC_OFFSET, crc)


def set_log_append_time(
    buf: memoryview | bytearray, header: BatchHeader, timestamp_ms: int
) -> None:
    """Stamp the batch with LogAppendTime `timestamp_ms` (topic config
    message.timestamp.type=LogAppendTime); the CRC is recomputed in place."""
    set_max_timestamp(buf, header, TimestampType.LOG_APPEND_TIME, timestamp_ms)
