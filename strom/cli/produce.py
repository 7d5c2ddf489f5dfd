"""`strom produce`: records from stdin or a file, one per line (or per
custom delimiter), like kafka-console-producer and `kcat -P`."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from strom.cli.broker_reason import REASON_CODES, RejectedRecord, broker_reason
from strom.cli.common import (
    CliError,
    Session,
    UsageError,
    add_command,
    describe_error,
    network_parent,
    parse_key_values,
)
from strom.cli.output import Progress, print_json

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message

EXAMPLES = """\
  echo hello | strom produce orders
  strom produce orders --file orders.txt                    # one record per line
  printf 'k1:v1\\nk2:v2\\n' | strom produce orders -K :        # key:value lines
  strom produce users -K : --null-marker NULL < tombstones  # "u1:NULL" deletes key u1
  strom produce orders -H source=cli -H version=2 --partition 0 --acks 1 --compression zstd
  strom produce blobs --delimiter '\\0' --file records.bin   # NUL-separated records
"""

CHUNK = 1 << 16


def register(commands: Any) -> None:
    parser = add_command(
        commands, "produce", run, parents=[network_parent()], examples=EXAMPLES,
        help="produce records from stdin or a file",
        description="Produce one record per line (or per --delimiter) read from stdin or "
                    "--file. Keys are split off with --key-separator. Keys are hashed to "
                    "partitions like the Java client does (murmur2).")
    parser.add_argument("topic", metavar="TOPIC")
    parser.add_argument("--file", type=Path, metavar="FILE",
                        help="read records from FILE (default: stdin)")
    parser.add_argument("-K", "--key-separator", metavar="SEP",
                        help="split each record into key and value at the first SEP")
    parser.add_argument("-H", "--header", action="append", default=[], metavar="KEY=VALUE",
                        help="add a header to every record (repeatable)")
    parser.add_argument("-p", "--partition", type=int,
                        help="produce to this partition (default: by key, or spread)")
    parser.add_argument("--acks", choices=["0", "1", "all", "-1"], default="all",
                        help="acknowledgements to wait for (default: all)")
    parser.add_argument("-z", "--compression", default="none",
                        choices=["none", "gzip", "snappy", "lz4", "zstd"],
                        help="compression codec (default: none)")
    parser.add_argument("-D", "--delimiter", default="\\n", metavar="SEP",
                        help="record delimiter; \\n \\t \\0 \\xNN escapes (default: newline)")
    parser.add_argument("--null-marker", metavar="TEXT",
                        help="a key or value equal to TEXT is sent as null (a tombstone)")
    parser.add_argument("--linger-ms", type=int, default=5, metavar="MS",
                        help="how long to batch records before sending (default: 5)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no summary on stderr")


def unescape(text: str) -> bytes:
    """'\\t' -> b'\\t'; also \\n \\r \\0 \\\\ and \\xNN. Other text as UTF-8."""
    simple = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\"}
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in simple:
                out += simple[nxt]
                i += 2
                continue
            if nxt == "x" and _is_hex(text[i + 2 : i + 4]):
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
        out += char.encode("utf-8")
        i += 1
    return bytes(out)


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


def split_records(stream: IO[bytes], delimiter: bytes,
                  on_read: Callable[[int], None]) -> Iterator[bytes]:
    """Records of `stream` separated by `delimiter`; a trailing delimiter
    does not make an empty last record. Reads what is available (read1), so
    records typed at a terminal go out line by line."""
    read = getattr(stream, "read1", stream.read)
    buf = bytearray()
    position = 0
    while True:
        chunk = read(CHUNK)
        if not chunk:
            break
        on_read(len(chunk))
        search_from = max(len(buf) - len(delimiter) + 1, position)
        buf += chunk
        while True:
            end = buf.find(delimiter, search_from)
            if end < 0:
                break
            yield bytes(buf[position:end])
            position = end + len(delimiter)
            search_from = position
        del buf[:position]
        position = 0
    if buf:
        yield bytes(buf)


def _input_size(stream: IO[bytes]) -> int | None:
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _isatty(stream: IO[bytes]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Deliveries:
    """Delivery reports: counts, per-partition offsets, the first failure."""

    def __init__(self) -> None:
        self.delivered = 0
        self.partitions: dict[int, list[int]] = {}  # partition -> [first, last, count]
        self.failed = 0
        self.first_error: KafkaError | None = None
        #: The first failed record, kept when the broker can be asked why (broker_reason).
        self.first_rejected: RejectedRecord | None = None

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = error
                if error.name() in REASON_CODES:
                    self.first_rejected = _rejected(message)
            return
        self.delivered += 1
        partition = message.partition()
        offset = message.offset()
        if partition is None or offset is None or offset < 0:
            return  # acks=0: no offset comes back
        seen = self.partitions.get(partition)
        if seen is None:
            self.partitions[partition] = [offset, offset, 1]
        else:
            seen[0] = min(seen[0], offset)
            seen[1] = max(seen[1], offset)
            seen[2] += 1


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    headers = [(k, v.encode("utf-8")) for k, v in
               parse_key_values(args.header, "--header").items()]
    delimiter = unescape(args.delimiter)
    if not delimiter:
        raise UsageError("--delimiter must not be empty")
    separator = unescape(args.key_separator) if args.key_separator is not None else None
    if separator == b"":
        raise UsageError("--key-separator must not be empty")
    if args.partition is not None and args.partition < 0:
        raise UsageError("--partition must be 0 or more")
    null_marker = args.null_marker.encode("utf-8") if args.null_marker is not None else None
    stream: IO[bytes]
    if args.file is not None and str(args.file) != "-":
        try:
            stream = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    else:
        stream = sys.stdin.buffer

    session = Session(args)
    timeout_ms = int(max(session.timeout, 30) * 1000)
    producer = session.producer({
        "acks": "all" if args.acks == "-1" else args.acks,
        "compression.type": args.compression,
        "linger.ms": args.linger_ms,
        "partitioner": "murmur2_random",  # the Java client's key -> partition mapping
        "message.timeout.ms": timeout_ms,
    })
    try:
        # A producer's metadata request may create the topic when the
        # cluster allows it, as with any Kafka producer.
        metadata = session.list_topics(producer, args.topic)
        topic = metadata.topics.get(args.topic)
        if topic is None or (topic.error is not None
                             and topic.error.name() == "UNKNOWN_TOPIC_OR_PART"):
            raise CliError(f"unknown topic '{args.topic}'")
        if args.partition is not None and topic.partitions \
                and args.partition not in topic.partitions:
            raise CliError(f"topic '{args.topic}' has {len(topic.partitions)} partitions; "
                           f"there is no partition {args.partition}")
        deliveries = Deliveries()
        # No progress line while someone types records at a terminal.
        progress = Progress(f"producing to {args.topic}", _input_size(stream), "bytes",
                            enabled=False if _isatty(stream) else None)
        produced = 0
        extra: dict[str, Any] = {}
        if args.partition is not None:
            extra["partition"] = args.partition
        if headers:
            extra["headers"] = headers
        try:
            strip_cr = delimiter == b"\n"
            for record in split_records(stream, delimiter, progress.advance):
                if strip_cr and record.endswith(b"\r"):
                    record = record[:-1]
                key: bytes | None = None
                value: bytes | None = record
                if separator is not None:
                    at = record.find(separator)
                    if at < 0:
                        raise CliError(
                            f"record {produced + 1} has no key separator "
                            f"{args.key_separator!r} ({produced} produced before it)")
                    key, value = record[:at], record[at + len(separator):]
                    if key == null_marker:
                        key = None
                if value == null_marker:
                    value = None
                _produce(producer, args.topic, key, value, extra, deliveries, produced + 1)
                produced += 1
                if deliveries.first_error is not None:
                    break
        finally:
            progress.close()
            remaining = producer.flush(timeout_ms / 1000 + 5)
            if stream is not sys.stdin.buffer:
                stream.close()
    except KafkaException as exc:
        raise session.translate(exc, "cannot produce") from None
    if deliveries.first_error is not None:
        why = _why(session, metadata, deliveries.first_rejected)
        raise CliError(f"{deliveries.failed} of {produced} records failed: "
                       f"{describe_error(deliveries.first_error)}{why}")
    if remaining:
        raise CliError(f"{remaining} records were not acknowledged in time")
    _report(args, deliveries)
    return 0


def _rejected(message: Message) -> RejectedRecord | None:
    topic, partition = message.topic(), message.partition()
    if topic is None or partition is None or partition < 0:
        return None
    _, timestamp = message.timestamp()
    headers: list[tuple[str, bytes | None]] = []
    for item in message.headers() or []:
        name, header_value = item[0], item[1]
        headers.append((str(name), header_value.encode() if isinstance(header_value, str)
                        else header_value))
    return RejectedRecord(topic, partition, _raw(message.key()), _raw(message.value()),
                          tuple(headers),
                          timestamp if timestamp >= 0 else int(time.time() * 1000))


def _raw(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def _why(session: Session, metadata: Any, record: RejectedRecord | None) -> str:
    """": <the broker's reason>" for a rejected record, or "" when there is none."""
    if record is None:
        return ""
    topic = metadata.topics.get(record.topic)
    partition = topic.partitions.get(record.partition) if topic is not None else None
    broker = metadata.brokers.get(partition.leader) if partition is not None else None
    if broker is None:
        return ""
    reason = broker_reason(record, (broker.host, broker.port), min(session.timeout, 10.0),
                           session.config)
    return f": {reason}" if reason else ""


def _produce(producer: Any, topic: str, key: bytes | None, value: bytes | None,
             extra: dict[str, Any], deliveries: Deliveries, number: int) -> None:
    from confluent_kafka import KafkaException

    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=deliveries, **extra)
            break
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.05)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            raise CliError(f"record {number}: {describe_error(error)}") from None
    producer.poll(0)


def _report(args: argparse.Namespace, deliveries: Deliveries) -> None:
    partitions = {
        str(p): {"first_offset": first, "last_offset": last, "records": count}
        for p, (first, last, count) in sorted(deliveries.partitions.items())
    }
    if args.output == "json":
        print_json({"topic": args.topic, "records": deliveries.delivered,
                    "partitions": partitions})
        return
    if args.quiet:
        return
    noun = "record" if deliveries.delivered == 1 else "records"
    where = ""
    if len(partitions) == 1:
        (p, info), = partitions.items()
        where = f" (partition {p}, offsets {info['first_offset']}-{info['last_offset']})"
    elif partitions:
        where = f" across {len(partitions)} partitions"
    print(f"Produced {deliveries.delivered} {noun} to '{args.topic}'{where}.", file=sys.stderr)
