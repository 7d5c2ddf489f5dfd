"""What every network command shares: connection options, one client
session over confluent-kafka (librdkafka), error translation and exit codes.

Every command talks to the cluster through a standard Kafka client only, so
it works against any Kafka-compatible cluster, not just strom.

Exit codes: 0 success; 1 the operation failed (unknown topic or group, an
error from the cluster, a corrupt log in dump-log); 2 bad arguments;
3 cannot reach the cluster within --timeout; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
    from confluent_kafka.admin import AdminClient

#: confluent-kafka's metadata classes; its stubs do not re-export them.
ClusterMetadata = Any
TopicMetadata = Any

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "ConnectError",
    "Session",
    "UsageError",
    "add_command",
    "add_connection_args",
    "add_output_arg",
    "format_timestamp",
    "kafka_admin",
    "network_parent",
    "parse_key_values",
    "parse_timestamp",
    "parse_topic_partitions",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

DEFAULT_BOOTSTRAP = "localhost:9092"
BOOTSTRAP_ENV = "STROM_BOOTSTRAP_SERVER"

T = TypeVar("T")


class CliError(Exception):
    """A failure reported as one line on stderr and a non-zero exit."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CliError):
    exit_code = EXIT_USAGE


class ConnectError(CliError):
    exit_code = EXIT_UNREACHABLE


# ------------------------------------------------------------------ arguments


def add_command(commands: Any, name: str, run: Callable[[argparse.Namespace], int], *,
                help: str, description: str, examples: str,
                parents: Iterable[argparse.ArgumentParser] = (),
                aliases: Iterable[str] = ()) -> argparse.ArgumentParser:
    """A subcommand with its examples in --help and `run` as its action."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=description, epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=list(parents),
        aliases=list(aliases),
    )
    parser.set_defaults(run=run, command_name=parser.prog)
    return parser


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "-b", "--bootstrap-server", metavar="HOST:PORT",
        default=os.environ.get(BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP),
        help=f"brokers to connect to, comma-separated (default: ${BOOTSTRAP_ENV} "
             f"or {DEFAULT_BOOTSTRAP})")
    group.add_argument(
        "--timeout", type=_positive_float, default=10.0, metavar="SECONDS",
        help="give up on connecting or on one request after this long (default: 10)")
    group.add_argument(
        "-X", "--property", action="append", default=[], metavar="KEY=VALUE",
        help="librdkafka client property, e.g. security.protocol=SASL_SSL (repeatable)")
    group.add_argument(
        "--command-config", type=Path, metavar="FILE",
        help="client properties file, as Kafka's tools take it (security.protocol, "
             "sasl.mechanism, sasl.jaas.config, ssl.truststore.location, ...; librdkafka "
             "names work too)")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="show the client library's log on stderr")


def network_parent(*, output: bool = True) -> argparse.ArgumentParser:
    """Options every network command takes, for `parents=[...]`."""
    parent = argparse.ArgumentParser(add_help=False)
    add_connection_args(parent)
    if output:
        add_output_arg(parent)
    return parent


def add_output_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", choices=["text", "json"], default="text",
                        help="text (aligned tables) or json (default: text)")


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    return number


def parse_key_values(items: Iterable[str], what: str) -> dict[str, str]:
    """["a=1", "b=2"] -> {"a": "1", "b": "2"}; the value may contain '='."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must be KEY=VALUE, got {item!r}")
        result[key.strip()] = value
    return result


def _read_properties(path: Path) -> dict[str, str]:
    """A Java-style .properties file: key=value or key: value, # and ! comments."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    properties: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if match is None:
            raise UsageError(f"{path}: not a property: {line!r}")
        properties[match.group(1)] = match.group(2)
    return properties


def command_config(path: Path) -> dict[str, str]:
    """--command-config FILE: Kafka's client properties, as librdkafka takes them."""
    from strom.cli.client_properties import librdkafka_properties
    from strom.config import parse_properties

    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        # Java's properties syntax, with lines continued by a trailing backslash
        # (how Kafka's docs write sasl.jaas.config).
        return librdkafka_properties(parse_properties(text))
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None


_RELATIVE = re.compile(r"^-?(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_timestamp(value: str) -> int:
    """Milliseconds since the epoch from: milliseconds ("1714521600000"),
    ISO 8601 ("2024-05-01T12:00:00Z"; local time without an offset), or a
    duration before now ("15m", "2h", "7d"; "-15m" reads the same)."""
    value = value.strip()
    if value.isdigit():
        return int(value)
    match = _RELATIVE.match(value)
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        return int((datetime.now().timestamp() - seconds) * 1000)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"bad timestamp {value!r}: use milliseconds since the epoch, ISO 8601 "
            "(2024-05-01T12:00:00Z) or a duration ago (15m, 2h, 7d)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as Kafka's tools read it
    return int(moment.timestamp() * 1000)


def format_timestamp(ms: int) -> str:
    if ms < 0:
        return "-"
    moment = datetime.fromtimestamp(0).astimezone() + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds")


def parse_topic_partitions(spec: str) -> tuple[str, list[int] | None]:
    """"orders" -> ("orders", None); "orders:0,2" -> ("orders", [0, 2])."""
    topic, sep, partitions = spec.rpartition(":")
    if not sep:
        return spec, None
    try:
        numbers = [int(p) for p in partitions.split(",") if p.strip()]
    except ValueError:
        raise UsageError(f"bad partition list in {spec!r}: use TOPIC or TOPIC:0,1,2") from None
    if not topic or not numbers:
        raise UsageError(f"bad topic spec {spec!r}: use TOPIC or TOPIC:0,1,2")
    return topic, numbers


def kafka_admin() -> Any:
    """The confluent_kafka.admin module, typed loosely: its type stubs do not
    re-export the classes it defines (OffsetSpec, ConfigResource, ...)."""
    import confluent_kafka.admin

    return confluent_kafka.admin


# ------------------------------------------------------------------ session

#: How long every bootstrap broker may stay unreachable before a command gives
#: up without waiting out --timeout: a broker that is starting gets a few
#: reconnects (librdkafka backs off from 100 ms), a wrong address is told at once.
CONNECT_GRACE_S = 2.0
_CONNECT_POLL_S = 0.2
_CONNECT_CODES = {"_TRANSPORT", "_TIMED_OUT", "_ALL_BROKERS_DOWN", "_RESOLVE",
                  "_MSG_TIMED_OUT", "_SSL", "_AUTHENTICATION"}
_AFTER = re.compile(r"\s*\(after \d+ms in state .*$")

#: Kafka error names turned into friendlier wording.
_FRIENDLY = {
    "UNKNOWN_TOPIC_OR_PART": "unknown topic or partition",
    "TOPIC_ALREADY_EXISTS": "topic already exists",
    "GROUP_ID_NOT_FOUND": "group does not exist",
    "NON_EMPTY_GROUP": "group has active members",
    "COORDINATOR_NOT_AVAILABLE": "group coordinator not available",
    "INVALID_PARTITIONS": "invalid number of partitions",
    "INVALID_REPLICATION_FACTOR": "invalid replication factor",
    "INVALID_CONFIG": "invalid config",
    "POLICY_VIOLATION": "rejected by the cluster's policy",
    "UNSUPPORTED_VERSION": "not supported by this cluster",
    "_UNSUPPORTED_FEATURE": "not supported by this cluster",
    "_TIMED_OUT": "timed out",
}


def _reason(message: str) -> str:
    """The useful tail of a librdkafka connection error."""
    message = _AFTER.sub("", message)
    if "failed: " in message:
        return message.split("failed: ", 1)[1]
    if "/bootstrap: " in message:
        return message.split("/bootstrap: ", 1)[1]
    return message


class Session:
    """One command's clients and its error handling.

    librdkafka's own logging and error callbacks are captured: its log goes
    to stderr only with --verbose, and the last connection error becomes the
    reason in "cannot connect" messages.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the installation
            raise CliError("this command needs confluent-kafka: "
                           "pip install confluent-kafka") from None
        self.bootstrap: str = args.bootstrap_server
        self.timeout: float = args.timeout
        self.errors: list[KafkaError] = []
        logger = logging.getLogger("strom.cli.librdkafka")
        logger.propagate = False
        logger.handlers.clear()
        if getattr(args, "verbose", False):
            handler: logging.Handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
            logger.setLevel(logging.DEBUG)
        else:
            handler = logging.NullHandler()
        logger.addHandler(handler)
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "client.id": "strom-cli",
            "logger": logger,
            "error_cb": self.errors.append,
        }
        if getattr(args, "command_config", None) is not None:
            config.update(command_config(args.command_config))
        config.update(parse_key_values(getattr(args, "property", []), "-X"))
        self.config = config
        self._admin: AdminClient | None = None
        self._clients: list[Any] = []
        #: Set once the cluster answered: later timeouts are not connection failures.
        self.connected = False

    # -- clients ----------------------------------------------------------

    def admin(self) -> AdminClient:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = self._create(AdminClient, {})
        return self._admin

    def producer(self, extra: Mapping[str, Any]) -> Producer:
        from confluent_kafka import Producer

        producer: Producer = self._create(Producer, extra)
        return producer

    def consumer(self, extra: Mapping[str, Any]) -> Consumer:
        from confluent_kafka import Consumer

        consumer: Consumer = self._create(Consumer, extra)
        return consumer

    def _create(self, kind: Callable[[dict[str, Any]], T], extra: Mapping[str, Any]) -> T:
        from confluent_kafka import KafkaException

        try:
            client = kind(self._client_config(extra))
        except (KafkaException, ValueError, TypeError) as exc:
            error = exc.args[0] if exc.args else exc
            detail = error.str() if hasattr(error, "str") else str(error)
            raise UsageError(f"invalid client configuration: {detail}") from None
        self._clients.append(client)
        return client

    def _client_config(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        config = dict(extra)
        config.update(self.config)  # -X wins over the command's defaults
        return config

    @property
    def admin_options(self) -> dict[str, float]:
        return {"request_timeout": self.timeout}

    # -- calls ------------------------------------------------------------

    def metadata(self, client: Any = None) -> ClusterMetadata:
        """Metadata of every topic (never auto-creates one); the first call
        of every network command, so it also proves the cluster is reachable."""
        return self.list_topics(client if client is not None else self.admin(),
                                what="cannot list topics")

    def list_topics(self, client: Any, topic: str | None = None, *,
                    what: str = "cannot fetch metadata") -> ClusterMetadata:
        """`client.list_topics` within --timeout, failing fast when no bootstrap
        broker can be reached: once librdkafka reports every broker down and
        they stay down for CONNECT_GRACE_S, waiting out --timeout would only
        delay the same answer (exit 3)."""
        from confluent_kafka import KafkaException

        start = time.monotonic()
        deadline = start + self.timeout
        grace_end = start + min(CONNECT_GRACE_S, self.timeout)
        while True:
            # Short slices until connected, so the error callbacks that say
            # "all brokers down" are seen between them.
            step = deadline - time.monotonic()
            if not self.connected:
                step = min(step, _CONNECT_POLL_S)
            try:
                metadata: ClusterMetadata = client.list_topics(topic, timeout=max(step, 0.001))
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                name = error.name() if error is not None and hasattr(error, "name") else ""
                if self.connected or name not in _CONNECT_CODES \
                        or time.monotonic() >= deadline:
                    raise self.translate(exc, what) from None
                self._deliver_errors()
                # (A --timeout shorter than the grace simply runs out.)
                if grace_end < deadline and time.monotonic() >= grace_end and any(
                        e.name() == "_ALL_BROKERS_DOWN" for e in self.errors):
                    raise self.connect_error(every_broker_down=True) from None
                continue
            self.connected = True
            return metadata

    def topic(self, metadata: ClusterMetadata, name: str) -> TopicMetadata:
        topic = metadata.topics.get(name)
        if topic is None or (topic.error is not None and not topic.partitions):
            raise CliError(f"unknown topic '{name}'")
        return topic

    def wait(self, future: Future[T], what: str) -> T:
        """The result of an admin future; its failure as a CliError."""
        from confluent_kafka import KafkaException

        try:
            return future.result(timeout=self.timeout + 5)
        except KafkaException as exc:
            raise self.translate(exc, what) from None
        except FutureTimeout:
            raise CliError(f"{what}: timed out after {self.timeout:g}s") from None

    def translate(self, exc: KafkaException, what: str) -> CliError:
        error = exc.args[0] if exc.args else None
        name = error.name() if error is not None and hasattr(error, "name") else ""
        if not self.connected and name in _CONNECT_CODES:
            return self.connect_error()
        return CliError(f"{what}: {describe_error(error)}")

    def _deliver_errors(self) -> None:
        """Run pending error callbacks (librdkafka delivers them on poll). Only
        before the command reads anything: a consumer's poll could return a record."""
        for client in self._clients:
            if hasattr(client, "poll"):
                try:
                    client.poll(0)
                except Exception:  # noqa: BLE001 - best effort, for a better message
                    pass

    def connect_error(self, *, every_broker_down: bool = False) -> ConnectError:
        self._deliver_errors()
        reason = ""
        for error in reversed(self.errors):
            if error.name() in ("_TRANSPORT", "_RESOLVE", "_SSL", "_AUTHENTICATION"):
                reason = ": " + _reason(error.str())
                break
        if every_broker_down:
            return ConnectError(f"cannot connect to {self.bootstrap}{reason or ''}")
        return ConnectError(
            f"cannot connect to {self.bootstrap} within {self.timeout:g}s{reason}")


def describe_error(error: Any) -> str:
    """"unknown topic or partition (UNKNOWN_TOPIC_OR_PART)" from a KafkaError."""
    if error is None:
        return "unknown error"
    if not hasattr(error, "name"):
        return str(error)
    name = error.name()
    detail = error.str() or ""
    generic = not detail or detail.startswith(("Broker: ", "Local: "))
    friendly = _FRIENDLY.get(name)
    if friendly is None:
        friendly = detail.removeprefix("Broker: ").removeprefix("Local: ") or name
        return f"{friendly} ({name})"
    if generic:
        return f"{friendly} ({name})"
    return f"{friendly} ({name}): {detail}"


def add_group_examples(parser: argparse.ArgumentParser, per_command: int = 2) -> None:
    """Give every command group (`strom topics`, `strom cluster reassign`, ...)
    examples at the end of its --help: the first few of each of its commands',
    so a group's help never drifts from its commands'. Groups with their own
    epilog keep it."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in dict.fromkeys(action.choices.values()):
            add_group_examples(child, per_command)
        if parser.epilog:
            continue
        examples: dict[str, None] = {}  # ordered, and steps sharing examples show them once
        for child in dict.fromkeys(action.choices.values()):
            epilog = child.epilog or ""
            if not epilog.startswith("examples:\n"):
                continue
            entries: list[str] = []
            for line in epilog.split("\n\n", 1)[0].splitlines()[1:]:
                if entries and entries[-1].endswith("\\"):
                    entries[-1] += "\n" + line  # a continued command stays whole
                elif line.strip():
                    entries.append(line)
            examples.update(dict.fromkeys(entries[:per_command]))
        if examples:
            parser.epilog = "examples:\n" + "\n".join(examples) + "\n"
            parser.formatter_class = argparse.RawDescriptionHelpFormatter


def add_hidden_alias(parser: argparse.ArgumentParser, *flags: str, dest: str,
                     **kwargs: Any) -> None:
    """An earlier or other tools' spelling of an option: accepted, same
    destination, left out of --help (one spelling is shown everywhere)."""
    parser.add_argument(*flags, dest=dest, help=argparse.SUPPRESS, **kwargs)
