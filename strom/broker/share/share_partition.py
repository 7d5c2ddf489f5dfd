"""One share group's view of one partition (KIP-932), sans-I/O.

A share partition hands the records of a partition to the members of a share
group one at a time, each delivered at least once. It keeps a window of
"in-flight" offsets [start_offset, end_offset): the share-partition start
offset (SPSO) is the first offset not yet finished with, end_offset the next
offset never handed out (the SPEO is end_offset - 1). Every offset in the
window has a state (RecordState), a delivery count and, while acquired, the
member holding it and when its acquisition lock expires.

    AVAILABLE --acquire--> ACQUIRED --ACCEPT--> ACKNOWLEDGED
        ^                     |  |--REJECT/GAP--> ARCHIVED
        |--RELEASE/lock expiry/member gone (below the delivery count limit)
                              |--RELEASE/lock expiry at the limit--> ARCHIVED

ACKNOWLEDGED and ARCHIVED are final: the SPSO moves past a run of them at the
front of the window, and they are forgotten. Records that cannot be delivered
(control batches, aborted transactions under read_committed, offsets the log
no longer has) go straight from AVAILABLE (or beyond the window) to ARCHIVED.
The window holds at most `max_record_locks` offsets
(group.share.partition.max.record.locks): beyond that nothing new is
acquired until the SPSO moves.

Nothing here does I/O or reads a clock: the caller passes `now_ms`, reads the
log, and persists `snapshot()` (strom/coordinator/share/persister.py) after
every change that must survive; an acquired record is persisted as AVAILABLE
(with its delivery count), so a restart redelivers it.

Offsets are tracked one by one: the window is bounded by max_record_locks
(Kafka's default 2000), so a dict of that size costs less than keeping runs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from strom.coordinator.share.persister import (
    UNINITIALIZED_START_OFFSET,
    DeliveryState,
    ShareState,
    StateBatch,
)
from strom.errors import InvalidRecordStateError, InvalidRequestError


class RecordState(enum.IntEnum):
    """Kafka's RecordState ids (an IntEnum: hashed as ints, measured 0.15 s of
    1.6 s in a 50,000-record share fetch loop as a plain Enum)."""

    AVAILABLE = 0
    """May be acquired by the next share fetch of any member."""
    ACQUIRED = 1
    """Held by one member until it acknowledges or its lock expires."""
    ACKNOWLEDGED = 2
    """Processed (final)."""
    ARCHIVED = 4
    """Rejected, undeliverable, or out of delivery attempts (final)."""


#: The legal transitions, checked in one place (_move).
TRANSITIONS: dict[RecordState, frozenset[RecordState]] = {
    RecordState.AVAILABLE: frozenset({RecordState.ACQUIRED, RecordState.ARCHIVED}),
    RecordState.ACQUIRED: frozenset({RecordState.AVAILABLE, RecordState.ACKNOWLEDGED,
                                     RecordState.ARCHIVED, RecordState.ACQUIRED}),
    RecordState.ACKNOWLEDGED: frozenset(),
    RecordState.ARCHIVED: frozenset(),
}

FINAL = frozenset({RecordState.ACKNOWLEDGED, RecordState.ARCHIVED})


class AckType(enum.IntEnum):
    """ShareFetch/ShareAcknowledge acknowledge_types (RENEW: v2, KIP-1222)."""

    GAP = 0
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3
    RENEW = 4


class AcquireMode(enum.IntEnum):
    """ShareFetch v2 share_acquire_mode."""

    BATCH_OPTIMIZED = 0  # max_records may be exceeded to finish a batch
    RECORD_LIMIT = 1  # never more than max_records


@dataclass(slots=True)
class InFlightRecord:
    state: RecordState
    delivery_count: int
    member_id: str | None = None
    lock_deadline_ms: int = 0


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """A batch read from the log: offsets [base_offset, last_offset].
    Not deliverable: a control batch, or an aborted transaction's batch read
    under read_committed."""

    base_offset: int
    last_offset: int
    deliverable: bool = True


@dataclass(frozen=True, slots=True)
class AcquiredRange:
    first_offset: int
    last_offset: int
    delivery_count: int


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Offsets [first_offset, last_offset] with one ack type for all, or one
    per offset."""

    first_offset: int
    last_offset: int
    types: tuple[int, ...]


class SharePartition:
    def __init__(self, state: ShareState, *, delivery_count_limit: int = 5,
                 max_record_locks: int = 2000) -> None:
        if state.start_offset == UNINITIALIZED_START_OFFSET:
            raise ValueError("the start offset must be resolved before loading")
        self.delivery_count_limit = delivery_count_limit
        self.max_record_locks = max_record_locks
        self.state_epoch = state.state_epoch
        self.start_offset = state.start_offset
        self.end_offset = self.start_offset
        self._records: dict[int, InFlightRecord] = {}
        # No offset below this one is AVAILABLE: next_fetch_offset scans
        # from here, not from the SPSO (a full window of acquired records
        # was scanned on every fetch: a second of a 100,000-record ETL).
        self._scan_from = self.start_offset
        self._load(state.batches)

    def _load(self, batches: Iterable[StateBatch]) -> None:
        for batch in batches:
            for offset in range(max(batch.first_offset, self.start_offset),
                                batch.last_offset + 1):
                state = (RecordState.AVAILABLE if batch.delivery_state in (
                    DeliveryState.AVAILABLE, DeliveryState.ACQUIRED)
                    else RecordState.ACKNOWLEDGED
                    if batch.delivery_state == DeliveryState.ACKNOWLEDGED
                    else RecordState.ARCHIVED)
                self._records[offset] = InFlightRecord(state, batch.delivery_count)
                self.end_offset = max(self.end_offset, offset + 1)
        # Offsets between stored batches were never handed out.
        for offset in range(self.start_offset, self.end_offset):
            self._records.setdefault(offset, InFlightRecord(RecordState.AVAILABLE, 0))
        self._advance_start()

    # -- queries -------------------------------------------------------------

    def record(self, offset: int) -> InFlightRecord | None:
        return self._records.get(offset)

    @property
    def in_flight(self) -> int:
        return self.end_offset - self.start_offset

    def next_fetch_offset(self) -> int | None:
        """Where the next share fetch reads the log from: the first AVAILABLE
        offset in the window, else the end of the window; None when the
        window is full and nothing in it is available."""
        records = self._records
        for offset in range(max(self._scan_from, self.start_offset), self.end_offset):
            if records[offset].state is RecordState.AVAILABLE:
                self._scan_from = offset
                return offset
        self._scan_from = self.end_offset
        return self.end_offset if self.in_flight < self.max_record_locks else None

    def acquired_by(self, member_id: str) -> list[int]:
        return [offset for offset, rec in self._records.items()
                if rec.state is RecordState.ACQUIRED and rec.member_id == member_id]

    def next_lock_deadline(self) -> int | None:
        deadlines = [rec.lock_deadline_ms for rec in self._records.values()
                     if rec.state is RecordState.ACQUIRED]
        return min(deadlines) if deadlines else None

    # -- transitions ---------------------------------------------------------

    def _move(self, rec: InFlightRecord, new: RecordState) -> None:
        if new not in TRANSITIONS[rec.state]:
            raise AssertionError(f"illegal share record transition {rec.state} -> {new}")
        rec.state = new
        if new is not RecordState.ACQUIRED:
            rec.member_id = None
            rec.lock_deadline_ms = 0

    def _release(self, rec: InFlightRecord) -> None:
        """Back to AVAILABLE, or ARCHIVED once out of delivery attempts."""
        if rec.delivery_count >= self.delivery_count_limit:
            self._move(rec, RecordState.ARCHIVED)
        else:
            self._move(rec, RecordState.AVAILABLE)
            self._scan_from = self.start_offset  # (records do not know their offsets)

    def _advance_start(self) -> None:
        records = self._records
        start = self.start_offset
        while start < self.end_offset and records[start].state in FINAL:
            del records[start]
            start += 1
        self.start_offset = start

    def acquire(self, member_id: str, read_offset: int, batches: Sequence[FetchedBatch], *,
                max_records: int, lock_duration_ms: int, now_ms: int,
                mode: AcquireMode = AcquireMode.BATCH_OPTIMIZED) -> list[AcquiredRange]:
        """Acquire for `member_id` the deliverable offsets of `batches`, read
        from the log at `read_offset` (next_fetch_offset()), in order, up to
        max_records. Offsets in no batch before the last one read do not
        exist in the log any more and are archived."""
        acquired: list[AcquiredRange] = []
        count = 0
        expected = read_offset
        deadline = now_ms + lock_duration_ms
        for batch in batches:
            if batch.last_offset < expected:
                continue
            if count >= max_records:
                break
            if batch.base_offset > expected and not self._archive_missing(expected,
                                                                          batch.base_offset):
                break
            offset = max(batch.base_offset, expected)
            stopped = False
            while offset <= batch.last_offset:
                if count >= max_records and (mode is AcquireMode.RECORD_LIMIT
                                             or offset == batch.base_offset):
                    stopped = True
                    break
                if offset >= self.end_offset:
                    # Offsets never handed out: entered as one run (the common case).
                    limit = max_records - count if mode is AcquireMode.RECORD_LIMIT \
                        and batch.deliverable else batch.last_offset + 1 - offset
                    made = self._enter_run(offset, min(batch.last_offset + 1 - offset, limit),
                                           member_id if batch.deliverable else None, deadline)
                    if made == 0:
                        stopped = True
                        break
                    if batch.deliverable:
                        count += made
                        _append_run(acquired, offset, offset + made - 1)
                    offset += made
                    expected = offset
                    continue
                expected = offset + 1
                rec = self._slot(offset)
                offset += 1
                if rec is None or rec.state is not RecordState.AVAILABLE:
                    continue
                # A record restored AVAILABLE at the limit was acquired by a
                # consumer that never answered before a restart: no more tries.
                if not batch.deliverable or rec.delivery_count >= self.delivery_count_limit:
                    self._move(rec, RecordState.ARCHIVED)
                    continue
                self._move(rec, RecordState.ACQUIRED)
                rec.delivery_count += 1
                rec.member_id = member_id
                rec.lock_deadline_ms = deadline
                count += 1
                _append_range(acquired, expected - 1, rec.delivery_count)
            if stopped:
                break
        if self._scan_from == read_offset:
            # Every AVAILABLE offset in [read_offset, expected) was acquired or archived.
            self._scan_from = max(self._scan_from, expected)
        self._advance_start()
        return acquired

    def _slot(self, offset: int) -> InFlightRecord | None:
        """The record at `offset`, entering the window if it is the next one
        and the window has room (None: no room)."""
        if offset < self.start_offset:
            return InFlightRecord(RecordState.ARCHIVED, 0)  # already finished
        rec = self._records.get(offset)
        if rec is not None:
            return rec
        if offset != self.end_offset or self.in_flight >= self.max_record_locks:
            return None
        rec = self._records[offset] = InFlightRecord(RecordState.AVAILABLE, 0)
        self.end_offset += 1
        return rec

    def _enter_run(self, first: int, length: int, member_id: str | None, deadline: int) -> int:
        """Enter up to `length` new offsets from `first` (the window's end),
        acquired by `member_id` (None: archived, undeliverable); how many the
        window had room for."""
        if first != self.end_offset:
            return 0
        length = min(length, self.start_offset + self.max_record_locks - first)
        records = self._records
        if member_id is None:
            for offset in range(first, first + length):
                records[offset] = InFlightRecord(RecordState.ARCHIVED, 0)
        else:
            for offset in range(first, first + length):
                records[offset] = InFlightRecord(RecordState.ACQUIRED, 1, member_id, deadline)
        self.end_offset = first + max(length, 0)
        return max(length, 0)

    def _archive_missing(self, first: int, end: int) -> bool:
        """Archive offsets [first, end) that the log does not have; False if
        the window had no room for all of them."""
        for offset in range(first, end):
            rec = self._slot(offset)
            if rec is None:
                return False
            if rec.state is RecordState.AVAILABLE:
                self._move(rec, RecordState.ARCHIVED)
        return True

    def acknowledge(self, member_id: str, acks: Sequence[Acknowledgement], *,
                    lock_duration_ms: int, now_ms: int, renew_allowed: bool = False) -> None:
        """Apply a member's acknowledgements, all or none: INVALID_REQUEST
        for malformed ranges or types, INVALID_RECORD_STATE if any offset is
        not acquired by the member."""
        previous = -1
        for ack in acks:
            _validate(ack, previous, renew_allowed)
            previous = ack.last_offset
        for ack in acks:
            # Bounds first: the offsets looked at one by one are then at most
            # the window's, whatever range a client sends.
            if ack.first_offset < self.start_offset or ack.last_offset >= self.end_offset:
                raise InvalidRecordStateError(
                    f"offsets {ack.first_offset}-{ack.last_offset} are not all in flight")
            for offset in range(ack.first_offset, ack.last_offset + 1):
                rec = self._records.get(offset)
                if rec is None or rec.state is not RecordState.ACQUIRED \
                        or rec.member_id != member_id:
                    raise InvalidRecordStateError(
                        f"offset {offset} is not acquired by member {member_id}")
        for ack in acks:
            for offset in range(ack.first_offset, ack.last_offset + 1):
                rec = self._records[offset]
                ack_type = ack.types[0] if len(ack.types) == 1 \
                    else ack.types[offset - ack.first_offset]
                if ack_type == AckType.ACCEPT:
                    self._move(rec, RecordState.ACKNOWLEDGED)
                elif ack_type == AckType.RELEASE:
                    self._release(rec)
                elif ack_type == AckType.RENEW:
                    self._move(rec, RecordState.ACQUIRED)
                    rec.lock_deadline_ms = now_ms + lock_duration_ms
                else:  # REJECT, GAP
                    self._move(rec, RecordState.ARCHIVED)
        self._advance_start()

    def release_member(self, member_id: str) -> bool:
        """Make every record `member_id` holds deliverable again (its share
        session closed, its connection dropped, or it left the group)."""
        released = False
        for rec in self._records.values():
            if rec.state is RecordState.ACQUIRED and rec.member_id == member_id:
                self._release(rec)
                released = True
        self._advance_start()
        return released

    def expire_locks(self, now_ms: int) -> bool:
        """Release the records whose acquisition lock has run out."""
        expired = False
        for rec in self._records.values():
            if rec.state is RecordState.ACQUIRED and rec.lock_deadline_ms <= now_ms:
                self._release(rec)
                expired = True
        self._advance_start()
        return expired

    def advance_log_start(self, log_start_offset: int) -> bool:
        """Records deleted from the log (retention, DeleteRecords) can no
        longer be delivered: the SPSO moves to the log start offset."""
        if log_start_offset <= self.start_offset:
            return False
        for offset in range(self.start_offset, min(log_start_offset, self.end_offset)):
            del self._records[offset]
        self.start_offset = log_start_offset
        self.end_offset = max(self.end_offset, log_start_offset)
        self._advance_start()
        return True

    def snapshot(self, leader_epoch: int) -> ShareState:
        """The state to persist: runs of equal (state, delivery count), an
        acquired record written as AVAILABLE, and how many offsets of the
        window are finished."""
        # One pass over the window (it runs after every acknowledgement).
        batches: list[StateBatch] = []
        records = self._records
        persisted = _PERSISTED
        complete = 0  # KIP-1226: finished offsets past the SPSO, for the group's lag
        first = self.start_offset
        run_state: int = -1
        run_count = 0
        for offset in range(self.start_offset, self.end_offset):
            rec = records[offset]
            state = persisted[rec.state]
            if state >= DeliveryState.ACKNOWLEDGED:
                complete += 1
            if state == run_state and rec.delivery_count == run_count:
                continue
            if run_state >= 0:
                batches.append(StateBatch(first, offset - 1, DeliveryState(run_state), run_count))
            first, run_state, run_count = offset, state, rec.delivery_count
        if run_state >= 0:
            batches.append(StateBatch(first, self.end_offset - 1, DeliveryState(run_state),
                                      run_count))
        return ShareState(self.state_epoch, leader_epoch, self.start_offset, tuple(batches),
                          complete)


_PERSISTED = {
    RecordState.AVAILABLE: DeliveryState.AVAILABLE,
    RecordState.ACQUIRED: DeliveryState.AVAILABLE,
    RecordState.ACKNOWLEDGED: DeliveryState.ACKNOWLEDGED,
    RecordState.ARCHIVED: DeliveryState.ARCHIVED,
}


def _append_range(ranges: list[AcquiredRange], offset: int, delivery_count: int) -> None:
    last = ranges[-1] if ranges else None
    if last is not None and last.last_offset == offset - 1 \
            and last.delivery_count == delivery_count:
        ranges[-1] = AcquiredRange(last.first_offset, offset, delivery_count)
    else:
        ranges.append(AcquiredRange(offset, offset, delivery_count))


def _append_run(ranges: list[AcquiredRange], first: int, last: int) -> None:
    """First deliveries of [first, last]."""
    previous = ranges[-1] if ranges else None
    if previous is not None and previous.last_offset == first - 1 \
            and previous.delivery_count == 1:
        ranges[-1] = AcquiredRange(previous.first_offset, last, 1)
    else:
        ranges.append(AcquiredRange(first, last, 1))


def _validate(ack: Acknowledgement, previous_last: int, renew_allowed: bool) -> None:
    """Kafka's rules for acknowledgement batches: ascending, not overlapping,
    one type or one per offset, each a known type."""
    if ack.first_offset < 0 or ack.last_offset < ack.first_offset:
        raise InvalidRequestError(f"bad acknowledgement range {ack.first_offset}-{ack.last_offset}")
    if ack.first_offset <= previous_last:
        raise InvalidRequestError("acknowledgement batches overlap or are not in order")
    if len(ack.types) not in (1, ack.last_offset - ack.first_offset + 1):
        raise InvalidRequestError("acknowledge_types must have one type or one per offset")
    top = AckType.RENEW if renew_allowed else AckType.REJECT
    for ack_type in ack.types:
        if not 0 <= ack_type <= top:
            raise InvalidRequestError(f"unknown acknowledge type {ack_type}")
