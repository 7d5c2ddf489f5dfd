"""KIP-848 online migration with Kafka's Java consumer: a rolling upgrade of a
classic group to the consumer protocol, and the rolling downgrade back.

Members are `java/GroupMember.java` processes (group.protocol=classic or
consumer) that print every record they consume and commit before giving a
partition up; every record must be printed exactly once across members while
members of both protocols share the group. The group's type is read with
`kafka-consumer-groups --list --type`, as an operator would.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from .clients import KAFKA_LIBS, compile_java, run_kafka_tool, wait_until
from .test_groups import EXTERNAL, create, gbootstrap, group_broker, produce

pytestmark = [pytest.mark.interop, pytest.mark.java]
__all__ = ["gbootstrap", "group_broker"]  # fixtures used here

PARTITIONS = 6
TIMEOUT = 90 if EXTERNAL else 60


@pytest.fixture(autouse=True)
def _java(java_tools: Any) -> None:
    pass


@pytest.fixture(scope="module")
def member_classes(tmp_path_factory: pytest.TempPathFactory, java_tools: Any) -> Path:
    return compile_java("GroupMember", tmp_path_factory.mktemp("group-member"))


class JavaMember:
    """One GroupMember process; its output lines are collected by a thread."""

    def __init__(self, classes: Path, bootstrap: str, topic: str, group: str,
                 protocol: str) -> None:
        self.protocol = protocol
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["java", "-cp", f"{classes}:{KAFKA_LIBS}/*", "GroupMember", bootstrap, topic,
             group, protocol], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def records(self) -> list[tuple[int, int]]:
        return [(int(p), int(o)) for kind, p, o, *_ in
                (line.split() for line in list(self.lines) if line.startswith("R "))]

    def assigned(self) -> int:
        sizes = [int(line.split()[1]) for line in list(self.lines) if line.startswith("A ")]
        return sizes[-1] if sizes else 0

    def stop(self) -> None:
        """Close stdin: the member leaves the group and exits."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        assert "closed" in self.lines, self.lines[-5:]


def group_type(bootstrap: str, group: str) -> str | None:
    out = run_kafka_tool("consumer-groups", "--bootstrap-server", bootstrap, "--list",
                         "--type").stdout
    for line in out.splitlines():
        cols = line.split()
        if cols and cols[0] == group:
            return cols[1].lower()
    return None


def all_records(members: list[JavaMember]) -> list[tuple[int, int]]:
    return [r for m in members for r in m.records()]


def test_rolling_upgrade_and_downgrade(gbootstrap: str, member_classes: Path) -> None:
    topic = f"migrate-{uuid.uuid4().hex[:8]}"
    group = f"migrate-{uuid.uuid4().hex[:8]}"
    create(gbootstrap, topic, PARTITIONS)
    members: list[JavaMember] = []
    expected = 0

    def start(protocol: str) -> JavaMember:
        member = JavaMember(member_classes, gbootstrap, topic, group, protocol)
        members.append(member)
        return member

    def produce_and_consume(count: int) -> None:
        nonlocal expected
        produce(gbootstrap, topic, [f"v{expected + i}" for i in range(count)])
        expected += count
        wait_until(lambda: len(all_records(members)) >= expected, TIMEOUT,
                   what=f"{expected} records consumed; now {len(all_records(members))}")

    try:
        # Two classic members share the topic.
        c1, c2 = start("classic"), start("classic")
        wait_until(lambda: c1.assigned() + c2.assigned() == PARTITIONS
                   and c1.assigned() and c2.assigned(), TIMEOUT, what="classic members assigned")
        produce_and_consume(300)
        assert group_type(gbootstrap, group) == "classic"

        # Rolling upgrade: a consumer-protocol member replaces the second classic one.
        k1 = start("consumer")
        wait_until(lambda: group_type(gbootstrap, group) == "consumer", TIMEOUT,
                   what="the group converted to a consumer group")
        wait_until(lambda: k1.assigned() > 0, TIMEOUT, what="the new member assigned")
        produce_and_consume(300)
        c2.stop()
        wait_until(lambda: c1.assigned() + k1.assigned() == PARTITIONS
                   and c1.assigned() and k1.assigned(), TIMEOUT,
                   what="two members of two protocols sharing the topic")
        produce_and_consume(300)
        assert group_type(gbootstrap, group) == "consumer"

        # Rolling downgrade: a classic member replaces the consumer-protocol one.
        c3 = start("classic")
        wait_until(lambda: c3.assigned() > 0, TIMEOUT, what="a classic member in the "
                   "consumer group assigned")
        produce_and_consume(300)
        k1.stop()
        wait_until(lambda: group_type(gbootstrap, group) == "classic", TIMEOUT,
                   what="the group converted back to a classic group")
        wait_until(lambda: c1.assigned() + c3.assigned() == PARTITIONS
                   and c1.assigned() and c3.assigned(), TIMEOUT,
                   what="two classic members sharing the topic")
        produce_and_consume(300)
    finally:
        for member in members:
            member.stop()

    records = all_records(members)
    duplicates = len(records) - len(set(records))
    assert duplicates == 0, f"{duplicates} records consumed twice"
    assert len(records) == expected
