"""The aborted-transaction index: `<segment base offset, 20 digits>.txnindex`.

Kafka's TransactionIndex format, so Kafka's tools read it: a file is a
sequence of 34-byte entries, each
  version int16 (0) | producer_id int64 | first_offset int64 |
  last_offset int64 | last_stable_offset int64
one per transaction aborted by an ABORT marker written into that segment
(first_offset: the transaction's first offset in this partition; last_offset:
the marker's offset). read_committed fetches return the aborted transactions
overlapping the fetched range so consumers can drop their records.

Invariants: entries are appended in marker order (last_offset increasing);
each append is fsync'd (aborts are rare, and an entry lost while its marker
survives would show aborted records to read_committed consumers). After a
crash, recovery replays markers above the producer-state snapshot and
re-adds their entries; an entry already present (same producer and
marker offset) is not added twice. Entries at or past a truncation point are
removed. A segment deleted by retention takes its file with it
(files.SEGMENT_SUFFIXES); entries below the log start offset are forgotten.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from strom.storage.files import TXN_INDEX_SUFFIX

VERSION = 0
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def _path(directory: Path, segment_base_offset: int) -> Path:
    return directory / f"{segment_base_offset:020d}{TXN_INDEX_SUFFIX}"


def read_entries(data: bytes) -> list[AbortedTxn]:
    """Whole entries of a file; a torn last entry (crash mid-write) is ignored."""
    out = []
    for position in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
        version, pid, first, last, lso = _ENTRY.unpack_from(data, position)
        if version != VERSION:
            raise ValueError(f"unknown transaction index entry version {version}")
        out.append(AbortedTxn(pid, first, last, lso))
    return out


class TxnIndex:
    """Every aborted transaction of one partition, by segment file."""

    def __init__(self, directory: Path, *, empty: bool = False) -> None:
        """`empty`: `directory` was just made (nothing to read)."""
        self.directory = directory
        # segment base offset -> entries, in marker order
        self._files: dict[int, list[AbortedTxn]] = {}
        self._known: set[tuple[int, int]] = set()
        if not empty:
            self._load()

    def _load(self) -> None:
        self._files = {}
        # scandir, not Path.glob: ~5 us instead of ~30 us for a directory
        # without .txnindex files, twice per log opened (8,000 new partitions).
        try:
            with os.scandir(self.directory) as entries:
                names = sorted(e.name for e in entries if e.name.endswith(TXN_INDEX_SUFFIX))
        except FileNotFoundError:
            names = []
        for name in names:
            try:
                base = int(name[: -len(TXN_INDEX_SUFFIX)])
                self._files[base] = read_entries((self.directory / name).read_bytes())
            except ValueError:
                continue
        self._known = {(e.producer_id, e.last_offset) for es in self._files.values() for e in es}

    @property
    def entries(self) -> list[AbortedTxn]:
        return [e for base in sorted(self._files) for e in self._files[base]]

    def append(self, entry: AbortedTxn, segment_base_offset: int) -> None:
        if (entry.producer_id, entry.last_offset) in self._known:
            return
        path = _path(self.directory, segment_base_offset)
        with open(path, "ab") as f:
            f.write(_ENTRY.pack(VERSION, entry.producer_id, entry.first_offset,
                                entry.last_offset, entry.last_stable_offset))
            f.flush()
            os.fsync(f.fileno())
        self._files.setdefault(segment_base_offset, []).append(entry)
        self._known.add((entry.producer_id, entry.last_offset))

    def collect(self, fetch_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper_bound_offset)."""
        return [e for e in self.entries
                if e.last_offset >= fetch_offset and e.first_offset < upper_bound_offset]

    def truncate(self, end_offset: int) -> None:
        """Remove entries whose marker is at or past `end_offset` (Kafka's
        TransactionIndex.truncateTo), after a log truncation to `end_offset`.
        The files are read again first: they are the truth (a truncated log
        deleted the files of its later segments; another TxnIndex over the same
        directory may have appended since this one was loaded)."""
        self._load()
        for base in sorted(self._files):
            kept = [e for e in self._files[base] if e.last_offset < end_offset]
            if len(kept) == len(self._files[base]):
                continue
            path = _path(self.directory, base)
            if kept:
                tmp = path.with_name(path.name + ".tmp")
                with open(tmp, "wb") as f:
                    for e in kept:
                        f.write(_ENTRY.pack(VERSION, e.producer_id, e.first_offset,
                                            e.last_offset, e.last_stable_offset))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                self._files[base] = kept
            else:
                path.unlink(missing_ok=True)
                del self._files[base]
        self._known = {(e.producer_id, e.last_offset) for es in self._files.values() for e in es}

    def forget_below(self, log_start_offset: int) -> None:
        for base in list(self._files):
            self._files[base] = [e for e in self._files[base] if e.last_offset >= log_start_offset]
