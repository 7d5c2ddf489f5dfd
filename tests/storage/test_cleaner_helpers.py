"""Builders and inspectors shared by the log cleaner tests (no tests here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storage_helpers import T0, append_batch, open_log

from strom.clock import ManualClock
from strom.protocol.records import (
    BatchHeader,
    Compression,
    ControlRecordType,
    Record,
    RecordSpec,
    build_batch,
    build_control_batch,
    decode_records,
    read_batch_header,
    scan_batches,
)
from strom.storage.cleaner import CleanerCandidate, CleanerConfig, CleanerManager, clean_log_now
from strom.storage.cleaner.cleaner import Cleaner, CleanResult
from strom.storage.cleaner.snapshot import LastRecord
from strom.storage.log import AppendInfo, LogConfig, PartitionLog

KV = tuple[bytes | None, bytes | None]


def compact_config(**overrides: object) -> LogConfig:
    settings: dict[str, object] = {
        "segment_bytes": 1200, "index_interval_bytes": 100, "cleanup_policy": ("compact",),
        "delete_retention_ms": 1000, "min_cleanable_dirty_ratio": 0.0,
    }
    settings.update(overrides)
    return LogConfig(**settings)  # type: ignore[arg-type]


def open_compacted(directory: Path, clock: ManualClock, **overrides: object) -> PartitionLog:
    return open_log(directory, compact_config(**overrides), clock=clock)


def append_records(
    log: PartitionLog, records: Sequence[KV], *, timestamp: int = T0,
    compression: Compression = Compression.NONE, producer_id: int = -1,
    producer_epoch: int = -1, base_sequence: int = -1, transactional: bool = False,
) -> AppendInfo:
    specs = [RecordSpec(key=k, value=v, timestamp=timestamp + i)
             for i, (k, v) in enumerate(records)]
    buf = bytearray(build_batch(
        specs, compression=compression, producer_id=producer_id, producer_epoch=producer_epoch,
        base_sequence=base_sequence, transactional=transactional,
    ))
    return append_batch(log, buf)


def append_marker(log: PartitionLog, kind: ControlRecordType, producer_id: int,
                  producer_epoch: int = 0, timestamp: int = T0) -> AppendInfo:
    buf = bytearray(build_control_batch(
        kind, producer_id=producer_id, producer_epoch=producer_epoch, coordinator_epoch=0,
        timestamp=timestamp,
    ))
    return append_batch(log, buf)


@dataclass(frozen=True)
class Batch:
    header: BatchHeader
    raw: bytes
    records: list[Record]


def log_batches(log: PartitionLog) -> list[Batch]:
    """Every batch of the log, from its first segment (not the log start offset)."""
    out = []
    for segment in log.segments:
        data = segment.read_batch(0, segment.size) if segment.size else b""
        for header in scan_batches(data):
            raw = data[header.position:header.end]
            out.append(Batch(read_batch_header(raw), raw, decode_records(data, header)))
    return out


def log_records(log: PartitionLog) -> list[Record]:
    return [r for b in log_batches(log) if not b.header.is_control for r in b.records]


def latest_by_key(records: Sequence[Record]) -> dict[bytes | None, tuple[int, bytes | None]]:
    latest: dict[bytes | None, tuple[int, bytes | None]] = {}
    for record in records:
        latest[record.key] = (record.offset, record.value)
    return latest


def clean(log: PartitionLog, clock: ManualClock, *, manager: CleanerManager | None = None,
          memory: int = 1 << 22, producers: dict[int, LastRecord] | None = None,
          upper_bound: int | None = None) -> CleanResult | None:
    manager = manager or CleanerManager([log.directory.parent])
    cleaner = Cleaner(CleanerConfig(dedupe_buffer_bytes=memory, io_buffer_bytes=4096))
    candidate = CleanerCandidate(
        (log.topic, log.partition), log,
        log.log_end_offset if upper_bound is None else upper_bound)
    return clean_log_now(manager, cleaner, candidate, now_ms=clock.wall_ms(),
                         producers=producers)
