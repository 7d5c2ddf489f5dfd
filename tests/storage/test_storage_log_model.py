"""Model-based test: random operations on a PartitionLog against a plain list
of batches, including clean and unclean restarts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from storage_helpers import T0, append_batch, crash, make_batch, records

from strom.clock import ManualClock
from strom.errors import OffsetOutOfRangeError
from strom.protocol.records import Compression
from strom.storage.log import LogConfig
from strom.storage.log_open import open_log


@dataclass
class Batch:
    base: int
    last: int
    data: bytes
    stamps: list[int]


class Model:
    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.epochs: list[tuple[int, int]] = []

    def records(self) -> list[tuple[int, int]]:
        return [(b.base + i, ts) for b in self.batches for i, ts in enumerate(b.stamps)]

    def truncate_epochs_from_start(self, offset: int) -> None:
        if not self.epochs or self.epochs[0][1] >= offset:
            return
        covering = [e for e in self.epochs if e[1] <= offset][-1]
        self.epochs = [(covering[0], offset)] + [e for e in self.epochs if e[1] > offset]

    def expected_read(self, start: int, max_bytes: int, max_offset: int, min_one: bool) -> bytes:
        if start >= max_offset or start == self.log_end_offset:
            return b""
        out: list[bytes] = []
        total = 0
        for batch in self.batches:
            if batch.last < start:
                continue
            if batch.last >= max_offset:
                break
            if total + len(batch.data) > max_bytes and not (min_one and not out):
                break
            out.append(batch.data)
            total += len(batch.data)
        return b"".join(out)


class Runner:
    def __init__(self, directory: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.directory = directory
        self.clock = ManualClock(T0)
        self.config = LogConfig(
            segment_bytes=self.rng.choice([400, 700, 2000]),
            segment_index_bytes=self.rng.choice([40, 96, 10485760]),
            index_interval_bytes=self.rng.choice([0, 150, 500]),
            retention_ms=-1,
            retention_bytes=-1,
        )
        self.log = open_log(directory, self.config, clock=self.clock,
                            rng=random.Random(seed))
        self.model = Model()
        self.epoch = 0
        self.last_read = -1

    # -- operations ---------------------------------------------------------

    def append(self) -> None:
        rng = self.rng
        n = rng.randint(1, 4)
        values = [rng.randbytes(rng.randint(0, 60)) for _ in range(n)]
        stamps = [T0 + rng.randint(0, 2000) for _ in range(n)]
        compression = rng.choice([Compression.NONE, Compression.NONE, Compression.GZIP])
        if rng.random() < 0.1:
            self.epoch += rng.randint(1, 3)
        buf = make_batch(values, stamps, compression=compression)
        info = append_batch(self.log, buf, epoch=self.epoch)
        m = self.model
        assert info.first_offset == m.log_end_offset
        assert info.last_offset == m.log_end_offset + n - 1
        assert info.max_timestamp == max(stamps)
        assert info.offset_of_max_timestamp == info.first_offset + stamps.index(max(stamps))
        m.batches.append(Batch(info.first_offset, info.last_offset, bytes(buf), stamps))
        if not m.epochs or self.epoch > m.epochs[-1][0]:
            # Kafka's assign: entries the new one contradicts go first.
            m.epochs = [e for e in m.epochs if e[1] < info.first_offset]
            m.epochs.append((self.epoch, info.first_offset))
        m.log_end_offset = info.last_offset + 1

    def read(self) -> None:
        rng, m = self.rng, self.model
        start = rng.randint(m.log_start_offset, m.log_end_offset)
        if m.log_start_offset <= self.last_read <= m.log_end_offset and rng.random() < 0.5:
            # As a consumer whose next batch did not fit asks again: the
            # segment answers a repeated offset from what it found last time,
            # which a truncation since must have forgotten.
            start = self.last_read
        self.last_read = start
        max_offset = rng.randint(start, m.log_end_offset + 1)
        max_bytes = rng.choice([0, 50, 200, 1000, 1 << 20])
        min_one = rng.random() < 0.5
        result = self.log.read(start, max_bytes, max_offset=max_offset, min_one_batch=min_one)
        data = result.to_bytes()
        assert data == m.expected_read(start, max_bytes, max_offset, min_one)
        assert result.size == len(data)
        for bad in (m.log_start_offset - 1, m.log_end_offset + 1):
            if bad >= 0 or bad == m.log_start_offset - 1:
                with pytest.raises(OffsetOutOfRangeError):
                    self.log.read(bad, 100, max_offset=m.log_end_offset, min_one_batch=True)

    def timestamps(self) -> None:
        m = self.model
        target = T0 + self.rng.randint(-10, 2010)
        candidates = [(o, ts) for o, ts in m.records() if o >= m.log_start_offset and ts >= target]
        expected = min(candidates) if candidates else None
        assert self.log.offset_for_timestamp(target) == expected
        physical = m.records()
        if physical:
            top = max(ts for _, ts in physical)
            assert self.log.max_timestamp() == (top, min(o for o, ts in physical if ts == top))
        else:
            assert self.log.max_timestamp() == (-1, -1)

    def truncate(self) -> None:
        m = self.model
        target = self.rng.choice([b.base for b in m.batches] + [m.log_end_offset])
        first_base = self.log.segments[0].base_offset
        self.log.truncate_to(target)
        if target >= m.log_end_offset:
            # No record goes, as in Kafka; but, as Kafka's truncateTo does, an
            # epoch started at the log end without records is dropped (a former
            # leader that wrote nothing in its epoch must not claim it).
            self._forget_epochs_at_end()
            return
        m.batches = [b for b in m.batches if b.last < target]
        if target < first_base:
            m.batches, m.epochs, m.log_start_offset = [], [], target
        m.log_end_offset = target
        m.log_start_offset = min(m.log_start_offset, target)
        m.epochs = [e for e in m.epochs if e[1] < target]
        self.epoch = max([self.epoch] + [e[0] for e in m.epochs])

    def truncate_fully(self) -> None:
        m = self.model
        target = m.log_end_offset + self.rng.randint(0, 5)
        self.log.truncate_fully_and_start_at(target)
        m.batches, m.epochs = [], []
        m.log_start_offset = m.log_end_offset = target

    def delete_records(self) -> None:
        m = self.model
        target = self.rng.randint(m.log_start_offset, m.log_end_offset)
        self.log.advance_log_start_offset(target)
        m.log_start_offset = target
        m.truncate_epochs_from_start(target)
        self._sync_physical()

    def retention(self) -> None:
        rng, m = self.rng, self.model
        config = LogConfig(
            segment_bytes=self.config.segment_bytes,
            segment_index_bytes=self.config.segment_index_bytes,
            index_interval_bytes=self.config.index_interval_bytes,
            retention_bytes=rng.choice([-1, 300, 1500]),
            retention_ms=rng.choice([-1, 500, 1500]),
        )
        self.log.update_config(config)
        before = self.log.size_in_bytes
        self.log.apply_retention(T0 + 2000 + rng.randint(0, 1000))
        if config.retention_ms < 0 <= config.retention_bytes < before:
            # Only whole segments go, and never below retention.bytes.
            assert self.log.size_in_bytes >= min(before, config.retention_bytes) or (
                len(self.log.segments) == 1
            )
        self.log.update_config(self.config)
        new_start = self.log.log_start_offset
        assert new_start >= m.log_start_offset
        m.log_start_offset = new_start
        m.truncate_epochs_from_start(new_start)
        self._sync_physical()

    def _sync_physical(self) -> None:
        first_base = self.log.segments[0].base_offset
        self.model.batches = [b for b in self.model.batches if b.base >= first_base]

    def roll(self) -> None:
        self.log.roll()

    def flush(self) -> None:
        self.log.flush()
        assert self.log.recovery_point == self.model.log_end_offset

    def advance_clock(self) -> None:
        self.clock.advance(self.rng.randint(0, 1000))

    def _forget_epochs_at_end(self) -> None:
        # The loader drops entries starting at or past the log end, like Kafka's.
        m = self.model
        m.epochs = [e for e in m.epochs if e[1] < m.log_end_offset]

    def reopen_clean(self) -> None:
        self._forget_epochs_at_end()
        rp = self.log.recovery_point
        self.log.close(flush=self.rng.random() < 0.5)
        self.log = open_log(
            self.directory, self.config, clock=self.clock, had_clean_shutdown=True,
            recovery_point=rp, log_start_offset=self.model.log_start_offset,
        )

    def reopen_after_crash(self) -> None:
        self._forget_epochs_at_end()
        rp = self.log.recovery_point
        crash(self.log)
        self.log = open_log(
            self.directory, self.config, clock=self.clock, had_clean_shutdown=False,
            recovery_point=rp, log_start_offset=self.model.log_start_offset,
        )

    # -- checks -------------------------------------------------------------

    def check(self) -> None:
        log, m = self.log, self.model
        assert log.log_end_offset == m.log_end_offset
        assert log.log_start_offset == m.log_start_offset
        assert 0 <= log.recovery_point <= log.log_end_offset
        bases = [s.base_offset for s in log.segments]
        assert bases == sorted(set(bases))
        assert bases[0] <= log.log_start_offset <= log.log_end_offset
        assert log.size_in_bytes == sum(s.size for s in log.segments)
        assert log.size_in_bytes == sum(len(b.data) for b in m.batches)
        assert log.leader_epoch_cache.entries() == m.epochs
        assert sum(1 for s in log.segments if s.active) == 1 and log.segments[-1].active

    def run(self, steps: int) -> None:
        operations = [
            (self.append, 30), (self.read, 15), (self.timestamps, 6), (self.truncate, 2),
            (self.truncate_fully, 0.3), (self.delete_records, 2), (self.retention, 2),
            (self.roll, 1), (self.flush, 2), (self.advance_clock, 2), (self.reopen_clean, 1),
            (self.reopen_after_crash, 1),
        ]
        ops, weights = zip(*operations, strict=True)
        for _ in range(steps):
            op = self.rng.choices(ops, weights)[0]
            op()
            self.check()
        # Whatever happened, a final full read matches the model.
        all_records = records(self.log.read(
            self.model.log_start_offset, 1 << 30, max_offset=self.model.log_end_offset,
            min_one_batch=True,
        ).to_bytes())
        model_offsets = [o for o, _ in self.model.records()
                         if o >= min((b.base for b in self.model.batches if
                                      b.last >= self.model.log_start_offset), default=0)]
        assert [r.offset for r in all_records] == model_offsets
        self.log.close()


@pytest.mark.parametrize("seed", range(12))
def test_partition_log_against_model(tmp_path: Path, seed: int) -> None:
    Runner(tmp_path / "model-0", seed).run(400)
