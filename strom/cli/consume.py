"""`strom consume`: print the records of topics, like kafka-console-consumer and
`kcat -C`.

Several topics can be named; a name starting with ^ (or every name, with
--regex) is a regular expression, as librdkafka subscribes to patterns.
Without --group a pattern is resolved once, at start, against the cluster's
topics (internal topics only when named); with --group librdkafka subscribes
to the pattern and picks up matching topics created later.

Without --group the partitions are assigned directly (no group, nothing
committed). By default it reads from the beginning and stops at the end of
each partition as it was when the command started, like `cat`; --follow keeps
waiting for new records, like `tail -f`. A start option (--from-beginning,
--from-end, --offset, --from-timestamp) always decides where reading starts;
with --group and no start option, reading resumes at the group's committed
offsets (the beginning where there is none), and offsets are committed for
the records printed.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from strom.cli.common import (
    CliError,
    ClusterMetadata,
    Session,
    UsageError,
    add_command,
    describe_error,
    network_parent,
    parse_timestamp,
)
from strom.cli.formats import (
    TEMPLATE_HELP,
    ConsumedRecord,
    Formatter,
    json_formatter,
    plain_formatter,
    template_formatter,
)
from strom.cli.output import Progress, is_tty
from strom.cli.produce import unescape

if TYPE_CHECKING:
    from confluent_kafka import Consumer, TopicPartition

EXAMPLES = """\
  strom consume orders                                # everything so far, then exit
  strom consume orders --follow --from-end            # only new records, until Ctrl-C
  strom consume orders --offset -10                   # the last 10 of each partition
  strom consume orders --partition 0 --offset 1200 --max-messages 5
  strom consume orders --from-timestamp 2024-05-01T12:00:00Z
  strom consume orders --from-timestamp 15m --output json | jq .value
  strom consume orders --group billing --follow       # join a group, commit offsets
  strom consume orders -f 'p%p@%o %k=%s\\n'            # kcat-style template
  strom consume orders payments --output json         # several topics
  strom consume '^orders-.*' -f '%t/%p@%o %s\\n'       # every topic matching a regex
  strom consume -r 'orders-(eu|us)' --group audit --follow  # a pattern subscription

""" + TEMPLATE_HELP

DESCRIPTION = """\
Print the records of topics. By default it reads from the beginning and stops
at the end of each partition as it was when the command started, like cat;
--follow keeps waiting for new records, like tail -f. A start option always
decides where reading starts. With --group and no start option, reading
resumes at the group's committed offsets (the beginning where there are none)
and the offsets of printed records are committed. A TOPIC starting with ^
(or every TOPIC, with --regex) is a regular expression matched against the
cluster's topic names."""

BATCH = 500
POLL_SECONDS = 0.2

# librdkafka's logical offsets
OFFSET_BEGINNING = -2
OFFSET_END = -1
OFFSET_STORED = -1000


def register(commands: Any) -> None:
    parser = add_command(
        commands, "consume", run, parents=[network_parent()], examples=EXAMPLES,
        help="print records of topics",
        description=DESCRIPTION)
    parser.add_argument("topics", nargs="+", metavar="TOPIC",
                        help="topics to read; ^REGEX for every topic matching REGEX")
    parser.add_argument("-r", "--regex", action="store_true",
                        help="every TOPIC is a regular expression (as rpk's -r)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true",
                       help="start at the first record (the default without --group)")
    start.add_argument("--from-end", action="store_true",
                       help="start after the last record (with --follow: only new ones)")
    start.add_argument("-o", "--offset", type=_offset, metavar="N",
                       help="start at offset N; a negative N starts N records before the "
                            "end; also 'beginning' or 'end', as kcat's -o")
    start.add_argument("--from-timestamp", metavar="TIME",
                       help="start at the first record at or after TIME: ms since the "
                            "epoch, ISO 8601, or a duration ago like 15m, 2h, 7d")
    parser.add_argument("-p", "--partition", type=int, action="append", metavar="P",
                        help="read only partition P (repeatable; one topic only, "
                             "not with --group)")
    parser.add_argument("-g", "--group", metavar="GROUP",
                        help="consume as a member of GROUP and commit offsets")
    parser.add_argument("--no-commit", action="store_true",
                        help="with --group: do not commit offsets")
    parser.add_argument("--follow", action="store_true",
                        help="keep waiting for new records instead of stopping at the end")
    parser.add_argument("-c", "--max-messages", type=int, metavar="N",
                        help="stop after N records")
    parser.add_argument("-f", "--format", metavar="TEMPLATE",
                        help="print each record with a kcat-style template (see below)")
    parser.add_argument("--print-key", action="store_true",
                        help="plain output: print the key, a separator, then the value")
    parser.add_argument("--key-separator", default="\\t", metavar="SEP",
                        help="plain output: between key and value (default: tab)")
    parser.add_argument("--isolation-level", default="read_uncommitted",
                        choices=["read_uncommitted", "read_committed"],
                        help="read_committed hides aborted transactions (default: "
                             "read_uncommitted, as Kafka's console consumer)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no summary on stderr")


def _offset(value: str) -> int | str:
    if value in ("beginning", "end"):
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an offset: {value!r} (a number, 'beginning' or 'end')") from None


def _formatter(args: argparse.Namespace) -> Formatter:
    if args.format is not None:
        if args.output == "json":
            raise UsageError("--format and --output json exclude each other")
        return template_formatter(args.format)
    if args.output == "json":
        return json_formatter()
    return plain_formatter(print_key=args.print_key, key_separator=unescape(args.key_separator))


TopicPart = tuple[str, int]


def is_pattern(name: str, regex: bool) -> bool:
    return regex or name.startswith("^")


def subscription(args: argparse.Namespace) -> list[str]:
    """The topics as librdkafka subscribes to them: patterns start with ^."""
    return [name if not is_pattern(name, args.regex) or name.startswith("^") else "^" + name
            for name in dict.fromkeys(args.topics)]


def resolve_topics(args: argparse.Namespace, session: Session,
                   metadata: ClusterMetadata) -> list[str]:
    """The existing topics the command names: literal names must exist; a
    pattern matches like librdkafka's (a search, anchored by its ^) and, as
    Kafka's pattern subscriptions, never matches internal topics."""
    names: dict[str, None] = {}
    for name in subscription(args):
        if not name.startswith("^"):
            names[session.topic(metadata, name).topic] = None
            continue
        try:
            pattern = re.compile(name)
        except re.error as exc:
            raise UsageError(f"bad topic pattern {name!r}: {exc}") from None
        for topic in sorted(metadata.topics):
            if pattern.search(topic) and not topic.startswith("__"):
                names[topic] = None
    return list(names)


class Reader:
    """The consume loop and its bookkeeping: where each partition starts and
    (unless following) ends, which partitions are still being read."""

    def __init__(self, args: argparse.Namespace, session: Session, consumer: Consumer,
                 formatter: Formatter) -> None:
        self.args = args
        self.session = session
        self.consumer = consumer
        self.formatter = formatter
        self.label = ", ".join(f"'{name}'" for name in dict.fromkeys(args.topics))
        self.follow: bool = args.follow
        self.commit = args.group is not None and not args.no_commit
        self.ends: dict[TopicPart, int] = {}
        self.active: set[TopicPart] = set()  # assigned and not yet at their end
        self.assigned = False
        self.count = 0
        self.out = sys.stdout.buffer
        self.progress: Progress | None = None

    # -- where to start ----------------------------------------------------

    def positions(self, partitions: Iterable[TopicPart]) -> list[TopicPartition]:
        """TopicPartitions at their start offsets; records each end offset."""
        from confluent_kafka import KafkaException, TopicPartition

        args = self.args
        result: list[TopicPartition] = []
        lows: dict[TopicPart, int] = {}
        for tp in partitions:
            low, high = self._watermarks(tp)
            lows[tp] = low
            self.ends[tp] = high
        by_time: dict[TopicPart, int] = {}
        if args.from_timestamp is not None and lows:
            timestamp = parse_timestamp(args.from_timestamp)
            query = [TopicPartition(t, p, timestamp) for t, p in lows]
            try:
                found = self.consumer.offsets_for_times(query, timeout=self.session.timeout)
            except KafkaException as exc:
                raise self.session.translate(exc, "cannot look up offsets by time") from None
            by_time = {(tp.topic, tp.partition): tp.offset for tp in found}
        for key, low in lows.items():
            high = self.ends[key]
            if args.from_end or args.offset == "end":
                offset = high
            elif args.offset == "beginning":
                offset = low
            elif isinstance(args.offset, int):
                offset = args.offset if args.offset >= 0 else high + args.offset
                offset = min(max(offset, low), high)
            elif args.from_timestamp is not None:
                offset = by_time.get(key, -1)
                if offset < 0:  # no record at or after the time
                    offset = high
            elif args.group is not None and not args.from_beginning:
                offset = OFFSET_STORED
            else:
                offset = low
            result.append(TopicPartition(key[0], key[1], offset))
        return result

    def _watermarks(self, tp: TopicPart) -> tuple[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        topic, partition = tp
        try:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=self.session.timeout, cached=False)
        except KafkaException as exc:
            raise self.session.translate(
                exc, f"cannot get offsets of {topic}-{partition}") from None
        return int(low), int(high)

    def _track(self, positions: list[TopicPartition]) -> None:
        for tp in positions:
            key = (tp.topic, tp.partition)
            if self.follow or tp.offset < 0 or tp.offset < self.ends[key]:
                self.active.add(key)
        self.assigned = True

    # -- group callbacks ----------------------------------------------------

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        positions = self.positions((tp.topic, tp.partition) for tp in partitions)
        self._track(positions)
        consumer.assign(positions)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.active.discard((tp.topic, tp.partition))
        consumer.unassign()

    # -- the loop -------------------------------------------------------------

    def start(self, partitions: list[TopicPart]) -> None:
        if self.args.group is not None:
            self.consumer.subscribe(subscription(self.args), on_assign=self.on_assign,
                                    on_revoke=self.on_revoke)
            return
        positions = self.positions(partitions)
        self._track(positions)
        total = sum(max(self.ends[(tp.topic, tp.partition)] - tp.offset, 0)
                    for tp in positions)
        if not self.follow and not is_tty(sys.stdout):
            self.progress = Progress(f"reading {self.label}", total, "records")
        self.consumer.assign([tp for tp in positions
                              if (tp.topic, tp.partition) in self.active])

    def run(self) -> None:
        limit = self.args.max_messages
        deadline = time.monotonic() + self.session.timeout
        while True:
            if self.assigned and not self.follow and not self.active:
                return
            if not self.assigned and time.monotonic() > deadline:
                raise CliError(f"no partitions of {self.label} were assigned to group "
                               f"'{self.args.group}' within {self.session.timeout:g}s")
            messages = self.consumer.consume(BATCH, timeout=POLL_SECONDS)
            for message in messages:
                if self._handle(message) and limit is not None and self.count >= limit:
                    self.out.flush()
                    return
            if messages:
                self.out.flush()

    def _handle(self, message: Any) -> bool:
        """Print one message; False for events (end of partition)."""
        error = message.error()
        key = (message.topic(), message.partition())
        if error is not None:
            if error.name() == "_PARTITION_EOF":
                self._finish(key)
                return False
            topic = message.topic()
            where = f"'{topic}'" if topic else self.label
            raise CliError(f"cannot consume from {where}: {describe_error(error)}")
        if not self.follow and key not in self.active:
            return False  # past the end this command reads to
        self.out.write(self.formatter(ConsumedRecord.from_message(message)))
        self.count += 1
        if self.commit:
            self.consumer.store_offsets(message=message)
        if self.progress is not None:
            self.progress.advance()
        if not self.follow and message.offset() + 1 >= self.ends.get(key, 0):
            self._finish(key)
        return True

    def _finish(self, key: tuple[str | None, int | None]) -> None:
        from confluent_kafka import TopicPartition

        topic, partition = key
        if self.follow or topic is None or partition is None:
            return
        if (topic, partition) not in self.active:
            return
        self.active.discard((topic, partition))
        self.consumer.pause([TopicPartition(topic, partition)])


def run(args: argparse.Namespace) -> int:
    if args.max_messages is not None and args.max_messages < 1:
        raise UsageError("--max-messages must be at least 1")
    if args.group is not None and args.partition:
        raise UsageError("--partition cannot be used with --group (the group assigns "
                         "partitions)")
    if args.no_commit and args.group is None:
        raise UsageError("--no-commit only applies with --group")
    if args.partition and (len(set(args.topics)) > 1 or is_pattern(args.topics[0], args.regex)):
        raise UsageError("--partition needs exactly one topic, not several or a pattern")
    formatter = _formatter(args)
    session = Session(args)
    grouped = args.group is not None
    config: dict[str, Any] = {
        # librdkafka needs a group id even for assign(); without --group it is
        # never joined and nothing is committed.
        "group.id": args.group if grouped else "strom-cli",
        "enable.auto.commit": grouped and not args.no_commit,
        "enable.auto.offset.store": False,
        "enable.partition.eof": not args.follow,
        "auto.offset.reset": "earliest",
        "isolation.level": args.isolation_level,
    }
    consumer = session.consumer(config)
    reader = Reader(args, session, consumer, formatter)
    finished = False
    try:
        metadata = session.metadata(consumer)
        names = resolve_topics(args, session, metadata)
        if not names:
            raise CliError(f"no topic matches {reader.label}")
        partitions = [(name, p) for name in names for p in sorted(metadata.topics[name].partitions)]
        if args.partition:
            topic = metadata.topics[names[0]]
            missing = [p for p in args.partition if p not in topic.partitions]
            if missing:
                raise CliError(f"topic '{topic.topic}' has {len(topic.partitions)} partitions; "
                               f"there is no partition {missing[0]}")
            partitions = [(topic.topic, p) for p in sorted(set(args.partition))]
        reader.start(partitions)
        try:
            reader.run()
        except KeyboardInterrupt:
            pass  # Ctrl-C ends --follow: commit, close and report as usual
        finished = True
    finally:
        if reader.progress is not None:
            reader.progress.close()
        _close(consumer, reader)
        if finished and not args.quiet:
            noun = "record" if reader.count == 1 else "records"
            print(f"Consumed {reader.count} {noun} from {reader.label}.", file=sys.stderr)
    return 0


def _close(consumer: Consumer, reader: Reader) -> None:
    from confluent_kafka import KafkaException

    try:
        if reader.commit and reader.count:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if error is None or error.name() != "_NO_OFFSET":
                    raise CliError(f"cannot commit offsets: {describe_error(error)}") from None
    finally:
        consumer.close()
