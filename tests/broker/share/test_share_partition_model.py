"""SharePartition against a plain reference model (hypothesis stateful).

The model keeps one state per log offset, forever, and recomputes the SPSO
as the first unfinished offset; the share partition keeps only its window.
Both see the same log (batches, control batches, offsets compacted away) and
the same fetches, acknowledgements, lock expiries, member departures, log
start moves and restarts (state persisted and loaded again).
"""

from __future__ import annotations

from dataclasses import dataclass

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from strom.broker.share.share_partition import (
    Acknowledgement,
    AckType,
    AcquiredRange,
    AcquireMode,
    FetchedBatch,
    RecordState,
    SharePartition,
)
from strom.coordinator.share.persister import ShareState
from strom.errors import InvalidRecordStateError, InvalidRequestError

MEMBERS = ("a", "b", "c")
LOCK_MS = 100
AV, AQ, ACK, ARC = (RecordState.AVAILABLE, RecordState.ACQUIRED, RecordState.ACKNOWLEDGED,
                    RecordState.ARCHIVED)


@dataclass
class ModelRecord:
    state: RecordState
    count: int = 0
    member: str | None = None
    deadline: int = 0


class SharePartitionModel(RuleBasedStateMachine):
    @initialize(
        layout=st.lists(st.tuples(st.integers(1, 4), st.sampled_from(["data", "data", "control",
                                                                      "missing"])),
                        min_size=1, max_size=10),
        limit=st.integers(1, 3), locks=st.integers(2, 8))
    def start(self, layout: list[tuple[int, str]], limit: int, locks: int) -> None:
        self.batches: list[FetchedBatch] = []
        self.kind: dict[int, str] = {}
        offset = 0
        for size, kind in layout:
            if kind != "missing":
                self.batches.append(FetchedBatch(offset, offset + size - 1, kind == "data"))
            for o in range(offset, offset + size):
                self.kind[o] = kind
            offset += size
        while self.batches and self.kind[offset - 1] == "missing":  # the log ends at its last batch
            offset -= 1
        self.log_end = offset
        self.limit, self.locks = limit, locks
        self.now = 0
        self.log_start = 0
        self.model: dict[int, ModelRecord] = {}  # seen offsets
        self.sut = SharePartition(ShareState(0, 0, 0, ()), delivery_count_limit=limit,
                                  max_record_locks=locks)

    # -- the model -----------------------------------------------------------

    def m_end(self) -> int:
        end = 0
        while end in self.model:
            end += 1
        return end

    def m_start(self) -> int:
        start, end = 0, self.m_end()
        while start < end and self.model[start].state in (ACK, ARC):
            start += 1
        return start

    def m_release(self, rec: ModelRecord) -> None:
        rec.state = ARC if rec.count >= self.limit else AV
        rec.member, rec.deadline = None, 0

    def m_next_fetch(self) -> int | None:
        start, end = self.m_start(), self.m_end()
        for o in range(start, end):
            if self.model[o].state is AV:
                return o
        return end if end - start < self.locks else None

    # -- rules ---------------------------------------------------------------

    @rule(member=st.sampled_from(MEMBERS), max_records=st.integers(1, 6),
          mode=st.sampled_from(AcquireMode), max_batches=st.integers(1, 4))
    def acquire(self, member: str, max_records: int, mode: AcquireMode, max_batches: int) -> None:
        read = self.sut.next_fetch_offset()
        assert read == self.m_next_fetch()
        if read is None:
            return
        # The log read from `read` (up to its end), cut after max_batches as
        # max_bytes would.
        fetched = [b for b in self.batches if b.last_offset >= read][:max_batches]
        got = self.sut.acquire(member, read, fetched, max_records=max_records,
                               lock_duration_ms=LOCK_MS, now_ms=self.now, mode=mode)
        expected = self.m_acquire(member, read, fetched, max_records, mode)
        assert got == expected

    def m_acquire(self, member: str, read: int, fetched: list[FetchedBatch], max_records: int,
                  mode: AcquireMode) -> list[AcquiredRange]:
        if not fetched:
            return []
        bases = {b.base_offset for b in fetched}
        start = self.m_start()
        acquired: list[AcquiredRange] = []
        count = 0
        for o in range(read, fetched[-1].last_offset + 1):
            boundary = o in bases or self.kind[o] == "missing"
            if count >= max_records and (mode is AcquireMode.RECORD_LIMIT or boundary):
                break
            if o not in self.model:
                if o - start >= self.locks:
                    break
                self.model[o] = ModelRecord(AV)
            rec = self.model[o]
            if rec.state is not AV:
                continue
            if self.kind[o] != "data" or rec.count >= self.limit:
                rec.state = ARC
                continue
            rec.state, rec.count, rec.member, rec.deadline = AQ, rec.count + 1, member, \
                self.now + LOCK_MS
            count += 1
            if acquired and acquired[-1].last_offset == o - 1 \
                    and acquired[-1].delivery_count == rec.count:
                acquired[-1] = AcquiredRange(acquired[-1].first_offset, o, rec.count)
            else:
                acquired.append(AcquiredRange(o, o, rec.count))
        return acquired

    def acquired(self, member: str) -> list[int]:
        return sorted(o for o, r in self.model.items() if r.state is AQ and r.member == member)

    @precondition(lambda self: any(r.state is AQ for r in self.model.values()))
    @rule(data=st.data())
    def acknowledge_own(self, data: st.DataObject) -> None:
        member = data.draw(st.sampled_from([m for m in MEMBERS if self.acquired(m)]))
        held = self.acquired(member)
        first = data.draw(st.sampled_from(held))
        last = first
        while last + 1 in held and data.draw(st.booleans()):
            last += 1
        per_offset = data.draw(st.booleans())
        types = tuple(data.draw(st.lists(st.sampled_from(AckType), min_size=last - first + 1,
                                         max_size=last - first + 1))) if per_offset \
            else (data.draw(st.sampled_from(AckType)),)
        self.sut.acknowledge(member, [Acknowledgement(first, last, types)],
                             lock_duration_ms=LOCK_MS, now_ms=self.now, renew_allowed=True)
        for o in range(first, last + 1):
            rec = self.model[o]
            t = types[0] if len(types) == 1 else types[o - first]
            if t == AckType.ACCEPT:
                rec.state, rec.member, rec.deadline = ACK, None, 0
            elif t == AckType.RELEASE:
                self.m_release(rec)
            elif t == AckType.RENEW:
                rec.deadline = self.now + LOCK_MS
            else:
                rec.state, rec.member, rec.deadline = ARC, None, 0

    @rule(member=st.sampled_from(MEMBERS), first=st.integers(0, 40), length=st.integers(1, 4),
          ack_type=st.integers(-1, 5))
    def acknowledge_any(self, member: str, first: int, length: int, ack_type: int) -> None:
        """Whatever a client sends: all or nothing."""
        last = first + length - 1
        valid_type = 0 <= ack_type <= 3
        held = all(o in self.model and self.model[o].state is AQ
                   and self.model[o].member == member for o in range(first, last + 1))
        before = self.sut.snapshot(0), {o: self.sut.record(o) for o in range(first, last + 1)}
        try:
            self.sut.acknowledge(member, [Acknowledgement(first, last, (ack_type,))],
                                 lock_duration_ms=LOCK_MS, now_ms=self.now)
        except InvalidRequestError:
            assert not valid_type
        except InvalidRecordStateError:
            assert valid_type and not held
        else:
            assert valid_type and held
            for o in range(first, last + 1):
                rec = self.model[o]
                if ack_type == AckType.ACCEPT:
                    rec.state, rec.member, rec.deadline = ACK, None, 0
                elif ack_type == AckType.RELEASE:
                    self.m_release(rec)
                else:
                    rec.state, rec.member, rec.deadline = ARC, None, 0
            return
        assert self.sut.snapshot(0) == before[0]

    @rule(member=st.sampled_from(MEMBERS))
    def member_leaves(self, member: str) -> None:
        released = self.sut.release_member(member)
        held = self.acquired(member)
        assert released == bool(held)
        for o in held:
            self.m_release(self.model[o])

    @rule(ms=st.integers(0, 150))
    def time_passes(self, ms: int) -> None:
        self.now += ms
        self.sut.expire_locks(self.now)
        for rec in self.model.values():
            if rec.state is AQ and rec.deadline <= self.now:
                self.m_release(rec)

    @rule(by=st.integers(1, 5))
    def log_start_moves(self, by: int) -> None:
        """Retention deletes the log's first offsets."""
        self.log_start = min(self.log_start + by, self.log_end)
        self.sut.advance_log_start(self.log_start)
        self.batches = [b for b in self.batches if b.last_offset >= self.log_start]
        for o in range(self.log_start):
            self.kind[o] = "missing"
            self.model[o] = ModelRecord(ARC)

    @rule()
    def restart(self) -> None:
        """The state persisted, then loaded by a new leader."""
        self.sut = SharePartition(self.sut.snapshot(0), delivery_count_limit=self.limit,
                                  max_record_locks=self.locks)
        for rec in self.model.values():
            if rec.state is AQ:
                rec.state, rec.member, rec.deadline = AV, None, 0

    # -- agreement -----------------------------------------------------------

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "sut"):
            return
        start, end = self.m_start(), self.m_end()
        assert (self.sut.start_offset, self.sut.end_offset) == (start, end)
        assert self.sut.in_flight <= self.locks
        for o in range(start, end):
            rec, want = self.sut.record(o), self.model[o]
            assert rec is not None
            assert (rec.state, rec.delivery_count, rec.member_id) == \
                (want.state, want.count, want.member), o
            if rec.state is AQ:
                assert rec.lock_deadline_ms == want.deadline
        assert self.sut.record(start - 1) is None
        assert self.sut.record(end) is None
        assert self.sut.snapshot(0).delivery_complete_count == sum(
            1 for o in range(start, end) if self.model[o].state in (ACK, ARC))
        deadlines = [r.deadline for r in self.model.values() if r.state is AQ]
        assert self.sut.next_lock_deadline() == (min(deadlines) if deadlines else None)


SharePartitionModel.TestCase.settings = settings(max_examples=300, stateful_step_count=40,
                                                 deadline=None)
TestSharePartitionModel = SharePartitionModel.TestCase
