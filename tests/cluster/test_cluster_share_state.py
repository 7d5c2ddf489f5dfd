"""Share state across brokers (KIP-932): the group coordinator's Persister
stores each share partition's state with the share coordinator of its key,
on whichever broker leads that key's `__share_group_state` partition (over
the inter-broker connection when it is the other one), and lag is computed
from the high watermarks of partitions led by either broker."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.coordinator.share import coordinator_key
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from tests.cluster.brokers import WAIT
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient

TOPIC = "share-spread"
GROUP = "share-cluster-group"
PARTITIONS = 12  # keys on both brokers' share coordinators (all on one: p = 2^-11)
RECORDS = 5

RETRIABLE = {ErrorCode.coordinator_load_in_progress, ErrorCode.not_coordinator,
             ErrorCode.coordinator_not_available}


def _coordinator(bootstrap: str, key: str, key_type: int) -> Any:
    version = 6 if key_type == 2 else 4
    request = build(request_class(ApiKey.FIND_COORDINATOR, version),
                    {"key_type": key_type, "coordinator_keys": [key]})

    def found() -> Any:
        with WireClient(bootstrap) as client:
            answer = client.request(ApiKey.FIND_COORDINATOR, version, request).coordinators[0]
        return answer if answer.error_code == ErrorCode.none else None
    return wait_until(found, WAIT, what=f"the coordinator of {key}")


def _until_served(client: WireClient, api: ApiKey, version: int, body: dict[str, Any],
                  code: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        response = client.request(api, version, build(request_class(api, version), body))
        if code(response) not in RETRIABLE or time.monotonic() > deadline:
            return response
        time.sleep(0.05)  # a coordinator loading its partition: no event to wait on


def test_share_state_on_both_brokers(two_brokers: list[StromProcess]) -> None:
    one, two = two_brokers
    bootstrap = f"{one.bootstrap},{two.bootstrap}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(WAIT)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    wait_until(lambda: len(admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions)
               == PARTITIONS, WAIT, what="the topic's partitions")
    for partition in range(PARTITIONS):
        for i in range(RECORDS):
            producer.produce(TOPIC, value=b"%d" % i, partition=partition)
    assert producer.flush(WAIT) == 0

    group_coordinator = _coordinator(one.bootstrap, GROUP, 0)
    with WireClient(f"{group_coordinator.host}:{group_coordinator.port}") as client:
        altered = _until_served(client, ApiKey.ALTER_SHARE_GROUP_OFFSETS, 0, {
            "group_id": GROUP, "topics": [{"topic_name": TOPIC, "partitions": [
                {"partition_index": p, "start_offset": 2} for p in range(PARTITIONS)]}]},
            lambda r: r.error_code)
        assert altered.error_code == ErrorCode.none
        assert {p.error_code for r in altered.responses for p in r.partitions} == \
            {ErrorCode.none}
        topic_id = altered.responses[0].topic_id
        described = _until_served(client, ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS, 1, {
            "groups": [{"group_id": GROUP, "topics": None}]},
            lambda r: r.groups[0].error_code).groups[0]
        assert described.error_code == ErrorCode.none
        got = {p.partition_index: (p.start_offset, p.lag, p.error_code)
               for t in described.topics for p in t.partitions}
        # Lag from both brokers' high watermarks: 5 records, start offset 2.
        assert got == {p: (2, RECORDS - 2, ErrorCode.none) for p in range(PARTITIONS)}

    # The state is with each key's own share coordinator, on both brokers.
    coordinators = {p: _coordinator(one.bootstrap, coordinator_key(GROUP, topic_id, p), 2)
                    for p in range(PARTITIONS)}
    assert {c.node_id for c in coordinators.values()} == {1, 2}
    for p, found in coordinators.items():
        with WireClient(f"{found.host}:{found.port}") as client:
            summary = client.request(
                ApiKey.READ_SHARE_GROUP_STATE_SUMMARY, 1, build(
                    request_class(ApiKey.READ_SHARE_GROUP_STATE_SUMMARY, 1),
                    {"group_id": GROUP, "topics": [{"topic_id": topic_id, "partitions": [
                        {"partition": p, "leader_epoch": 0}]}]})).results[0].partitions[0]
            assert (summary.error_code, summary.start_offset) == (ErrorCode.none, 2)
