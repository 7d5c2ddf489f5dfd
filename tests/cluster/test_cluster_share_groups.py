"""Share groups across two brokers (real etcd, `strom serve` subprocesses): the group's
coordinator initializes its partitions' share state in the share coordinators that own
them, here or on the other broker (through its Persister's peer calls), assigns them once
initialized, and deletes that state when the empty group is deleted."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from strom.coordinator.share import coordinator_key
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.cluster.brokers import WAIT, registered_brokers
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until

# Enough partitions that their share states land on both brokers (each state's
# __share_group_state partition is a hash of group, topic id and partition: all 16 on one
# broker is a 1 in 30,000 chance).
PARTITIONS = 16
GROUP = "cluster-share"


def _coordinator(bootstrap: str, key_type: int, key: str) -> int:
    def found() -> int | None:
        with RawClient(bootstrap) as client:
            answer = client.send(ApiKey.FIND_COORDINATOR, 6, {
                "key_type": key_type, "coordinator_keys": [key]}).coordinators[0]
        return int(answer.node_id) if answer.error_code == ErrorCode.none else None
    node: int = wait_until(found, WAIT, what=f"a coordinator for {key}")
    return node


def _summary(bootstrap: str, topic_id: uuid.UUID, partition: int) -> Any:
    with RawClient(bootstrap) as client:
        return client.send(ApiKey.READ_SHARE_GROUP_STATE_SUMMARY, 1, {
            "group_id": GROUP, "topics": [{"topic_id": topic_id, "partitions": [
                {"partition": partition, "leader_epoch": -1}]}]}).results[0].partitions[0]


def test_share_state_is_initialized_and_deleted_across_brokers(etcd: EtcdCluster,
                                                               tmp_path: Path) -> None:
    with registered_brokers(tmp_path, etcd) as started:
        by_node = {int(b.overrides["node.id"]): b.bootstrap for b in started}
        bootstrap = started[0].bootstrap
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("spread-share", PARTITIONS, 1)])["spread-share"].result(
            WAIT)
        coordinator = by_node[_coordinator(bootstrap, 0, GROUP)]

        member = str(uuid.uuid4())
        deadline = time.monotonic() + WAIT
        epoch, assigned = 0, list[Any]()
        with RawClient(coordinator) as client:
            while not assigned:
                beat = client.send(ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
                    "group_id": GROUP, "member_id": member, "member_epoch": epoch,
                    "rack_id": None,
                    "subscribed_topic_names": ["spread-share"] if epoch == 0 else None})
                if beat.error_code == ErrorCode.none:
                    epoch = beat.member_epoch
                    if beat.assignment is not None:
                        assigned = list(beat.assignment.topic_partitions)
                assert time.monotonic() < deadline, beat
                time.sleep(0.1)
            (topic,) = assigned
            assert sorted(topic.partitions) == list(range(PARTITIONS))

            owners = {p: by_node[_coordinator(bootstrap, 2, coordinator_key(
                GROUP, topic.topic_id, p))] for p in range(PARTITIONS)}
            assert len(set(owners.values())) == 2, "every share state on one broker"
            for p, owner in owners.items():
                state = _summary(owner, topic.topic_id, p)
                assert (state.error_code, state.start_offset) == (ErrorCode.none, -1)
                assert state.state_epoch >= 1

            left = client.send(ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
                "group_id": GROUP, "member_id": member, "member_epoch": -1, "rack_id": None,
                "subscribed_topic_names": None})
            assert left.error_code == ErrorCode.none
            deleted = client.send(ApiKey.DELETE_GROUPS, 2, {"groups_names": [GROUP]})
            assert deleted.results[0].error_code == ErrorCode.none
        for p, owner in owners.items():
            state = _summary(owner, topic.topic_id, p)
            assert (state.error_code, state.state_epoch) == (ErrorCode.none, 0), p
