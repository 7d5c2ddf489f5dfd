"""Cleaning one log (Kafka's Cleaner): map the dirty section's keys to their
latest offsets, recopy every segment below the map's end without the records
the map supersedes, and swap the copies in.

Threads. `take_snapshot` (snapshot.py) runs on the log's owner thread and
hands the cleaner thread its own fds of the segments and the log's
generation. `Cleaner.clean` is a generator run on a cleaner thread; it
yields the two swap steps (`PartitionLog.prepare_swap`, `complete_swap`) as
callables for the owner to run, and is resumed with their result:

    written .cleaned ─► [owner] .cleaned→.swap ─► fsync dir ─► [owner] old→.deleted,
    (fsynced)                                                  .swap→final, segment list,
                                                               unlink .deleted ─► fsync dir

so the owner never waits on disk I/O, and a step refused by the owner (the
log changed) abandons the cleaning. `run_inline` drives a cleaning on one
thread (tests, tools). A crash anywhere leaves files loader.py finishes or
rolls back.

What a cleaning keeps (Cleaner.cleanInto + MemoryRecords.filterTo):
- a record whose key has a later offset in the map goes, as does a record
  without a key; records past the map's last offset all stay;
- a tombstone (null value) stays until its batch's delete horizon passes: a
  batch keeping a tombstone gets the horizon now + delete.retention.ms in its
  base timestamp, with the KIP-534 attribute bit, the first time it is cleaned;
- aborted transactions' batches go; markers as in transactions.py;
- a batch that loses every record still leaves its header (records_count 0)
  if it is its producer's last batch (idempotence state survives) or ends the
  cleaned range (its last offset survives);
- a batch that keeps all its records and needs no new horizon is copied
  byte for byte; others are rebuilt with their original codec, offsets,
  sequence numbers and producer metadata.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

from strom.errors import CorruptRecordError
from strom.protocol.records import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    batch_crc_ok,
    read_batch_header,
)
from strom.storage import files
from strom.storage.cleaner.config import CleanerConfig
from strom.storage.cleaner.offset_map import OffsetMap
from strom.storage.cleaner.records import (
    RecordSlices,
    control_record_type,
    empty_batch,
    rebuild_batch,
    record_keys,
    scan_records,
    uncompressed_records,
)
from strom.storage.cleaner.segment_writer import CleanedSegmentWriter
from strom.storage.cleaner.snapshot import (
    CleaningSnapshot,
    SourceSegment,
    group_segments_by_size,
)
from strom.storage.cleaner.transactions import (
    AbortedTransactionScanner,
    AbortedTxn,
    CleanedTransactionMetadata,
)
from strom.storage.log_config import LONG_MAX

__all__ = [
    "CleanResult",
    "Cleaner",
    "CleanerConfig",
    "CleanerStats",
    "CleaningAborted",
    "OwnerStep",
    "run_inline",
]

log = logging.getLogger(__name__)

#: A compressed batch may not inflate past this while being cleaned (as on produce).
_MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
#: base_offset, batch_length, magic, attributes, last_offset_delta, producer_id:
#: all the transaction scan needs of most batches.
_SCAN = struct.Struct(">qi4xb4xhi16xq")
_TXN_OR_CONTROL = 0x30

OwnerStep = Callable[[], bool]
Hook = Callable[[str], None]


class CleaningAborted(Exception):
    """The cleaning stopped early (shutdown, the log changed or went away);
    nothing of it was swapped in past the last completed group."""


@dataclass(slots=True)
class CleanerStats:
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_written: int = 0
    map_bytes_read: int = 0
    map_records_read: int = 0
    batches_copied: int = 0
    batches_rebuilt: int = 0
    segments_swapped: int = 0
    started: float = field(default_factory=time.monotonic)
    map_done: float = 0.0
    finished: float = 0.0

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def summary(self) -> str:
        elapsed = max(self.elapsed_s, 1e-9)
        mib = 1024 * 1024
        return (
            f"{(self.map_bytes_read + self.bytes_read) / mib:.1f} MiB read in {elapsed:.2f} s "
            f"({(self.map_bytes_read + self.bytes_read) / mib / elapsed:.1f} MiB/s), "
            f"{self.bytes_written / mib:.1f} MiB written "
            f"({100.0 * self.bytes_written / max(self.bytes_read, 1):.0f}% kept), "
            f"{self.records_read} records read, {self.records_written} kept, "
            f"{self.segments_swapped} segments swapped in"
        )


@dataclass(frozen=True, slots=True)
class CleanResult:
    #: First offset not cleaned: the next cleaning's first dirty offset.
    end_offset: int
    stats: CleanerStats


class _Retention(enum.Enum):
    DELETE = 1  # the batch goes, header and all
    DELETE_EMPTY = 2  # the batch goes if no record is kept
    RETAIN_EMPTY = 3  # the header stays even if no record is kept


class Cleaner:
    """One cleaner thread's state: its offset map and I/O settings."""

    def __init__(self, config: CleanerConfig, *, abort: threading.Event | None = None,
                 hook: Hook | None = None) -> None:
        self.config = config
        self.offset_map = OffsetMap(config.dedupe_buffer_bytes, config.load_factor)
        self._abort = abort or threading.Event()
        #: Called between the steps of a cleaning (crash-injection tests).
        self._hook: Hook = hook or (lambda _step: None)
        self._job_abort: threading.Event | None = None
        self._throttle_start = time.monotonic()
        self._throttle_bytes = 0

    # -- driving --------------------------------------------------------------

    def clean(self, snap: CleaningSnapshot) -> Generator[OwnerStep, bool, CleanResult]:
        """Clean `snap.log`; yields owner steps (see the module docstring)."""
        stats = CleanerStats()
        self._job_abort = snap.abort
        writer: CleanedSegmentWriter | None = None
        try:
            aborted = self._scan_transactions(snap)
            self._build_offset_map(snap, aborted, stats)
            stats.map_done = time.monotonic()
            end_offset = self.offset_map.latest_offset + 1
            if end_offset <= snap.first_dirty_offset:
                log.warning("%s: the offset map cannot hold one batch's keys; raise "
                            "log.cleaner.dedupe.buffer.size", snap.log.directory.name)
                stats.finished = time.monotonic()
                return CleanResult(snap.first_dirty_offset, stats)
            cleanable = [s for s in snap.segments if not s.active and s.base_offset < end_offset]
            groups = group_segments_by_size(
                cleanable, snap.config.segment_bytes, snap.config.segment_index_bytes,
                snap.first_uncleanable_offset,
            )
            txn = CleanedTransactionMetadata(aborted)
            plog = snap.log
            for group in groups:
                writer = self._clean_group(snap, group, txn, stats)
                self._hook("cleaned written")
                base = group[0].base_offset
                old = tuple(source.segment for source in group)
                generation = snap.generation
                # Once prepare_swap runs the files are the log's (abort_swap
                # removes them); closed here, it never ran: they are still ours.
                handed, writer = writer, None
                try:
                    prepared = yield functools.partial(
                        plog.prepare_swap, base, old, generation, hook=self._hook)
                except GeneratorExit:
                    handed.discard()
                    raise
                if not prepared:
                    handed.discard()
                    raise CleaningAborted(f"{plog.directory.name} changed while being cleaned")
                files.fsync_dir(plog.directory)
                self._hook("swap durable")
                if not (yield lambda: plog.complete_swap(hook=self._hook)):
                    raise CleaningAborted(f"{plog.directory.name} changed while being cleaned")
                files.fsync_dir(plog.directory)
                self._hook("swap complete")
                stats.segments_swapped += len(group)
            stats.finished = time.monotonic()
            return CleanResult(end_offset, stats)
        except (Exception, GeneratorExit):
            if writer is not None:
                writer.discard()
            raise
        finally:
            self._job_abort = None
            snap.close()

    def _check_done(self) -> None:
        if self._abort.is_set() or (self._job_abort is not None and self._job_abort.is_set()):
            raise CleaningAborted("cleaning aborted")

    def _throttle(self, nbytes: int) -> None:
        limit = self.config.max_io_bytes_per_second
        if limit == float("inf"):
            return
        self._throttle_bytes += nbytes
        elapsed = time.monotonic() - self._throttle_start
        ahead = self._throttle_bytes / limit - elapsed
        if ahead > 0.01:
            self._abort.wait(ahead)
            self._check_done()
        if elapsed > 1.0:
            self._throttle_start, self._throttle_bytes = time.monotonic(), 0

    def _batches(self, source: SourceSegment, position: int = 0,
                 ) -> Iterator[tuple[bytes, BatchHeader]]:
        """(buffer, header) of each batch of the segment from `position`,
        read `io_buffer_bytes` at a time (one batch at a time when larger)."""
        fd, size = source.fd, source.size
        chunk_size = self.config.io_buffer_bytes
        while position < size:
            self._check_done()
            chunk = os.pread(fd, min(chunk_size, size - position), position)
            used = 0
            while len(chunk) - used >= BATCH_HEADER_SIZE:
                header = read_batch_header(chunk, used)
                if used + header.size > len(chunk):
                    break
                yield chunk, header
                used += header.size
            if used == 0:
                if len(chunk) < BATCH_HEADER_SIZE:
                    raise CorruptRecordError(f"{source.segment.path}: truncated at {position}")
                wanted = read_batch_header(chunk, 0).size
                if position + wanted > size:
                    raise CorruptRecordError(f"{source.segment.path}: torn batch at {position}")
                chunk = os.pread(fd, wanted, position)
                yield chunk, read_batch_header(chunk, 0)
                used = wanted
            position += used
            self._throttle(used)

    # -- transactions and the offset map ---------------------------------------

    def _scan_transactions(self, snap: CleaningSnapshot) -> list[AbortedTxn]:
        """Aborted transactions of the whole snapshot, from batch headers."""
        scanner = AbortedTransactionScanner()
        unpack = _SCAN.unpack_from
        for source in snap.segments:
            fd, size, position = source.fd, source.size, 0
            while position < size:
                self._check_done()
                chunk = os.pread(fd, min(self.config.io_buffer_bytes, size - position), position)
                used = 0
                while len(chunk) - used >= BATCH_HEADER_SIZE:
                    _base, length, magic, attributes, _delta, _pid = unpack(chunk, used)
                    if magic != 2 or length < BATCH_HEADER_SIZE - LOG_OVERHEAD:
                        raise CorruptRecordError(f"{source.segment.path}: bad batch at "
                                                 f"{position + used}")
                    end = used + length + LOG_OVERHEAD
                    if end > len(chunk):
                        break
                    if attributes & _TXN_OR_CONTROL:
                        header = read_batch_header(chunk, used)
                        if header.is_control:
                            scanner.on_control_batch(header, control_record_type(chunk, header))
                        else:
                            scanner.on_data_batch(header)
                    used = end
                if used == 0:
                    if len(chunk) < BATCH_HEADER_SIZE:
                        break  # a torn tail of the active segment
                    wanted = read_batch_header(chunk, 0).size
                    if position + wanted > size:
                        break
                    chunk = os.pread(fd, wanted, position)
                    header = read_batch_header(chunk, 0)
                    if header.is_control:
                        scanner.on_control_batch(header, control_record_type(chunk, header))
                    else:
                        scanner.on_data_batch(header)
                    used = wanted
                position += used
        return scanner.aborted

    def _build_offset_map(self, snap: CleaningSnapshot, aborted: list[AbortedTxn],
                          stats: CleanerStats) -> None:
        """Cleaner.buildOffsetMap: the latest offset of every key in
        [first dirty, first uncleanable), stopping early when the map is full."""
        offset_map = self.offset_map
        offset_map.clear()
        start, end = snap.first_dirty_offset, snap.first_uncleanable_offset
        dirty = [s for s in snap.segments
                 if not s.active and s.base_offset < end and s.next_base > start]
        txn = CleanedTransactionMetadata(
            [t for t in aborted if t.last_offset >= start and t.first_offset < end])
        for i, source in enumerate(dirty):
            next_start = dirty[i + 1].base_offset if i + 1 < len(dirty) else end
            position = snap.dirty_start_position if source.base_offset <= start else 0
            if self._map_segment(source, position, start, txn, stats):
                return
            # Offsets may have gaps (an earlier cleaning): cover up to the next segment.
            offset_map.update_latest_offset(next_start - 1)

    def _map_segment(self, source: SourceSegment, position: int, start: int,
                     txn: CleanedTransactionMetadata, stats: CleanerStats) -> bool:
        """Map one segment's keys; True if the map filled up inside it."""
        offset_map = self.offset_map
        for buf, header in self._batches(source, position):
            stats.map_bytes_read += header.size
            if header.is_control:
                txn.on_control_batch_read(header, control_record_type(buf, header))
                stats.map_records_read += 1
            elif not txn.on_batch_read(header) and header.last_offset >= start:
                data = uncompressed_records(buf, header, _MAX_UNCOMPRESSED_BYTES)
                deltas, keys = record_keys(data, header.records_count)
                if not offset_map.put_records(header.base_offset, start, deltas, keys):
                    return True
                stats.map_records_read += header.records_count
            if header.last_offset >= start:
                offset_map.update_latest_offset(header.last_offset)
        return False

    # -- copying ---------------------------------------------------------------

    def _clean_group(self, snap: CleaningSnapshot, group: list[SourceSegment],
                     txn: CleanedTransactionMetadata, stats: CleanerStats,
                     ) -> CleanedSegmentWriter:
        """Recopy a group of segments into one `.cleaned` segment (cleanSegments)."""
        config = snap.config
        writer = CleanedSegmentWriter(
            snap.log.directory, group[0].base_offset,
            max_index_bytes=config.segment_index_bytes,
            index_interval_bytes=config.index_interval_bytes,
            buffer_bytes=self.config.io_buffer_bytes,
        )
        try:
            self._hook("cleaning")
            for source in group:
                for buf, header in self._batches(source):
                    stats.bytes_read += header.size
                    if not batch_crc_ok(buf, header):
                        raise CorruptRecordError(
                            f"{source.segment.path}: batch at offset {header.base_offset} "
                            "fails its CRC")
                    kept = self._filter_batch(snap, buf, header, txn, stats)
                    if kept is not None:
                        batch, max_timestamp = kept
                        writer.append(batch, header.last_offset, max_timestamp)
                        stats.bytes_written += len(batch)
            writer.finish(group[-1].mtime_ns)
        except BaseException:
            writer.discard()
            raise
        return writer

    def _last_batch_of_producer(self, snap: CleaningSnapshot, header: BatchHeader) -> bool:
        last = snap.producers.get(header.producer_id)
        if last is None:
            return False
        if last.last_data_offset is not None:
            return header.last_offset == last.last_data_offset
        return header.is_control and header.producer_epoch == last.producer_epoch

    def _filter_batch(
        self, snap: CleaningSnapshot, buf: bytes, header: BatchHeader,
        txn: CleanedTransactionMetadata, stats: CleanerStats,
    ) -> tuple[bytes | memoryview, int] | None:
        """The batch as the cleaned segment keeps it (bytes, max timestamp), or None."""
        now = snap.now_ms
        if header.is_control:
            control_type = control_record_type(buf, header)
            can_discard = txn.on_control_batch_read(header, control_type)
            discard_records = (can_discard and header.has_delete_horizon
                               and header.base_timestamp <= now)
        else:
            can_discard = txn.on_batch_read(header)
            discard_records = can_discard
        if ((header.has_producer_id and self._last_batch_of_producer(snap, header))
                or header.next_offset == snap.first_uncleanable_offset):
            # The producer's last sequence, or the range's last offset, must survive.
            retention = _Retention.RETAIN_EMPTY
        elif discard_records:
            retention = _Retention.DELETE
        else:
            retention = _Retention.DELETE_EMPTY
        stats.records_read += header.records_count
        if retention is _Retention.DELETE:
            return None
        original = memoryview(buf)[header.position : header.end]
        if header.records_count == 0:  # emptied by an earlier cleaning
            if retention is _Retention.RETAIN_EMPTY:
                return original, header.max_timestamp
            return None
        data = b""
        records: RecordSlices | None = None
        kept: list[int] = []
        kept_all = False
        has_tombstone = False
        if discard_records:
            pass
        elif header.is_control:
            kept_all = True
        else:
            data = uncompressed_records(buf, header, _MAX_UNCOMPRESSED_BYTES)
            records = scan_records(data, header.records_count)
            latest = self.offset_map.latest_offset
            get = self.offset_map.get
            retain_deletes = not header.has_delete_horizon or now < header.base_timestamp
            base = header.base_offset
            keep_record = kept.append
            for i, (offset_delta, key, has_value) in enumerate(
                    zip(records.offset_deltas, records.keys, records.has_value, strict=True)):
                offset = base + offset_delta
                if offset > latest:
                    keep_record(i)
                elif key is None:
                    continue  # invalid on a compacted topic; Kafka drops it too
                elif offset >= get(key) and (has_value or retain_deletes):
                    keep_record(i)
                else:
                    continue
                if not has_value:
                    has_tombstone = True
            kept_all = len(kept) == len(records)
        if kept_all or kept:
            count = header.records_count if kept_all else len(kept)
            stats.records_written += count
            marker_for_empty_txn = can_discard and header.is_control
            set_horizon = (has_tombstone or marker_for_empty_txn) and not header.has_delete_horizon
            if kept_all and not set_horizon:
                stats.batches_copied += 1
                return original, header.max_timestamp
            if records is None:
                data = uncompressed_records(buf, header, _MAX_UNCOMPRESSED_BYTES)
                records = scan_records(data, header.records_count)
                kept = list(range(len(records)))
            stats.batches_rebuilt += 1
            horizon = (min(now + snap.config.delete_retention_ms, LONG_MAX)
                       if set_horizon else None)
            return rebuild_batch(header, data, records, kept, delete_horizon_ms=horizon)
        if retention is _Retention.RETAIN_EMPTY:
            stats.batches_rebuilt += 1
            return empty_batch(header), header.max_timestamp
        return None


def run_inline(steps: Generator[OwnerStep, bool, CleanResult]) -> CleanResult:
    """Drive a cleaning on the calling thread, which must own the log."""
    try:
        step = next(steps)
        while True:
            try:
                ok = step()
            except Exception:
                steps.close()
                raise
            step = steps.send(ok)
    except StopIteration as done:
        result: CleanResult = done.value
        return result
