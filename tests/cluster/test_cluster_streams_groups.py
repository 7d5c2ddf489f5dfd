"""A streams group (KIP-1071) in cluster mode: its coordinator is a broker that is not the
controller, so the internal topics the coordinator finds missing are created through the
controller; members then get their tasks; another broker answers NOT_COORDINATOR."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, NewTopic

from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from tests.cluster.brokers import WAIT, metadata_of
from tests.coordinator.test_streams_group_wire import Member, word_count
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient

NOT_COORDINATOR = 16


def test_streams_group_on_a_broker_that_is_not_the_controller(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    admin = AdminClient({"bootstrap.servers": controller.bootstrap})
    admin.create_topics([NewTopic("lines", 2, 1)])["lines"].result(WAIT)
    with WireClient(other.bootstrap) as client:
        # A group whose coordinator is `other` (FindCoordinator creates __consumer_offsets).
        node = int(other.overrides["node.id"])
        group = ""
        deadline = time.monotonic() + WAIT
        for i in range(200):
            found = client.request(ApiKey.FIND_COORDINATOR, 4, build(
                request_class(ApiKey.FIND_COORDINATOR, 4),
                {"key_type": 0, "coordinator_keys": [f"app-{i}"]})).coordinators[0]
            if found.error_code == 0 and found.node_id == node:
                group = f"app-{i}"
                break
            assert time.monotonic() < deadline, "no group coordinated by the other broker"
        assert group

        member = Member(client, group, word_count(group, "lines"))
        first = member.heartbeat()
        while first.error_code != 0:  # its __consumer_offsets partition is loading
            assert time.monotonic() < deadline, first
            time.sleep(0.05)
            first = member.heartbeat()
        internal = {f"{group}-counts-repartition", f"{group}-counts-changelog"}
        wait_until(lambda: internal <= set(metadata_of(controller.bootstrap).topics), WAIT,
                   what="the internal topics created through the controller")
        for _ in range(400):
            assert member.heartbeat().error_code == 0
            if len(member.tasks()) == 4:
                break
            assert time.monotonic() < deadline + WAIT, "no tasks"
            time.sleep(0.05)  # heartbeat interval: the initial rebalance delay is 3 s
        assert member.tasks() == {(s, p) for s in "01" for p in (0, 1)}

    with WireClient(controller.bootstrap) as client:
        elsewhere = Member(client, group, word_count(group, "lines"))
        assert elsewhere.heartbeat().error_code == NOT_COORDINATOR
