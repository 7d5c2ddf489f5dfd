"""Opening a partition directory after a restart, and crash recovery (Kafka's
LogLoader). The only module that interprets what a crash may leave behind.

Leftovers, handled first (LogLoader.removeTempFilesAndCollectSwapFiles):
- `*.deleted`   segment files a previous run was deleting (or a compaction
                swap was replacing): removed;
- `*.cleaned`   output of an unfinished compaction: removed;
- `*.swap`      compaction output being swapped in: if its base offset is at or
                above the smallest `.cleaned` offset the swap was never
                complete and it is removed; otherwise the swap is completed
                (segments it replaces are removed, its files renamed, its
                indexes rebuilt). PartitionLog.prepare_swap/complete_swap
                write these in the order this relies on: every .cleaned
                renamed to .swap (and the directory fsynced) before any
                replaced file is renamed to .deleted, and those before any
                .swap gets its final name (strom/storage/cleaner/cleaner.py);
- `*.tmp`       a checkpoint write that never got renamed: removed;
- index files without a .log file: removed.

Then every `<base>.log` becomes a LogSegment. A segment's indexes are rebuilt
from its batches when a file is missing or fails the sanity check (size not a
multiple of the entry size, entries not increasing, last entry not matching
the log). After an unclean shutdown every segment from the one holding the
recovery point on is recovered: batches are re-read with their CRC, offsets
checked to increase, indexes and leader epochs rebuilt, and the segment is
cut at the first torn or invalid batch; the segments after a cut are
removed. Nothing before the first damaged byte is lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from strom.errors import CorruptRecordError, KafkaStorageError
from strom.protocol.records import BATCH_HEADER_SIZE, batch_crc_ok, read_batch_header
from strom.storage import files
from strom.storage.index import CorruptIndexError
from strom.storage.leader_epoch import LeaderEpochCache
from strom.storage.segment import LogSegment

__all__ = ["LoadedLog", "load_log", "recover_segment"]

log = logging.getLogger(__name__)

_INT32_MAX = 2**31 - 1
#: Recovery reads the log in chunks this large (one pread each).
_RECOVERY_CHUNK = 1 << 20


@dataclass(slots=True)
class LoadedLog:
    segments: list[LogSegment]
    log_start_offset: int
    log_end_offset: int
    recovery_point: int


SegmentFactory = Callable[[int], LogSegment]


def load_log(
    directory: Path,
    *,
    open_segment: SegmentFactory,
    create_segment: SegmentFactory,
    epoch_cache: LeaderEpochCache,
    recovery_point: int,
    log_start_offset: int,
    had_clean_shutdown: bool,
    empty: bool = False,
) -> LoadedLog:
    """Open the segments of `directory`, recovering what needs it. `empty`:
    the directory was just made, so it is not read (two directory scans
    fewer for each log of a big CreateTopics)."""
    segments = []
    if not empty:
        _remove_leftovers(directory)
        segments = [open_segment(base) for base in _log_file_offsets(directory)]

    # After an unclean shutdown every segment from the one holding the
    # recovery point on is recovered; the rest only get their indexes checked.
    unflushed_from = len(segments)
    if not had_clean_shutdown:
        unflushed_from = next(
            (i for i in range(len(segments))
             if i == len(segments) - 1 or segments[i + 1].base_offset > recovery_point),
            len(segments),
        )
    i = 0
    while i < min(unflushed_from, len(segments)):
        problem = index_problem(segments[i])
        if problem is not None:
            log.warning("rebuilding indexes of %s: %s", segments[i].path, problem)
            _recover_and_cut(segments, i, epoch_cache)
        i += 1
    if unflushed_from < len(segments):
        # Epochs from here on are re-derived from the batches themselves.
        epoch_cache.truncate_from_end(segments[unflushed_from].base_offset)
        i = unflushed_from
        while i < len(segments):
            log.info("recovering unflushed segment %s", segments[i].path)
            _recover_and_cut(segments, i, epoch_cache)
            # Read back from the page cache, not necessarily durable yet.
            segments[i].flushed_size = -1
            i += 1

    if not segments:
        segments.append(create_segment(log_start_offset))
    for segment in segments[:-1]:
        segment.on_become_inactive()
    segments[-1].make_active()

    log_end_offset = segments[-1].next_offset
    log_start_offset = max(log_start_offset, segments[0].base_offset)
    if log_start_offset > log_end_offset:
        # The log start offset was checkpointed past data the crash lost.
        log.warning("%s: log start offset %d is past the log end %d; starting empty",
                    directory, log_start_offset, log_end_offset)
        for segment in segments:
            segment.delete()
        segments = [create_segment(log_start_offset)]
        epoch_cache.clear()
        log_end_offset = log_start_offset
    epoch_cache.truncate_from_start(log_start_offset)
    epoch_cache.truncate_from_end(log_end_offset)
    new_recovery_point = (
        log_end_offset if had_clean_shutdown else min(recovery_point, log_end_offset)
    )
    return LoadedLog(segments, log_start_offset, log_end_offset, new_recovery_point)


def _recover_and_cut(segments: list[LogSegment], i: int, epoch_cache: LeaderEpochCache) -> None:
    """Recover segments[i]; if it was cut, remove every later segment."""
    segment = segments[i]
    truncated = recover_segment(segment, epoch_cache)
    if truncated:
        log.warning("truncated %d invalid bytes at the end of %s", truncated, segment.path)
        for later in segments[i + 1 :]:
            log.warning("deleting %s, which follows a damaged segment", later.path)
            later.delete()
        del segments[i + 1 :]


def recover_segment(segment: LogSegment, epoch_cache: LeaderEpochCache | None) -> int:
    """Re-read every batch of `segment` with its CRC, rebuild its indexes and the
    leader epochs it carries, and cut it at the first invalid batch. Returns the
    number of bytes cut (LogSegment.recover)."""
    segment.reset_indexes()
    file = segment.file  # its fd read per call: it may be closed and reopened meanwhile
    file_size = os.fstat(file.fd).st_size
    position = 0
    expected_offset = segment.base_offset
    chunk = b""
    chunk_start = 0
    while position < file_size:
        if position + BATCH_HEADER_SIZE > chunk_start + len(chunk):
            chunk = os.pread(file.fd, _RECOVERY_CHUNK, position)
            chunk_start = position
        try:
            header = read_batch_header(chunk, position - chunk_start)
        except CorruptRecordError as exc:
            log.warning("%s at %d: %s", segment.path, position, exc)
            break
        size = header.size
        if position + size > file_size:
            break  # torn tail
        if position + size > chunk_start + len(chunk):
            chunk = os.pread(file.fd, max(_RECOVERY_CHUNK, size), position)
            chunk_start = position
            header = read_batch_header(chunk, 0)
        if not batch_crc_ok(chunk, header):
            log.warning("%s at %d: CRC mismatch", segment.path, position)
            break
        if (
            header.base_offset < expected_offset
            or header.last_offset_delta < 0
            or header.last_offset - segment.base_offset > _INT32_MAX
        ):
            log.warning("%s at %d: offset %d out of order", segment.path, position,
                        header.base_offset)
            break
        segment.index_batch(position, size, header.last_offset, header.max_timestamp)
        epoch = header.partition_leader_epoch
        if epoch_cache is not None and epoch >= 0:
            latest = epoch_cache.latest_epoch()
            if latest is None or epoch > latest:
                epoch_cache.assign(epoch, header.base_offset)
        expected_offset = header.next_offset
        position += size
    truncated = file_size - position
    segment.size = position
    if truncated:
        segment.truncate_file(position)
    return truncated


def index_problem(segment: LogSegment) -> str | None:
    """Why the segment's indexes (or its tail) cannot be trusted, or None."""
    offset_index, time_index = segment.offset_index, segment.time_index
    if not offset_index.path.exists():
        return "offset index is missing"
    if not time_index.path.exists():
        return "time index is missing"
    try:
        offset_index.sanity_check()
        time_index.sanity_check()
    except CorruptIndexError as exc:
        return str(exc)
    try:
        if offset_index.entries:
            offset, position = offset_index.last_entry()
            base, _length, last = segment.batch_prefix(position)
            if base < 0 or last != offset:
                return f"last offset index entry ({offset}, {position}) does not match the log"
        next_offset = segment.next_offset
    except (OSError, KafkaStorageError) as exc:
        return str(exc)
    if not segment.tail_complete:
        return "the log ends with bytes that are not a record batch"
    if time_index.entries:
        _timestamp, offset = time_index.last_entry()
        if not segment.base_offset <= offset < max(next_offset, segment.base_offset + 1):
            return f"last time index offset {offset} is outside the segment"
    return None


def _log_file_offsets(directory: Path) -> list[int]:
    offsets = []
    for entry in os.scandir(directory):
        parsed = files.parse_offset_file_name(entry.name)
        if parsed is not None and parsed[1] == files.LOG_SUFFIX and not parsed[2]:
            offsets.append(parsed[0])
    return sorted(offsets)


def _remove_leftovers(directory: Path) -> None:
    names = [entry.name for entry in os.scandir(directory) if entry.is_file()]
    log_offsets = set()
    swaps: list[tuple[int, str]] = []
    min_cleaned = None
    for name in names:
        if name.endswith(files.TMP_SUFFIX):
            (directory / name).unlink(missing_ok=True)
            continue
        parsed = files.parse_offset_file_name(name)
        if parsed is None:
            continue
        base, suffix, extra = parsed
        if extra == files.DELETED_SUFFIX:
            (directory / name).unlink(missing_ok=True)
        elif extra == files.CLEANED_SUFFIX:
            min_cleaned = base if min_cleaned is None else min(min_cleaned, base)
            (directory / name).unlink(missing_ok=True)
        elif extra == files.SWAP_SUFFIX:
            swaps.append((base, name))
        elif not extra and suffix == files.LOG_SUFFIX:
            log_offsets.add(base)

    for base, name in swaps:
        if min_cleaned is not None and base >= min_cleaned:
            log.info("removing incomplete swap file %s", name)
            (directory / name).unlink(missing_ok=True)
    valid_swaps = sorted(
        base for base, name in swaps
        if name.endswith(files.LOG_SUFFIX + files.SWAP_SUFFIX)
        and (min_cleaned is None or base < min_cleaned)
    )
    for base in valid_swaps:
        _complete_swap(directory, base, log_offsets)
    # Index swap files whose log swap was not valid.
    for _base, name in swaps:
        (directory / name).unlink(missing_ok=True)

    for name in names:
        parsed = files.parse_offset_file_name(name)
        if parsed is None or parsed[2]:
            continue
        base, suffix, _ = parsed
        is_index = suffix in (files.INDEX_SUFFIX, files.TIME_INDEX_SUFFIX, files.TXN_INDEX_SUFFIX)
        if is_index and not files.log_path(directory, base).exists():
            (directory / name).unlink(missing_ok=True)


def _complete_swap(directory: Path, base: int, log_offsets: set[int]) -> None:
    """Finish a compaction swap: the .swap segment replaces the segments whose
    base offsets fall inside its offset range (LogLoader's swap completion)."""
    swap_log = directory / (files.offset_prefix(base) + files.LOG_SUFFIX + files.SWAP_SUFFIX)
    next_offset = _scan_next_offset(swap_log, base)
    for old in sorted(log_offsets):
        if base <= old < next_offset:
            for path in files.segment_paths(directory, old):
                path.unlink(missing_ok=True)
            log_offsets.discard(old)
    os.replace(swap_log, files.log_path(directory, base))
    log_offsets.add(base)
    # Its indexes are rebuilt from the log by the index check.
    for suffix in (files.INDEX_SUFFIX, files.TIME_INDEX_SUFFIX):
        (directory / (files.offset_prefix(base) + suffix + files.SWAP_SUFFIX)).unlink(
            missing_ok=True
        )
        (directory / (files.offset_prefix(base) + suffix)).unlink(missing_ok=True)
    txn_swap = directory / (files.offset_prefix(base) + files.TXN_INDEX_SUFFIX + files.SWAP_SUFFIX)
    if txn_swap.exists():
        os.replace(txn_swap, directory / (files.offset_prefix(base) + files.TXN_INDEX_SUFFIX))
    log.info("completed swap of segment %d in %s", base, directory)


def _scan_next_offset(path: Path, base: int) -> int:
    data = path.read_bytes()
    next_offset = base
    position = 0
    while len(data) - position >= BATCH_HEADER_SIZE:
        try:
            header = read_batch_header(data, position)
        except CorruptRecordError:
            break
        if header.end > len(data):
            break
        next_offset = header.next_offset
        position = header.end
    return next_offset
