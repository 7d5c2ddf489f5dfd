"""Leader election through real processes: etcd and three `strom serve`.

SIGTERM is a controlled shutdown: the broker marks its registration fenced,
the controller moves its leaderships away and drops it from every ISR, and
only then does the broker leave (checked in etcd's own history: the batch
moving the leadership precedes the deletion of the registration). kill -9 of
the controller: when its lease expires, the new controller checks the whole
image and elects leaders for what the dead broker led; a partition whose only
replica died is offline (leader -1) until that broker registers again and
leads it anew. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.cluster.etcd_client import EtcdClient, EventKind, WatchEvent
from strom.cluster.etcd_codec import decode_batch, decode_registration
from strom.cluster.etcd_keys import ClusterKeys, KeyKind
from strom.cluster.image import MetadataImage
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.cluster.brokers import WAIT, cluster_broker, cluster_of
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient, metadata_request

NODES = (1, 2, 3)


@pytest.fixture
def three(etcd: EtcdCluster, tmp_path: Path) -> Iterator[dict[int, StromProcess]]:
    started = {n: cluster_broker(tmp_path, etcd, n) for n in NODES}
    try:
        for broker in started.values():
            broker.start(timeout=WAIT)
        wait_until(lambda: cluster_of(started[1].bootstrap, 3), WAIT,
                   what="three brokers registered")
        yield started
    finally:
        for broker in started.values():
            broker.stop()


def _describe(bootstrap: str, topic: str) -> Any:
    with WireClient(bootstrap) as client:
        response = client.request(ApiKey.METADATA, 12, metadata_request(topic))
    return response


def _leaders(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    (found,) = _describe(bootstrap, topic).topics
    assert found.error_code == ErrorCode.none
    return {p.partition_index: (p.leader_id, sorted(p.isr_nodes)) for p in found.partitions}


def _create(bootstrap: str, topic: str, partitions: int, replication: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, replication)])[topic].result(WAIT)


async def _history(etcd: EtcdCluster) -> list[WatchEvent]:
    """Every change of the cluster's keys since revision 1, in order."""
    keys = ClusterKeys("strom-test-cluster")
    client = EtcdClient(etcd.endpoints)
    try:
        revision, _ = await client.get_prefix(keys.prefix)
        events: list[WatchEvent] = []

        async def read() -> None:
            async for event in client.watch_prefix(keys.prefix, 1):
                events.append(event)
                if event.kv.mod_revision >= revision:
                    return
        await asyncio.wait_for(read(), WAIT)
        return events
    finally:
        await client.close()


def test_sigterm_moves_leadership_before_the_broker_leaves(
        three: dict[int, StromProcess], etcd: EtcdCluster) -> None:
    first = three[1].bootstrap
    _create(first, "ha", 3, 3)
    leaders = wait_until(lambda: _leaders(three[2].bootstrap, "ha"), WAIT)
    assert sorted(leader for leader, _ in leaders.values()) == [1, 2, 3]
    # The controller itself shuts down: it elects others for its partitions, then leaves.
    victim = _describe(first, "ha").controller_id
    (moved,) = [p for p, (leader, _) in leaders.items() if leader == victim]
    survivor = three[next(n for n in NODES if n != victim)]

    started = time.monotonic()
    assert three[victim].terminate(timeout=WAIT) == 0
    stopped_after = time.monotonic() - started

    after = wait_until(lambda: (lambda m: m if len(m.brokers) == 2 else None)(
        _describe(survivor.bootstrap, "ha")), WAIT, what="the victim gone")
    assert after.controller_id != victim
    for p in after.topics[0].partitions:
        assert p.leader_id != victim and p.leader_id in NODES
        assert victim not in p.isr_nodes
    new_leader = after.topics[0].partitions[moved].leader_id
    assert new_leader == leaders[moved][1][0] or new_leader != victim

    # etcd's history: fenced, then the move, then the registration deleted.
    keys = ClusterKeys("strom-test-cluster")
    image = MetadataImage("c", -1, {})
    fenced_at = moved_at = deleted_at = None
    for event in asyncio.run(_history(etcd)):
        parsed = keys.parse(event.kv.key)
        if parsed is None:
            continue
        revision = event.kv.mod_revision
        if parsed.kind is KeyKind.BROKER and parsed.id == victim:
            if event.kind is EventKind.DELETE:
                deleted_at = deleted_at or revision
            elif decode_registration(event.kv.value).fenced:
                fenced_at = fenced_at or revision
        elif parsed.kind is KeyKind.METADATA_LOG and event.kind is EventKind.PUT:
            image = image.apply(decode_batch(event.kv.value))
            topic = image.topics.get("ha")
            if topic and moved_at is None and fenced_at and topic.partitions[moved].leader \
                    not in (victim, -1):
                moved_at = revision
    assert fenced_at is not None and moved_at is not None and deleted_at is not None
    assert fenced_at < moved_at < deleted_at
    print(f"controlled shutdown of the controller: process exited {stopped_after:.2f}s "
          "after SIGTERM")


def test_controller_killed_its_partitions_get_new_leaders(
        three: dict[int, StromProcess]) -> None:
    first = three[1].bootstrap
    _create(first, "survive", 3, 2)
    _create(first, "single", 3, 1)
    before = wait_until(lambda: _leaders(three[2].bootstrap, "single"), WAIT)
    replicated = _leaders(first, "survive")
    victim = _describe(first, "survive").controller_id
    survivor = three[next(n for n in NODES if n != victim)]
    three[victim].kill()  # no deregistration: gone when its lease expires

    def elected() -> dict[int, tuple[int, list[int]]] | None:
        leaders = _leaders(survivor.bootstrap, "survive")
        return leaders if all(leader != victim for leader, _ in leaders.values()) else None
    after = wait_until(elected, WAIT, what="new leaders for the dead controller's partitions")
    for p, (leader, isr) in after.items():
        old_leader, old_isr = replicated[p]
        assert victim not in isr and leader in isr
        if old_leader != victim:
            assert leader == old_leader  # untouched
    single = _leaders(survivor.bootstrap, "single")
    (orphan,) = [p for p, (leader, _) in before.items() if leader == victim]
    # Its only replica is gone: offline, and the ISR keeps it (it has every record).
    assert single[orphan] == (-1, [victim])

    three[victim].start(timeout=WAIT)
    back = wait_until(lambda: (lambda s: s if s[orphan][0] == victim else None)(
        _leaders(survivor.bootstrap, "single")), WAIT, what="the returning broker to lead")
    assert back[orphan] == (victim, [victim])


def test_producing_through_a_controlled_shutdown(three: dict[int, StromProcess]) -> None:
    """acks=all records to a partition whose leader (not the controller)
    shuts down: every one is acknowledged, none fails; the figure printed is
    the longest any record waited while the leadership moved."""
    bootstrap = ",".join(b.bootstrap for b in three.values())
    _create(three[1].bootstrap, "moving", 3, 3)
    wait_until(lambda: all(isr == [1, 2, 3] for _, isr in
                           _leaders(three[1].bootstrap, "moving").values()), WAIT,
               what="every replica in the ISR")
    controller = _describe(three[1].bootstrap, "moving").controller_id
    # Striped: each broker leads one partition; take one the controller does not lead.
    partition, leader = next((p, leader) for p, (leader, _) in
                             _leaders(three[1].bootstrap, "moving").items()
                             if leader != controller)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "enable.idempotence": True, "message.timeout.ms": int(WAIT * 1000)})
    waits: list[float] = []
    failures: list[str] = []

    def delivered(err: Any, _msg: Any, sent: float) -> None:
        if err is not None:
            failures.append(str(err))
        else:
            waits.append(time.monotonic() - sent)

    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            sent = time.monotonic()
            producer.produce("moving", value=f"r{i}".encode(), partition=partition,
                             on_delivery=lambda e, m, s=sent: delivered(e, m, s))
            producer.poll(0.005)
            i += 1

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        wait_until(lambda: len(waits) >= 50, WAIT, what="records acknowledged before")
        assert three[leader].terminate(timeout=WAIT) == 0
        survivor = three[next(n for n in NODES if n != leader)]
        wait_until(lambda: _leaders(survivor.bootstrap, "moving")[partition][0]
                   not in (leader, -1),
                   WAIT, what="a new leader")
        before = len(waits)
        wait_until(lambda: len(waits) >= before + 50, WAIT, what="records acknowledged after")
    finally:
        stop.set()
        thread.join(WAIT)
        assert producer.flush(WAIT) == 0
    assert failures == []
    print(f"controlled shutdown of a leader: {len(waits)} acks=all records, longest wait "
          f"{max(waits) * 1000:.0f} ms")
