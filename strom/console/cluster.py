"""What the console asks of a cluster, through confluent-kafka's AdminClient,
Consumer and Producer only, so it works against any Kafka-compatible cluster
(strom or Apache Kafka). Every method blocks; the web handlers run them in
threads (`asyncio.to_thread`) so a slow broker never stalls other pages."""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from strom.console.messages import Message, from_kafka

#: confluent_kafka.admin, whose stubs do not re-export the classes it defines
#: (NewTopic, OffsetSpec, ResourceType).
ka: Any = importlib.import_module("confluent_kafka.admin")


def spec(kind: str, timestamp_ms: int = 0) -> Any:
    """An OffsetSpec: "earliest", "latest" or "timestamp"."""
    if kind == "timestamp":
        return ka.OffsetSpec.for_timestamp(timestamp_ms)
    return getattr(ka.OffsetSpec, kind)()


#: Kafka's api key of DescribeLogDirs.
DESCRIBE_LOG_DIRS = 35


class ConsoleError(Exception):
    """A failure to show on the page as one line (status: the HTTP status)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ConsoleError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 404)


class Unreachable(ConsoleError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 503)


@dataclass
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]
    earliest: int = -1
    latest: int = -1


@dataclass
class TopicInfo:
    name: str
    partitions: list[PartitionInfo]
    internal: bool = False

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0


@dataclass
class Overview:
    cluster_id: str | None
    controller: int
    brokers: list[tuple[int, str, int]]
    topics: list[TopicInfo]

    @property
    def partition_count(self) -> int:
        return sum(len(t.partitions) for t in self.topics)


@dataclass
class ConfigRow:
    name: str
    value: str | None
    source: str
    read_only: bool
    sensitive: bool
    is_default: bool


@dataclass
class GroupPartition:
    topic: str
    partition: int
    committed: int | None
    end: int
    member: str | None

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(0, self.end - self.committed)


@dataclass
class GroupMember:
    member_id: str
    client_id: str
    host: str
    assignment: list[tuple[str, int]]


@dataclass
class Group:
    group_id: str
    state: str
    protocol: str
    members: list[GroupMember] = field(default_factory=list)
    partitions: list[GroupPartition] = field(default_factory=list)

    @property
    def total_lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


class Cluster:
    """One cluster's clients, created once and shared by every request (the
    clients are thread-safe; librdkafka reconnects by itself after a restart)."""

    def __init__(self, bootstrap: str | Callable[[], str], *, timeout: float = 10.0,
                 config: Mapping[str, Any] | None = None) -> None:
        """`bootstrap` may be a function called on first use (a broker serving
        the console itself knows its own port only once its listeners are bound)."""
        self._bootstrap = bootstrap
        self.timeout = timeout
        # librdkafka's log goes through Python logging (not straight to stderr):
        # an unreachable broker is shown on the page, not repeated on the console.
        self._extra = {"logger": logging.getLogger("strom.console.librdkafka"),
                       **(config or {})}
        self._admin_client: AdminClient | None = None
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    @property
    def bootstrap(self) -> str:
        return self._bootstrap if isinstance(self._bootstrap, str) else self._bootstrap()

    @property
    def config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **self._extra}

    @property
    def _admin(self) -> AdminClient:
        bootstrap = self.bootstrap
        if not bootstrap:
            raise Unreachable("the broker's Kafka listeners are not up yet")
        with self._lock:
            if self._admin_client is None:
                # Looking at a topic must not create it (librdkafka's admin client is
                # a producer handle, whose metadata requests would ask for it).
                self._admin_client = AdminClient({**self.config,
                                                  "allow.auto.create.topics": False})
            return self._admin_client

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout)

    # -- plumbing ----------------------------------------------------------------------------

    def _wait(self, future: Any, what: str) -> Any:
        try:
            return future.result(timeout=self.timeout)
        except KafkaException as exc:
            raise _translate(exc, what) from None
        except TimeoutError:
            raise Unreachable(f"{what}: no answer from {self.bootstrap} within "
                              f"{self.timeout:g}s") from None

    def _metadata(self, topic: str | None = None) -> Any:
        try:
            return self._admin.list_topics(topic=topic, timeout=self.timeout)
        except KafkaException as exc:
            raise _translate(exc, "metadata") from None

    def _consumer(self, extra: Mapping[str, Any] | None = None) -> Consumer:
        return Consumer({**self.config, "group.id": f"strom-console-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         **(extra or {})})

    def producer(self) -> Producer:
        config = self.config
        with self._lock:
            if self._producer is None:
                self._producer = Producer(config)
            return self._producer

    # -- overview and topics -----------------------------------------------------------------

    def overview(self) -> Overview:
        md = self._metadata()
        topics = [self._topic_info(t) for t in sorted(md.topics.values(), key=lambda t: t.topic)]
        brokers = sorted((b.id, b.host, b.port) for b in md.brokers.values())
        if not brokers:
            raise Unreachable(f"cannot reach any broker at {self.bootstrap}")
        return Overview(md.cluster_id, md.controller_id, brokers, topics)

    @staticmethod
    def _topic_info(t: Any) -> TopicInfo:
        parts = [PartitionInfo(p.id, p.leader, list(p.replicas), list(p.isrs))
                 for p in sorted(t.partitions.values(), key=lambda p: p.id)]
        return TopicInfo(t.topic, parts, internal=t.topic.startswith("__"))

    def topic(self, name: str, *, offsets: bool = True) -> TopicInfo:
        md = self._metadata(name)
        meta = md.topics.get(name)
        if meta is None or (meta.error is not None and
                            meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            raise NotFound(f"topic {name!r} does not exist")
        if meta.error is not None:
            raise ConsoleError(f"topic {name!r}: {meta.error.str()}")
        info = self._topic_info(meta)
        if offsets and info.partitions:
            tps = [TopicPartition(name, p.partition) for p in info.partitions]
            earliest = self.offsets(tps, spec("earliest"))
            latest = self.offsets(tps, spec("latest"))
            for p in info.partitions:
                p.earliest = earliest.get((name, p.partition), -1)
                p.latest = latest.get((name, p.partition), -1)
        return info

    def offsets(self, tps: list[TopicPartition], spec: Any) -> dict[tuple[str, int], int]:
        """Offsets of many partitions in one ListOffsets round per leader."""
        if not tps:
            return {}
        futures = self._admin.list_offsets({tp: spec for tp in tps},
                                           request_timeout=self.timeout)
        out: dict[tuple[str, int], int] = {}
        for tp, future in futures.items():
            try:
                out[(tp.topic, tp.partition)] = int(future.result(timeout=self.timeout).offset)
            except (KafkaException, TimeoutError):
                continue
        return out

    def sizes(self, brokers: list[tuple[int, str, int]]) -> dict[tuple[str, int], int]:
        """Bytes on disk per partition (the largest replica), from DescribeLogDirs
        sent to every broker; librdkafka has no call for it, so it goes over
        strom's raw-request client with the same TLS/SASL settings. Empty when
        no broker answers or the principal may not describe the cluster."""
        from strom.cli.common import CliError
        from strom.cli.raw_request import request

        out: dict[tuple[str, int], int] = {}
        for _, host, port in brokers:
            try:
                response = request((host, port), DESCRIBE_LOG_DIRS, 1, {"topics": None},
                                   self.timeout, self.config)
            except CliError:
                continue
            for result in response.results:
                if int(result.error_code) != 0:
                    continue
                for topic in result.topics:
                    for p in topic.partitions:
                        key = (str(topic.name), int(p.partition_index))
                        out[key] = max(out.get(key, 0), int(p.partition_size))
        return out

    def end_offsets(self, topics: list[TopicInfo]) -> dict[tuple[str, int], int]:
        tps = [TopicPartition(t.name, p.partition) for t in topics for p in t.partitions]
        return self.offsets(tps, spec("latest"))

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     configs: Mapping[str, str]) -> None:
        new = ka.NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                       config=dict(configs))
        futures = self._admin.create_topics([new], request_timeout=self.timeout)
        self._wait(futures[name], f"create topic {name!r}")

    def delete_topic(self, name: str) -> None:
        self.topic(name, offsets=False)
        futures = self._admin.delete_topics([name], request_timeout=self.timeout)
        self._wait(futures[name], f"delete topic {name!r}")

    def topic_configs(self, name: str) -> list[ConfigRow]:
        self.topic(name, offsets=False)
        resource = ka.ConfigResource(ka.ResourceType.TOPIC, name)
        futures = self._admin.describe_configs([resource], request_timeout=self.timeout)
        entries: dict[str, Any] = self._wait(futures[resource], f"configs of {name!r}")
        return [ConfigRow(e.name, e.value, _source_name(e.source), bool(e.is_read_only),
                          bool(e.is_sensitive), bool(e.is_default))
                for e in sorted(entries.values(), key=lambda e: e.name)]

    def set_topic_config(self, name: str, key: str, value: str | None) -> None:
        """Set one topic config (value None: delete the override, back to the default)."""
        op = ka.AlterConfigOpType.DELETE if value is None else ka.AlterConfigOpType.SET
        resource = ka.ConfigResource(ka.ResourceType.TOPIC, name, incremental_configs=[
            ka.ConfigEntry(key, value, incremental_operation=op)])
        futures = self._admin.incremental_alter_configs([resource],
                                                        request_timeout=self.timeout)
        self._wait(futures[resource], f"set {key} of {name!r}")

    # -- messages ----------------------------------------------------------------------------

    def produce(self, topic: str, *, key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]], partition: int | None) -> tuple[int, int]:
        """(partition, offset) the record was written at."""
        self.topic(topic, offsets=False)
        result: list[Any] = []

        def delivered(err: Any, msg: Any) -> None:
            result.append((err, msg))

        producer = self.producer()
        kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers or None,
                                  "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        try:
            producer.produce(topic, **kwargs)
        except (KafkaException, BufferError) as exc:
            raise ConsoleError(f"produce to {topic!r}: {exc}") from None
        deadline = time.monotonic() + self.timeout
        while not result and time.monotonic() < deadline:
            producer.poll(0.1)
        if not result:
            raise Unreachable(f"produce to {topic!r}: not acknowledged within "
                              f"{self.timeout:g}s")
        err, msg = result[0]
        if err is not None:
            raise ConsoleError(f"produce to {topic!r}: {err.str()}")
        return int(msg.partition()), int(msg.offset())

    def read(self, topic: str, starts: Mapping[int, int], limit: int,
             stop_at: Mapping[int, int], *, max_seconds: float = 5.0,
             accept: Any = None, newest: bool = False) -> tuple[list[Message], int]:
        """Up to `limit` records from each partition's start offset up to its end
        offset at the time of asking (`stop_at`), in offset order per partition;
        `accept(message)` filters; `newest`: keep the last `limit` instead of the
        first. Returns (messages, records scanned)."""
        todo = {p: o for p, o in starts.items() if o < stop_at.get(p, 0)}
        if not todo:
            return [], 0
        consumer = self._consumer({"fetch.max.bytes": 8 << 20})
        out: list[Message] = []
        scanned = 0
        try:
            consumer.assign([TopicPartition(topic, p, o) for p, o in todo.items()])
            deadline = time.monotonic() + max_seconds
            remaining = set(todo)
            while (remaining and (newest or len(out) < limit)
                   and time.monotonic() < deadline):
                for msg in consumer.consume(500, timeout=0.5):
                    err = msg.error()
                    p = int(msg.partition() or 0)
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(p)
                        continue
                    offset = int(msg.offset() or 0)
                    if offset >= stop_at[p] - 1:
                        remaining.discard(p)
                    if offset >= stop_at[p] or p not in todo:
                        continue
                    scanned += 1
                    message = from_kafka(msg)
                    if accept is None or accept(message):
                        out.append(message)
        finally:
            consumer.close()
        out.sort(key=lambda m: (m.timestamp, m.partition, m.offset))
        return (out[-limit:] if newest else out[:limit]), scanned

    def offsets_for_time(self, topic: str, partitions: list[int],
                         timestamp_ms: int) -> dict[int, int]:
        """Each partition's first offset at or after the timestamp (its end if none)."""
        tps = [TopicPartition(topic, p) for p in partitions]
        found = self.offsets(tps, spec("timestamp", timestamp_ms))
        ends = self.offsets(tps, spec("latest"))
        return {p: (found.get((topic, p), -1) if found.get((topic, p), -1) >= 0
                    else ends.get((topic, p), 0)) for p in partitions}

    # -- consumer groups ---------------------------------------------------------------------

    def group_ids(self) -> list[tuple[str, str]]:
        future = self._admin.list_consumer_groups(request_timeout=self.timeout)
        result = self._wait(future, "list groups")
        return sorted((g.group_id, _enum_name(g.state)) for g in result.valid)

    def group(self, group_id: str) -> Group:
        futures = self._admin.describe_consumer_groups([group_id],
                                                       request_timeout=self.timeout)
        desc = self._wait(futures[group_id], f"describe group {group_id!r}")
        state = _enum_name(desc.state)
        members = [GroupMember(m.member_id, m.client_id, m.host,
                               sorted((tp.topic, tp.partition)
                                      for tp in (m.assignment.topic_partitions
                                                 if m.assignment else [])))
                   for m in desc.members]
        committed = self.committed(group_id)
        if state == "DEAD" and not committed:
            raise NotFound(f"consumer group {group_id!r} does not exist")
        owner = {tp: m.client_id or m.member_id for m in members for tp in m.assignment}
        keys = sorted(set(committed) | set(owner))
        ends = self.offsets([TopicPartition(t, p) for t, p in keys], spec("latest"))
        partitions = [GroupPartition(t, p, committed.get((t, p)), ends.get((t, p), 0),
                                     owner.get((t, p))) for t, p in keys]
        return Group(group_id, state, desc.partition_assignor or "", members, partitions)

    def committed(self, group_id: str) -> dict[tuple[str, int], int]:
        futures = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group_id)], request_timeout=self.timeout)
        result = self._wait(futures[group_id], f"offsets of group {group_id!r}")
        return {(tp.topic, tp.partition): int(tp.offset)
                for tp in result.topic_partitions if tp.offset >= 0}

    def set_group_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        request = ConsumerGroupTopicPartitions(
            group_id, [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())])
        futures = self._admin.alter_consumer_group_offsets([request],
                                                           request_timeout=self.timeout)
        result = self._wait(futures[group_id], f"reset offsets of {group_id!r}")
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise ConsoleError(f"reset {tp.topic}-{tp.partition}: {tp.error.str()}")

    def delete_group(self, group_id: str) -> None:
        futures = self._admin.delete_consumer_groups([group_id], request_timeout=self.timeout)
        self._wait(futures[group_id], f"delete group {group_id!r}")


def _source_name(source: Any) -> str:
    # ConfigEntry.source is the protocol's number, not the ConfigSource enum.
    try:
        name = str(ka.ConfigSource(source).name)
    except ValueError:
        name = _enum_name(source)
    return {"DYNAMIC_TOPIC_CONFIG": "topic override", "DEFAULT_CONFIG": "default",
            "STATIC_BROKER_CONFIG": "broker config",
            "DYNAMIC_DEFAULT_BROKER_CONFIG": "cluster-wide broker config",
            "DYNAMIC_BROKER_CONFIG": "broker override"}.get(name, name.lower())


def _translate(exc: KafkaException, what: str) -> ConsoleError:
    err = exc.args[0] if exc.args else None
    if not isinstance(err, KafkaError):
        return ConsoleError(f"{what}: {exc}")
    code = err.code()
    text = f"{what}: {err.str()}"
    if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.GROUP_ID_NOT_FOUND):
        return NotFound(text)
    if code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
                KafkaError._RESOLVE):
        return Unreachable(text)
    return ConsoleError(text)
