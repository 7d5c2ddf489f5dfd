"""ElectLeaders (API 43) with Apache Kafka's own kafka-leader-election.sh
(LeaderElectionCommand) against etcd and two `strom serve` processes:
preferred leaders come back after a broker's restart, an offline partition
whose only live replica is out of the ISR is brought back by an unclean
election only when asked, and a non-controller answers NOT_CONTROLLER.
Every wait has a deadline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)
from kio.schema.elect_leaders.v2.request import ElectLeadersRequest, TopicPartitions
from kio.schema.types import TopicName
from kio.static.primitive import i8, i32

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.cluster.brokers import WAIT, cluster_broker, cluster_of
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import run_kafka_tool, wait_until
from tests.process import StromProcess
from tests.wire import WireClient, metadata_request

LEADER_ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"


@pytest.fixture
def pair(etcd: EtcdCluster, tmp_path: Path) -> Iterator[dict[int, StromProcess]]:
    started = {n: cluster_broker(tmp_path, etcd, n) for n in (1, 2)}
    for broker in started.values():
        # Preferred leaders come back only when asked, in this test.
        broker.overrides["auto.leader.rebalance.enable"] = "false"
    try:
        for broker in started.values():
            broker.start(timeout=WAIT)
        wait_until(lambda: cluster_of(started[1].bootstrap, 2), WAIT,
                   what="both brokers registered")
        yield started
    finally:
        for broker in started.values():
            broker.stop()


def _request(bootstrap: str, api_key: int, version: int, body: Any) -> Any:
    with WireClient(bootstrap) as client:
        return client.request(api_key, version, body)


def _partitions(bootstrap: str, topic: str) -> dict[int, tuple[int, tuple[int, ...],
                                                               tuple[int, ...]]]:
    (found,) = _request(bootstrap, ApiKey.METADATA, 12, metadata_request(topic)).topics
    assert found.error_code == ErrorCode.none
    return {p.partition_index: (p.leader_id, tuple(p.replica_nodes), tuple(sorted(p.isr_nodes)))
            for p in found.partitions}


def _elect(bootstrap: str, *args: str) -> str:
    done = run_kafka_tool(LEADER_ELECTION, "--bootstrap-server", bootstrap, *args,
                          check=False)
    return done.stdout + done.stderr


def test_preferred_election_with_kafkas_tool(pair: dict[int, StromProcess]) -> None:
    one, two = pair[1], pair[2]
    admin = AdminClient({"bootstrap.servers": one.bootstrap})
    admin.create_topics([NewTopic("pref", 2, 2)])["pref"].result(WAIT)
    placed = wait_until(lambda: _partitions(one.bootstrap, "pref"), WAIT)
    assert all(leader == replicas[0] for leader, replicas, _ in placed.values())

    # Broker 2 restarts: its partition moves to broker 1 and stays there.
    assert two.terminate(timeout=WAIT) == 0
    two.start(timeout=WAIT)
    wait_until(lambda: cluster_of(one.bootstrap, 2), WAIT, what="broker 2 back")
    # Back in every ISR once it caught up (the leader asks the controller).
    wait_until(lambda: all(isr == (1, 2) for _, _, isr in
                           _partitions(one.bootstrap, "pref").values()), WAIT,
               what="broker 2 back in the ISRs")
    moved = _partitions(one.bootstrap, "pref")
    assert {leader for leader, _, _ in moved.values()} == {1}

    out = _elect(two.bootstrap, "--election-type", "PREFERRED", "--all-topic-partitions")
    (preferred,) = [p for p, (_, replicas, _) in placed.items() if replicas[0] == 2]
    assert f"Successfully completed leader election (PREFERRED) for partitions pref-{preferred}" \
        in out, out
    after = _partitions(two.bootstrap, "pref")
    assert all(leader == replicas[0] for leader, replicas, _ in after.values())
    again = _elect(one.bootstrap, "--election-type", "PREFERRED", "--topic", "pref",
                   "--partition", str(preferred))
    assert f"Valid replica already elected for partitions pref-{preferred}" in again, again


def test_unclean_election_with_kafkas_tool_or_the_topic_config(
        pair: dict[int, StromProcess]) -> None:
    one, two = pair[1], pair[2]
    admin = AdminClient({"bootstrap.servers": one.bootstrap})
    topics = ("lost", "lost-config")
    for name in topics:
        admin.create_topics([NewTopic(name, 1, replica_assignment=[[1, 2]])])[name].result(WAIT)
        wait_until(lambda n=name: _partitions(two.bootstrap, n)[0][2] == (1, 2), WAIT)
    # The follower leaves first (out of the ISR), then the leader, the last
    # ISR member: the partitions are offline.
    assert two.terminate(timeout=WAIT) == 0
    for name in topics:
        wait_until(lambda n=name: _partitions(one.bootstrap, n)[0] == (1, (1, 2), (1,)), WAIT,
                   what="the follower out of the ISR")
    assert one.terminate(timeout=WAIT) == 0
    two.start(timeout=WAIT)
    for name in topics:
        offline = wait_until(lambda n=name: (lambda p: p if p[0][0] == -1 else None)(
            _partitions(two.bootstrap, n)), WAIT, what="broker 2 to see it offline")
        assert offline[0] == (-1, (1, 2), (1,))  # clean elections leave it offline

    refused = _request(two.bootstrap, ApiKey.ELECT_LEADERS, 2, ElectLeadersRequest(
        election_type=i8(0), topic_partitions=(TopicPartitions(
            topic=TopicName("lost"), partitions=(i32(0),)),)))
    (result,) = refused.replica_election_results[0].partition_result
    assert result.error_code == ErrorCode.preferred_leader_not_available

    out = _elect(two.bootstrap, "--election-type", "UNCLEAN", "--topic", "lost",
                 "--partition", "0")
    assert "Successfully completed leader election (UNCLEAN) for partitions lost-0" in out, out
    assert _partitions(two.bootstrap, "lost")[0] == (2, (1, 2), (2,))
    assert _partitions(two.bootstrap, "lost-config")[0][0] == -1  # only what was asked

    # The topic's unclean.leader.election.enable makes the controller elect by itself.
    resource = ConfigResource("topic", "lost-config", incremental_configs=[ConfigEntry(
        "unclean.leader.election.enable", "true",
        incremental_operation=AlterConfigOpType.SET)])
    admin = AdminClient({"bootstrap.servers": two.bootstrap})
    admin.incremental_alter_configs([resource])[resource].result(WAIT)
    wait_until(lambda: _partitions(two.bootstrap, "lost-config")[0] == (2, (1, 2), (2,)), WAIT,
               what="an unclean election after the config change")


def test_elect_leaders_on_a_non_controller(pair: dict[int, StromProcess]) -> None:
    described = _request(pair[1].bootstrap, ApiKey.METADATA, 12, metadata_request("probe"))
    other = pair[3 - described.controller_id]
    response = _request(other.bootstrap, ApiKey.ELECT_LEADERS, 2, ElectLeadersRequest(
        election_type=i8(0), topic_partitions=None))
    assert response.error_code == ErrorCode.not_controller


def test_auto_leader_rebalance(etcd: EtcdCluster, tmp_path: Path) -> None:
    started = {n: cluster_broker(tmp_path, etcd, n) for n in (1, 2)}
    for broker in started.values():
        broker.overrides["leader.imbalance.check.interval.seconds"] = "1"
    try:
        for broker in started.values():
            broker.start(timeout=WAIT)
        one, two = started[1], started[2]
        wait_until(lambda: cluster_of(one.bootstrap, 2), WAIT, what="both brokers")
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("auto", 2, 2)])["auto"].result(WAIT)
        wait_until(lambda: all(isr == (1, 2) for _, _, isr in
                               _partitions(one.bootstrap, "auto").values()), WAIT)
        assert two.terminate(timeout=WAIT) == 0
        wait_until(lambda: {leader for leader, _, _ in
                            _partitions(one.bootstrap, "auto").values()} == {1}, WAIT)
        two.start(timeout=WAIT)
        # Without anyone asking, the preferred replicas lead again once in the ISR.
        wait_until(lambda: all(leader == replicas[0] for leader, replicas, _ in
                               _partitions(one.bootstrap, "auto").values()), WAIT,
                   what="preferred leaders restored by the controller")
    finally:
        for broker in started.values():
            broker.stop()
