"""A rolling restart (issue 15): each broker of three in turn is sent SIGTERM
and started again, the next only once every partition has its full ISR,
while idempotent acks=all producers and a consumer group run. Required: no
acknowledged record lost or duplicated, no send failed (librdkafka retries
the retriable errors, NOT_LEADER_OR_FOLLOWER and the like; anything else
fails the send), and each broker's leaderships moved to other brokers while
it was still running (controlled shutdown), not after it exited."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.cluster.fault_injector import FaultInjector, wait_for
from tests.cluster.local_cluster import LocalCluster
from tests.cluster.rolling import RollingLoad, leads, moved_before_exit, watch_shutdown

TOPIC = "rolling"
PARTITIONS = 6


@pytest.fixture
def cluster(etcd_bin: str, tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path / "cluster", etcd_bin, session_timeout_ms=3000,
                         replica_lag_ms=3000)
    try:
        local.run("start-all")
        yield local
    finally:
        local.stop_all()


def _leads(injector: FaultInjector, node_id: int, seen_by: int) -> set[int] | None:
    return leads(injector, node_id, seen_by, PARTITIONS)


@pytest.mark.timeout(300)
def test_rolling_restart_loses_nothing_and_moves_leaders_first(
        cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    injector = FaultInjector(cluster, TOPIC, PARTITIONS, 3, 3.0, heal_timeout=60)
    bootstrap = cluster.bootstrap()
    assert wait_for(lambda: (s := injector.view.any_snapshot()) is not None
                    and s.brokers == set(cluster.node_ids), 60)
    # Kept in a variable: a client dropped before its futures complete never completes them.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
    admin.create_topics([NewTopic(
        TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(60)
    assert injector.wait_whole(), injector.describe_state()
    load = RollingLoad(bootstrap, TOPIC, PARTITIONS, "rolling")
    notes: list[str] = []
    try:
        load.start()
        for victim in cluster.node_ids:
            other = next(n for n in cluster.node_ids if n != victim)
            led = _leads(injector, victim, other)
            pid = cluster.status()[f"broker-{victim}"][0]
            assert pid is not None and led is not None
            started = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            # Controlled shutdown: the others see it lead nothing by the time it exits.
            moved_at, exited_at = watch_shutdown(injector, victim, other, pid, PARTITIONS)
            assert exited_at is not None, f"broker {victim} still running 60s after SIGTERM"
            exited = exited_at
            assert moved_before_exit(moved_at, exited_at), \
                (f"broker {victim}: leaderships of {sorted(led)} not moved before it exited "
                 f"(moved {moved_at}s, exited {exited_at}s after SIGTERM)")
            cluster.run("stop", victim)  # forgets the pid file of the exited process
            cluster.run("start", victim)
            assert injector.wait_whole(), injector.describe_state()
            notes.append(f"broker {victim}: led {sorted(led)}, exited {exited:.2f}s after "
                         f"SIGTERM, whole again {time.monotonic() - started:.2f}s after it")
        load.wait_for_new_acks()
    finally:
        load.stop_writers()
    load.judge("rolling restart", notes, capsys)
