"""Apache Kafka's kafka-share-groups.sh (ShareGroupCommand), unchanged, against
strom (KIP-932): --list, --describe with --offsets/--members/--state,
--reset-offsets (refused while the group has members), --delete-offsets and
--delete. A share group member is held by raw ShareGroupHeartbeats, so the
group's membership is known exactly."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from tests.wire import WireClient

from .clients import run_kafka_tool, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.java]

TOOL = "org.apache.kafka.tools.consumer.group.ShareGroupCommand"


@pytest.fixture(autouse=True)
def _java(java_tools: Any) -> None:
    pass


def share_groups(bootstrap: str, *args: str, check: bool = True) -> Any:
    return run_kafka_tool(TOOL, "--bootstrap-server", bootstrap, *args, check=check)


def rows(out: str) -> list[list[str]]:
    """The table lines after the header, split on whitespace."""
    lines = [line.split() for line in out.splitlines() if line.strip()]
    return [line for line in lines if line and line[0] != "GROUP"]


class Member:
    """One share group member kept by ShareGroupHeartbeat on the group's coordinator."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.group = group
        self.member_id = str(uuid.uuid4())
        with WireClient(bootstrap.split(",")[0]) as client:  # any broker answers
            find = build(request_class(ApiKey.FIND_COORDINATOR, 4),
                         {"key_type": 0, "coordinator_keys": [group]})
            found = wait_until(lambda: _found(client.request(ApiKey.FIND_COORDINATOR, 4, find)),
                               30, what="the group coordinator")
        self.client = WireClient(f"{found.host}:{found.port}")
        self.epoch = 0
        response = wait_until(lambda: self._beat([topic]), 30, what="joining")
        # Beat until the group's partitions are assigned (their share state initialized).
        while not response.assignment or not response.assignment.topic_partitions:
            time.sleep(0.05)  # heartbeats are polled by design; the interval is the client's
            response = self._beat(None)
            assert response is not None

    def _beat(self, topics: list[str] | None) -> Any:
        response = self.client.request(ApiKey.SHARE_GROUP_HEARTBEAT, 1, build(
            request_class(ApiKey.SHARE_GROUP_HEARTBEAT, 1),
            {"group_id": self.group, "member_id": self.member_id, "member_epoch": self.epoch,
             "rack_id": None, "subscribed_topic_names": topics}))
        if response.error_code in (ErrorCode.coordinator_load_in_progress,
                                   ErrorCode.not_coordinator):
            return None
        assert response.error_code == ErrorCode.none, response
        self.epoch = response.member_epoch
        return response

    def leave(self) -> None:
        self.epoch = -1
        self._beat(None)
        self.client.close()


def _found(response: Any) -> Any:
    found = response.coordinators[0]
    return found if found.error_code == ErrorCode.none else None


def test_kafka_share_groups_tool(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 2)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(5):
        producer.produce(topic, value=b"v%d" % i, partition=0)
    assert producer.flush(30) == 0
    group = f"sg-{topic}"
    member = Member(bootstrap, group, topic)
    try:
        assert group in share_groups(bootstrap, "--list").stdout.split()
        state = rows(share_groups(bootstrap, "--describe", "--group", group, "--state").stdout)
        assert state[0][0] == group and state[0][-2:] == ["Stable", "1"]
        members = rows(share_groups(bootstrap, "--describe", "--group", group,
                                    "--members").stdout)
        assert members[0][:2] == [group, member.member_id]
        assert members[0][-1] == f"{topic}:0,1"
        # Initialized, not yet resolved by a share partition: Kafka shows "-".
        offsets = rows(share_groups(bootstrap, "--describe", "--group", group,
                                    "--offsets").stdout)
        assert sorted(r[1:] for r in offsets) == [[topic, "0", "-", "-"],
                                                  [topic, "1", "-", "-"]]
        busy = share_groups(bootstrap, "--reset-offsets", "--group", group, "--topic", topic,
                            "--to-earliest", "--execute", check=False)
        assert busy.returncode != 0
        assert f"Share group '{group}' is not empty." in busy.stdout + busy.stderr
    finally:
        member.leave()

    reset = share_groups(bootstrap, "--reset-offsets", "--group", group, "--topic",
                         f"{topic}:0", "--to-offset", "3", "--execute").stdout
    assert rows(reset) == [[group, topic, "0", "3"]]
    offsets = rows(share_groups(bootstrap, "--describe", "--group", group,
                                "--offsets").stdout)
    # START-OFFSET 3 and LAG 2 (5 records) on partition 0; partition 1 as it was.
    assert sorted(r[1:] for r in offsets) == [[topic, "0", "3", "2"], [topic, "1", "-", "-"]]

    deleted = share_groups(bootstrap, "--delete-offsets", "--group", group, "--topic",
                           topic).stdout
    assert re.search(rf"^{re.escape(topic)}\s+Successful$", deleted, re.M), deleted
    assert "has no offset information" in share_groups(
        bootstrap, "--describe", "--group", group, "--offsets").stdout

    assert "was successful" in share_groups(bootstrap, "--delete", "--group", group).stdout
    assert group not in share_groups(bootstrap, "--list").stdout.split()
