"""Idempotent producers: sequence numbers per producer id, per partition.

For every producer id that wrote to a partition the leader remembers its
epoch and the metadata of its last five batches (first/last sequence,
first/last offset). A batch is checked before it is appended:
  - an epoch below the known one is fenced (INVALID_PRODUCER_EPOCH);
  - a batch equal to one of the last five is a retry: it is not written
    again and is answered with its original offset;
  - otherwise its first sequence must follow the last one (wrapping at
    2^31-1), or start at 0 in a new epoch (also one a transaction marker
    began, as transaction version 2 does): else OUT_OF_ORDER_SEQUENCE_NUMBER.
A producer id this partition has never seen may start at any sequence, as in
Kafka: its state may have been expired or cleaned away.

Transactions: a producer's transaction opens here at its first transactional
batch (`current_txn_first_offset`) and closes at its COMMIT/ABORT marker; the
earliest open one bounds the last stable offset. Producers with an open
transaction never expire.

Ownership: the partition log (log.py) owns its producer state and drives it:
every append checks the batch here, writes it, and updates the state in one
step (`append_as_leader`; `append_as_follower` updates without checks, the
leader made them), truncation drops what lies past the new end, and opening
the log rebuilds it from the newest snapshot and the batches after it. An
ABORT marker's transaction is indexed in the log's transaction index
(`end_transaction` computes the entry).

Snapshots use Kafka's `<20-digit offset>.snapshot` format, version 1:
  version int16 | crc uint32 (CRC32C of everything after it) |
  count int32 | count x (producer_id int64, epoch int16, last_sequence int32,
  last_offset int64, offset_delta int32, timestamp int64,
  coordinator_epoch int32, current_txn_first_offset int64)
A snapshot at offset N holds the state of every batch below N; recovery loads
the newest snapshot at or below the recovery point and replays the log from
there. Only the last batch of each producer survives a snapshot (Kafka does
the same), so a retry of an older batch across a restart is out of sequence.
"""

from __future__ import annotations

import collections
import enum
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from strom.errors import InvalidProducerEpochError, KafkaError, OutOfOrderSequenceError
from strom.protocol.records import BatchHeader
from strom.protocol.records.batch import CONTROL_MASK, TRANSACTIONAL_MASK
from strom.protocol.records.crc import crc32c
from strom.storage.txn_index import AbortedTxn

NO_SEQUENCE = -1
MAX_SEQUENCE = 2**31 - 1
BATCHES_REMEMBERED = 5
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1

_HEAD = struct.Struct(">hI")
_COUNT = struct.Struct(">i")
_ENTRY = struct.Struct(">qhiqiqiq")


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerStateEntry:
    producer_id: int
    epoch: int
    batches: collections.deque[BatchMetadata] = field(
        default_factory=lambda: collections.deque(maxlen=BATCHES_REMEMBERED)
    )
    last_timestamp: int = -1
    coordinator_epoch: int = -1
    current_txn_first_offset: int = -1

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else NO_SEQUENCE

    def find_duplicate(self, header: BatchHeader) -> BatchMetadata | None:
        for batch in self.batches:
            if (batch.first_sequence == header.base_sequence
                    and batch.last_sequence == header.last_sequence):
                return batch
        return None


class AppendOrigin(enum.Enum):
    """Who wrote a leader append (Kafka's AppendOrigin)."""

    #: A producer's batch: epoch fencing, sequence checks, retries answered.
    CLIENT = "client"
    #: A coordinator's own batch or a transaction marker: epoch fencing only.
    COORDINATOR = "coordinator"


class ProducerStateManager:
    """The producer state of one partition. Not thread-safe: the partition's owner uses it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._entries: dict[int, ProducerStateEntry] = {}
        # Everything below this offset is reflected in `entries`.
        self.map_end_offset = 0
        self.last_snapshot_offset = -1
        # first_unstable_offset, kept between the changes that can move it
        # (a transactional batch or marker, a new set of entries): every
        # fetch asks for it, and the scan is over every producer.
        self._first_unstable: int | None = None
        self._first_unstable_known = False

    def check_append(self, header: BatchHeader, origin: AppendOrigin) -> BatchMetadata | None:
        """Validate a leader append; the original batch if it is a producer's retry."""
        if origin is AppendOrigin.CLIENT and not header.is_control:
            return self.check(header)
        entry = self._entries.get(header.producer_id) if header.producer_id >= 0 else None
        if entry is not None and header.producer_epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"Epoch {header.producer_epoch} of producer {header.producer_id} is older "
                f"than the last seen epoch {entry.epoch}")
        return None

    def end_transaction(self, producer_id: int, marker_offset: int,
                        commit: bool) -> AbortedTxn | None:
        """Before the state sees the marker at `marker_offset`: the transaction
        index entry of the producer's open transaction if the marker aborts it."""
        entry = self.entries.get(producer_id)
        if commit or entry is None or entry.current_txn_first_offset < 0:
            return None
        others = [e.current_txn_first_offset for e in self.entries.values()
                  if e is not entry and e.current_txn_first_offset >= 0]
        last_stable = min(others) if others else marker_offset + 1
        return AbortedTxn(producer_id, entry.current_txn_first_offset, marker_offset,
                          last_stable)

    def check(self, header: BatchHeader) -> BatchMetadata | None:
        """Validate a produced batch; return the original batch if it is a retry."""
        if header.producer_id < 0:
            return None
        entry = self._entries.get(header.producer_id)
        if entry is None:
            return None
        if header.producer_epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"Epoch of producer {header.producer_id} is {header.producer_epoch}, which is "
                f"smaller than the last seen epoch {entry.epoch}"
            )
        if header.producer_epoch == entry.epoch:
            duplicate = entry.find_duplicate(header)
            if duplicate is not None:
                return duplicate
            # entry.last_sequence and the sequence check inline: two calls a batch.
            last = entry.batches[-1].last_sequence if entry.batches else NO_SEQUENCE
            if last == NO_SEQUENCE:
                # The epoch came with a marker (transaction version 2 writes it
                # with the bumped epoch) or a coordinator's batch: the producer's
                # first batch in it starts at 0. A later one arriving first (the
                # first was refused, say by its transaction's verification, while
                # the next was in flight) is out of order, as in Kafka; taken as
                # the start, it would put the first one's retry out of order.
                if header.base_sequence != 0:
                    raise OutOfOrderSequenceError(
                        f"Out of order sequence number for producer {header.producer_id} at "
                        f"epoch {header.producer_epoch}: {header.base_sequence} (incoming seq. "
                        f"number), expected 0 (no sequence yet in this epoch)"
                    )
            elif not (header.base_sequence == last + 1
                      or (header.base_sequence == 0 and last == MAX_SEQUENCE)):
                raise OutOfOrderSequenceError(
                    f"Out of order sequence number for producer {header.producer_id} at "
                    f"epoch {header.producer_epoch}: {header.base_sequence} "
                    f"(incoming seq. number), {last} (current end sequence number)"
                )
        elif header.base_sequence != 0:
            raise OutOfOrderSequenceError(
                f"Invalid sequence number for new epoch of producer {header.producer_id}: "
                f"{header.base_sequence} (request epoch), 0 (seq. number), "
                f"{entry.epoch} (current producer epoch)"
            )
        return None

    def update(self, header: BatchHeader, first_offset: int, timestamp: int) -> None:
        """Record an appended batch (leader append, or replay during recovery)."""
        if header.producer_id < 0:
            self.map_end_offset = first_offset + header.last_offset_delta + 1
            return
        entry = self._entries.get(header.producer_id)
        if entry is None or header.producer_epoch > entry.epoch:
            previous = entry
            entry = ProducerStateEntry(header.producer_id, header.producer_epoch)
            if previous is not None:
                # A bumped epoch (a fencing abort marker) still ends the open transaction.
                entry.current_txn_first_offset = previous.current_txn_first_offset
                entry.coordinator_epoch = previous.coordinator_epoch
            self._entries[header.producer_id] = entry
        last_offset = first_offset + header.last_offset_delta
        # The attribute bits and the last sequence inline (BatchHeader's
        # is_transactional, is_control, last_sequence): three calls per batch.
        attributes = header.attributes
        if attributes & TRANSACTIONAL_MASK:
            self._first_unstable_known = False
            # A transaction opens at its first batch here and ends at its marker.
            if attributes & CONTROL_MASK:
                entry.current_txn_first_offset = -1
            elif entry.current_txn_first_offset < 0:
                entry.current_txn_first_offset = first_offset
        base_sequence = header.base_sequence
        if not attributes & CONTROL_MASK and base_sequence >= 0:
            entry.batches.append(BatchMetadata(
                base_sequence, (base_sequence + header.last_offset_delta) % (1 << 31),
                first_offset, last_offset, timestamp
            ))
        entry.last_timestamp = max(entry.last_timestamp, timestamp)
        self.map_end_offset = last_offset + 1

    @property
    def entries(self) -> dict[int, ProducerStateEntry]:
        return self._entries

    @entries.setter
    def entries(self, entries: dict[int, ProducerStateEntry]) -> None:
        self._entries = entries
        self._first_unstable_known = False

    @property
    def first_unstable_offset(self) -> int | None:
        """The first offset of the earliest open transaction (the LSO bound), if any."""
        if not self._first_unstable_known:
            offsets = [e.current_txn_first_offset for e in self._entries.values()
                       if e.current_txn_first_offset >= 0]
            self._first_unstable = min(offsets) if offsets else None
            self._first_unstable_known = True
        return self._first_unstable

    def replay(self, headers: Iterable[BatchHeader]) -> None:
        """Rebuild state from batches read back from the log (recovery)."""
        for header in headers:
            if header.next_offset <= self.map_end_offset:
                continue
            self.update(header, header.base_offset, header.max_timestamp)

    def expire(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers idle for longer than producer.id.expiration.ms."""
        expired = [pid for pid, e in self.entries.items()
                   if e.current_txn_first_offset < 0 and now_ms - e.last_timestamp > expiration_ms]
        for pid in expired:
            del self.entries[pid]
        return len(expired)

    def truncate(self, log_start_offset: int, log_end_offset: int) -> None:
        """After truncation the state past the log end is unknown: drop it, and
        snapshots past it; the caller replays from the newest remaining snapshot."""
        for path in self.snapshot_files():
            if snapshot_offset(path) > log_end_offset:
                path.unlink(missing_ok=True)
        if self.map_end_offset > log_end_offset:
            self.entries = {}
            self.map_end_offset = 0
            self.load_latest_snapshot(log_end_offset)
        del log_start_offset

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """The log was emptied and restarts at `offset`: nothing is known."""
        for path in self.snapshot_files():
            path.unlink(missing_ok=True)
        self.entries = {}
        self.map_end_offset = offset
        self.last_snapshot_offset = -1

    # --- snapshots -----------------------------------------------------------------

    def snapshot_files(self) -> list[Path]:
        return sorted(self.directory.glob("*" + SNAPSHOT_SUFFIX), key=snapshot_offset)

    def maybe_snapshot(self) -> None:
        """Snapshot if there is producer state newer than the last snapshot."""
        if self.entries and self.map_end_offset != self.last_snapshot_offset:
            self.take_snapshot()

    def take_snapshot(self) -> Path:
        """Write the state as of map_end_offset, atomically; keep the two newest."""
        body = bytearray(_COUNT.pack(len(self.entries)))
        for entry in self.entries.values():
            last = entry.batches[-1] if entry.batches else None
            body += _ENTRY.pack(
                entry.producer_id, entry.epoch,
                last.last_sequence if last else NO_SEQUENCE,
                last.last_offset if last else -1,
                (last.last_offset - last.first_offset) if last else 0,
                entry.last_timestamp, entry.coordinator_epoch,
                entry.current_txn_first_offset,
            )
        data = _HEAD.pack(SNAPSHOT_VERSION, crc32c(body)) + body
        path = self.directory / f"{self.map_end_offset:020d}{SNAPSHOT_SUFFIX}"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        for old in self.snapshot_files()[:-2]:
            old.unlink(missing_ok=True)
        self.last_snapshot_offset = self.map_end_offset
        return path

    def load_latest_snapshot(self, at_most: int) -> None:
        """Load the newest readable snapshot at or below `at_most`; corrupt ones are removed."""
        for path in reversed(self.snapshot_files()):
            offset = snapshot_offset(path)
            if offset > at_most:
                continue
            try:
                self.entries = _read_snapshot(path.read_bytes())
            except (ValueError, struct.error, KafkaError):
                path.unlink(missing_ok=True)
                continue
            self.map_end_offset = offset
            self.last_snapshot_offset = offset
            return
        self.entries = {}
        self.map_end_offset = 0


def snapshot_offset(path: Path) -> int:
    return int(path.name[: -len(SNAPSHOT_SUFFIX)])


def _read_snapshot(data: bytes) -> dict[int, ProducerStateEntry]:
    version, crc = _HEAD.unpack_from(data, 0)
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"unknown producer snapshot version {version}")
    body = memoryview(data)[_HEAD.size:]
    if crc32c(body) != crc:
        raise ValueError("producer snapshot CRC mismatch")
    (count,) = _COUNT.unpack_from(body, 0)
    if count < 0 or _COUNT.size + count * _ENTRY.size != len(body):
        raise ValueError("producer snapshot length mismatch")
    entries = {}
    for i in range(count):
        (pid, epoch, last_seq, last_offset, offset_delta, timestamp, coordinator_epoch,
         txn_first) = _ENTRY.unpack_from(body, _COUNT.size + i * _ENTRY.size)
        entry = ProducerStateEntry(pid, epoch, last_timestamp=timestamp,
                                   coordinator_epoch=coordinator_epoch,
                                   current_txn_first_offset=txn_first)
        if last_seq >= 0:
            first_seq = last_seq - offset_delta
            if first_seq < 0:
                first_seq += MAX_SEQUENCE + 1
            entry.batches.append(BatchMetadata(first_seq, last_seq, last_offset - offset_delta,
                                               last_offset, timestamp))
        entries[pid] = entry
    return entries
