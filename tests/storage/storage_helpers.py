"""Builders and inspectors shared by the storage tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from strom.clock import ManualClock
from strom.protocol.records import (
    BatchHeader,
    Compression,
    RecordSpec,
    build_batch,
    decode_records,
    read_batch_header,
    scan_batches,
)
from strom.storage import log_open
from strom.storage.log import AppendInfo, AppendOrigin, LogConfig, PartitionLog

T0 = 1_700_000_000_000


def make_batch(
    values: Sequence[bytes],
    timestamps: Sequence[int] | None = None,
    *,
    compression: Compression = Compression.NONE,
    base_offset: int = 0,
    leader_epoch: int = -1,
) -> bytearray:
    stamps = list(timestamps) if timestamps is not None else [T0] * len(values)
    specs = [
        RecordSpec(key=b"k%d" % i, value=value, timestamp=ts)
        for i, (value, ts) in enumerate(zip(values, stamps, strict=True))
    ]
    return bytearray(
        build_batch(
            specs, base_offset=base_offset, compression=compression,
            partition_leader_epoch=leader_epoch,
        )
    )


def append_batch(
    log: PartitionLog, buf: bytearray, *, epoch: int = 0, assign_offsets: bool = True
) -> AppendInfo:
    header = read_batch_header(buf)
    records = decode_records(buf, header)
    delta = next(
        i for i, record in enumerate(records) if record.timestamp == header.max_timestamp
    )
    if not assign_offsets:
        info = log.append_as_follower(memoryview(buf))
        assert info is not None
        return info
    # Storage tests write batches of any producer: epoch fencing only.
    return log.append_as_leader(
        memoryview(buf), header, leader_epoch=epoch, max_timestamp=header.max_timestamp,
        offset_delta_of_max_timestamp=delta, now_ms=header.max_timestamp,
        origin=AppendOrigin.COORDINATOR,
    )


def append(
    log: PartitionLog,
    values: Sequence[bytes] = (b"v",),
    timestamps: Sequence[int] | None = None,
    *,
    epoch: int = 0,
    compression: Compression = Compression.NONE,
) -> AppendInfo:
    return append_batch(log, make_batch(values, timestamps, compression=compression), epoch=epoch)


def headers(data: bytes) -> list[BatchHeader]:
    return list(scan_batches(data))


@dataclass(frozen=True)
class Rec:
    offset: int
    timestamp: int
    value: bytes | None


def records(data: bytes) -> list[Rec]:
    out = []
    for header in scan_batches(data):
        out.extend(Rec(r.offset, r.timestamp, r.value) for r in decode_records(data, header))
    return out


def read_all(log: PartitionLog, start: int | None = None) -> list[Rec]:
    result = log.read(
        log.log_start_offset if start is None else start, 1 << 40,
        max_offset=log.log_end_offset, min_one_batch=True,
    )
    return records(result.to_bytes())


def open_log(
    directory: Path, config: LogConfig | None = None, *, clock: ManualClock | None = None,
    **kwargs: object,
) -> PartitionLog:
    return log_open.open_log(
        directory, config or LogConfig(), clock=clock or ManualClock(T0), **kwargs  # type: ignore[arg-type]
    )


def crash(log: PartitionLog) -> None:
    """Drop a log as a killed process would: no trim, no final index entry,
    no checkpoint; only the open files go away."""
    for segment in log.segments:
        segment.offset_index._unmap()
        segment.time_index._unmap()
        segment.file.close()


def segment_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())
