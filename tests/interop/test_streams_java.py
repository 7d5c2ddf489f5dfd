"""Kafka Streams 4.4 against strom: a word count with exactly_once_v2 under the
streams rebalance protocol (KIP-1071, group.protocol=streams) and, for comparison,
under the classic one. The app counts, is stopped, restarts on an empty state
directory and restores its counts from the changelog topic; two instances split
the tasks between them (tests/interop/java/StreamsWordCount.java)."""

from __future__ import annotations

import queue
import re
import struct
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.coordinator.group.streams import StreamsGroup
from strom.testing import EmbeddedBroker

from .clients import KAFKA_LIBS, compile_java

if TYPE_CHECKING:
    from tests.coordinator.test_streams_group_wire import Member

pytestmark = [pytest.mark.interop, pytest.mark.java]


@pytest.fixture(scope="module")
def classes(java_tools: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_java("StreamsWordCount", tmp_path_factory.mktemp("streams-java"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("streams-broker"), overrides={
            "offsets.topic.num.partitions": "3", "transaction.state.log.num.partitions": "3",
            "group.initial.rebalance.delay.ms": "0"}) as b:
        b.run(b.services.groups.coordinator_for("any"))  # creates __consumer_offsets
        b.run(b.services.groups.runtime.wait_loaded())
        yield b


class App:
    """One StreamsWordCount process; its output lines are read on a thread."""

    def __init__(self, classes: Path, bootstrap: str, app_id: str, protocol: str,
                 source: str, sink: str, state_dir: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.proc = subprocess.Popen(
            ["java", "-cp", f"{classes}:{KAFKA_LIBS}/*", "StreamsWordCount", bootstrap, app_id,
             protocol, source, sink, str(state_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        for line in self.seen:
            if line.startswith(prefix):
                return line
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} within {timeout}s; output:\n" +
                                     "\n".join(self.seen[-60:])) from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def last_tasks(self) -> str:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                break
        tasks = [line for line in self.seen if line.startswith("TASKS ")]
        return tasks[-1] if tasks else ""

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        self.wait_for("CLOSED", timeout=60)
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, line in enumerate(lines):
        producer.produce(topic, key=str(i).encode(), value=line.encode())
    assert producer.flush(30) == 0


def counts_reader(bootstrap: str, topic: str) -> Any:
    """A read_committed consumer of the counts; returns a poller of word -> latest count."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    latest: dict[str, int] = {}

    def poll(expected: dict[str, int], timeout: float = 90) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while latest != expected and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                key, value = msg.key(), msg.value()
                if msg.error() is None and key is not None and value is not None:
                    (count,) = struct.unpack(">q", value)
                    latest[key.decode()] = count
        return dict(latest)

    return poll, consumer


def test_word_count_exactly_once_restores_from_changelog(
        classes: Path, broker: EmbeddedBroker, tmp_path: Path) -> None:
    for protocol in ("streams", "classic"):
        app_id = f"wc-{protocol}"
        source, sink = f"{app_id}-lines", f"{app_id}-counts"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for name in (source, sink):
            admin.create_topics([NewTopic(name, 2, 1)])[name].result(30)
        first = ["the quick brown fox", "the lazy dog", "The fox"]
        second = ["a dog and a fox", "the end"]
        produce(broker.bootstrap, source, first)
        poll, consumer = counts_reader(broker.bootstrap, sink)
        app = App(classes, broker.bootstrap, app_id, protocol, source, sink, tmp_path / "s1")
        try:
            app.wait_for("STATE RUNNING")
            expected = Counter(w for line in first for w in line.lower().split())
            assert poll(dict(expected)) == dict(expected), protocol
            if protocol == "streams":
                group = broker.services.groups.runtime.read(
                    broker.services.groups.partition_for(app_id),
                    lambda shard: shard.groups.get(app_id))  # noqa: B023
                assert isinstance(group, StreamsGroup) and group.state_name == "Stable"
            app.stop()
            # A new state directory: the counts can only come back from the changelog.
            produce(broker.bootstrap, source, second)
            app = App(classes, broker.bootstrap, app_id, protocol, source, sink,
                      tmp_path / "s2")
            app.wait_for("STATE RUNNING")
            expected.update(w for line in second for w in line.lower().split())
            assert poll(dict(expected)) == dict(expected), protocol
            app.stop()
        finally:
            app.kill()
            consumer.close()


def test_two_instances_split_the_tasks(classes: Path, broker: EmbeddedBroker,
                                       tmp_path: Path) -> None:
    app_id = "wc-two"
    source, sink = f"{app_id}-lines", f"{app_id}-counts"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for name in (source, sink):
        admin.create_topics([NewTopic(name, 2, 1)])[name].result(30)
    apps = [App(classes, broker.bootstrap, app_id, "streams", source, sink, tmp_path / f"s{i}")
            for i in range(2)]
    try:
        deadline = time.monotonic() + 90
        while True:
            tasks = [app.last_tasks() for app in apps]
            active = [t[len("TASKS "):].split(" | ")[0] for t in tasks]
            if all(a for a in active) and sorted(",".join(active).split(",")) == [
                    "0_0", "0_1", "1_0", "1_1"]:
                break
            assert time.monotonic() < deadline, f"tasks not split: {tasks}"
            time.sleep(0.2)
        assert all(len(a.split(",")) == 2 for a in active), active
        lines = ["one two three", "two three", "three"]
        produce(broker.bootstrap, source, lines)
        poll, consumer = counts_reader(broker.bootstrap, sink)
        try:
            assert poll({"one": 1, "two": 2, "three": 3}) == {"one": 1, "two": 2, "three": 3}
        finally:
            consumer.close()
        for app in apps:
            app.stop()
    finally:
        for app in apps:
            app.kill()


def _stable_member(broker: EmbeddedBroker, app: str, topic: str) -> Member:
    """A one-member streams group `app` (raw heartbeats, a word-count topology reading
    `topic`, made here), heartbeated until Stable; its Member."""
    from tests.coordinator.test_streams_group_wire import (
        Member,
        alter_group_config,
        until_stable,
        word_count,
    )
    from tests.wire import WireClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    with WireClient(broker.bootstrap) as client:
        alter_group_config(client, app, "streams.initial.rebalance.delay.ms", "0")
        member = Member(client, app, word_count(app, topic))
        member.heartbeat()
        until_stable([member])
    return member


def test_dump_log_decodes_streams_group_records(java_tools: Any, broker: EmbeddedBroker,
                                                tmp_path: Path) -> None:
    """Kafka's own decoder reads the streams group records strom writes."""
    from strom.coordinator.group.service import partition_for

    from .clients import run_kafka_tool

    member = _stable_member(broker, "dump-app", "dump-lines")
    segment = (broker.data_dir / f"__consumer_offsets-{partition_for('dump-app', 3)}"
               / "00000000000000000000.log")
    out = run_kafka_tool("org.apache.kafka.tools.DumpLogSegments", "--offsets-decoder",
                         "--print-data-log", "--files", str(segment)).stdout
    ours = [line for line in out.splitlines() if '"dump-app"' in line]
    types = {int(t) for line in ours for t in re.findall(r'"type":"(\d+)"', line)}
    assert {17, 19, 20, 21, 22, 23} <= types, out[-3000:]
    assert "Unknown" not in out and "error" not in out.lower(), out[-3000:]
    assert any('"processId":"' + member.process + '"' in line for line in ours)


def test_kafka_streams_groups_tool(java_tools: Any, broker: EmbeddedBroker) -> None:
    """kafka-streams-groups.sh lists and describes a streams group on strom."""
    from .clients import run_kafka_tool

    member = _stable_member(broker, "tool-app", "tool-lines")

    def tool(*args: str) -> list[list[str]]:
        out = run_kafka_tool("streams-groups", "--bootstrap-server", broker.bootstrap,
                             *args).stdout
        return [line.split() for line in out.splitlines() if line.strip()]

    assert ["tool-app"] in tool("--list")
    (header, state) = tool("--describe", "--group", "tool-app", "--state")
    assert header[-2:] == ["STATE", "#MEMBERS"] and state[-2:] == ["Stable", "1"]
    (header, row) = tool("--describe", "--group", "tool-app", "--members")
    assert row[0] == "tool-app" and member.member_id in row and member.process in row
    offsets = tool("--describe", "--group", "tool-app", "--offsets")
    assert {(r[1], r[2]) for r in offsets[1:]} == {
        (t, p) for t in ("tool-lines", "tool-app-counts-repartition") for p in ("0", "1")}
