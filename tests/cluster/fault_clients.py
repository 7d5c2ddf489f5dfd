"""The real clients of the fault test (confluent-kafka, i.e. librdkafka):
idempotent acks=all writers of sequence-numbered records, a consumer group
reading meanwhile, and a read of the whole topic from offset 0 afterwards.
They only record what they saw; fault_checker.py judges it.

A record's value is `<writer>:<partition>:<seq>`: `writer` names one producer
instance (a writer whose producer failed fatally goes on with a new one under
a new name), `seq` counts that producer's records per partition from 0, so
log order within a (writer, partition) must be seq order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition


@dataclass(frozen=True)
class Acked:
    partition: int
    offset: int  # -1: acknowledged without an offset (see Writer._report)
    value: str
    at: float  # time.monotonic() of the delivery report


@dataclass
class WriterStats:
    acked: list[Acked] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)  # error name -> count
    fatal: list[str] = field(default_factory=list)
    unresolved: int = 0  # still in flight when the writer gave up flushing
    no_offset: int = 0  # acknowledged without an offset


def parse_value(value: str) -> tuple[str, int, int]:
    writer, partition, seq = value.rsplit(":", 2)
    return writer, int(partition), int(seq)


class Writer(threading.Thread):
    """One idempotent acks=all producer writing to every partition in turn,
    at most `rate` records a second, until stopped."""

    def __init__(self, name: str, bootstrap: str, topic: str, partitions: int,
                 rate: float, request_timeout_ms: int, acks: str = "all") -> None:
        super().__init__(name=f"writer-{name}", daemon=True)
        self.writer_name = name
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.interval = 1.0 / rate
        self.request_timeout_ms = request_timeout_ms
        #: "all" (idempotent); "1" only as the checker's negative control:
        #: a leader killed before its followers fetched loses acknowledged records.
        self.acks = acks
        self.stats = WriterStats()
        self.stopping = threading.Event()
        self.flush_timeout = 60.0
        self._lock = threading.Lock()
        self._fatal: str | None = None

    def _producer(self) -> Producer:
        return Producer({
            "bootstrap.servers": self.bootstrap, "acks": self.acks,
            "enable.idempotence": self.acks == "all",
            "linger.ms": 5, "request.timeout.ms": self.request_timeout_ms,
            # A record may wait through several faults before it is acknowledged;
            # one that expires is counted as failed, never as acknowledged.
            "message.timeout.ms": 120_000, "max.in.flight.requests.per.connection": 5,
            "reconnect.backoff.max.ms": 500, "topic.metadata.refresh.interval.ms": 2000,
            "error_cb": self._on_error, "log_level": 2,
        })

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka reports an idempotent producer's fatal error (e.g. the
        broker lost records it had acknowledged: OUT_OF_ORDER_SEQUENCE_NUMBER)
        here; the producer is unusable afterwards."""
        if err.fatal():
            self._fatal = str(err)

    def _report(self, err: KafkaError | None, message: Message) -> None:
        with self._lock:
            if err is None:
                value = message.value()
                offset = message.offset()
                assert value is not None
                if offset is None:
                    # librdkafka reports an idempotent batch delivered without
                    # an offset when it learns so indirectly: batches that timed
                    # out are "implicitly acked" once a later batch of the same
                    # producer and partition succeeds (its debug log says
                    # IMPLICITACK). Still acknowledged, so it must be in the log;
                    # only where is unknown.
                    self.stats.no_offset += 1
                    offset = -1
                self.stats.acked.append(Acked(message.partition() or 0, offset,
                                              value.decode(), time.monotonic()))
            else:
                self.stats.failed[err.name()] = self.stats.failed.get(err.name(), 0) + 1

    def run(self) -> None:
        generation = 0
        while not self.stopping.is_set():
            name = f"{self.writer_name}.{generation}"
            fatal = self._write(name)
            if fatal is None:
                return
            self.stats.fatal.append(f"{name}: {fatal}")
            generation += 1

    def _write(self, name: str) -> str | None:
        """Writes as producer `name` until stopped (None) or until the
        producer fails fatally (the error, as text)."""
        self._fatal = None
        producer = self._producer()
        seqs = [0] * self.partitions
        partition = 0
        next_at = time.monotonic()
        try:
            while not self.stopping.is_set():
                producer.poll(max(0.0, next_at - time.monotonic()))
                if self._fatal is not None:
                    return self._fatal
                if time.monotonic() < next_at:
                    continue
                next_at += self.interval
                if len(producer) > 1000:  # bounded backlog while partitions are offline
                    continue
                value = f"{name}:{partition}:{seqs[partition]}"
                try:
                    producer.produce(self.topic, value=value.encode(), partition=partition,
                                     on_delivery=self._report)
                except BufferError:
                    continue
                seqs[partition] += 1
                partition = (partition + 1) % self.partitions
            self.stats.unresolved += producer.flush(self.flush_timeout)
            return None
        finally:
            if self._fatal is not None:
                # Outcome unknown for what was in flight: failed, never acknowledged.
                producer.purge()
                producer.flush(10)
                self.stats.unresolved += len(producer)


class GroupReader(threading.Thread):
    """One member of a consumer group, recording every record delivered."""

    def __init__(self, name: str, bootstrap: str, topic: str, group: str) -> None:
        super().__init__(name=f"reader-{name}", daemon=True)
        self.consumer_config = {
            "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": True, "auto.commit.interval.ms": 500,
            "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1000,
            "reconnect.backoff.max.ms": 500, "topic.metadata.refresh.interval.ms": 2000,
            # Connection refusals from killed brokers are expected: errors only.
            "log_level": 2, "on_commit": self._on_commit,
        }
        self.topic = topic
        self.seen: list[tuple[int, int, str]] = []  # (partition, offset, value)
        #: The highest offset the coordinator acknowledged committing, per partition.
        self.committed: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.stopping = threading.Event()
        self.stopped = threading.Event()

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:
            self.errors[f"commit {err.name()}"] = self.errors.get(f"commit {err.name()}", 0) + 1
            return
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                self.committed[tp.partition] = max(self.committed.get(tp.partition, -1),
                                                   tp.offset)

    def run(self) -> None:
        consumer = Consumer(self.consumer_config)
        consumer.subscribe([self.topic])
        try:
            while not self.stopping.is_set():
                message = consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    self.errors[error.name()] = self.errors.get(error.name(), 0) + 1
                    continue
                value = message.value()
                offset = message.offset()
                assert value is not None and offset is not None
                self.seen.append((message.partition() or 0, offset, value.decode()))
        finally:
            consumer.close()
            self.stopped.set()


def committed_offsets(bootstrap: str, topic: str, group: str, partitions: int,
                      timeout: float) -> dict[int, int]:
    """The group's committed offsets, as a new member would resume from them."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "log_level": 2})
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                 timeout=timeout)
        return {tp.partition: tp.offset for tp in got}
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, partitions: int, timeout: float,
               progress: Callable[[], None] = lambda: None) -> dict[int, list[tuple[int, str]]]:
    """Every record of `topic` from offset 0 up to each partition's high
    watermark, as (offset, value) per partition, in log order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-checker-audit",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "log_level": 2})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                  timeout=timeout)[1]
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        log: dict[int, list[tuple[int, str]]] = {p: [] for p in range(partitions)}
        position = {p: 0 for p in range(partitions)}
        deadline = time.monotonic() + timeout
        while any(position[p] < ends[p] for p in range(partitions)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} back: at {position}, ends {ends}")
            message = consumer.poll(0.5)
            progress()
            if message is None or message.error() is not None:
                continue
            value = message.value()
            offset = message.offset()
            assert value is not None and offset is not None
            partition = message.partition() or 0
            log[partition].append((offset, value.decode()))
            position[partition] = offset + 1
        return log
    finally:
        consumer.close()
