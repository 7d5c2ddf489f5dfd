"""`strom dump-log`: decode segment files offline and check their integrity,
like kafka-dump-log. Needs no broker; run it on a stopped broker's data.

Files (see strom/storage/files.py and index.py for the formats):

    <base offset>.log        record batches, magic v2
    <base offset>.index      8-byte entries: int32 relative offset, int32 position
    <base offset>.timeindex  12-byte entries: int64 timestamp, int32 relative offset

Checks, each reported as a problem (exit code 1):
- .log: every batch has a readable v2 header and a matching CRC32C, its
  records decode (count, lengths, offsets inside the batch), base offsets
  are at least the segment's and each batch starts after the previous one
  ended; no torn or unreadable bytes at the end.
- .index: entries strictly increase in offset and position, and each points
  at the start of a batch of the .log whose last offset is the entry's.
- .timeindex: timestamps strictly increase, offsets never decrease, and each
  entry names the last offset of a batch whose max timestamp is the entry's.
An active segment's index files are preallocated: entries after the first
all-zero one are not entries (Kafka's dump tool stops there too).
"""

from __future__ import annotations

import argparse
import mmap
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strom.cli.common import UsageError, add_command, add_output_arg
from strom.cli.output import Progress, Style, bytes_field, is_tty, print_json
from strom.protocol.records import (
    BATCH_HEADER_SIZE,
    BatchHeader,
    Buffer,
    Record,
    batch_crc_ok,
    decode_end_transaction_marker,
    decode_records,
    read_batch_header,
)
from strom.protocol.records.crc import crc32c
from strom.storage.files import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    parse_offset_file_name,
)

EXAMPLES = """\
  strom dump-log data/orders-0/00000000000000000000.log
  strom dump-log data/orders-0/00000000000000000000.log --print-data
  strom dump-log data/orders-0/00000000000000000000.index   # checked against the .log
  strom dump-log --check data/                               # every segment file, quietly
  strom dump-log data/orders-0 --output json
  strom dump-log --check --progress data/ 2> progress.txt  # progress even when not a terminal
"""

_SUFFIX_ORDER = {LOG_SUFFIX: 0, INDEX_SUFFIX: 1, TIME_INDEX_SUFFIX: 2}
_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
_CRC_COVERS_FROM = 21  # attributes .. end of batch (batch.py)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "dump-log", run, examples=EXAMPLES,
        help="decode and check segment files offline (like kafka-dump-log)",
        description=(__doc__ or "").split("\n\n", 1)[1])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help=".log, .index or .timeindex files, or directories to search")
    parser.add_argument("--print-data", "--print-data-log", action="store_true",
                        help="also print every record: key, value, headers")
    parser.add_argument("--check", action="store_true",
                        help="print only problems and a summary")
    parser.add_argument("--progress", action="store_true", default=None,
                        help="show progress (bytes read of all files, rate) on stderr even "
                             "when it is not a terminal (default: on a terminal, when the "
                             "dump itself does not go to that terminal: --check, --output "
                             "json or stdout redirected)")
    add_output_arg(parser)


@dataclass(frozen=True, slots=True)
class Batch:
    position: int
    base_offset: int
    last_offset: int
    max_timestamp: int


@dataclass
class FileReport:
    path: Path
    kind: str
    base_offset: int
    items: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Sink:
    """Where a dump goes: streamed text lines, or JSON kept for the end."""

    def __init__(self, *, json_output: bool, check_only: bool, print_data: bool,
                 progress: Progress | None = None) -> None:
        self.json_output = json_output
        self.check_only = check_only
        self.print_data = print_data
        self.style = Style(sys.stdout)
        self.progress = progress

    def advance(self, nbytes: int) -> None:
        if self.progress is not None:
            self.progress.advance(nbytes)

    def begin(self, report: FileReport) -> None:
        if not self.json_output and not self.check_only:
            print(f"Dumping {report.path}")
            if report.kind == "log":
                print(f"Log starting offset: {report.base_offset}")

    def item(self, report: FileReport, item: dict[str, Any], line: str) -> None:
        if self.json_output:
            if not self.check_only:
                report.items.append(item)
        elif not self.check_only:
            print(line)

    def line(self, text: str) -> None:
        """A line that only the text dump shows (a record under its batch)."""
        if not self.json_output and not self.check_only:
            print(text)

    def note(self, report: FileReport, message: str) -> None:
        report.notes.append(message)
        if not self.json_output and not self.check_only:
            print(f"note: {message}")

    def problem(self, report: FileReport, message: str) -> None:
        report.problems.append(message)
        if not self.json_output:
            where = f"{report.path}: " if self.check_only else ""
            if self.progress is not None:
                self.progress.close()  # the line is redrawn below the problem
            print(f"{self.style('problem:', 'bold', 'red')} {where}{message}")


# ------------------------------------------------------------------ files


def _segment_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            candidates = [p for p in path.rglob("*") if p.is_file()]
            found += [p for p in candidates if _segment_kind(p) is not None]
        elif path.is_file():
            if _segment_kind(path) is None:
                raise UsageError(f"{path}: not a segment file (<20-digit offset>.log, "
                                 ".index or .timeindex)")
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    unique = dict.fromkeys(found)
    return sorted(unique, key=_sort_key)


def _segment_kind(path: Path) -> str | None:
    parsed = parse_offset_file_name(path.name)
    if parsed is None or parsed[2]:  # "...log.deleted" and friends are leftovers
        return None
    return {LOG_SUFFIX: "log", INDEX_SUFFIX: "index", TIME_INDEX_SUFFIX: "timeindex"}.get(
        parsed[1])


def _sort_key(path: Path) -> tuple[str, int, int]:
    parsed = parse_offset_file_name(path.name)
    assert parsed is not None
    return str(path.parent), parsed[0], _SUFFIX_ORDER[parsed[1]]


class _Mapped:
    """A file's bytes, memory-mapped read-only (segments can be large)."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._map: mmap.mmap | None = None
        size = path.stat().st_size
        self.data: Buffer = b""
        if size:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.data = memoryview(self._map)

    def close(self) -> None:
        if self._map is not None:
            try:
                if isinstance(self.data, memoryview):
                    self.data.release()
                self._map.close()
            except BufferError:  # a view is still alive; the GC closes it
                pass
        self._file.close()


# ------------------------------------------------------------------ .log


def _timestamp_label(header: BatchHeader) -> str:
    return "LogAppendTime" if header.timestamp_type.name == "LOG_APPEND_TIME" else "CreateTime"


def _batch_item(header: BatchHeader, crc_ok: bool) -> tuple[dict[str, Any], str]:
    try:
        codec = header.compression.name.lower()
    except Exception:  # an unknown codec id: reported as a problem by the caller
        codec = f"unknown({header.attributes & 0x07})"
    item: dict[str, Any] = {
        "base_offset": header.base_offset, "last_offset": header.last_offset,
        "count": header.records_count, "base_sequence": header.base_sequence,
        "last_sequence": header.last_sequence, "producer_id": header.producer_id,
        "producer_epoch": header.producer_epoch,
        "partition_leader_epoch": header.partition_leader_epoch,
        "is_transactional": header.is_transactional, "is_control": header.is_control,
        "position": header.position, "timestamp_type": _timestamp_label(header),
        "max_timestamp": header.max_timestamp, "size": header.size, "magic": header.magic,
        "compression": codec, "crc": header.crc, "crc_valid": crc_ok,
    }
    line = (f"baseOffset: {header.base_offset} lastOffset: {header.last_offset} "
            f"count: {header.records_count} baseSequence: {header.base_sequence} "
            f"lastSequence: {header.last_sequence} producerId: {header.producer_id} "
            f"producerEpoch: {header.producer_epoch} "
            f"partitionLeaderEpoch: {header.partition_leader_epoch} "
            f"isTransactional: {_b(header.is_transactional)} "
            f"isControl: {_b(header.is_control)} position: {header.position} "
            f"{_timestamp_label(header)}: {header.max_timestamp} size: {header.size} "
            f"magic: {header.magic} compresscodec: {codec} crc: {header.crc} "
            f"isvalid: {_b(crc_ok)}")
    return item, line


def _b(value: bool) -> str:
    return "true" if value else "false"


def _show(data: bytes | None) -> str:
    return "null" if data is None else data.decode("utf-8", "backslashreplace")


def _record_item(header: BatchHeader, record: Record) -> tuple[dict[str, Any], str]:
    sequence = header.base_sequence
    if sequence >= 0:
        sequence = (sequence + record.offset - header.base_offset) % (1 << 31)
    item: dict[str, Any] = {"offset": record.offset, "timestamp": record.timestamp,
                            "sequence": sequence}
    item.update(bytes_field("key", record.key))
    item.update(bytes_field("value", record.value))
    item["headers"] = [{"key": k, **bytes_field("value", v)} for k, v in record.headers]
    key_size = -1 if record.key is None else len(record.key)
    value_size = -1 if record.value is None else len(record.value)
    line = (f"| offset: {record.offset} {_timestamp_label(header)}: {record.timestamp} "
            f"keySize: {key_size} valueSize: {value_size} sequence: {sequence} "
            f"headerKeys: [{','.join(k for k, _ in record.headers)}]")
    if header.is_control:
        try:
            kind, epoch = decode_end_transaction_marker(record)
            item["end_txn_marker"] = {"type": kind.name, "coordinator_epoch": epoch}
            line += f" endTxnMarker: {kind.name} coordinatorEpoch: {epoch}"
        except Exception as exc:  # reported as a problem by the caller
            raise ValueError(f"control record at offset {record.offset}: {exc}") from None
    else:
        line += f" key: {_show(record.key)} payload: {_show(record.value)}"
    return item, line


def scan_log(data: Buffer, report: FileReport, sink: Sink | None) -> list[Batch]:
    """Walk every batch of a .log, checking it; returns the batches read.
    With `sink` None nothing is printed (a cross-check for an index)."""
    batches: list[Batch] = []
    position = 0
    size = len(data)
    previous_last: int | None = None

    def problem(message: str) -> None:
        if sink is not None:
            sink.problem(report, message)
        else:
            report.problems.append(message)

    while position < size:
        remaining = size - position
        if remaining < BATCH_HEADER_SIZE:
            problem(f"{remaining} bytes at position {position} are not a complete batch "
                    "header (a torn write?)")
            break
        try:
            header = read_batch_header(data, position)
        except Exception as exc:  # CorruptRecordError: nothing after it can be framed
            problem(f"position {position}: {exc}; the rest of the file "
                    f"({remaining} bytes) cannot be read")
            break
        if header.end > size:
            problem(f"the batch at position {position} (offset {header.base_offset}) needs "
                    f"{header.size} bytes but only {remaining} remain (a torn write?)")
            break
        crc_ok = batch_crc_ok(data, header)
        where = f"batch at position {position} (offsets {header.base_offset}-" \
                f"{header.last_offset})"
        item, line = _batch_item(header, crc_ok)
        if sink is not None:
            sink.item(report, item, line)
        if not crc_ok:
            computed = crc32c(data[position + _CRC_COVERS_FROM : header.end])
            problem(f"{where}: CRC mismatch (stored {header.crc}, computed {computed})")
        if header.last_offset_delta < 0:
            problem(f"{where}: negative last offset delta {header.last_offset_delta}")
        if header.base_offset < report.base_offset:
            problem(f"{where}: base offset is below the segment's base offset "
                    f"{report.base_offset}")
        if previous_last is not None and header.base_offset <= previous_last:
            problem(f"{where}: offsets do not increase (the previous batch ended at "
                    f"offset {previous_last})")
        records = _decode(data, header, where, problem)
        if sink is not None and records is not None and sink.print_data:
            for record in records:
                try:
                    record_item, record_line = _record_item(header, record)
                except ValueError as exc:
                    problem(f"{where}: {exc}")
                    continue
                item.setdefault("records", []).append(record_item)
                sink.line(record_line)
        batches.append(Batch(position, header.base_offset, header.last_offset,
                             header.max_timestamp))
        previous_last = max(header.last_offset, previous_last or -1)
        if sink is not None:
            sink.advance(header.end - position)
        position = header.end
    if sink is not None:
        sink.advance(size - position)  # what could not be read counts as done
    return batches


def _decode(data: Buffer, header: BatchHeader, where: str,
            problem: Any) -> list[Record] | None:
    try:
        records = decode_records(data, header)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is damage to report
        problem(f"{where}: records do not decode: {exc}")
        return None
    previous = header.base_offset - 1
    for record in records:
        if not previous < record.offset <= header.last_offset:
            problem(f"{where}: record offset {record.offset} is out of order or outside "
                    "the batch")
            break
        previous = record.offset
    return records


# ------------------------------------------------------------------ indexes


def _entries(data: Buffer, entry: struct.Struct, report: FileReport,
             sink: Sink) -> Iterator[tuple[int, int, int]]:
    """(n, first field, second field) of each entry, up to preallocated zeros."""
    size = len(data)
    if size % entry.size:
        sink.problem(report, f"size {size} is not a multiple of the entry size {entry.size}")
    count = size // entry.size
    for n in range(count):
        first, second = entry.unpack_from(data, n * entry.size)
        if n > 0 and first == 0 and second == 0:
            sink.note(report, f"{count - n} preallocated entries (an active segment)")
            return
        yield n, first, second


def _log_batches(report: FileReport, cache: dict[Path, list[Batch]]) -> list[Batch] | None:
    log = report.path.with_suffix(LOG_SUFFIX)
    if log not in cache:
        if not log.is_file():
            return None
        mapped = _Mapped(log)
        try:
            scratch = FileReport(log, "log", report.base_offset)
            cache[log] = scan_log(mapped.data, scratch, None)
        finally:
            mapped.close()
    return cache[log]


def check_offset_index(data: Buffer, report: FileReport, sink: Sink,
                       cache: dict[Path, list[Batch]]) -> None:
    batches = _log_batches(report, cache)
    if batches is None:
        sink.note(report, "no matching .log file: entries are not checked against it")
    by_position = {b.position: b for b in batches or []}
    previous: tuple[int, int] | None = None
    for n, relative, position in _entries(data, _OFFSET_ENTRY, report, sink):
        offset = report.base_offset + relative
        sink.item(report, {"offset": offset, "position": position},
                  f"offset: {offset} position: {position}")
        if relative < 0 or position < 0:
            sink.problem(report, f"entry {n}: negative relative offset or position")
        if previous is not None and (offset <= previous[0] or position <= previous[1]):
            sink.problem(report, f"entry {n} (offset {offset}, position {position}) does not "
                                 f"increase on the previous entry {previous}")
        previous = (offset, position)
        if batches is None:
            continue
        batch = by_position.get(position)
        if batch is None:
            sink.problem(report, f"entry {n} (offset {offset}): position {position} is not "
                                 "the start of a batch in the .log")
        elif batch.last_offset != offset:
            sink.problem(report, f"entry {n}: offset {offset}, but the batch at position "
                                 f"{position} has last offset {batch.last_offset}")


def check_time_index(data: Buffer, report: FileReport, sink: Sink,
                     cache: dict[Path, list[Batch]]) -> None:
    batches = _log_batches(report, cache)
    if batches is None:
        sink.note(report, "no matching .log file: entries are not checked against it")
    by_last_offset = {b.last_offset: b for b in batches or []}
    previous: tuple[int, int] | None = None
    for n, timestamp, relative in _entries(data, _TIME_ENTRY, report, sink):
        offset = report.base_offset + relative
        sink.item(report, {"timestamp": timestamp, "offset": offset},
                  f"timestamp: {timestamp} offset: {offset}")
        if relative < 0:
            sink.problem(report, f"entry {n}: negative relative offset {relative}")
        if previous is not None and (timestamp <= previous[0] or offset < previous[1]):
            sink.problem(report, f"entry {n} (timestamp {timestamp}, offset {offset}) is out "
                                 f"of order after the previous entry {previous}")
        previous = (timestamp, offset)
        if batches is None:
            continue
        batch = by_last_offset.get(offset)
        if batch is None:
            sink.problem(report, f"entry {n} (timestamp {timestamp}): offset {offset} is not "
                                 "the last offset of a batch in the .log")
        elif batch.max_timestamp != timestamp:
            sink.problem(report, f"entry {n}: timestamp {timestamp}, but the batch ending at "
                                 f"offset {offset} has max timestamp {batch.max_timestamp}")


# ------------------------------------------------------------------ command


def run(args: argparse.Namespace) -> int:
    files = _segment_files(args.paths)
    if not files:
        raise UsageError("no segment files (.log, .index, .timeindex) found in "
                         + ", ".join(str(p) for p in args.paths))
    json_output = args.output == "json"
    progress: Progress | None = None
    if args.progress or (is_tty(sys.stderr) and (args.check or json_output
                                                  or not is_tty(sys.stdout))):
        total = sum(path.stat().st_size for path in files)
        progress = Progress("checking" if args.check else "dumping", total, "bytes",
                            enabled=True)
    sink = Sink(json_output=json_output, check_only=args.check,
                print_data=args.print_data, progress=progress)
    cache: dict[Path, list[Batch]] = {}
    reports: list[FileReport] = []
    for path in files:
        kind = _segment_kind(path)
        parsed = parse_offset_file_name(path.name)
        assert kind is not None and parsed is not None
        report = FileReport(path, kind, parsed[0])
        reports.append(report)
        sink.begin(report)
        mapped = _Mapped(path)
        try:
            if kind == "log":
                cache[path] = scan_log(mapped.data, report, sink)
            elif kind == "index":
                check_offset_index(mapped.data, report, sink, cache)
            else:
                check_time_index(mapped.data, report, sink, cache)
            if kind != "log":
                sink.advance(len(mapped.data))
        finally:
            mapped.close()
    if progress is not None:
        progress.close()
    problems = sum(len(r.problems) for r in reports)
    bad_files = sum(1 for r in reports if r.problems)
    if args.output == "json":
        print_json({
            "files": [{"file": str(r.path), "type": r.kind, "base_offset": r.base_offset,
                       **({} if args.check else
                          {"batches" if r.kind == "log" else "entries": r.items}),
                       "notes": r.notes, "problems": r.problems} for r in reports],
            "problems": problems,
            "ok": problems == 0,
        })
    else:
        style = Style(sys.stdout)
        noun = "file" if len(reports) == 1 else "files"
        if problems:
            print(style(f"{problems} problems in {bad_files} of {len(reports)} {noun}.",
                        "bold", "red"))
        else:
            print(f"Checked {len(reports)} {noun}: no problems.")
    return 1 if problems else 0
