"""What a PartitionLog append returns and refuses: AppendInfo, the
follower's batch checks (UnexpectedAppendOffsetError, CorruptRecordError).

Checks run before anything is written, so a refused fetch response leaves
the follower's log as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from strom.errors import CorruptRecordError, InvalidRecordError
from strom.protocol.records import LOG_OVERHEAD, BatchHeader, batch_crc_ok, scan_batches

__all__ = ["AppendInfo", "UnexpectedAppendOffsetError", "follower_batches"]


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
