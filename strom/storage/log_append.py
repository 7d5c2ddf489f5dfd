"""What a PartitionLog append returns and refuses: AppendInfo, the
follower's batch checks (UnexpectedAppendOffsetError, CorruptRecordError),
and where one batch goes (place_batch: its offsets, assigned or kept).

Checks run before anything is written, so a refused fetch response leaves
the follower's log as it was.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from strom.errors import CorruptRecordError, InvalidRecordError, RecordBatchTooLargeError
from strom.protocol.records import LOG_OVERHEAD, BatchHeader, batch_crc_ok, scan_batches

__all__ = ["AppendInfo", "UnexpectedAppendOffsetError", "follower_batches", "place_batch"]

_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_PARTITION_LEADER_EPOCH_AT = 12


# Not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__, ~0.07 us a field; made once per request or more (issue 19).
@dataclass(slots=True)
class AppendInfo:
    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    log_start_offset: int
    #: A producer's retry of a batch already in the log: nothing was written,
    #: the offsets are the original batch's.
    duplicate: bool = False


class UnexpectedAppendOffsetError(InvalidRecordError):
    """A follower append whose offsets are below the log end offset."""


def follower_batches(records: memoryview, log_end_offset: int, name: str) -> list[BatchHeader]:
    """The headers of the batches fetched from the leader into `records`
    (for partition `name`), after checking that they are whole, in order,
    from `log_end_offset` on, and pass their CRCs."""
    headers = list(scan_batches(records))
    end = headers[-1].position + headers[-1].batch_length + LOG_OVERHEAD if headers else 0
    if end != len(records):
        raise CorruptRecordError(
            f"{len(records) - end} bytes after the last whole batch for {name}")
    next_offset = log_end_offset
    for header in headers:
        if header.base_offset < next_offset:
            raise UnexpectedAppendOffsetError(
                f"batch offset {header.base_offset} is below {next_offset} in {name}")
        if not batch_crc_ok(records, header):
            raise CorruptRecordError(
                f"batch at offset {header.base_offset} for {name} fails its CRC")
        next_offset = header.base_offset + header.last_offset_delta + 1
    return headers


def place_batch(
    batch: memoryview, header: BatchHeader, *, log_end_offset: int, leader_epoch: int,
    assign_offsets: bool, segment_bytes: int, topic: str, partition: int,
) -> tuple[int, int]:
    """(base offset, leader epoch) of one batch about to be appended to the
    log of `topic`-`partition`, after checking its size. Leader (assign_offsets=True): base
    offset = log end offset and the partition leader epoch are patched into
    `batch` in place, so it is written with one pwrite, no copy. Follower:
    the batch keeps its offsets, which must not be below the log end offset."""
    size = header.batch_length + LOG_OVERHEAD
    if len(batch) != size:
        raise InvalidRecordError(f"batch buffer is {len(batch)} bytes, its header says {size}")
    if size > segment_bytes:
        raise RecordBatchTooLargeError(
            f"batch of {size} bytes exceeds segment.bytes={segment_bytes} of {topic}-{partition}")
    if assign_offsets:
        _INT64.pack_into(batch, 0, log_end_offset)
        _INT32.pack_into(batch, _PARTITION_LEADER_EPOCH_AT, leader_epoch)
        return log_end_offset, leader_epoch
    if header.base_offset < log_end_offset:
        raise UnexpectedAppendOffsetError(
            f"batch offset {header.base_offset} is below the log end offset "
            f"{log_end_offset} of {topic}-{partition}")
    return header.base_offset, header.partition_leader_epoch
