"""PartitionLog: one partition's log of record batches, addressed by offset
(Kafka's UnifiedLog + LocalLog, without remote storage).

On disk, a directory `<topic>-<partition>` holding segments (see segment.py),
`leader-epoch-checkpoint` (leader_epoch.py) and `partition.metadata`
(checkpoints.py); log_open.py opens (and recovers) it. A new log of a batch
(CreateTopics, CreatePartitions, a restart finding a partition that never got
a record) has no directory until its first write needs one (`directory_made`,
`_make_directory`): creating a 1,000-partition topic touches no file system,
and a crash before that first write loses nothing (the cluster metadata brings the empty log back).

Invariants:
- segments are sorted by base offset and never overlap; the last one is
  the active segment, the only one appended to and the only one with
  writable (in-memory, see index.py) indexes; there is always one;
- segments[0].base_offset <= log_start_offset <= log_end_offset;
- log_end_offset is one past the last offset of the last batch (or the
  active segment's base offset when it is empty);
- recovery_point <= log_end_offset; everything below it is fsynced, so
  recovery after a crash starts there;
- the leader epoch cache's start offsets lie in [log_start_offset, log_end_offset];
- a log whose directory is not made yet is empty at offset 0 (anything else
  makes it: an append, a truncation to another offset); its epochs live in
  memory and its first flush writes them with partition.metadata.

The segment list, its size and generation are a LogSegments the log owns
(log_segments.py). Compaction (strom/storage/cleaner) replaces inactive
segments by cleaned copies in two owner-thread steps around a directory
fsync (`prepare_swap`, `complete_swap`): the file protocol and its crash
cases are in swap.py and loader.py.

Not thread-safe: one owner (the partition's task) calls everything except
FlushTicket.run, which a worker thread may run while the owner appends.
"""

from __future__ import annotations

import os
import random
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from strom.clock import Clock
from strom.errors import (
    KafkaStorageError,
    LogFsyncFailedError,
    OffsetOutOfRangeError,
)
from strom.protocol.records import LOG_OVERHEAD, BatchHeader
from strom.storage import checkpoints, disk, log_read, retention, swap
from strom.storage.file_records import FileRegion
from strom.storage.flush import FlushTicket, prepare_ticket
from strom.storage.leader_epoch import LeaderEpochCache
from strom.storage.log_append import (
    AppendInfo,
    UnexpectedAppendOffsetError,
    follower_batches,
    place_batch,
)
from strom.storage.log_config import LogConfig
from strom.storage.log_producers import ProducerLog
from strom.storage.log_read import LogReadResult
from strom.storage.log_segments import LogSegments
from strom.storage.new_logs import make_lazy_log_directory
from strom.storage.producer_state import AppendOrigin
from strom.storage.segment import LogSegment
from strom.storage.segment_files import SegmentFiles

# Also the names callers import from here, defined next to their concepts.
__all__ = ["AppendInfo", "AppendOrigin", "FileRegion", "FlushTicket", "LogConfig",
           "LogReadResult", "PartitionLog", "UnexpectedAppendOffsetError"]

_CLIENT = AppendOrigin.CLIENT


class PartitionLog:
    """Append, read, truncate, roll and retain one partition's batches."""

    def __init__(
        self, directory: Path, config: LogConfig, *, clock: Clock, topic: str, partition: int,
        topic_id: uuid.UUID | None, epoch_cache: LeaderEpochCache, rng: random.Random,
        empty: bool = False,
    ) -> None:
        """`empty`: `directory` was just made (nothing to read from it)."""
        self.directory = directory
        #: The log directory (a `log.dirs` entry) this log's directory is in.
        self.log_dir = directory.parent
        self.config = config
        self.clock = clock
        self.topic = topic
        self.partition = partition
        self.topic_id = topic_id
        self.leader_epoch_cache = epoch_cache
        #: The segments, their bases, size, generation and pending swap;
        #: `log_segments.files` creates, opens and deletes them.
        self.log_segments = LogSegments(SegmentFiles(directory, config, clock, rng))
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.recovery_point = 0
        self._appended_messages = 0
        self._flushed_messages = 0
        self.last_flush_ms = clock.wall_ms()
        #: Set when an fdatasync failed with an I/O error (storage/flush.py):
        #: the unsynced data may be lost, so the log takes no more appends or
        #: flushes until it is reopened (recovery validates what is on disk).
        self.io_failed: str | None = None
        #: Producer state and transaction index (log_producers.py); the two
        #: attributes below are its parts, named for the callers that read them.
        self.producers = ProducerLog(directory, empty=empty)
        self.txn_index = self.producers.txn_index
        self.producer_state = self.producers.state
        #: False for a lazy new log until its first write makes the directory.
        self.directory_made = True
        #: A lazy log made its directory: the next flush writes partition.metadata
        #: and syncs the data directory (the new name) too.
        self._directory_unsynced = False

    # -- the lazy directory (opening a log: log_open.py) --------------------

    def _make_directory(self) -> None:
        """The first write of a lazy log: make its directory and have the
        next flush write partition.metadata and sync the directory and its
        data directory (so the name is durable with the first records).
        Raises OSError (a full disk: the log stays without a directory and
        the next write tries again; KafkaStorageError if another directory
        is in the way: make_lazy_log_directory)."""
        make_lazy_log_directory(self.directory)
        self.directory_made = True
        self._directory_unsynced = True
        self.log_segments.files.version += 1  # the next flush syncs the directory

    def update_config(self, config: LogConfig) -> None:
        """Apply changed topic configs (AlterConfigs); new segments pick up the rest."""
        self.config = config
        self.log_segments.files.config = config
        self.log_segments.active.index_interval_bytes = config.index_interval_bytes

    # -- properties -------------------------------------------------------

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        return tuple(self.log_segments.segments)

    @property
    def active_segment(self) -> LogSegment:
        return self.log_segments.active

    @property
    def size_in_bytes(self) -> int:
        return self.log_segments.size_in_bytes

    @property
    def generation(self) -> int:
        """Bumped by every truncation: offsets taken before it may name other data."""
        return self.log_segments.generation

    @property
    def closed(self) -> bool:
        return self.log_segments.closed

    @property
    def unflushed_messages(self) -> int:
        return self._appended_messages - self._flushed_messages

    @property
    def unflushed_active_bytes(self) -> int:
        """Bytes of the active segment not yet fsync'd (a flush's size, nearly
        always: rolled segments are flushed when they roll)."""
        active = self.log_segments.active
        return active.size - active.flushed_size

    def flush_due(self, now_ms: int) -> bool:
        """Whether flush.messages or flush.ms asks for a flush now."""
        if self.recovery_point >= self.log_end_offset:
            return False
        return (
            self.unflushed_messages >= self.config.flush_messages
            or now_ms - self.last_flush_ms >= self.config.flush_ms
        )

    # -- append -----------------------------------------------------------
    #
    # Two entry points, one path: append_as_leader checks the batch against the
    # producer state, assigns its offsets and writes it; append_as_follower
    # writes batches whose offsets the leader assigned. Both then update the
    # producer state and the transaction index from what was written.

    def append_as_leader(
        self,
        batch: memoryview,
        header: BatchHeader,
        *,
        leader_epoch: int,
        max_timestamp: int,
        offset_delta_of_max_timestamp: int,
        now_ms: int,
        origin: AppendOrigin = AppendOrigin.CLIENT,
    ) -> AppendInfo:
        """Append one validated batch at the log end offset in `leader_epoch`:
        producer checks (epoch fencing; for CLIENT batches sequence numbers,
        and a retry of a recent batch is answered with its original offsets,
        `duplicate`, and not written), the write, then the producer state (its
        timestamp: max_timestamp, or now_ms if the batch has none) and, for an
        ABORT marker, the transaction index. Raises typed KafkaErrors."""
        state = self.producer_state
        if header.producer_id >= 0:
            # The produce path calls `check` itself: one call fewer per batch.
            duplicate = (state.check(header) if origin is _CLIENT
                         else state.check_append(header, origin))
            if duplicate is not None:
                return AppendInfo(duplicate.first_offset, duplicate.last_offset, -1, -1,
                                  self.log_start_offset, True)
        info = self._append(batch, header, leader_epoch=leader_epoch,
                            max_timestamp=max_timestamp,
                            offset_delta_of_max_timestamp=offset_delta_of_max_timestamp)
        timestamp = max_timestamp if max_timestamp >= 0 else now_ms
        # Only coordinators write control batches (produce validation refuses them).
        if origin is not _CLIENT and header.is_control:
            self._end_transaction(batch, header, info.first_offset, timestamp)
        else:
            state.update(header, info.first_offset, timestamp)
        return info

    def _end_transaction(self, data: memoryview, header: BatchHeader, offset: int,
                         timestamp: int) -> None:
        """The control batch at `offset` is written: its producer state and, for
        an ABORT, its transaction index entry. If the entry cannot be written,
        read_committed consumers would see the marker's records as committed;
        undoing the marker is a truncation on the failing disk (writes that can
        fail too), writing the entry first means guessing the marker's segment.
        So the log fails as after a failed fsync (the broker takes it offline)
        and the next start replays the marker (above the producer-state
        snapshot, which this log no longer takes) and indexes it."""
        try:
            self.producers.end_transaction(data, header, offset, timestamp,
                                           self.log_segments.active.base_offset)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            self.io_failed = (f"cannot index the aborted transaction ended at offset {offset} "
                              f"in {self.directory}: {reason}")
            raise LogFsyncFailedError(self.io_failed) from exc

    def append_as_follower(self, records: memoryview) -> AppendInfo | None:
        """Append batches fetched from the leader, as they are: offsets and
        leader epochs already assigned, the first at or past the log end
        offset. Every batch's CRC and order are checked before any is written
        (CorruptRecordError, UnexpectedAppendOffsetError); the producer state
        follows the batches without sequence checks (the leader made them).
        None if `records` holds no batch."""
        headers = follower_batches(records, self.log_end_offset,
                                   f"{self.topic}-{self.partition}")
        first: AppendInfo | None = None
        last: AppendInfo | None = None
        for header in headers:
            position = header.position
            batch = records[position:position + header.batch_length + LOG_OVERHEAD]
            last = self._append(batch, header, leader_epoch=-1,
                                max_timestamp=header.max_timestamp,
                                offset_delta_of_max_timestamp=header.last_offset_delta,
                                assign_offsets=False)
            first = first or last
            if header.is_control:
                self._end_transaction(records, header, last.first_offset,
                                      header.max_timestamp)
            else:
                self.producer_state.update(header, last.first_offset, header.max_timestamp)
        if first is None or last is None:
            return None
        return AppendInfo(first.first_offset, last.last_offset, last.max_timestamp,
                          last.offset_of_max_timestamp, self.log_start_offset)

    def load_producer_state(self) -> None:
        """Rebuild the producer state from its snapshot and the batches above it."""
        self.producers.rebuild(self.read, self.log_segments.bases,
                               log_start_offset=self.log_start_offset,
                               log_end_offset=self.log_end_offset)

    def _append(
        self,
        batch: memoryview,
        header: BatchHeader,
        *,
        leader_epoch: int,
        max_timestamp: int,
        offset_delta_of_max_timestamp: int,
        assign_offsets: bool = True,
    ) -> AppendInfo:
        """Append one validated batch; `batch` is exactly its bytes. Its
        offsets: assigned here (leader) or kept (follower), see place_batch."""
        if self.io_failed is not None:
            raise LogFsyncFailedError(self.io_failed)
        base_offset, epoch = place_batch(
            batch, header, log_end_offset=self.log_end_offset, leader_epoch=leader_epoch,
            assign_offsets=assign_offsets, segment_bytes=self.config.segment_bytes,
            topic=self.topic, partition=self.partition)
        size = header.batch_length + LOG_OVERHEAD
        last_offset = base_offset + header.last_offset_delta
        segments = self.log_segments
        segment = segments.segments[-1]
        try:
            if not self.directory_made:
                self._make_directory()
            if segment.should_roll(
                batch_size=size, max_timestamp=max_timestamp, last_offset=last_offset,
                now_ms=self.clock.wall_ms(), segment_bytes=self.config.segment_bytes,
                segment_ms=self.config.segment_ms,
            ):
                segment = segments.roll(base_offset)
            if segment.file.pending_create:
                # This append creates the file: the next flush syncs the directory.
                segments.files.version += 1
            segment.append(batch, last_offset, max_timestamp)
        except OSError as exc:
            # Nothing of the batch is in the log (segment.append cut it off).
            raise disk.storage_error(exc, segment.path, "append to") from exc
        if disk.failing():
            disk.clear(segment.path)
        self.log_end_offset = last_offset + 1
        segments.size_in_bytes += size
        self._appended_messages += header.records_count
        if epoch >= 0:
            latest = self.leader_epoch_cache.latest_epoch()
            if latest is None or epoch > latest:
                self.leader_epoch_cache.assign(epoch, base_offset)
        return AppendInfo(
            base_offset, last_offset, max_timestamp,
            base_offset + offset_delta_of_max_timestamp, self.log_start_offset,
        )

    def roll(self) -> None:
        """Start a new active segment at the log end offset."""
        self.log_segments.roll(self.log_end_offset)

    # -- read -------------------------------------------------------------

    def read(
        self, start_offset: int, max_bytes: int, *, max_offset: int, min_one_batch: bool
    ) -> LogReadResult:
        """Whole batches from the one holding `start_offset`, each with last
        offset < max_offset, within max_bytes (KIP-74: the first batch even if
        larger, when min_one_batch). Spans segments."""
        if start_offset < self.log_start_offset or start_offset > self.log_end_offset:
            raise OffsetOutOfRangeError(
                f"offset {start_offset} is outside [{self.log_start_offset}, "
                f"{self.log_end_offset}] of {self.topic}-{self.partition}"
            )
        if start_offset >= max_offset or start_offset == self.log_end_offset:
            return log_read.EMPTY_READ
        if max_bytes <= 0 and not min_one_batch:
            # A fetch whose response is full still asks every other partition
            # (their high watermarks): nothing to read, so no index lookup
            # and header walk (10 ms a fetch over 1,000 partitions).
            return log_read.EMPTY_READ
        segments = self.log_segments
        return log_read.read(segments.segments, segments.bases, start_offset, max_bytes,
                             max_offset=max_offset, min_one_batch=min_one_batch,
                             log_end_offset=self.log_end_offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after the log start
        offset with timestamp >= timestamp_ms (ListOffsets by time)."""
        segments = self.log_segments
        return log_read.offset_for_timestamp(segments.segments, segments.bases, timestamp_ms,
                                             self.log_start_offset)

    def max_timestamp(self) -> tuple[int, int]:
        """(timestamp, offset) of the first record with the largest timestamp;
        (-1, -1) if none (ListOffsets MAX_TIMESTAMP)."""
        return log_read.max_timestamp(self.log_segments.segments)

    # -- leader epochs ----------------------------------------------------

    def latest_epoch(self) -> int | None:
        return self.leader_epoch_cache.latest_epoch()

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= epoch, its end offset), (-1, -1) if unknown."""
        return self.leader_epoch_cache.end_offset_for(epoch, self.log_end_offset)

    def assign_epoch_start_offset(self, epoch: int, start_offset: int) -> None:
        """Record a new leader epoch before its first append (becoming leader)."""
        latest = self.leader_epoch_cache.latest_epoch()
        if latest is None or epoch > latest:
            self.leader_epoch_cache.assign(epoch, start_offset)

    # -- flush ------------------------------------------------------------

    def prepare_flush(self, dup_fds: bool = True) -> FlushTicket:
        """Owner thread: dup the fds of everything not yet durable, up to the LEO
        (`dup_fds` False: none, for a syncfs of the whole file system)."""
        if self.io_failed is not None:
            raise LogFsyncFailedError(self.io_failed)
        segments = self.log_segments
        made = self.directory_made
        new_directory = self._directory_unsynced
        return prepare_ticket(
            segments.segments, self.directory, sync_dir=made and segments.files.dir_dirty,
            offset=self.log_end_offset, epoch_cache=self.leader_epoch_cache,
            generation=segments.generation, appended_messages=self._appended_messages,
            dir_version=segments.files.version, write_epochs=made, sync_parent=new_directory,
            partition_metadata=checkpoints.format_partition_metadata(self.topic_id)
            if new_directory and self.topic_id is not None else None,
            dup_fds=dup_fds,
        )

    def complete_flush(self, ticket: FlushTicket) -> None:
        """Owner thread: advance the recovery point if the ticket ran; close its fds."""
        ticket.close()
        if ticket.fsync_failed is not None and self.io_failed is None:
            self.io_failed = ticket.fsync_failed
        if not ticket.done or self.log_segments.closed:
            return
        if ticket.syncs_parent:
            self._directory_unsynced = False
        if not ticket.settle(self.log_segments):
            return  # truncated meanwhile: the ticket's offset may name other data
        self.recovery_point = min(max(self.recovery_point, ticket.offset), self.log_end_offset)
        self._flushed_messages = max(self._flushed_messages, ticket.appended_messages)
        self.last_flush_ms = self.clock.wall_ms()

    def flush(self) -> None:
        ticket = self.prepare_flush()
        try:
            ticket.run()
        finally:
            self.complete_flush(ticket)

    # -- truncation and deletion ------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Drop every batch holding an offset >= `offset` (follower truncation)."""
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        if offset >= self.log_end_offset:
            # No batch to drop, but a leader epoch this log started without
            # writing to it (it led, appended nothing, then followed) must go:
            # a follower's next fetch names its latest epoch, and the leader
            # would point at the same divergence again.
            if offset == self.log_end_offset:
                self.leader_epoch_cache.truncate_from_end(offset)
                if self.directory_made:  # (else the epochs wait in memory)
                    self.leader_epoch_cache.flush()
            return
        if offset < self.log_segments.bases[0]:
            self.truncate_fully_and_start_at(offset)
            return
        self.abort_swap(durable=True)
        self.log_end_offset = self.log_segments.truncate_to(
            offset, now_ms=self.clock.wall_ms(),
            index_interval_bytes=self.config.index_interval_bytes)
        self.log_start_offset = min(self.log_start_offset, self.log_end_offset)
        self.recovery_point = min(self.recovery_point, self.log_end_offset)
        self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
        self.leader_epoch_cache.flush()
        self.producers.truncate(self.log_start_offset, self.log_end_offset)
        self.load_producer_state()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Delete every segment and restart the log, empty, at `offset`."""
        if offset < 0:
            raise ValueError(f"cannot start at negative offset {offset}")
        if not self.directory_made:
            if offset == self.log_end_offset:
                # Already empty there (deleting a topic empties every log
                # first): no directory for that.
                self.leader_epoch_cache.clear()
                return
            try:
                self._make_directory()  # the new start offset is a file name
            except OSError as exc:
                raise disk.storage_error(exc, self.directory, "create") from exc
        self.abort_swap(durable=True)
        self.log_segments.restart_at(offset)
        self.log_start_offset = self.log_end_offset = self.recovery_point = offset
        self.leader_epoch_cache.clear()
        self.leader_epoch_cache.flush(force=True)
        self.producers.restart_at(offset)

    def advance_log_start_offset(self, offset: int) -> None:
        """DeleteRecords: records below `offset` become unreadable; segments
        wholly below it are deleted."""
        if offset > self.log_end_offset:
            raise OffsetOutOfRangeError(
                f"cannot move the log start offset of {self.topic}-{self.partition} to {offset}, "
                f"past the log end offset {self.log_end_offset}"
            )
        if offset <= self.log_start_offset:
            return
        self.log_start_offset = offset
        self.leader_epoch_cache.truncate_from_start(offset)
        self._delete_old_segments(
            retention.log_start_offset_breached(offset), self.log_end_offset
        )

    def apply_retention(
        self, now_ms: int | None = None, *, high_watermark: int | None = None
    ) -> int:
        """Delete segments breaching the log start offset, retention.bytes and
        retention.ms; never past the high watermark (default: the log end
        offset). Returns how many segments were deleted."""
        now = self.clock.wall_ms() if now_ms is None else now_ms
        limit = self.log_end_offset if high_watermark is None else min(
            high_watermark, self.log_end_offset
        )
        return retention.apply(
            lambda predicate: self._delete_old_segments(predicate, limit),
            lambda: self.size_in_bytes, log_start_offset=self.log_start_offset,
            retention_bytes=self.config.retention_bytes, retention_ms=self.config.retention_ms,
            now_ms=now,
        )

    def _delete_old_segments(self, predicate: retention.Predicate, high_watermark: int) -> int:
        count, first_base = retention.delete_oldest(
            self.log_segments, predicate, high_watermark=high_watermark,
            log_end_offset=self.log_end_offset)
        if first_base > self.log_start_offset:
            self.log_start_offset = first_base
            self.leader_epoch_cache.truncate_from_start(first_base)
        return count

    # -- compaction's swap (swap.py) ----------------------------------------

    def prepare_swap(
        self, base_offset: int, old: Sequence[LogSegment], generation: int, *,
        hook: swap.SwapHook = swap.no_hook,
    ) -> bool:
        """Owner thread, swap step 1: the cleaned copy of `old` becomes .swap
        files; False, touching nothing, if the log changed since `generation`.
        The caller fsyncs the directory before `complete_swap`."""
        return swap.prepare(self.log_segments, base_offset, old, generation, hook=hook)

    def complete_swap(self, *, hook: swap.SwapHook = swap.no_hook) -> bool:
        """Owner thread, swap step 2 (after the .swap renames are durable):
        the cleaned segment replaces `old`; False, removing the .swap files,
        if the log changed since `prepare_swap`."""
        return swap.complete(self.log_segments, hook=hook)

    def abort_swap(self, *, durable: bool = False) -> None:
        """Forget a prepared swap and remove its files; with `durable`, fsync
        the directory so a crash cannot bring them back."""
        swap.abort(self.log_segments, durable=durable)

    def close(self, *, flush: bool = False, deleting: bool = False) -> None:
        """Trim the active segment's indexes and close every file. With flush,
        everything (trimmed indexes included) is fsynced first, as a clean
        shutdown needs; without, nothing is. `deleting`: the log is about to be
        deleted, so the leader epochs are not written (an fsynced file per
        log made a DeleteTopics of 8,000 partitions take 11 s)."""
        if self.log_segments.closed:
            return
        if not self.directory_made:
            self.log_segments.close()  # a lazy segment: no files, creates none
            return
        # Every file is closed even when some cannot be written (a full disk);
        # the first failure is raised at the end, so the caller does not mark
        # the shutdown clean and the next start recovers this log.
        failure: Exception | None = None
        try:
            self.abort_swap()
            if flush:
                self.log_segments.active.on_become_inactive()
                self.flush()
        except (OSError, KafkaStorageError) as exc:
            failure = exc
        close_failure = self.log_segments.close()  # always: every file
        failure = failure or close_failure
        try:
            if not deleting:
                self.leader_epoch_cache.flush()
        except OSError as exc:
            failure = failure or exc
        if isinstance(failure, OSError):
            raise disk.storage_error(failure, self.directory, "close") from failure
        if failure is not None:
            raise failure

    def delete(self) -> None:
        """Close and remove the whole directory (if it was ever made)."""
        self.log_segments.delete()
        if self.directory_made:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.topic}-{self.partition}, start={self.log_start_offset}, "
            f"end={self.log_end_offset}, segments={len(self.log_segments)})"
        )
