"""Classic consumer groups with real clients: confluent-kafka, kafka-python, aiokafka.

Each group member runs in its own thread with the client's own poll loop (and
heartbeat thread), as an application would. A member "killed" is a separate
process ended with SIGKILL, so it neither leaves nor heartbeats again.

The broker is a strom of the module's own with fast group timeouts
(`group.initial.rebalance.delay.ms=0`, short session timeouts); with
STROM_TEST_BOOTSTRAP set the tests run against that broker instead (e.g. Apache
Kafka, to check that they assert Kafka's behaviour) with Kafka's minimum
session timeout of 6 s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strom.testing import EmbeddedBroker

from .clients import wait_until

pytestmark = pytest.mark.interop

PARTITIONS = 6
CLIENTS = ("confluent", "kafka-python", "aiokafka")
GROUP_OVERRIDES = {
    "num.partitions": "1",
    "auto.create.topics.enable": "true",
    "offsets.topic.num.partitions": "8",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "500",
    "group.consumer.session.timeout.ms": "4000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.heartbeat.interval.ms": "300",
    "group.consumer.min.heartbeat.interval.ms": "100",
}
EXTERNAL = os.environ.get("STROM_TEST_BOOTSTRAP", "").strip()
SESSION_MS = 6000 if EXTERNAL else 1500
HEARTBEAT_MS = SESSION_MS // 5


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker | None]:
    if EXTERNAL:
        yield None
        return
    with EmbeddedBroker(tmp_path_factory.mktemp("groups"), overrides=GROUP_OVERRIDES) as b:
        yield b


@pytest.fixture
def gbootstrap(request: pytest.FixtureRequest, group_broker: EmbeddedBroker | None) -> str:
    if group_broker is None:
        return str(request.getfixturevalue("bootstrap"))
    return group_broker.bootstrap


@pytest.fixture
def topic6(gbootstrap: str, topic: str) -> str:
    create(gbootstrap, topic, PARTITIONS)
    return topic


def create(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # -1: default.replication.factor, so that producing with acks=all (the
    # clients' default) meets min.insync.replicas in a cluster too
    admin.create_topics([NewTopic(topic, partitions, -1)])[topic].result(30)

    def ready() -> bool:
        t = admin.list_topics(topic, timeout=5).topics.get(topic)
        return t is not None and t.error is None and len(t.partitions) == partitions

    wait_until(ready, 15, what=f"{topic} with {partitions} partitions")


def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    """Values spread round-robin over the topic's partitions."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0


class Member(threading.Thread):
    """One group member: a client's consumer polling in its own thread."""

    def __init__(self, client: str, bootstrap: str, group: str, topic: str,
                 **config: Any) -> None:
        super().__init__(daemon=True, name=f"{client}-{group}")
        self.client = client
        self.bootstrap = bootstrap
        self.group = group
        self.topic = topic
        self.config = config
        self.values: list[str] = []
        self.assigned: frozenset[int] = frozenset()
        self.events: list[tuple[str, frozenset[int]]] = []  # (assign|revoke, partitions)
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._commit = threading.Event()
        self._committed = threading.Event()
        self.start()

    # -- control from the test ------------------------------------------------------------

    def commit(self, timeout: float = 15) -> None:
        self._committed.clear()
        self._commit.set()
        done = self._committed.wait(timeout)
        if self.error is not None:
            raise self.error
        assert done, f"{self.name}: commit did not finish"

    def close(self, timeout: float = 30) -> None:
        self._stopping.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not close"
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        try:
            {"confluent": self._run_confluent, "kafka-python": self._run_kafka_python,
             "aiokafka": lambda: asyncio.run(self._run_aiokafka())}[self.client]()
        except BaseException as exc:  # reported by close()
            self.error = exc

    # -- clients ----------------------------------------------------------------------------

    def _run_confluent(self) -> None:
        from confluent_kafka import Consumer, KafkaError, KafkaException

        timeouts: dict[str, Any] = {"session.timeout.ms": SESSION_MS,
                                    "heartbeat.interval.ms": HEARTBEAT_MS}
        if self.config.get("group.protocol") == "consumer":
            timeouts = {}  # KIP-848: the broker decides them
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": self.group,
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000, **timeouts, **self.config})
        # KIP-848 assignments are incremental, like cooperative-sticky ones.
        cooperative = (self.config.get("partition.assignment.strategy") == "cooperative-sticky"
                       or self.config.get("group.protocol") == "consumer")

        def on_assign(c: Any, partitions: list[Any]) -> None:
            self.events.append(("assign", frozenset(p.partition for p in partitions)))
            if cooperative:
                c.incremental_assign(partitions)
            else:
                c.assign(partitions)

        def on_revoke(c: Any, partitions: list[Any]) -> None:
            self.events.append(("revoke", frozenset(p.partition for p in partitions)))
            try:  # commit what was consumed before giving partitions away
                c.commit(asynchronous=False)
            except KafkaException:
                pass  # nothing consumed since the last commit
            if cooperative:
                c.incremental_unassign(partitions)
            else:
                c.unassign()

        consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)
        try:
            while not self._stopping.is_set():
                msg = consumer.poll(0.05)
                if msg is not None and msg.error() is None:
                    self.values.append(msg.value().decode())
                self.assigned = frozenset(tp.partition for tp in consumer.assignment())
                if self._commit.is_set():
                    try:
                        consumer.commit(asynchronous=False)
                    except KafkaException as exc:
                        if exc.args[0].code() != KafkaError._NO_OFFSET:
                            continue  # a rebalance: retry once it is over
                    self._commit.clear()
                    self._committed.set()
        finally:
            consumer.close()

    def _run_kafka_python(self) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer
        from kafka.errors import KafkaError as KafkaPythonError

        member = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_assigned(self, assigned: Any) -> None:
                member.events.append(("assign", frozenset(tp.partition for tp in assigned)))

            def on_partitions_revoked(self, revoked: Any) -> None:
                # kafka-python 3 calls this on its IO thread: a commit here deadlocks.
                member.events.append(("revoke", frozenset(tp.partition for tp in revoked)))

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group,
            auto_offset_reset="earliest", enable_auto_commit=False,
            session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
            metadata_max_age_ms=1000, **self.config)
        # Know the topic before joining. Otherwise the leader assigns from an empty
        # metadata snapshot and rejoins as soon as the snapshot fills, and kafka-python
        # 3.0 can hang when that rejoin races its own join (seen against Apache Kafka).
        consumer.subscribe([self.topic], listener=Listener())
        wait_until(lambda: self.topic in getattr(consumer._coordinator, "_metadata_snapshot",
                                                 {self.topic: 0}), 15,
                   what=f"metadata of {self.topic}")
        try:
            while not self._stopping.is_set():
                for records in consumer.poll(timeout_ms=50).values():
                    self.values.extend(r.value.decode() for r in records)
                self.assigned = frozenset(tp.partition for tp in consumer.assignment())
                if self._commit.is_set():
                    try:
                        consumer.commit()
                    except KafkaPythonError:
                        continue  # a rebalance: retry once it is over
                    self._commit.clear()
                    self._committed.set()
        finally:
            consumer.close(autocommit=False)

    async def _run_aiokafka(self) -> None:
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
        from aiokafka.errors import KafkaError as AIOKafkaError

        member = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_assigned(self, assigned: Any) -> None:
                member.events.append(("assign", frozenset(tp.partition for tp in assigned)))

            async def on_partitions_revoked(self, revoked: Any) -> None:
                member.events.append(("revoke", frozenset(tp.partition for tp in revoked)))
                try:  # commit what was consumed before giving partitions away
                    await consumer.commit()
                except AIOKafkaError:
                    pass

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group,
            auto_offset_reset="earliest", enable_auto_commit=False,
            session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
            metadata_max_age_ms=1000, **self.config)
        consumer.subscribe([self.topic], listener=Listener())
        await consumer.start()
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=50)
                for records in batches.values():
                    self.values.extend(r.value.decode() for r in records)
                self.assigned = frozenset(tp.partition for tp in consumer.assignment())
                if self._commit.is_set():
                    try:
                        await consumer.commit()
                    except AIOKafkaError:
                        continue  # a rebalance: retry once it is over
                    self._commit.clear()
                    self._committed.set()
        finally:
            await consumer.stop()


def balanced(members: list[Member], partitions: int = PARTITIONS) -> bool:
    """Every partition assigned to exactly one member, every member holding some."""
    owned = [p for m in members for p in m.assigned]
    return (sorted(owned) == list(range(partitions))
            and all(m.assigned for m in members))


def wait_balanced(members: list[Member], timeout: float = 30) -> None:
    wait_until(lambda: balanced(members), timeout,
               what=f"{len(members)} members sharing {PARTITIONS} partitions; now "
                    f"{[sorted(m.assigned) for m in members]}")


def consumed(members: list[Member]) -> list[str]:
    return sorted(v for m in members for v in m.values)


def wait_consumed(members: list[Member], expected: list[str], timeout: float = 30) -> None:
    wait_until(lambda: set(consumed(members)) >= set(expected), timeout,
               what=f"{len(expected)} records consumed")


# -------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("client", CLIENTS)
def test_three_members_share_six_partitions_each_record_once(
        client: str, gbootstrap: str, topic6: str) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    members = [Member(client, gbootstrap, group, topic6) for _ in range(3)]
    try:
        wait_balanced(members)
        assert sorted(len(m.assigned) for m in members) == [2, 2, 2]
        values = [f"v{i}" for i in range(60)]
        produce(gbootstrap, topic6, values)
        wait_consumed(members, values)
        assert consumed(members) == sorted(values)  # exactly once across the group
        assert all(len(m.values) == 20 for m in members)
    finally:
        for m in members:
            m.close()


KILLABLE = r"""
import sys, time
client, bootstrap, group, topic, session = sys.argv[1:6]
session = int(session)
if client == "confluent":
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": session, "heartbeat.interval.ms": session // 5})
    c.subscribe([topic])
    while True:
        c.poll(0.1)
        if c.assignment():
            print("assigned", flush=True)
elif client == "kafka-python":
    from kafka import KafkaConsumer
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                      enable_auto_commit=False, session_timeout_ms=session,
                      heartbeat_interval_ms=session // 5)
    c.subscribe([topic])
    while topic not in getattr(c._coordinator, "_metadata_snapshot", {topic: 0}):
        time.sleep(0.05)
    while True:
        c.poll(timeout_ms=100)
        if c.assignment():
            print("assigned", flush=True)
else:
    import asyncio
    from aiokafka import AIOKafkaConsumer
    async def main():
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, session_timeout_ms=session,
                             heartbeat_interval_ms=session // 5)
        await c.start()
        while True:
            await c.getmany(timeout_ms=100)
            if c.assignment():
                print("assigned", flush=True)
    asyncio.run(main())
"""


@pytest.mark.parametrize("client", CLIENTS)
def test_leaving_and_killed_members_are_replaced(client: str, gbootstrap: str,
                                                 topic6: str, tmp_path: Path) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    members = [Member(client, gbootstrap, group, topic6) for _ in range(2)]
    out = (tmp_path / "killable.out").open("w")
    victim = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, client, gbootstrap, group, topic6, str(SESSION_MS)],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        # The killable member holds partitions: the two here do not cover all six.
        wait_until(lambda: "assigned" in (tmp_path / "killable.out").read_text()
                   and len({p for m in members for p in m.assigned}) == 4
                   and all(m.assigned for m in members), 30,
                   what="three members with two partitions each")
        victim.kill()
        victim.wait(10)
        started = time.monotonic()
        wait_balanced(members, timeout=SESSION_MS / 1000 + 20)
        assert time.monotonic() - started >= SESSION_MS / 1000 * 0.5
        values = [f"a{i}" for i in range(30)]
        produce(gbootstrap, topic6, values)
        wait_consumed(members, values)

        for m in members:
            m.commit()
        leaver, survivor = members
        leaver.close()  # LeaveGroup: the survivor takes over at once, not after a timeout
        wait_until(lambda: survivor.assigned == frozenset(range(PARTITIONS)), 20,
                   what="the survivor owning every partition")
        more = [f"b{i}" for i in range(30)]
        produce(gbootstrap, topic6, more)
        wait_consumed([survivor], more)
        assert sorted(v for v in survivor.values if v.startswith("b")) == sorted(more)
    finally:
        if victim.poll() is None:
            victim.kill()
        out.close()
        for m in members:
            if m.is_alive():
                m.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_resume_after_commit_and_broker_restart(client: str, tmp_path: Path) -> None:
    if EXTERNAL:
        pytest.skip("restarts its own broker")
    with EmbeddedBroker(tmp_path / "data", overrides=GROUP_OVERRIDES) as broker:
        bootstrap = broker.bootstrap
        topic = f"resume-{uuid.uuid4().hex[:8]}"
        create(bootstrap, topic, PARTITIONS)
        members = [Member(client, bootstrap, "resumers", topic) for _ in range(2)]
        wait_balanced(members)
        first = [f"first{i}" for i in range(30)]
        produce(bootstrap, topic, first)
        wait_consumed(members, first)
        for m in members:
            m.commit()
        for m in members:
            m.close()
        assert consumed(members) == sorted(first)

        later = [f"later{i}" for i in range(18)]
        produce(bootstrap, topic, later)
        broker.restart()

        resumed = Member(client, bootstrap, "resumers", topic)
        other = Member(client, bootstrap, "newcomers", topic)
        try:
            wait_consumed([resumed], later, timeout=40)
            wait_consumed([other], first + later, timeout=40)
            time.sleep(0.5)  # let any wrongly re-read record arrive before the check
            assert sorted(resumed.values) == sorted(later)  # exactly after the commits
            assert sorted(other.values) == sorted(first + later)  # a new group reads all
        finally:
            resumed.close()
            other.close()


def test_cooperative_sticky_over_several_rounds(gbootstrap: str, topic6: str) -> None:
    """librdkafka's cooperative-sticky: joins and leaves move only the partitions they
    must; nobody gives up a partition it keeps."""
    group = f"coop-{uuid.uuid4().hex[:8]}"
    config = {"partition.assignment.strategy": "cooperative-sticky"}
    a = Member("confluent", gbootstrap, group, topic6, **config)
    members = [a]
    try:
        wait_balanced(members)
        for _ in range(2):  # two members join, one after the other
            before = {id(m): m.assigned for m in members}
            members.append(Member("confluent", gbootstrap, group, topic6, **config))
            wait_balanced(members)
            for m in members[:-1]:
                assert m.assigned <= before[id(m)]  # they only gave partitions away
                revoked = frozenset().union(*(p for e, p in m.events if e == "revoke"))
                assert not (revoked & m.assigned)  # nothing revoked that they still hold
        assert sorted(len(m.assigned) for m in members) == [2, 2, 2]
        leaving = members.pop(1)
        kept = {id(m): m.assigned for m in members}
        leaving.close()
        wait_balanced(members)
        for m in members:
            assert m.assigned >= kept[id(m)]  # survivors keep theirs, gain the leaver's
        values = [f"c{i}" for i in range(24)]
        produce(gbootstrap, topic6, values)
        wait_consumed(members, values)
    finally:
        for m in members:
            m.close()


def test_static_member_restart_gets_its_partitions_back(gbootstrap: str, topic6: str) -> None:
    group = f"static-{uuid.uuid4().hex[:8]}"
    session = {"session.timeout.ms": 30_000}
    a = Member("confluent", gbootstrap, group, topic6, **{"group.instance.id": "a", **session})
    b = Member("confluent", gbootstrap, group, topic6, **{"group.instance.id": "b", **session})
    try:
        wait_balanced([a, b])
        mine = a.assigned
        events_of_b = len(b.events)
        a.close()  # a static member does not leave the group when it closes
        a = Member("confluent", gbootstrap, group, topic6,
                   **{"group.instance.id": "a", **session})
        wait_until(lambda: a.assigned == mine, 30, what="the restarted member's partitions")
        assert len(b.events) == events_of_b  # b saw no rebalance
    finally:
        a.close()
        b.close()


def test_concurrent_joins_and_leaves_of_mixed_clients(gbootstrap: str, topic6: str) -> None:
    """Members of three client libraries join and leave at the same moment: the group
    settles with every partition owned once, no member is told it is unknown (a
    known failure of other Kafka-compatible brokers), and each record is read once."""
    import logging

    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    rdkafka_log = logging.getLogger(f"rdkafka-{uuid.uuid4().hex[:6]}")
    rdkafka_log.addHandler(Capture())
    rdkafka_log.setLevel(logging.DEBUG)
    rdkafka_log.propagate = False
    traced = {"debug": "cgrp", "logger": rdkafka_log}
    group = f"mixed-{uuid.uuid4().hex[:8]}"
    first = [Member("confluent", gbootstrap, group, topic6, **traced),
             Member("kafka-python", gbootstrap, group, topic6),
             Member("aiokafka", gbootstrap, group, topic6)]
    members = list(first)
    try:
        wait_balanced(members)
        leaving = first[:2]
        closers = [threading.Thread(target=m.close) for m in leaving]
        for closer in closers:
            closer.start()
        members = [first[2],
                   Member("confluent", gbootstrap, group, topic6, **traced),
                   Member("kafka-python", gbootstrap, group, topic6),
                   Member("aiokafka", gbootstrap, group, topic6)]
        for closer in closers:
            closer.join(30)
        wait_balanced(members)
        values = [f"m{i}" for i in range(48)]
        produce(gbootstrap, topic6, values)
        wait_consumed(members, values)
        assert sorted(v for m in members for v in m.values if v.startswith("m")) == sorted(values)
        joins = [line for line in lines if "JoinGroup response" in line]
        assert joins, "no librdkafka group trace captured"
        unknown = [line for line in lines if "Unknown member" in line]
        assert not unknown, unknown
    finally:
        for m in members:
            if m.is_alive():
                m.close()


def test_commit_metadata_and_leader_epoch_round_trip(gbootstrap: str, topic6: str) -> None:
    """A simple consumer (no subscription) commits with metadata and leader epochs."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": gbootstrap, "group.id": f"s-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic6, 0, 42, metadata="note", leader_epoch=0),
                                 TopicPartition(topic6, 1, 7)], asynchronous=False)
        committed = consumer.committed([TopicPartition(topic6, p) for p in range(3)], timeout=10)
        got = {tp.partition: (tp.offset, tp.metadata, tp.leader_epoch) for tp in committed}
        assert got[0] == (42, "note", 0)
        assert got[1][0] == 7 and got[1][1] in (None, "")
        assert got[2][0] < 0  # never committed
    finally:
        consumer.close()


def test_acknowledged_commit_survives_kill_9(tmp_path: Path) -> None:
    """A commit is answered only once fsync'd: kill -9 right after it loses nothing."""
    if EXTERNAL:
        pytest.skip("kills its own broker")
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from tests.process import StromProcess

    overrides = {**GROUP_OVERRIDES, "offsets.topic.num.partitions": "4"}
    proc = StromProcess(tmp_path / "data", overrides=overrides)
    proc.start()
    try:
        create(proc.bootstrap, "killed", PARTITIONS)
        config = {"bootstrap.servers": proc.bootstrap, "group.id": "survivors",
                  "enable.auto.commit": False}
        consumer = Consumer(config)
        consumer.commit(offsets=[TopicPartition("killed", p, 10 + p, metadata=f"m{p}")
                                 for p in range(PARTITIONS)], asynchronous=False)
        proc.kill()
        consumer.close()
        proc.start()
        consumer = Consumer(config)

        def committed_offsets() -> Any:
            try:  # the coordinator may still be loading its partition
                return consumer.committed(
                    [TopicPartition("killed", p) for p in range(PARTITIONS)], timeout=10)
            except KafkaException:
                return None

        try:
            committed = wait_until(committed_offsets, 30,
                                   what="committed offsets after the restart")
            assert {(tp.partition, tp.offset, tp.metadata) for tp in committed} == {
                (p, 10 + p, f"m{p}") for p in range(PARTITIONS)}
        finally:
            consumer.close()
    finally:
        proc.stop()
