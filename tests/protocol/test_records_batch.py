"""Batch header layout, scanning, CRC and in-place patching."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from strom.errors import CorruptRecordError, ErrorCode
from strom.protocol.records import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    Compression,
    RecordSpec,
    TimestampType,
    assign_offsets,
    batch_crc_ok,
    build_batch,
    decode_records,
    read_batch_header,
    scan_batches,
    set_log_append_time,
    set_max_timestamp,
)

T0 = 1_700_000_000_000


def _batch(n: int = 3, *, base_offset: int = 0, **kwargs: Any) -> bytes:
    specs = [RecordSpec(key=b"k%d" % i, value=b"v" * i, timestamp=T0 + i) for i in range(n)]
    return build_batch(specs, base_offset=base_offset, **kwargs)


def test_header_fields_and_properties() -> None:
    buf = _batch(
        4,
        base_offset=100,
        compression=Compression.GZIP,
        producer_id=7,
        producer_epoch=2,
        base_sequence=40,
        transactional=True,
        partition_leader_epoch=5,
    )
    header = read_batch_header(buf)
    assert header.position == 0
    assert header.base_offset == 100
    assert header.batch_length == len(buf) - LOG_OVERHEAD
    assert header.size == len(buf) == header.end
    assert header.partition_leader_epoch == 5
    assert header.magic == 2
    assert header.last_offset_delta == 3
    assert header.last_offset == 103
    assert header.next_offset == 104
    assert header.base_timestamp == T0
    assert header.max_timestamp == T0 + 3
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 2, 40)
    assert header.last_sequence == 43
    assert header.records_count == 4
    assert header.compression is Compression.GZIP
    assert header.timestamp_type is TimestampType.CREATE_TIME
    assert header.is_transactional
    assert not header.is_control
    assert not header.has_delete_horizon
    assert header.has_producer_id


def test_attribute_bits() -> None:
    buf = bytearray(_batch(1, timestamp_type=TimestampType.LOG_APPEND_TIME))
    struct.pack_into(">h", buf, 21, 0x08 | 0x20 | 0x40 | 4)
    header = read_batch_header(buf)
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert header.is_control and header.has_delete_horizon and not header.is_transactional
    assert header.compression is Compression.ZSTD
    struct.pack_into(">h", buf, 21, 5)
    with pytest.raises(CorruptRecordError):
        _ = read_batch_header(buf).compression


def test_last_sequence_wraps() -> None:
    header = read_batch_header(_batch(3, producer_id=1, producer_epoch=0, base_sequence=2**31 - 2))
    assert header.last_sequence == 0


@pytest.mark.parametrize("length", [0, 1, BATCH_HEADER_SIZE - 1])
def test_read_header_too_short(length: int) -> None:
    with pytest.raises(CorruptRecordError) as info:
        read_batch_header(_batch()[:length])
    assert info.value.code == ErrorCode.corrupt_message


@pytest.mark.parametrize("magic", [0, 1, 3, 0xFF])
def test_read_header_wrong_magic(magic: int) -> None:
    buf = bytearray(_batch())
    buf[16] = magic
    with pytest.raises(CorruptRecordError):
        read_batch_header(buf)


@pytest.mark.parametrize("batch_length", [-1, 0, 14, BATCH_HEADER_SIZE - LOG_OVERHEAD - 1])
def test_read_header_length_too_small(batch_length: int) -> None:
    buf = bytearray(_batch())
    struct.pack_into(">i", buf, 8, batch_length)
    with pytest.raises(CorruptRecordError):
        read_batch_header(buf)


def test_read_header_at_position() -> None:
    first, second = _batch(2), _batch(3, base_offset=2)
    header = read_batch_header(first + second, len(first))
    assert header.position == len(first)
    assert header.base_offset == 2
    assert header.end == len(first) + len(second)


def _log() -> tuple[bytes, list[int]]:
    batches = [
        _batch(1),
        _batch(3, base_offset=1, compression=Compression.LZ4),
        _batch(2, base_offset=4),
    ]
    ends = []
    total = 0
    for batch in batches:
        total += len(batch)
        ends.append(total)
    return b"".join(batches), ends


def test_scan_whole_buffer() -> None:
    log, ends = _log()
    headers = list(scan_batches(log))
    assert [h.end for h in headers] == ends
    assert [h.base_offset for h in headers] == [0, 1, 4]


def test_scan_never_yields_a_torn_batch() -> None:
    """One byte at a time: each prefix yields exactly the batches it holds."""
    log, ends = _log()
    for size in range(len(log) + 1):
        prefix = log[:size]
        headers = list(scan_batches(prefix))
        assert [h.end for h in headers] == [end for end in ends if end <= size]
        # the same through `end` on the full buffer
        assert [h.end for h in scan_batches(log, 0, size)] == [h.end for h in headers]


def test_scan_with_trailing_bytes_and_start_position() -> None:
    log, ends = _log()
    assert [h.end for h in scan_batches(log + b"\x00" * 30)] == ends
    assert [h.end for h in scan_batches(log, ends[0])] == ends[1:]
    assert list(scan_batches(log, len(log))) == []


def test_scan_raises_on_a_complete_garbage_header() -> None:
    log, ends = _log()
    damaged = bytearray(log)
    damaged[ends[0] + 16] = 9  # magic of the second batch
    found = []
    with pytest.raises(CorruptRecordError):
        for header in scan_batches(damaged):
            found.append(header.end)
    assert found == ends[:1]


def test_crc() -> None:
    buf = _batch(3, compression=Compression.SNAPPY)
    header = read_batch_header(buf)
    assert batch_crc_ok(buf, header)
    assert batch_crc_ok(memoryview(buf), header)
    for position in range(17, len(buf)):
        damaged = bytearray(buf)
        damaged[position] ^= 0x01
        assert not batch_crc_ok(damaged, read_batch_header(damaged)), position
    assert not batch_crc_ok(buf[:-1], header)


def test_assign_offsets_keeps_crc() -> None:
    buf = bytearray(_batch(3))
    header = read_batch_header(buf)
    assign_offsets(buf, header, 1000, 9)
    patched = read_batch_header(buf)
    assert (patched.base_offset, patched.partition_leader_epoch) == (1000, 9)
    assert batch_crc_ok(buf, patched)
    assert [r.offset for r in decode_records(buf, patched)] == [1000, 1001, 1002]


def test_assign_offsets_in_a_memoryview_at_position() -> None:
    first = _batch(1)
    buf = bytearray(first + _batch(2))
    header = read_batch_header(buf, len(first))
    assign_offsets(memoryview(buf), header, 50, 1)
    assert read_batch_header(buf).base_offset == 0
    assert read_batch_header(buf, len(first)).base_offset == 50


def test_set_log_append_time() -> None:
    buf = bytearray(_batch(3, compression=Compression.ZSTD))
    header = read_batch_header(buf)
    set_log_append_time(buf, header, T0 + 99_000)
    patched = read_batch_header(buf)
    assert patched.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert patched.max_timestamp == T0 + 99_000
    # Kafka leaves base_timestamp alone; readers use max_timestamp for all
    assert patched.base_timestamp == header.base_timestamp
    assert patched.attributes == header.attributes | 0x08
    assert batch_crc_ok(buf, patched)
    assert {r.timestamp for r in decode_records(buf, patched)} == {T0 + 99_000}


def test_set_max_timestamp_back_to_create_time_and_no_op() -> None:
    original = _batch(3)
    buf = bytearray(original)
    set_max_timestamp(buf, read_batch_header(buf), TimestampType.CREATE_TIME, T0 + 2)
    assert bytes(buf) == original  # unchanged values: nothing written
    set_log_append_time(buf, read_batch_header(buf), T0 + 5)
    set_max_timestamp(buf, read_batch_header(buf), TimestampType.CREATE_TIME, T0 + 2)
    assert bytes(buf) == original


def test_set_max_timestamp_on_a_truncated_buffer() -> None:
    buf = bytearray(_batch(3))
    header = read_batch_header(buf)
    with pytest.raises(CorruptRecordError):
        set_log_append_time(buf[:-1], header, 1)
