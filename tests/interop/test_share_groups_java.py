"""Share groups (KIP-932) with Apache Kafka's own Java KafkaShareConsumer and
kafka-console-share-consumer (ConsoleShareConsumer), unchanged: every record
is delivered at least once, and the records a consumer held when it was
killed (SIGKILL) are delivered again to another member, with their delivery
count raised."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.testing import EmbeddedBroker

from .clients import KAFKA_LIBS, compile_java, run_kafka_tool, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.java]

PARTITIONS = 2


@pytest.fixture(scope="module")
def member_classes(java_tools: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_java("ShareMember", tmp_path_factory.mktemp("share-member"))


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    # A killed member keeps its assignment until its session times out (as in
    # Kafka): 6 s here instead of 45 s.
    with EmbeddedBroker(overrides={
        "group.share.session.timeout.ms": "6000", "group.share.min.session.timeout.ms": "6000",
        "group.share.heartbeat.interval.ms": "1000",
        "group.share.min.heartbeat.interval.ms": "1000"}) as b:
        yield b


class Member:
    """One ShareMember JVM; its output lines collected as they come."""

    def __init__(self, classes: Path, bootstrap: str, topic: str, group: str, mode: str) -> None:
        self.proc = subprocess.Popen(
            ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp",
             f"{classes}:{KAFKA_LIBS}/*", "ShareMember", bootstrap, topic, group, mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                        daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.strip())

    def records(self) -> list[tuple[int, int, str, int]]:
        out = []
        for line in list(self.lines):
            if line.startswith("R "):
                _, p, o, v, d = line.split()
                out.append((int(p), int(o), v, int(d)))
        return out

    def stop(self) -> None:
        """Close stdin: the member leaves (KafkaShareConsumer.close) and exits."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)
        self._reader.join(10)

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no close, no acknowledgement, the socket just drops
        self.proc.wait(10)

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-3000:] if self.proc.poll() is not None else ""


def _topic(broker: EmbeddedBroker) -> tuple[str, uuid.UUID]:
    name = f"share-java-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    return name, broker.services.image.topics[name].topic_id


def _produce(broker: EmbeddedBroker, topic: str, values: list[str]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0


def _fetching(broker: EmbeddedBroker, group: str, topic_id: uuid.UUID) -> bool:
    """Both share partitions exist on the broker: the member fetches from them
    (so records produced from now on are after the start offset, 'latest')."""
    shares = broker.services.share_partitions
    return all(shares.handle((group, topic_id, p)) is not None for p in range(PARTITIONS))


def test_at_least_once_and_redelivery_after_sigkill(broker: EmbeddedBroker,
                                                    member_classes: Path) -> None:
    topic, topic_id = _topic(broker)
    group = f"share-{uuid.uuid4().hex[:8]}"
    holder = Member(member_classes, broker.bootstrap, topic, group, "hold")
    try:
        assert wait_until(lambda: _fetching(broker, group, topic_id), timeout=60), \
            holder.stderr()
        values = [f"v{i}" for i in range(20)]
        _produce(broker, topic, values)
        assert wait_until(lambda: "H" in holder.lines, timeout=60), holder.stderr()
        held = {(p, o) for p, o, _, _ in holder.records()}
        assert held and all(d == 1 for *_, d in holder.records())
    finally:
        holder.kill()
    member = Member(member_classes, broker.bootstrap, topic, group, "accept")
    try:
        assert wait_until(lambda: {v for _, _, v, _ in member.records()} >= set(values),
                          timeout=90), (member.lines, member.stderr())
    finally:
        member.stop()
    got = member.records()
    # What the killed member held came again, one delivery later.
    again = {(p, o): d for p, o, _, d in got if (p, o) in held}
    assert set(again) == held and all(d == 2 for d in again.values())
    # Everything acknowledged: each share partition's stored start offset is at
    # its end (read back through the share coordinator).
    persister = broker.services.coordinators.persister

    def stored_start() -> int:
        summaries = [broker.run(persister.read_summary(group, topic_id, p))
                     for p in range(PARTITIONS)]
        return sum(s.start_offset for s in summaries if s is not None)

    assert wait_until(lambda: stored_start() == len(values), timeout=30)


def test_console_share_consumer(broker: EmbeddedBroker, java_tools: Any) -> None:
    topic, topic_id = _topic(broker)
    group = f"console-{uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = {}

    def consume() -> None:
        result["proc"] = run_kafka_tool(
            "org.apache.kafka.tools.consumer.ConsoleShareConsumer",
            "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
            "--max-messages", "10", "--timeout-ms", "60000", timeout=120)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert wait_until(lambda: _fetching(broker, group, topic_id), timeout=60)
    values = [f"c{i}" for i in range(10)]
    _produce(broker, topic, values)
    thread.join(120)
    assert not thread.is_alive()
    assert sorted(result["proc"].stdout.split()) == sorted(values)
